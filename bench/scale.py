"""pullguard's memory and time to ready with a cluster's worth of objects cached (part of `python -m bench.apiserver`),
by both ways its caches fill:

- **watch path**: one `pullguard serve --offline --kubeconfig` starts on the empty control plane (its time to ready
  and RSS are the empty point), then every object is created through the API server while it watches; once the
  objects are created and its CPU time has stopped growing (it has applied the last events), and 3 s more, its RSS
  (VmRSS) and peak (VmHWM) are read;
- **start-up path**: at each size, with the objects already there, fresh `pullguard serve` processes (`--repeats`,
  one after the other) LIST them: seconds from the process spawn to `/readyz` answering 200, RSS at ready and 3 s
  later, and the peak;
- **per cache**, at the largest size: the RSS one cache adds alone (`bench/cache_cost.py`), per 10,000 objects.

One control plane grows through the sizes (`bench/objects.py`); the watcher stays up across them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.objects import EMPTY, Size, populate
from bench.processes import (
    OUT,
    ROOT,
    Cluster,
    ManagedProcess,
    cpu_seconds,
    env,
    free_port,
    make_certs,
    memory_kib,
    pullguard_argv,
    wait_ok,
)

APISERVER_ARGS = ["--max-requests-inflight=800", "--max-mutating-requests-inflight=400"]
MIB = 1024


@dataclass
class StartUp:
    """One pullguard process started with the objects already in the cluster (LIST)."""

    ready_seconds: float
    rss_ready_mib: float
    rss_mib: float  # 3 s after ready
    peak_mib: float


@dataclass
class Point:
    secrets: int
    service_accounts: int
    nodes: int
    namespaces: int
    create_seconds: float
    # watch path: the long-lived process, after the objects arrived as events
    watch_catch_up_seconds: float  # from the last create's answer until its CPU time stops growing
    watch_rss_mib: float
    watch_peak_mib: float
    watch_relists: int  # LISTs beyond the first (a 410 after compaction): should stay 0
    starts: list[StartUp] = field(default_factory=list)


def _spawn(cluster: Cluster, work: Path, label: str, extra: list[str]) -> tuple[ManagedProcess, int]:
    port = free_port()
    process = ManagedProcess.spawn(
        "pullguard",
        pullguard_argv(port, work / "certs", "--kubeconfig", str(cluster.kubeconfig), *extra),
        work / f"pullguard-{label}.log",
        env=env(),
    )
    return process, port


def start_up(cluster: Cluster, work: Path, label: str, extra: list[str]) -> StartUp:
    """A fresh pullguard: seconds from spawn to /readyz 200, RSS at ready and 3 s later, peak."""
    spawned = time.monotonic()
    process, port = _spawn(cluster, work, label, extra)
    try:
        wait_ok(f"https://127.0.0.1:{port}/readyz", work / "certs" / "ca.crt", process, 120)
        ready = time.monotonic() - spawned
        rss_ready, _ = memory_kib(process.pid)
        time.sleep(3)
        rss, peak = memory_kib(process.pid)
        return StartUp(ready, rss_ready / MIB, rss / MIB, peak / MIB)
    finally:
        process.stop()


def wait_quiet(process: ManagedProcess, window: float = 1.0, busy: float = 0.03, seconds: float = 300) -> float:
    """Seconds until `process` uses less than `busy` CPU seconds in a `window` (it has caught up with the events)."""
    start = time.monotonic()
    before = cpu_seconds(process.pid)
    while time.monotonic() - start < seconds:
        time.sleep(window)
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail(30)}")
        now = cpu_seconds(process.pid)
        if now - before < busy:
            return time.monotonic() - start - window
        before = now
    raise RuntimeError(f"pullguard still busy after {seconds} s")


def relists(log: Path) -> int:
    text = log.read_text(errors="replace")
    return text.count("watch expired, relisting") + text.count("list/watch failed")


def cache_costs(cluster: Cluster) -> list[dict[str, float | int | str]]:
    """Each cache's RSS alone, in its own process (bench/cache_cost.py)."""
    costs = []
    for cache in ("empty", "secrets", "serviceaccounts", "nodes", "namespaces"):
        done = subprocess.run(
            [sys.executable, "-m", "bench.cache_cost", str(cluster.kubeconfig), cache],
            cwd=ROOT,
            env=env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )
        cost = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"cache {cache}: {cost['objects']} objects, +{cost['after_mib'] - cost['before_mib']:.1f} MiB", flush=True
        )
        costs.append(cost)
    return costs


def run_scale(args: argparse.Namespace, work: Path, figures: dict[str, dict[str, float]] | None = None) -> list[str]:
    cert_dir = work / "certs"
    if not cert_dir.exists():
        make_certs(cert_dir)
    extra = list(args.pullguard_args)
    sizes = sorted({Size(*s) for s in args.scale}, key=lambda s: (s.secrets, s.service_accounts, s.nodes))
    points: list[Point] = []
    deadline = time.monotonic() + args.scale_timeout
    with Cluster.start(apiserver_args=APISERVER_ARGS) as cluster:
        spawned = time.monotonic()
        watcher, port = _spawn(cluster, work, "watch", extra)
        try:
            wait_ok(f"https://127.0.0.1:{port}/readyz", cert_dir / "ca.crt", watcher, 120)
            ready = time.monotonic() - spawned
            rss_ready, _ = memory_kib(watcher.pid)
            time.sleep(3)
            rss, peak = memory_kib(watcher.pid)
            empty = StartUp(ready, rss_ready / MIB, rss / MIB, peak / MIB)
            points.append(Point(0, 0, 0, 0, 0.0, 0.0, rss / MIB, peak / MIB, 0, [empty]))
            print(f"scale empty: ready {ready:.2f} s, RSS {rss / MIB:.0f} MiB", flush=True)
            have = EMPTY
            for size in sizes:
                created = populate(cluster, have, size, deadline)
                have = size
                caught_up = wait_quiet(watcher)
                time.sleep(3)
                rss, peak = memory_kib(watcher.pid)
                point = Point(
                    size.secrets,
                    size.service_accounts,
                    size.nodes,
                    size.namespaces,
                    created,
                    caught_up,
                    rss / MIB,
                    peak / MIB,
                    relists(work / "pullguard-watch.log"),
                )
                print(
                    f"scale {size.label()}: created in {created:.0f} s; watch path: caught up {caught_up:.1f} s "
                    f"later, RSS {point.watch_rss_mib:.0f} MiB, peak {point.watch_peak_mib:.0f} MiB",
                    flush=True,
                )
                for r in range(args.repeats):
                    started = start_up(cluster, work, f"{size.secrets}-{r}", extra)
                    point.starts.append(started)
                    print(
                        f"scale {size.label()}: start-up path: ready {started.ready_seconds:.2f} s, RSS at ready "
                        f"{started.rss_ready_mib:.0f} MiB, +3 s {started.rss_mib:.0f} MiB, peak {started.peak_mib:.0f}",
                        flush=True,
                    )
                points.append(point)
        finally:
            watcher.stop()
        costs = cache_costs(cluster) if sizes else []
    OUT.mkdir(exist_ok=True)
    record = {"points": [asdict(p) for p in points], "caches": costs}
    (OUT / "apiserver-memory.json").write_text(json.dumps(record, indent=2))
    if figures is not None:
        figures["memory"] = memory_figures(points)
    return [*scale_report(points), "", *costs_report(costs)]


def memory_figures(points: list[Point]) -> dict[str, float]:
    """The history's memory figure (bench/history.py): the start-up path's RSS, median of the starts."""
    sizes = {(5000, 2000, 1000): "rss-5k", (50000, 20000, 10000): "rss-50k"}
    return {
        sizes[(p.secrets, p.service_accounts, p.nodes)]: statistics.median(x.rss_mib for x in p.starts)
        for p in points
        if (p.secrets, p.service_accounts, p.nodes) in sizes and p.starts
    }


def _spread(values: list[float], digits: int) -> str:
    low, mid, high = min(values), statistics.median(values), max(values)
    if round(low, digits) == round(high, digits):
        return f"{mid:.{digits}f}"
    return f"{mid:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def scale_report(points: list[Point]) -> list[str]:
    """Start-up figures are medians (min-max) over the repeats."""
    lines = [
        "| Secrets | ServiceAccounts | Nodes | Namespaces | path | ready s | RSS at ready MiB | RSS MiB | peak MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in points:
        head = f"| {p.secrets} | {p.service_accounts} | {p.nodes} | {p.namespaces} |"
        s = p.starts
        lines.append(
            f"{head} start-up (LIST) | {_spread([x.ready_seconds for x in s], 2)} | "
            f"{_spread([x.rss_ready_mib for x in s], 0)} | {_spread([x.rss_mib for x in s], 0)} | "
            f"{_spread([x.peak_mib for x in s], 0)} |"
        )
        if p.secrets or p.service_accounts or p.nodes:
            relisted = f", {p.watch_relists} relists" if p.watch_relists else ""
            lines.append(
                f"{head} watch (caught up {p.watch_catch_up_seconds:.1f} s after the last create{relisted}) | - | - | "
                f"{p.watch_rss_mib:.0f} | {p.watch_peak_mib:.0f} |"
            )
    return lines


def costs_report(costs: list[dict[str, float | int | str]]) -> list[str]:
    """Per 10,000 objects: what a cache adds beyond what an empty one adds (its first LIST, connection, thread)."""
    added = {str(c["cache"]): float(c["after_mib"]) - float(c["before_mib"]) for c in costs}
    base = added.get("empty", 0.0)
    lines = [
        "| cache (alone) | objects | RSS added MiB | list s | MiB per 10,000 (beyond an empty cache) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for cost in costs:
        name, objects = str(cost["cache"]), int(cost["objects"])
        # Below 1,000 objects the figure is RSS noise (a few hundred KiB) scaled up: not given.
        per = f"{(added[name] - base) / objects * 10_000:.1f}" if objects >= 1000 and name != "empty" else "-"
        lines.append(f"| {name} | {objects} | {added[name]:.1f} | {float(cost['list_seconds']):.2f} | {per} |")
    return lines
