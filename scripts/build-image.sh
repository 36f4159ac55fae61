#!/usr/bin/env bash
# Build pullguard's container image without Docker and without any public image registry.
#
#   1. base:   mmdebstrap makes a minimal Debian rootfs (the machine's release, python3 + python3-venv) and buildah
#              imports it as localhost/pullguard-base:<hash>           (cached by its package list)
#   2. wheels: the project venv's pip downloads the locked dependency wheels (requirements.lock; the venv is
#              CPython 3.11 like Debian bookworm's python3, so the cp311 manylinux wheels fit)
#   3. image:  buildah builds ./Containerfile on that base (vfs storage, chroot isolation, PIP_NO_INDEX=1) and
#              pushes it to an OCI layout directory                       (cached by a hash of every input)
#
# The OCI layout's path is the last line of stdout; its one image is tagged "pullguard:<version>" (pyproject.toml).
# It also writes the image as an OCI archive, dist/pullguard-<version>.tar. With IMAGE_REGISTRY=host:port the image
# is also copied to http://host:port/pullguard:<version> (skopeo); `make push IMAGE=...` pushes it anywhere.
#
# Usage:  scripts/build-image.sh [--print-dir]      build if needed (--print-dir: only print where it would be)
# Environment:
#   PULLGUARD_CACHE  cache root (default $HOME/.cache/pullguard); images land in image-<hash>/oci
#   IMAGE_REGISTRY   optional registry to push to, plain HTTP or unverified TLS (e.g. 127.0.0.1:5000)
#   DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR   default http://deb.debian.org/debian and .../debian-security
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
self=$repo_root/scripts/build-image.sh
cache_root=${PULLGUARD_CACHE:-$HOME/.cache/pullguard}
venv_python=${VENV_PYTHON:-$repo_root/.venv/bin/python}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# shellcheck disable=SC1091
release=$(. /etc/os-release && echo "$VERSION_CODENAME")
base_packages=python3,python3-venv,ca-certificates
# merged /usr the bookworm way (usr-is-merged, not the usrmerge converter, which needs perl: 50 MB);
# documentation and translations are dead weight in an image
mmdebstrap_opts=(--variant=essential --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
dpkg_opts=(--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/info/*')

log() { echo "build-image: $*" >&2; }
sha() { sha256sum | cut -c1-16; }

for tool in mmdebstrap buildah skopeo flock; do
    command -v "$tool" >/dev/null || { log "$tool is missing (Debian packages: see scripts/install-debs.sh)"; exit 1; }
done

base_hash=$(printf '%s\n' "$release" "$mirror" "$security_mirror" "$base_packages" "${mmdebstrap_opts[@]}" \
    "${dpkg_opts[@]}" | sha)
base_dir=$cache_root/image-base-$base_hash
base_ref=localhost/pullguard-base:$base_hash
storage=$cache_root/buildah
buildah_opts=(--root "$storage/root" --runroot "$storage/runroot" --storage-driver vfs)
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo_root/pyproject.toml" | head -n1)

# a dependency added to or dropped from pyproject.toml must reach requirements.lock first
"$venv_python" "$repo_root/scripts/image-lock.py" --check

mkdir -p "$cache_root"
# One build at a time (parallel test sessions, a shell and make test...): later ones wait and reuse the cache.
exec 9>"$cache_root/.image.lock"
flock 9
# leftovers of a build that was killed (we hold the lock, so none is live)
rm -rf "$cache_root"/.image-stage.*
buildah "${buildah_opts[@]}" rm --all >/dev/null 2>&1 || true

# --- stage the build context: exactly what .dockerignore admits, plus the wheelhouse; its hash names the image
stage=$(mktemp -d "$cache_root/.image-stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
(cd "$repo_root" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' \
    Containerfile .dockerignore pyproject.toml README.md requirements.lock webhook policies) | tar -xf - -C "$stage"

# The base is this machine's Debian release, so its glibc is ours: wheels for manylinux_2_<ours> and older fit.
# pip matches --platform literally, so every older tag (and the legacy aliases) is listed.
glibc_minor=$(getconf GNU_LIBC_VERSION | awk '{ split($2, v, "."); print v[2] }')
arch=$(uname -m)
platforms=(--platform "manylinux2014_$arch" --platform "manylinux2010_$arch" --platform "manylinux1_$arch")
for ((minor = 5; minor <= glibc_minor; minor++)); do
    platforms+=(--platform "manylinux_2_${minor}_$arch")
done
wheelhouse=$cache_root/wheels-$( (cat "$repo_root/requirements.lock"; echo "${platforms[@]}") | sha)
if [[ ! -f $wheelhouse/.complete ]]; then
    log "downloading the locked wheels (cp311, manylinux_2_${glibc_minor}_$arch or older) into $wheelhouse"
    rm -rf "$wheelhouse"
    # binary-only: every locked dependency has a cp311 manylinux wheel, so the image needs no compiler;
    # setuptools is pullguard's build backend, needed by the builder stage's offline `pip wheel .`
    PIP_FIND_LINKS="" "$venv_python" -m pip download -q --only-binary=:all: "${platforms[@]}" \
        --python-version 3.11 --implementation cp -d "$wheelhouse" -r "$repo_root/requirements.lock" 'setuptools>=68'
    touch "$wheelhouse/.complete"
fi
mkdir -p "$stage/dist/wheels"
cp "$wheelhouse"/*.whl "$stage/dist/wheels/"

image_hash=$( (cd "$stage" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum;
    echo "$base_hash"; sha256sum <"$self") | sha)
image_dir=$cache_root/image-$image_hash
oci_dir=$image_dir/oci
image_ref=pullguard:$version

if [[ ${1:-} == --print-dir ]]; then
    echo "$oci_dir"
    exit 0
fi

if [[ -f $image_dir/.complete ]]; then
    log "up to date: $oci_dir (tag $image_ref)"
else
    # --- base: a Debian rootfs from Debian packages, imported once into buildah's storage
    if ! buildah "${buildah_opts[@]}" inspect --type image "$base_ref" >/dev/null 2>&1; then
        if [[ ! -f $base_dir/rootfs.tar ]]; then
            log "mmdebstrap $release ($base_packages)"
            mkdir -p "$base_dir"
            mmdebstrap --quiet --format=tar "${mmdebstrap_opts[@]}" --include="$base_packages" "${dpkg_opts[@]}" \
                "$release" "$base_dir/rootfs.tar.tmp" \
                "deb $mirror $release main" "deb $mirror $release-updates main" \
                "deb $security_mirror $release-security main" >&2
            mv "$base_dir/rootfs.tar.tmp" "$base_dir/rootfs.tar"
        fi
        log "importing the base as $base_ref"
        container=$(buildah "${buildah_opts[@]}" from scratch)
        buildah "${buildah_opts[@]}" add "$container" "$base_dir/rootfs.tar" / >/dev/null
        buildah "${buildah_opts[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
            --cmd /bin/sh --os linux --arch "$(dpkg --print-architecture)" "$container"
        buildah "${buildah_opts[@]}" commit --rm --format oci "$container" "$base_ref" >/dev/null
        # older bases (another package list or release) only take space
        buildah "${buildah_opts[@]}" images --format '{{.Name}}:{{.Tag}}' | grep '/pullguard-base:' \
            | grep -v ":$base_hash\$" | xargs -r buildah "${buildah_opts[@]}" rmi >/dev/null || true
        find "$cache_root" -maxdepth 1 -type d -name 'image-base-*' ! -name "image-base-$base_hash" -exec rm -rf {} +
    fi

    # --- image: the Containerfile itself, offline, on the Debian base
    log "building $image_ref from Containerfile on $base_ref"
    started=$SECONDS
    # chroot isolation: RUN steps need no user namespaces or runtime (this may itself run inside a container)
    buildah "${buildah_opts[@]}" build --isolation chroot --pull-never --format oci --layers=false \
        --build-arg BASE="$base_ref" --build-arg PIP_NO_INDEX=1 \
        -f "$stage/Containerfile" -t "localhost/$image_ref-$image_hash" "$stage" >&2
    rm -rf "$image_dir"
    mkdir -p "$image_dir"
    buildah "${buildah_opts[@]}" push --quiet "localhost/$image_ref-$image_hash" "oci:$oci_dir:$image_ref" >&2
    # the OCI layout is the cache; storage keeps only the base (vfs copies whole layers, so it grows fast)
    buildah "${buildah_opts[@]}" rmi "localhost/$image_ref-$image_hash" >/dev/null
    buildah "${buildah_opts[@]}" rmi --prune >/dev/null 2>&1 || true
    touch "$image_dir/.complete"
    log "built in $((SECONDS - started))s: $oci_dir (tag $image_ref)"
    # keep the three newest images and wheelhouses
    for pattern in 'image-*' 'wheels-*'; do
        find "$cache_root" -maxdepth 1 -type d -name "$pattern" ! -name 'image-base-*' -printf '%T@ %p\n' \
            | sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf
    done
fi

# The OCI archive to hand on (skopeo copy oci-archive:dist/pullguard-<version>.tar docker://...; podman load),
# rewritten only when the image changed.
archive=$repo_root/dist/pullguard-$version.tar
if [[ ! -s $archive || $oci_dir/index.json -nt $archive ]]; then
    mkdir -p "$repo_root/dist"
    rm -f "$archive"
    skopeo copy --quiet "oci:$oci_dir:$image_ref" "oci-archive:$archive:$image_ref" >&2
    log "archive: $archive"
fi

if [[ -n ${IMAGE_REGISTRY:-} ]]; then
    log "pushing to $IMAGE_REGISTRY/$image_ref"
    skopeo copy --quiet --dest-tls-verify=false "oci:$oci_dir:$image_ref" "docker://$IMAGE_REGISTRY/$image_ref" >&2
fi
echo "$oci_dir"
