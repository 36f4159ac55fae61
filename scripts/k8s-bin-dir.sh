#!/usr/bin/env bash
# Print the directory scripts/build-k8s-bins.sh builds kube-apiserver, kubectl
# and etcd into, without building anything.
set -euo pipefail
exec "$(dirname "${BASH_SOURCE[0]}")/build-k8s-bins.sh" --print-bin-dir
