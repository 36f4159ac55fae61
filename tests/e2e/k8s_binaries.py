"""Where the e2e control plane's binaries live: etcd, kube-apiserver and kubectl, built by
``scripts/build-k8s-bins.sh`` into a version-keyed cache dir, or taken from ``$PULLGUARD_K8S_BIN``
(see cluster.py for the control plane they run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.e2e.control_plane import ClusterError

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN_DIR_SCRIPT = REPO_ROOT / "scripts" / "k8s-bin-dir.sh"
BUILD_SCRIPT = REPO_ROOT / "scripts" / "build-k8s-bins.sh"
BIN_DIR_ENV = "PULLGUARD_K8S_BIN"
BINARIES = ("etcd", "kube-apiserver", "kubectl")


class BinariesMissingError(ClusterError):
    """etcd, kube-apiserver or kubectl has not been built."""


def find_bin_dir() -> Path:
    """The directory holding etcd, kube-apiserver and kubectl.

    ``$PULLGUARD_K8S_BIN`` wins; otherwise ask ``scripts/k8s-bin-dir.sh``
    (the version-keyed cache dir the build script fills).
    """
    override = os.environ.get(BIN_DIR_ENV)
    if override:
        return Path(override).expanduser().resolve()
    proc = subprocess.run(["bash", str(BIN_DIR_SCRIPT)], capture_output=True, text=True, timeout=30, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ClusterError(f"{BIN_DIR_SCRIPT} failed ({proc.returncode}): {proc.stderr.strip()}")
    return Path(lines[-1])


def missing_binaries(bin_dir: Path) -> list[str]:
    """Names of the binaries that are absent from (or not executable in) ``bin_dir``."""
    return [name for name in BINARIES if not os.access(bin_dir / name, os.X_OK)]


def require_binaries(bin_dir: Path | None = None) -> Path:
    """``bin_dir`` (or the default one) if it holds all binaries, else BinariesMissingError."""
    bin_dir = bin_dir if bin_dir is not None else find_bin_dir()
    missing = missing_binaries(bin_dir)
    if missing:
        raise BinariesMissingError(
            f"missing {', '.join(missing)} in {bin_dir}; build them with {BUILD_SCRIPT} "
            f"or point ${BIN_DIR_ENV} at a directory holding {', '.join(BINARIES)}"
        )
    return bin_dir


__all__ = [
    "BINARIES",
    "BIN_DIR_ENV",
    "BUILD_SCRIPT",
    "REPO_ROOT",
    "BinariesMissingError",
    "find_bin_dir",
    "missing_binaries",
    "require_binaries",
]
