"""Run a command in a private network namespace: only `lo`, with extra addresses on it (169.254.169.254,
fd00:ec2::254, "remote" 10.99.0.x addresses), its own /etc/hosts and a resolver that answers nothing.

No packet can leave the namespace, so a test there may bind and dial any address, and a listener on the
metadata address sees every connection attempt made to it: "never dialed" is checked at the socket, not by
timing. Needs root (or user namespaces) and `unshare`, `ip`, `mount`; `unavailable()` says why not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from .hostile_registry import IN_NETNS

__all__ = ["run_isolated", "unavailable"]

_SCRIPT = """set -e
ip link set lo up
for address in $ADDRESSES; do
  case "$address" in
    *:*) ip -6 addr add "$address/128" dev lo nodad ;;
    *) ip addr add "$address/32" dev lo ;;
  esac
done
mount --bind "$1" /etc/hosts
mount --bind "$2" /etc/resolv.conf
shift 2
exec "$@"
"""


def unavailable() -> str | None:
    """Why a private network namespace cannot be made here (None: it can)."""
    missing = [tool for tool in ("unshare", "ip", "mount") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)}"
    try:
        probe = subprocess.run(
            ["unshare", "--net", "--mount", "--propagation", "private", "ip", "link", "set", "lo", "up"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    return None if probe.returncode == 0 else f"unshare --net failed: {probe.stderr.decode(errors='replace')}"


def run_isolated(
    command: Sequence[str],
    *,
    hosts: Mapping[str, str],
    addresses: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 60.0,
) -> subprocess.CompletedProcess[str]:
    """Run `command` in a fresh network and mount namespace (see the module docstring); `hosts` maps names to
    addresses for its /etc/hosts. The namespace ends with the command."""
    with tempfile.TemporaryDirectory(prefix="pullguard-netns-") as workdir:
        etc_hosts = Path(workdir, "hosts")
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        lines += [f"{address} {name}" for name, address in hosts.items()]
        etc_hosts.write_text("\n".join(lines) + "\n")
        resolv = Path(workdir, "resolv.conf")
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")  # nothing listens there
        child_env = {**os.environ, **(env or {}), IN_NETNS: "1", "ADDRESSES": " ".join(addresses)}
        argv = ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", _SCRIPT, "sh",
                str(etc_hosts), str(resolv), *command]  # fmt: skip
        return subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, env=child_env, cwd=cwd, check=False
        )
