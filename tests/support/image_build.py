"""pullguard's container image in tests: build it (``scripts/build-image.sh``), push it, unpack it with containerd and
run it the way a node would.

* :func:`build_image` runs the build script (cached under ``~/.cache/pullguard/image-<hash>``) and reads the OCI
  layout it prints.
* :func:`push_image` copies the layout to a plain-HTTP test registry with ``skopeo``.
* :func:`unpacked_rootfs` asks containerd for a read-only view of an image it pulled (native snapshotter): the
  directory containerd would hand to the runtime as the container's root filesystem.
* :class:`ImageContainer` runs that rootfs with the image config's entrypoint, env, user and working directory, a
  read-only root and a host directory as ``/tmp`` (an emptyDir): with ``runc`` (a bundle, as containerd's shim
  does) when it can run containers here, else ``chroot --userspec`` in a private mount namespace.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .containerd import ContainerdDaemon
from .lifecycle import StopsOnExit, end_process

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-image.sh"
PUSH_SCRIPT = REPO / "scripts" / "push-image.sh"
BUILD_TOOLS = ("mmdebstrap", "buildah", "skopeo")


def missing_build_tools() -> list[str]:
    return [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]


def _blob(layout: Path, digest: str) -> bytes:
    algorithm, hexdigest = digest.split(":", 1)
    return (layout / "blobs" / algorithm / hexdigest).read_bytes()


@dataclass(frozen=True)
class BuiltImage:
    """An OCI image layout written by the build script, with its one image."""

    layout: Path
    #: the layout's ``org.opencontainers.image.ref.name`` ("pullguard:<version>")
    ref_name: str
    manifest_digest: str
    manifest: dict[str, Any]
    config: dict[str, Any]
    build_seconds: float

    @property
    def compressed_bytes(self) -> int:
        return sum(int(layer["size"]) for layer in self.manifest["layers"])

    @property
    def chain_id(self) -> str:
        """The top layer's chain ID: the name of the committed snapshot that holds the whole rootfs."""
        chain = ""
        for diff_id in self.config["rootfs"]["diff_ids"]:
            chain = diff_id if not chain else "sha256:" + hashlib.sha256(f"{chain} {diff_id}".encode()).hexdigest()
        return chain


def build_image(timeout: float = 840.0) -> BuiltImage:
    """Run ``scripts/build-image.sh`` (a no-op when its inputs are unchanged) and load what it built."""
    started = time.monotonic()
    done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"build-image.sh failed ({done.returncode}):\n{done.stderr[-4000:]}")
    layout = Path(done.stdout.split()[-1])
    index = json.loads((layout / "index.json").read_text())
    (descriptor,) = index["manifests"]
    manifest = json.loads(_blob(layout, descriptor["digest"]))
    config = json.loads(_blob(layout, manifest["config"]["digest"]))
    ref_name = descriptor["annotations"]["org.opencontainers.image.ref.name"]
    return BuiltImage(layout, ref_name, descriptor["digest"], manifest, config, time.monotonic() - started)


def push_image(image: BuiltImage, registry_host: str, repository: str, tag: str) -> str:
    """``make push IMAGE=registry_host/repository:tag`` (its script, PUSH_TLS_VERIFY=false: a plain-HTTP loopback
    registry); returns the reference, once the script said it pushed exactly the image built."""
    reference = f"{registry_host}/{repository}:{tag}"
    done = subprocess.run(
        ["bash", str(PUSH_SCRIPT), reference],
        env={**os.environ, "PUSH_TLS_VERIFY": "false"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    suggested = f"install it: make install IMAGE={registry_host}/{repository}@{image.manifest_digest}"
    if (
        done.returncode != 0
        or f"pushed {reference} ({image.manifest_digest})" not in done.stdout
        or suggested not in done.stdout
    ):
        raise RuntimeError(f"push-image.sh {reference} ({done.returncode}):\n{done.stdout}\n{done.stderr[-4000:]}")
    return reference


def content_json(containerd: ContainerdDaemon, namespace: str, digest: str) -> dict[str, Any]:
    """A blob of a pulled image, as containerd stored it."""
    done = containerd.ctr("content", "get", digest, namespace=namespace)
    if done.returncode != 0:
        raise RuntimeError(f"ctr content get {digest}: {done.stderr}")
    parsed: dict[str, Any] = json.loads(done.stdout)
    return parsed


@contextlib.contextmanager
def unpacked_rootfs(containerd: ContainerdDaemon, namespace: str, chain_id: str) -> Iterator[Path]:
    """A read-only view (``ctr snapshots view``) of the image containerd pulled and unpacked into ``namespace``."""
    key = f"image-test-view-{os.getpid()}"
    snapshots = ("snapshots", "--snapshotter", "native")
    done = containerd.ctr(*snapshots, "view", "--mounts", key, chain_id, namespace=namespace)
    if done.returncode != 0:
        raise RuntimeError(f"ctr snapshots view: {done.stderr}")
    (mount,) = json.loads(done.stdout)
    if mount["Type"] != "bind":
        raise RuntimeError(f"expected a bind mount from the native snapshotter: {mount}")
    try:
        yield Path(mount["Source"])
    finally:
        containerd.ctr(*snapshots, "rm", key, namespace=namespace)


def runc_works(rootfs: Path, scratch: Path) -> bool:
    """Whether runc can start a container here (namespaces, cgroups, pivot_root allowed): ``/bin/true`` of
    ``rootfs``."""
    if shutil.which("runc") is None:
        return False
    scratch.mkdir(parents=True, exist_ok=True)
    spec = _runc_spec(rootfs, ["/bin/true"], env=["PATH=/bin"], cwd="/", uid=65532, gid=65532, host_network=True)
    (scratch / "config.json").write_text(json.dumps(spec))
    base, container_id = _runc(scratch / "state"), f"probe-{os.getpid()}-{time.monotonic_ns()}"
    try:
        done = subprocess.run([*base, "run", "--bundle", str(scratch), container_id], capture_output=True,
                              timeout=30, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return False
    finally:
        subprocess.run([*base, "delete", "-f", container_id], capture_output=True, check=False)
    return done.returncode == 0


def _runc(state: Path) -> list[str]:
    return ["runc", "--root", str(state)]


def _runc_spec(
    rootfs: Path, args: Sequence[str], *, env: Sequence[str], cwd: str, uid: int, gid: int, host_network: bool
) -> dict[str, Any]:
    """An OCI runtime spec: ``runc spec``'s default (close to what containerd generates), no capabilities,
    read-only root."""
    namespaces = ["pid", "ipc", "uts", "mount"] + ([] if host_network else ["network"])
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": uid, "gid": gid, "additionalGids": [gid]},
            "args": list(args),
            "env": list(env),
            "cwd": cwd,
            "capabilities": {kind: [] for kind in ("bounding", "effective", "permitted", "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "pullguard",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        ],
        "linux": {
            "namespaces": [{"type": kind} for kind in namespaces],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }  # fmt: skip


def _user(config: dict[str, Any]) -> tuple[int, int]:
    """The image config's ``User`` as numeric ids (a name would need the rootfs' /etc/passwd: refuse it)."""
    user = config["config"].get("User") or "0"
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


_LIVE: set[ImageContainer] = set()


def _stop_all_live() -> None:
    for container in list(_LIVE):
        container.stop()


atexit.register(_stop_all_live)  # a failed or interrupted test never leaves a container running


@dataclass(eq=False)
class ImageContainer(StopsOnExit):
    """One process of the image: ``entrypoint + args`` as the image config says, until :meth:`stop`."""

    process: subprocess.Popen[bytes]
    log_path: Path
    runtime: str
    #: the host directory mounted at /tmp (the emptyDir)
    tmp_dir: Path
    #: runc's command prefix and the container id (runc runs only)
    runc: list[str] = field(default_factory=list)
    container_id: str = ""
    _stopped: bool = False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.stop()

    def pid(self) -> int:
        """The container's own process (under runc, the child of ``runc run``)."""
        if self.runtime == "runc":
            state = subprocess.run([*self.runc, "state", self.container_id], capture_output=True, text=True,
                                   check=True)  # fmt: skip
            return int(json.loads(state.stdout)["pid"])
        return self.process.pid

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        _LIVE.discard(self)
        if self.process.poll() is None and self.runtime == "runc":
            subprocess.run([*self.runc, "kill", self.container_id, "TERM"], capture_output=True, check=False)
            end_process(self.process, signal_sent=True)
        else:
            end_process(self.process)
        if self.runc:
            subprocess.run([*self.runc, "delete", "-f", self.container_id], capture_output=True, check=False)


def start_container(
    rootfs: Path,
    config: dict[str, Any],
    args: Sequence[str] | None,
    workdir: Path,
    *,
    runtime: str,
    host_network: bool = True,
) -> ImageContainer:
    """Run ``Entrypoint + (args if given else Cmd)`` with the config's Env, WorkingDir and User; the root filesystem
    read-only, ``workdir/tmp`` (mode 1777, like an emptyDir) at /tmp. ``host_network=False`` gives it a network
    namespace of its own (``nsenter --net=/proc/<pid>/ns/net`` reaches it)."""
    image = config["config"]
    argv = list(image.get("Entrypoint") or []) + list(args if args is not None else image.get("Cmd") or [])
    env = list(image.get("Env") or [])
    cwd = image.get("WorkingDir") or "/"
    uid, gid = _user(config)
    workdir.mkdir(parents=True, exist_ok=True)
    tmp_dir = workdir / "tmp"
    tmp_dir.mkdir(exist_ok=True)
    tmp_dir.chmod(0o1777)
    log_path = workdir / "container.log"
    if runtime == "runc":
        spec = _runc_spec(rootfs, argv, env=env, cwd=cwd, uid=uid, gid=gid, host_network=host_network)
        spec["mounts"].append({"destination": "/tmp", "type": "bind", "source": str(tmp_dir),
                               "options": ["rbind", "rw", "nosuid", "nodev"]})  # fmt: skip
        bundle = workdir / "bundle"
        bundle.mkdir(exist_ok=True)
        (bundle / "config.json").write_text(json.dumps(spec, indent=1))
        container_id = f"pullguard-image-{os.getpid()}-{time.monotonic_ns()}"
        runc = _runc(workdir / "runc-state")
        cmd = [*runc, "run", "--bundle", str(bundle), container_id]
    elif runtime == "chroot":
        # a private mount namespace: the rootfs bound read-only at a fresh mount point, the emptyDir on /tmp,
        # /proc and /dev for the interpreter; then chroot drops to the image's user
        mnt = workdir / "root"
        mnt.mkdir(exist_ok=True)
        script = (
            'set -e; mount --bind "$1" "$2"; mount -o remount,bind,ro "$2"; mount --bind "$3" "$2/tmp"; '
            'mount -t proc proc "$2/proc"; mount --rbind /dev "$2/dev"; shift 3; '
            'exec env -i "$@"'
        )
        if not host_network:  # a network namespace of its own, loopback only (as runc sets it up)
            script = "ip link set lo up; " + script
        chroot = ["chroot", f"--userspec={uid}:{gid}", f"--groups={gid}", str(mnt), "sh", "-c",
                  f'cd "{cwd}" && exec "$0" "$@"', *argv]  # fmt: skip
        unshare = ["unshare", "--mount", "--propagation", "private"] + ([] if host_network else ["--net"])
        cmd = [*unshare, "sh", "-c", script, "sh", str(rootfs), str(mnt), str(tmp_dir), *env, *chroot]
        runc, container_id = [], ""
    else:
        raise ValueError(f"unknown runtime {runtime!r}")
    with log_path.open("ab") as log:
        process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
    container = ImageContainer(process, log_path, runtime, tmp_dir, runc, container_id)
    _LIVE.add(container)
    return container


def rootfs_bytes(rootfs: Path) -> int:
    """Apparent size of an unpacked root filesystem (``du -sb``)."""
    done = subprocess.run(["du", "-sb", str(rootfs)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0])
