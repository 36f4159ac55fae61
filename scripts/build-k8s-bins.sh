#!/usr/bin/env bash
# Build kube-apiserver, kubectl, etcd, the kubelet, kube-controller-manager and kube-scheduler for the
# end-to-end tests (the kubelet runs a real node: tests/node/; the controller manager and the scheduler turn the
# install's Deployment into a pod on it).
#
# The versions come from tests/e2e/k8sbin/go.mod (k8s.io/kubernetes and the
# etcd server it pins). The binaries land in
#   ${PULLGUARD_CACHE:-$HOME/.cache/pullguard}/k8s-<version>/bin
# and the bin dir is printed as the last line of stdout.
#
# Idempotent: when all the binaries exist and run, nothing is built.
# Each binary is built into a temporary directory next to the bin dir and
# renamed into place, so an interrupted build never leaves a half binary.
#
# Usage:
#   scripts/build-k8s-bins.sh                  build if needed, print bin dir
#   scripts/build-k8s-bins.sh --print-bin-dir  only print the bin dir
#   scripts/build-k8s-bins.sh --check          exit 0 iff the binaries are usable
#
# Environment:
#   PULLGUARD_CACHE  cache root (default $HOME/.cache/pullguard)
#   GO               go command (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod_dir=$repo_root/tests/e2e/k8sbin

k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ { print $2; exit }' "$mod_dir/go.mod")
if [[ -z $k8s_version ]]; then
    echo "build-k8s-bins: cannot find k8s.io/kubernetes in $mod_dir/go.mod" >&2
    exit 1
fi
etcd_version=$(awk '$1 == "go.etcd.io/etcd/server/v3" && $2 ~ /^v3\./ { print $2; exit }' "$mod_dir/go.mod")
cache_root=${PULLGUARD_CACHE:-$HOME/.cache/pullguard}
version_dir=$cache_root/k8s-$k8s_version
bin_dir=$version_dir/bin
binaries=(kube-apiserver kubectl etcd kubelet kube-controller-manager kube-scheduler)

binary_works() {
    local name=$1 path=$bin_dir/$1
    [[ -x $path ]] || return 1
    case $name in
        kubectl) "$path" version --client >/dev/null 2>&1 ;;
        *) "$path" --version >/dev/null 2>&1 ;;
    esac
}

all_work() {
    local b
    for b in "${binaries[@]}"; do
        binary_works "$b" || return 1
    done
}

case ${1:-} in
    --print-bin-dir)
        echo "$bin_dir"
        exit 0
        ;;
    --check)
        all_work
        exit $?
        ;;
    "") ;;
    *)
        echo "usage: $0 [--print-bin-dir|--check]" >&2
        exit 2
        ;;
esac

if all_work; then
    echo "$bin_dir"
    exit 0
fi

if [[ -z ${GO:-} ]]; then
    GO=$(command -v go || true)
    [[ -n $GO ]] || GO=/usr/local/go/bin/go
fi
if [[ ! -x $GO ]]; then
    echo "build-k8s-bins: no go toolchain (set GO=/path/to/go)" >&2
    exit 1
fi

# Never let the go command fetch a newer toolchain: if the pinned release
# needs a newer Go than the local one, pin an older release instead.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
# Use the committed go.sum; never rewrite go.mod while building.
export GOFLAGS=-mod=readonly

need_go=$(awk '$1 == "go" { print $2; exit }' "$mod_dir/go.mod")
have_go=$("$GO" env GOVERSION)
have_go=${have_go#go}
if [[ $(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -n1) != "$need_go" ]]; then
    echo "build-k8s-bins: $mod_dir/go.mod needs go $need_go, local go is $have_go;" \
        "pin an older k8s.io/kubernetes release" >&2
    exit 1
fi

mkdir -p "$bin_dir"

# One build at a time per version (parallel pytest sessions, two shells...).
exec 9>"$version_dir/.lock"
if command -v flock >/dev/null 2>&1; then
    flock 9
fi
if all_work; then
    echo "$bin_dir"
    exit 0
fi

# Leftovers of a build that was SIGKILLed (we hold the lock, so none is live).
rm -rf "$version_dir"/.build.*
tmp_dir=$(mktemp -d "$version_dir/.build.XXXXXX")
trap 'rm -rf "$tmp_dir"' EXIT

# Stamp the release into the binaries; otherwise they report v0.0.0-master
# and kubectl warns about version skew.
minor=${k8s_version#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
done

declare -A pkg_of=(
    [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
    [kubectl]=k8s.io/kubernetes/cmd/kubectl
    [etcd]=./etcd
    [kubelet]=k8s.io/kubernetes/cmd/kubelet
    [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
    [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
)

start=$SECONDS
cd "$mod_dir"
# Sequential builds with -p 2: the machine this runs on has two cores and
# linking kube-apiserver alone takes a few GiB.
for b in "${binaries[@]}"; do
    if binary_works "$b"; then
        echo "build-k8s-bins: $b already built" >&2
        continue
    fi
    echo "build-k8s-bins: building $b (kubernetes $k8s_version, etcd $etcd_version)..." >&2
    t0=$SECONDS
    "$GO" build -p 2 -trimpath -ldflags "$ldflags" -o "$tmp_dir/$b" "${pkg_of[$b]}"
    mv -f "$tmp_dir/$b" "$bin_dir/$b"
    echo "build-k8s-bins: $b built in $((SECONDS - t0))s" >&2
done

if ! all_work; then
    echo "build-k8s-bins: built binaries in $bin_dir do not run" >&2
    exit 1
fi
echo "build-k8s-bins: done in $((SECONDS - start))s" >&2
echo "$bin_dir"
