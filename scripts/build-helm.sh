#!/usr/bin/env bash
# Build the helm binary the chart tests run, from the helm.sh/helm/v4 version pinned in tests/e2e/helmbin/go.mod,
# into ${PULLGUARD_CACHE:-$HOME/.cache/pullguard}/helm-<version>/bin/helm. Prints that bin directory last.
#
# Idempotent: a helm that exists and runs is not rebuilt. Built into a temporary file and renamed into place, so
# an interrupted build never leaves half a binary.
#
# Usage:
#   scripts/build-helm.sh                  build if needed, print the bin dir
#   scripts/build-helm.sh --print-bin-dir  only print the bin dir
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod_dir=$repo_root/tests/e2e/helmbin
helm_version=$(awk '$1 == "require" && $2 == "helm.sh/helm/v4" { print $3; exit } $1 == "helm.sh/helm/v4" { print $2; exit }' "$mod_dir/go.mod")
if [[ -z $helm_version ]]; then
    echo "build-helm: cannot find helm.sh/helm/v4 in $mod_dir/go.mod" >&2
    exit 1
fi
cache_root=${PULLGUARD_CACHE:-$HOME/.cache/pullguard}
version_dir=$cache_root/helm-$helm_version
bin_dir=$version_dir/bin

works() { [[ -x $bin_dir/helm ]] && "$bin_dir/helm" version --short >/dev/null 2>&1; }

case ${1:-} in
    --print-bin-dir) echo "$bin_dir"; exit 0 ;;
    "") ;;
    *) echo "usage: $0 [--print-bin-dir]" >&2; exit 2 ;;
esac
if works; then
    echo "$bin_dir"
    exit 0
fi

if [[ -z ${GO:-} ]]; then
    GO=$(command -v go || true)
    [[ -n $GO ]] || GO=/usr/local/go/bin/go
fi
[[ -x $GO ]] || { echo "build-helm: no go toolchain (set GO=/path/to/go)" >&2; exit 1; }
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly

mkdir -p "$bin_dir"
exec 9>"$version_dir/.lock"
command -v flock >/dev/null 2>&1 && flock 9
if works; then
    echo "$bin_dir"
    exit 0
fi
tmp=$(mktemp "$bin_dir/.helm.XXXXXX")
trap 'rm -f "$tmp"' EXIT
echo "build-helm: building helm $helm_version..." >&2
start=$SECONDS
# The version helm reports (helm version) is stamped as its release build does.
ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version"
(cd "$mod_dir" && "$GO" build -p 2 -trimpath -ldflags "$ldflags" -o "$tmp" helm.sh/helm/v4/cmd/helm)
mv -f "$tmp" "$bin_dir/helm"
works || { echo "build-helm: the built helm does not run" >&2; exit 1; }
echo "build-helm: built in $((SECONDS - start))s" >&2
echo "$bin_dir"
