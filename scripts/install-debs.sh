#!/usr/bin/env bash
# Debian packages the tests and benchmark need. Idempotent: installs only what is missing.
#   docker-registry  real OCI registries (CNCF distribution) for the integration tests
#   skopeo           copies images between test registries
#   apache2-utils    htpasswd (bcrypt) for registries with basic auth
#   wrk              the load generator of `make bench`
#   containerd       the real containerd + ctr (1.6): the oracle the registry lookups are compared with
set -euo pipefail
packages=(docker-registry skopeo apache2-utils wrk containerd)
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
