"""What a test node leaves on the host, recorded before it is made, and the reaper that removes it.

A node's mounts live in its private mount namespace (node_ns.py) and vanish with its processes; what is left
on the host is processes (the shims daemonize, so the parent-death signal does not reach them, nor the
containers under them), cgroup directories (the kubelet's ``cgroupRoot``), one /32 on ``lo`` and files under
the node's directories. Each node writes a :class:`NodeRecord` to ``<tmp>/pullguard-nodes/<id>.json`` first;
:func:`reap` undoes exactly that. :func:`reap_orphans` runs at every node start and reaps the records whose
owning test process is gone (a run that was SIGKILLed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CGROUP_MOUNT = Path("/sys/fs/cgroup")
#: node addresses: TEST-NET-2, routed nowhere, and only ever put on lo as /32s
NODE_NET = ipaddress.ip_network("198.51.100.0/24")
SHIM_NAMES = ("containerd-shim-runc-v2", "containerd-shim")

__all__ = [
    "NODE_NET",
    "NodeRecord",
    "add_node_ip",
    "cgroup_dirs",
    "leftovers",
    "process_start",
    "reap",
    "reap_orphans",
    "records_dir",
]


def records_dir() -> Path:
    return Path(tempfile.gettempdir()) / "pullguard-nodes"


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/<pid>/stat): with the pid, an identity that
    survives pid reuse. None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass
class NodeRecord:
    id: str
    owner_pid: int
    owner_start: str
    #: directories to delete (the node's own run directory, temp dirs it made)
    remove_dirs: list[str] = field(default_factory=list)
    #: the kubelet's cgroupRoot, a directory name directly under each cgroup hierarchy
    cgroup: str = ""
    #: the /32 added to lo
    node_ip: str = ""
    #: containerd's socket; shims carry it in ``-address``
    containerd_address: str = ""
    #: name -> [pid, start] of the daemons (holder, containerd, kubelet)
    daemons: dict[str, list[str]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return records_dir() / f"{self.id}.json"

    def save(self) -> None:
        records_dir().mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(".tmp")
        temp.write_text(json.dumps(dataclasses.asdict(self), indent=1))
        os.replace(temp, self.path)

    def add_daemon(self, name: str, pid: int) -> None:
        self.daemons[name] = [str(pid), process_start(pid) or ""]
        self.save()

    def owner_alive(self) -> bool:
        return process_start(self.owner_pid) == self.owner_start

    @classmethod
    def load(cls, path: Path) -> NodeRecord | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def cgroup_dirs(name: str) -> list[Path]:
    """``/sys/fs/cgroup/<hierarchy>/<name>`` for every mounted hierarchy (v1 controllers and the unified one)."""
    if not name or "/" in name or name.startswith("."):
        return []
    return [hierarchy / name for hierarchy in sorted(CGROUP_MOUNT.iterdir()) if (hierarchy / name).is_dir()]


def _cgroup_pids(name: str) -> set[int]:
    pids: set[int] = set()
    for root in cgroup_dirs(name):
        for procs in root.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(line) for line in procs.read_text().split())
    return pids


def _shim_pids(address: str) -> set[int]:
    """Shims started by the containerd at ``address`` (``containerd-shim-runc-v2 -namespace k8s.io -id ... -address
    <socket>``)."""
    found: set[int] = set()
    if not address:
        return found
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if Path(argv[0].decode(errors="replace")).name in SHIM_NAMES and address.encode() in argv:
                found.add(int(proc.name))
    return found


def _used_addresses() -> set[str]:
    """Every local IPv4 address of this network namespace, and every address a node recorded."""
    used: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/fib_trie").read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("|--", "+--"):
                used.add(parts[1].split("/")[0])
    for path in records_dir().glob("*.json"):
        record = NodeRecord.load(path)
        if record is not None:
            used.add(record.node_ip)
    return used


def add_node_ip(record: NodeRecord) -> None:
    """Pick a free address of NODE_NET, record it, then put it on lo as a /32 (under a lock: parallel sessions)."""
    records_dir().mkdir(parents=True, exist_ok=True)
    with (records_dir() / ".addresses.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        used = _used_addresses()
        for host in list(NODE_NET.hosts())[9:250]:
            if str(host) in used:
                continue
            record.node_ip = str(host)
            record.save()
            done = subprocess.run(["ip", "addr", "add", f"{host}/32", "dev", "lo"], capture_output=True, text=True,
                                  timeout=10, check=False)  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"ip addr add {host}/32 dev lo: {done.stderr.strip()}")
            return
    raise RuntimeError(f"no free address in {NODE_NET} for a node")


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _remove_cgroups(name: str, timeout: float) -> list[str]:
    """rmdir the tree deepest first, killing whatever is still in it; returns what could not be removed."""
    deadline = time.monotonic() + timeout
    while True:
        _kill(_cgroup_pids(name))
        left: list[str] = []
        for root in cgroup_dirs(name):
            for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            try:
                root.rmdir()
            except FileNotFoundError:
                pass
            except OSError as exc:
                left.append(f"{root}: {exc}")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _remove_address(address: str) -> None:
    if address:
        subprocess.run(["ip", "addr", "del", f"{address}/32", "dev", "lo"], capture_output=True, timeout=10,
                       check=False)  # fmt: skip


def _unmount_under(directory: str) -> None:
    """Host mounts below ``directory`` (none are made on purpose; a lazy unmount if something leaked)."""
    prefix = directory.rstrip("/") + "/"
    with contextlib.suppress(OSError):
        targets = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        for target in sorted((t for t in targets if t.startswith(prefix)), key=len, reverse=True):
            subprocess.run(["umount", "-l", target], capture_output=True, timeout=10, check=False)


def reap(record: NodeRecord, timeout: float = 20.0) -> list[str]:
    """Remove everything ``record`` lists; returns problems (empty when all went)."""
    for pid, start in record.daemons.values():
        if process_start(int(pid)) == start:  # still the same process, not a reused pid
            _kill({int(pid)})
    # containers first, so their shims exit on their own; then any shim that did not
    _kill(_cgroup_pids(record.cgroup))
    _kill(_shim_pids(record.containerd_address))
    problems = _remove_cgroups(record.cgroup, timeout)
    _kill(_shim_pids(record.containerd_address))
    _remove_address(record.node_ip)
    for directory in record.remove_dirs:
        _unmount_under(directory)
        shutil.rmtree(directory, ignore_errors=True)
        if Path(directory).exists():
            problems.append(f"could not remove {directory}")
    if not problems:
        record.path.unlink(missing_ok=True)
    return problems


def leftovers(record: NodeRecord) -> dict[str, Any]:
    """What of ``record`` is still there (for tests of the reaper)."""
    addresses = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True,
                               timeout=10, check=False).stdout  # fmt: skip
    return {
        "shims": sorted(_shim_pids(record.containerd_address)),
        "cgroups": [str(d) for d in cgroup_dirs(record.cgroup)],
        "address": bool(record.node_ip) and f" {record.node_ip}/32 " in addresses,
        "dirs": [d for d in record.remove_dirs if Path(d).exists()],
    }


def reap_orphans() -> list[str]:
    """Reap every recorded node whose owning process has exited; returns problems."""
    problems: list[str] = []
    if not records_dir().is_dir():
        return problems
    for path in sorted(records_dir().glob("*.json")):
        record = NodeRecord.load(path)
        if record is None:
            path.unlink(missing_ok=True)
            continue
        if not record.owner_alive():
            problems += reap(record)
    return problems
