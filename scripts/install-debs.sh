#!/usr/bin/env bash
# Debian packages the tests and benchmark need. Idempotent: installs only what is missing.
#   docker-registry  real OCI registries (CNCF distribution) for the integration tests
#   skopeo           copies images between test registries
#   apache2-utils    htpasswd (bcrypt) for registries with basic auth
#   wrk              the load generator of `make bench`
#   containerd       the real containerd + ctr (1.6): the oracle the registry lookups are compared with
#   mmdebstrap       the image's Debian base, from Debian packages (`make image`: no public image registry)
#   buildah          builds ./Containerfile on that base without a daemon (vfs storage, chroot isolation)
#   runc             runs the built image in tests/e2e/test_image.py, and the test node's containers
#   containernetworking-plugins  the CNI `loopback` plugin: the test node's network (tests/e2e/node*.py)
set -euo pipefail
packages=(docker-registry skopeo apache2-utils wrk containerd mmdebstrap buildah runc containernetworking-plugins)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
