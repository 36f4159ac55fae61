"""Plumbing shared by the API-server benchmarks (`bench/apiserver.py`, `bench/creates.py`, `bench/scale.py`,
`bench/storm.py`): the e2e harness's control plane and process helpers, pullguard's command line, readiness
polling, and what /proc says about a process (RSS, peak RSS, CPU time)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.cluster import Cluster, ManagedProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"

__all__ = [
    "OUT",
    "ROOT",
    "Cluster",
    "ManagedProcess",
    "api_client",
    "cpu_seconds",
    "env",
    "free_port",
    "make_certs",
    "memory_kib",
    "pullguard_argv",
    "wait_ok",
]


def make_certs(cert_dir: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "webhook.cli", "certs", "--out", str(cert_dir), "--ip", "127.0.0.1"],
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )


def pullguard_argv(port: int, cert_dir: Path, *extra: str, offline: bool = True) -> list[str]:
    """`pullguard serve` on 127.0.0.1:`port`; `offline`: no registry lookups (the default policy's bench targets)."""
    return [
        sys.executable,
        "-m",
        "webhook.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--cert-dir",
        str(cert_dir),
        "--ip",
        "127.0.0.1",
        *(["--offline"] if offline else []),
        *extra,
    ]


def wait_ok(url: str, ca: Path, process: ManagedProcess, seconds: float = 60) -> float:
    """Seconds until `url` answers 200 (polled every 20 ms)."""
    start = time.monotonic()
    context = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(verify=context, timeout=2) as client:
        while time.monotonic() - start < seconds:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.log_tail(30)}")
            try:
                if client.get(url).status_code == 200:
                    return time.monotonic() - start
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.02)
    raise RuntimeError(f"{url} not ready in {seconds} s:\n{process.log_tail(30)}")


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), e.get("PYTHONPATH", "")) if p)
    e.pop("PULLGUARD_CONFIG", None)
    e.pop("PULLGUARD_KUBECONFIG", None)
    return e


def api_client(cluster: Cluster, timeout: float = 60, connections: int = 8) -> httpx.AsyncClient:
    """An async client for the cluster's API server (admin token, keep-alive)."""
    return httpx.AsyncClient(
        base_url=cluster.server,
        verify=ssl.create_default_context(cafile=str(cluster.ca_file)),
        headers={"Authorization": f"Bearer {cluster.token}"},
        timeout=timeout,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, KiB: resident now, and the peak since it started."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state is field 3, utime 14, stime 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
