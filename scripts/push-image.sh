#!/usr/bin/env bash
# make push IMAGE=host/repo:tag: build pullguard's image (scripts/build-image.sh, cached) and push it with skopeo
# (no Docker). Prints the pushed digest and the command that installs exactly it.
#
# Environment:
#   PUSH_TLS_VERIFY  false for a registry whose certificate this machine does not trust (or plain HTTP)
#   PUSH_CREDS       user:password for the registry (default: skopeo's own auth file, e.g. after skopeo login)
set -euo pipefail
image=${1:-}
if [[ -z $image || $image != */* ]]; then
    echo "make push: name where to push it, with its registry: make push IMAGE=host/repo:tag" >&2
    exit 2
fi
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
oci_dir=$(bash "$repo_root/scripts/build-image.sh")
# The layout holds one image, tagged pullguard:<version>.
ref=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["manifests"]; print(m[0]["annotations"]["org.opencontainers.image.ref.name"])' "$oci_dir/index.json")
args=(--quiet)
[[ -n ${PUSH_TLS_VERIFY:-} ]] && args+=("--dest-tls-verify=$PUSH_TLS_VERIFY")
[[ -n ${PUSH_CREDS:-} ]] && args+=(--dest-creds "$PUSH_CREDS")
digest_file=$(mktemp)
trap 'rm -f "$digest_file"' EXIT
skopeo copy "${args[@]}" --digestfile "$digest_file" "oci:$oci_dir:$ref" "docker://$image"
digest=$(cat "$digest_file")
# The repository without its tag or digest (a registry's :port is not a tag: only the last path element has one).
repository=${image%%@*}
[[ ${repository##*/} == *:* ]] && repository=${repository%:*}
echo "pushed $image ($digest)"
echo "install it: make install IMAGE=$repository@$digest   (or IMAGE=$image)"
