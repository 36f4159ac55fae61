"""The private mount namespace a test node's daemons run in, so the node changes nothing host-wide.

A holder process (``unshare --mount --propagation private``, then ``sleep``) makes the namespace and keeps it;
containerd and the kubelet join it with ``nsenter --mount`` (so do the shims and runc, containerd's children).
In it:

* ``/proc/sys/kernel`` and ``/proc/sys/vm`` are writable copies on a tmpfs: the kubelet sets ``kernel.panic``,
  ``kernel.panic_on_oops``, ``vm.overcommit_memory``, ``vm.panic_on_oom`` and the root key quotas at start-up,
  and those writes land in the copies, never in the host's kernel.
* ``/run``, ``/var/lib``, ``/var/log``, ``/etc``, ``/opt`` and ``/usr/libexec`` are overlays with a tmpfs upper
  layer: what the daemons write at fixed paths (the shims' sockets in ``/run/containerd/s``, libcni's cache in
  ``/var/lib/cni``, the kubelet's ``/var/log/containers`` links) lands there, not on the host's disk.
* ``/etc/resolv.conf`` names only 127.0.0.1 and ``/etc/hosts`` only loopback names, so nothing resolves
  anything outside the machine; ``/.docker`` (a docker config the kubelet would read) is hidden.

Everything mounted in the namespace disappears with its last process: the reaper only has to kill processes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.control_plane import ClusterError, ManagedProcess

#: sysctl directories the node writes and the host must not see written
CONFINED_SYSCTL_DIRS = ("kernel", "vm")
#: host directories overlaid with a private tmpfs upper layer
OVERLAID_DIRS = ("/run", "/var/lib", "/var/log", "/etc", "/opt", "/usr/libexec")
#: fixed paths a kubelet or containerd writes by default; a node must create none of them on the host
HOST_PATHS = ("/var/lib/kubelet", "/var/log/pods", "/var/log/containers", "/var/lib/cni", "/var/lib/containerd",
              "/run/containerd", "/run/netns", "/var/run/netns", "/etc/kubernetes", "/etc/cni", "/opt/cni",
              "/opt/containerd", "/usr/libexec/kubernetes", "/root/.docker")  # fmt: skip

_SETUP = r"""set -eu
private=$1 ready=$2 resolv=$3 hosts=$4 empty=$5
shift 5
mount -t tmpfs -o mode=0700 pullguard-node "$private"
for dir in $SYSCTL_DIRS; do
  mkdir -p "$private/sys"
  cp -r "/proc/sys/$dir" "$private/sys/" 2>/dev/null || true  # a few write-only files cannot be read
  mount --bind "$private/sys/$dir" "/proc/sys/$dir"
done
n=0
for dir in $OVERLAID_DIRS; do
  n=$((n + 1))
  layer=$private/overlay$n
  mkdir -p "$layer/upper" "$layer/work"
  mount -t overlay pullguard-node -o "lowerdir=$dir,upperdir=$layer/upper,workdir=$layer/work" "$dir"
done
mount --bind "$resolv" /etc/resolv.conf
mount --bind "$hosts" /etc/hosts
if [ -d /.docker ]; then mount --bind "$empty" /.docker; fi
touch "$ready"
exec "$@"
"""

__all__ = [
    "CONFINED_SYSCTL_DIRS",
    "HOST_PATHS",
    "KUBELET_SYSCTLS",
    "MountNamespace",
    "child_env",
    "existing_host_paths",
    "host_sysctls",
    "missing_tools",
]


def missing_tools() -> list[str]:
    return [tool for tool in ("unshare", "nsenter", "mount", "sleep", "cp") if shutil.which(tool) is None]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A small, fixed environment: nothing from the test run (proxies, KUBECONFIG, DOCKER_CONFIG) leaks in."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    env.update(extra or {})
    return env


@dataclass
class MountNamespace:
    """A running namespace holder; :meth:`spawn` starts a daemon inside it."""

    holder: ManagedProcess
    directory: Path

    @classmethod
    def create(cls, directory: Path, timeout: float = 30.0) -> MountNamespace:
        """Make the namespace; ``directory`` (on the host) holds its files and an empty ``private`` mount point."""
        private = directory / "private"
        for sub in (private, directory / "empty"):
            sub.mkdir(parents=True, exist_ok=True)
        ready = directory / "ns-ready"
        ready.unlink(missing_ok=True)
        resolv, hosts = directory / "resolv.conf", directory / "hosts"
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        hosts.write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
        args = [private, ready, resolv, hosts, directory / "empty"]
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _SETUP, "pullguard-node-ns",
                *map(str, args), "sleep", "infinity"]  # fmt: skip
        env = child_env({"SYSCTL_DIRS": " ".join(CONFINED_SYSCTL_DIRS), "OVERLAID_DIRS": " ".join(OVERLAID_DIRS)})
        holder = ManagedProcess.spawn("mount-namespace", argv, directory / "namespace.log", env=env)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if not holder.alive():
                raise ClusterError(f"could not make the node's mount namespace: {holder.describe_exit()}")
            if time.monotonic() > deadline:
                holder.stop()
                raise ClusterError(f"mount namespace not ready after {timeout:.0f}s:\n{holder.log_tail()}")
            time.sleep(0.02)
        return cls(holder=holder, directory=directory)

    @property
    def path(self) -> str:
        return f"/proc/{self.holder.pid}/ns/mnt"

    def command(self, argv: Sequence[str], cwd: Path | None = None) -> list[str]:
        """``argv`` run inside the namespace (nsenter execs it: same pid, so the parent-death signal holds);
        ``cwd`` defaults to the namespace's directory."""
        return ["nsenter", f"--mount={self.path}", f"--wdns={cwd or self.directory}", "--", *argv]

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        if not self.holder.alive():
            raise ClusterError(f"the node's mount namespace is gone: {self.holder.describe_exit()}")
        return ManagedProcess.spawn(name, self.command(argv, cwd), log_path, env=child_env(env))

    def read_sysctl(self, key: str) -> str:
        """A sysctl as the node's processes see it (e.g. ``kernel.panic``)."""
        relative = key.replace(".", "/")
        return Path(f"/proc/{self.holder.pid}/root/proc/sys/{relative}").read_text().strip()

    def members(self) -> set[int]:
        """Every process in the namespace but the holder (daemons, shims, whatever the kubelet started)."""
        try:
            ours = os.stat(self.path)
        except OSError:
            return set()
        found: set[int] = set()
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit() and int(proc.name) != self.holder.pid:
                with contextlib.suppress(OSError):
                    mnt = os.stat(proc / "ns" / "mnt")
                    if (mnt.st_ino, mnt.st_dev) == (ours.st_ino, ours.st_dev):
                        found.add(int(proc.name))
        return found

    def stop(self, timeout: float = 10.0) -> None:
        """SIGKILL every other member (while the holder lives, the namespace's identity is certain), then the
        holder."""
        if self.holder.alive():
            for pid in self.members():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.holder.stop(timeout)


def host_sysctl(key: str) -> str:
    """A sysctl as the host sees it."""
    return Path("/proc/sys", *key.split(".")).read_text().strip()


def host_sysctls(keys: Sequence[str]) -> dict[str, str]:
    return {key: host_sysctl(key) for key in keys}


def existing_host_paths(paths: Sequence[str] = HOST_PATHS) -> set[str]:
    return {path for path in paths if Path(path).exists()}


#: what the kubelet writes at start-up (pkg/kubelet/cm/container_manager_linux.go setupKernelTunables)
KUBELET_SYSCTLS = (
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
)
