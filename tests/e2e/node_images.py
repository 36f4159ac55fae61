"""Images a real node can run: a static "wait for SIGTERM" program, packed into tiny linux/amd64 images.

The stock test images (``tests.support.images``) hold a text file and no binary, so a container from them never
starts. Here one Go program (built once with ``CGO_ENABLED=0``, cached under ``~/.cache/pullguard``) serves both
as the pod sandbox image (containerd's ``sandbox_image``) and as the workload: it blocks until SIGTERM or SIGINT
and exits 0. Every image has two layers: the binary (one blob, shared) and a file naming the seed, so images
pushed with different seeds have different digests.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from tests.support.image_model import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    LINUX_AMD64,
    Blob,
    BuiltManifest,
    PushedImage,
    digest_of,
)
from tests.support.pushers import ImagePusher, RegistryEndpoint

PAUSE_SOURCE = """package main

import (
	"os"
	"os/signal"
	"syscall"
)

// Blocks until SIGTERM or SIGINT: as PID 1 of a container the default actions are ignored, so handle them.
func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
"""

ENTRYPOINT = "/pause"
_FIXED_TIME = "2024-01-01T00:00:00Z"

__all__ = [
    "ENTRYPOINT",
    "ImageBuildError",
    "build_runnable_image",
    "go_binary",
    "pause_binary",
    "push_runnable",
    "write_oci_archive",
]


class ImageBuildError(RuntimeError):
    """The pause program could not be built (no Go toolchain, or the build failed)."""


def cache_root() -> Path:
    return Path(os.environ.get("PULLGUARD_CACHE") or Path.home() / ".cache" / "pullguard")


def go_binary() -> str | None:
    """``$GO``, ``go`` on PATH, else /usr/local/go/bin/go (like scripts/build-k8s-bins.sh)."""
    for candidate in (os.environ.get("GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _go_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("GO")}
    # static, no toolchain download, no module lookups for a single-file package
    env.update({"CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOOS": "linux", "GOARCH": "amd64", "GOFLAGS": ""})
    return env


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # parallel sessions build it once
        yield


@cache
def pause_binary() -> Path:
    """The static pause program, built on first use (keyed by source and Go version)."""
    go = go_binary()
    if go is None:
        raise ImageBuildError("no Go toolchain to build the pause program (set GO=/path/to/go)")
    version = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, env=_go_env(),
                             timeout=60, check=True).stdout.strip()  # fmt: skip
    key = hashlib.sha256(f"{version}\n{PAUSE_SOURCE}".encode()).hexdigest()[:16]
    directory = cache_root() / f"node-pause-{key}"
    binary = directory / "pause"
    if binary.exists():
        return binary
    with _locked(cache_root() / f".node-pause-{key}.lock"):
        if binary.exists():
            return binary
        build = directory.with_name(f".{directory.name}.build-{os.getpid()}")
        shutil.rmtree(build, ignore_errors=True)
        build.mkdir(parents=True)
        (build / "main.go").write_text(PAUSE_SOURCE)
        done = subprocess.run([go, "build", "-trimpath", "-ldflags", "-s -w", "-o", "pause", "main.go"], cwd=build,
                              capture_output=True, text=True, env=_go_env(), timeout=600, check=False)  # fmt: skip
        if done.returncode != 0:
            shutil.rmtree(build, ignore_errors=True)
            raise ImageBuildError(f"go build of the pause program failed:\n{done.stderr[-2000:]}")
        (build / "main.go").unlink()
        os.replace(build, directory)  # atomic: a reader never sees half a binary
    return binary


def _tar(files: Mapping[str, tuple[bytes, int]]) -> bytes:
    """A deterministic tar of ``name -> (content, mode)``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (content, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), mode, 0
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _tar_gz(files: Mapping[str, tuple[bytes, int]]) -> tuple[bytes, str]:
    """The gzipped tar and its diff_id."""
    raw = _tar(files)
    return gzip.compress(raw, compresslevel=6, mtime=0), digest_of(raw)


@cache
def _binary_layer() -> tuple[Blob, str]:
    data, diff_id = _tar_gz({ENTRYPOINT.lstrip("/"): (pause_binary().read_bytes(), 0o755)})
    return Blob(DOCKER_LAYER, data), diff_id


def build_runnable_image(seed: str) -> BuiltManifest:
    """A Docker schema2 linux/amd64 image whose entrypoint is the pause program."""
    binary, binary_diff = _binary_layer()
    marker_data, marker_diff = _tar_gz({"pullguard/seed.txt": (f"{seed}\n".encode(), 0o644)})
    marker = Blob(DOCKER_LAYER, marker_data)
    config_obj: dict[str, Any] = {
        "architecture": LINUX_AMD64.architecture,
        "os": LINUX_AMD64.os,
        "created": _FIXED_TIME,
        "config": {"Entrypoint": [ENTRYPOINT], "Env": ["PATH=/"], "Labels": {"org.opencontainers.image.title": seed}},
        "rootfs": {"type": "layers", "diff_ids": [binary_diff, marker_diff]},
        "history": [{"created": _FIXED_TIME, "created_by": "pullguard node harness"}] * 2,
    }
    config = Blob(DOCKER_CONFIG, json.dumps(config_obj, indent=2).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config.descriptor(),
        "layers": [binary.descriptor(), marker.descriptor()],
    }
    return BuiltManifest(kind="image", media_type=DOCKER_MANIFEST, raw=json.dumps(manifest, indent=2).encode(),
                         blobs=(config, binary, marker), platform=LINUX_AMD64)  # fmt: skip


def write_oci_archive(manifest: BuiltManifest, name: str, path: Path) -> Path:
    """An OCI image layout as a tar (what ``ctr images import`` and ``kind load image-archive`` read) holding
    ``manifest`` under the full reference ``name`` (``io.containerd.image.name``; the OCI ref name alone would
    be a bare tag)."""
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else "latest"
    entry = {"mediaType": manifest.media_type, "digest": manifest.digest, "size": manifest.size,
             "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}}  # fmt: skip
    files: dict[str, tuple[bytes, int]] = {
        "oci-layout": (json.dumps({"imageLayoutVersion": "1.0.0"}).encode(), 0o644),
        "index.json": (json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode(), 0o644),
    }
    contents = {manifest.digest: manifest.raw} | {blob.digest: blob.data for blob in manifest.blobs}
    for digest, content in contents.items():
        files[f"blobs/sha256/{digest.removeprefix('sha256:')}"] = (content, 0o644)
    path.write_bytes(_tar(files))
    return path


def push_runnable(
    registry: RegistryEndpoint, repository: str, tag: str = "latest", *, seed: str | None = None
) -> PushedImage:
    """Push a runnable image as ``repository:tag`` (with the registry's own push credentials)."""
    with ImagePusher(registry) as pusher:
        return pusher.push(repository, tag, build_runnable_image(seed or f"{repository}:{tag}"))
