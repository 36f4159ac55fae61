"""`make bench`: pod creates through a real kube-apiserver + etcd (the e2e harness's), and pullguard's memory with
a cluster's worth of objects cached.

**Creates.** One control plane; four namespaces, one per target: `bench-none` (no webhook), `bench-noop` (a
do-nothing FastAPI/uvicorn/TLS webhook, `bench/noop_webhook.py`, registered validating + mutating),
`bench-pullguard` (`pullguard serve --offline`, validating + mutating, the embedded default policy: `mirrors: []`)
and `bench-pullguard-inert` (the same process, its mutating webhook carrying the `false` matchCondition that
`serve --manage-certs` adds while there is no mirror rule: webhook/kube/mutating_toggle.py). Each webhook
configuration selects only its namespace by label, so all are registered once and every create is routed by its
namespace alone: rounds interleave without re-registration. A create is `POST /api/v1/namespaces/NS/pods` (one
container, `localhost/bench/app:1.0`: node-local, so pullguard asks no registry) over one httpx client with
keep-alive (asyncio; 1 creator for "sequential", 8 for "concurrent"), real or with `?dryRun=All`. Every round runs
each (target, mode, concurrency) cell once, the target order rotating from round to round; medians over rounds.
"Added" latency is a target's median create latency minus no-webhook's in the same round; ratios are taken per
round, then the median.

**Memory.** A fresh control plane gets N pull Secrets (`kubernetes.io/dockerconfigjson`), ServiceAccounts (each
naming two pull secrets) and Nodes (labels, 30 images in `status.images`), created over the API; then
`pullguard serve --offline --kubeconfig` starts, and the time until `/readyz` answers 200 and the RSS once ready
(VmRSS, and VmHWM the peak) are recorded; an empty-cluster start is measured the same way first.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from cluster import Cluster, ManagedProcess, free_port  # noqa: E402
from webhook_harness import WEBHOOK_RULES, webhook_configurations  # noqa: E402

from webhook.kube.mutating_toggle import CONDITION  # noqa: E402

TARGETS = ("none", "noop", "pullguard", "pullguard-inert")
TARGET_LABEL = "bench.pullguard.io/target"
IMAGE = "localhost/bench/app:1.0"


# --------------------------------------------------------------------------- processes


def make_certs(cert_dir: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "webhook.cli", "certs", "--out", str(cert_dir), "--ip", "127.0.0.1"],
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )


def pullguard_argv(port: int, cert_dir: Path, *extra: str) -> list[str]:
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
        "--offline",
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


# --------------------------------------------------------------------------- creates


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": IMAGE}]},
    }


@dataclass
class Cell:
    round: int
    target: str
    mode: str  # real | dry
    creators: int
    creates: int
    seconds: float
    creates_per_second: float
    p50_ms: float
    p90_ms: float
    errors: int


async def run_cell(client: httpx.AsyncClient, target: str, mode: str, creators: int, creates: int, rnd: int) -> Cell:
    namespace = f"bench-{target}"
    suffix = "?dryRun=All" if mode == "dry" else ""
    url = f"/api/v1/namespaces/{namespace}/pods{suffix}"
    latencies: list[float] = []
    errors = 0
    counter = iter(range(creates))
    tag = uuid.uuid4().hex[:6]

    async def creator() -> None:
        nonlocal errors
        for i in counter:
            body = json.dumps(pod(f"p-{tag}-{i}")).encode()
            t0 = time.perf_counter()
            response = await client.post(url, content=body, headers={"Content-Type": "application/json"})
            latencies.append(time.perf_counter() - t0)
            if response.status_code != 201:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(creator() for _ in range(creators)))
    seconds = time.perf_counter() - start
    latencies.sort()
    return Cell(
        rnd,
        target,
        mode,
        creators,
        creates,
        seconds,
        creates / seconds,
        latencies[len(latencies) // 2] * 1000,
        latencies[int(len(latencies) * 0.9)] * 1000,
        errors,
    )


def register(cluster: Cluster, target: str, url: str, ca: Path, *, inert_mutating: bool = False) -> None:
    """`inert_mutating`: the mutating webhook carries the `false` matchCondition that `serve --manage-certs` adds
    while the policy has no mirror rule (webhook/kube/mutating_toggle.py): the state it leaves, measured."""
    docs = webhook_configurations(
        f"bench-{target}",
        url,
        ca.read_bytes(),
        failure_policy="Fail",
        selector={"matchLabels": {TARGET_LABEL: target}},
        rules=WEBHOOK_RULES,
    )
    if inert_mutating:
        for doc in docs:
            if doc["kind"] == "MutatingWebhookConfiguration":
                for webhook in doc["webhooks"]:
                    webhook["matchConditions"] = [dict(CONDITION)]
    cluster.apply(docs)


def wait_called(cluster: Cluster, target: str, marker: str, seconds: float = 60) -> None:
    """Dry-run probe pods in the target's namespace until the API server's answer carries `marker` (a warning of
    the webhook) twice over 1 s: validating and mutating configurations are picked up independently."""
    deadline = time.monotonic() + seconds
    seen = 0
    with cluster.http_client() as client:
        while time.monotonic() < deadline:
            body = pod(f"probe-{uuid.uuid4().hex[:8]}")
            body["spec"]["containers"][0]["image"] = "localhost/probe"  # untagged: pullguard's latestTag warns
            response = client.post(f"/api/v1/namespaces/bench-{target}/pods?dryRun=All", json=body)
            if marker in response.headers.get("warning", ""):
                seen += 1
                if seen >= 3:
                    return
            time.sleep(0.5)
    raise RuntimeError(f"the API server does not call the {target} webhook")


async def creates_phase(cluster: Cluster, rounds: int, sequential: int, concurrent: int) -> list[Cell]:
    cells: list[Cell] = []
    context = ssl.create_default_context(cafile=str(cluster.ca_file))
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)
    async with httpx.AsyncClient(
        base_url=cluster.server,
        verify=context,
        headers={"Authorization": f"Bearer {cluster.token}"},
        timeout=30,
        limits=limits,
    ) as client:
        for target in TARGETS:  # warm-up: connections, the webhooks' first requests, the apiserver's caches
            await run_cell(client, target, "dry", 8, 200, -1)
        for rnd in range(rounds):
            order = TARGETS[rnd % len(TARGETS) :] + TARGETS[: rnd % len(TARGETS)]
            for mode in ("dry", "real"):
                for creators, creates in ((1, sequential), (8, concurrent)):
                    for target in order:
                        cell = await run_cell(client, target, mode, creators, creates, rnd)
                        cells.append(cell)
                        print(
                            f"round {rnd} {mode:4} c={creators} {target:9} {cell.creates_per_second:7.0f}/s "
                            f"p50 {cell.p50_ms:6.2f} ms p90 {cell.p90_ms:6.2f} ms errors {cell.errors}",
                            flush=True,
                        )
    return cells


def creates_report(cells: list[Cell]) -> list[str]:
    lines = [
        "| mode | creators | target | creates/s | p50 ms | p90 ms | added p50 ms | added vs no-op | creates/s vs "
        "no-op | creates/s vs none |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode in ("dry", "real"):
        for creators in sorted({c.creators for c in cells}):
            mine = [c for c in cells if c.mode == mode and c.creators == creators]
            rounds = sorted({c.round for c in mine})
            by = {(c.target, c.round): c for c in mine}
            added = {t: statistics.median(by[(t, r)].p50_ms - by[("none", r)].p50_ms for r in rounds) for t in TARGETS}
            rate = {t: statistics.median(by[(t, r)].creates_per_second for r in rounds) for t in TARGETS}
            rate_vs_noop = {
                t: statistics.median(by[(t, r)].creates_per_second / by[("noop", r)].creates_per_second for r in rounds)
                for t in TARGETS
            }
            rate_vs_none = {
                t: statistics.median(by[(t, r)].creates_per_second / by[("none", r)].creates_per_second for r in rounds)
                for t in TARGETS
            }
            for t in TARGETS:
                p50 = statistics.median(by[(t, r)].p50_ms for r in rounds)
                p90 = statistics.median(by[(t, r)].p90_ms for r in rounds)
                added_ratio = f"{added[t] / added['noop']:.2f}" if t.startswith("pullguard") and added["noop"] else "-"
                lines.append(
                    f"| {'dryRun=All' if mode == 'dry' else 'real'} | {creators} | {t} | {rate[t]:.0f} | {p50:.2f} | "
                    f"{p90:.2f} | {added[t]:.2f} | {added_ratio} | {rate_vs_noop[t]:.2f} | {rate_vs_none[t]:.2f} |"
                )
    return lines


def run_creates(args: argparse.Namespace, work: Path) -> list[str]:
    cert_dir = work / "certs"
    make_certs(cert_dir)
    with Cluster.start() as cluster:
        for target in TARGETS:
            cluster.create_namespace(f"bench-{target}", labels={TARGET_LABEL: target})
        noop_port, pg_port = free_port(), free_port()
        noop = ManagedProcess.spawn(
            "noop",
            [sys.executable, str(ROOT / "bench" / "noop_webhook.py"), str(noop_port), str(cert_dir)],
            work / "noop.log",
            env=env(),
        )
        pg = ManagedProcess.spawn(
            "pullguard", pullguard_argv(pg_port, cert_dir, *args.pullguard_args), work / "pullguard.log", env=env()
        )
        try:
            wait_ok(f"https://127.0.0.1:{noop_port}/healthz", cert_dir / "ca.crt", noop)
            wait_ok(f"https://127.0.0.1:{pg_port}/readyz", cert_dir / "ca.crt", pg)
            register(cluster, "noop", f"https://127.0.0.1:{noop_port}", cert_dir / "ca.crt")
            register(cluster, "pullguard", f"https://127.0.0.1:{pg_port}", cert_dir / "ca.crt")
            wait_called(cluster, "noop", "bench-noop mutate")
            pg_url = f"https://127.0.0.1:{pg_port}"
            register(cluster, "pullguard-inert", pg_url, cert_dir / "ca.crt", inert_mutating=True)
            wait_called(cluster, "pullguard", "pullguard")
            wait_called(cluster, "pullguard-inert", "pullguard")
            cells = asyncio.run(creates_phase(cluster, args.rounds, args.sequential, args.concurrent))
        finally:
            pg.stop()
            noop.stop()
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "apiserver-creates.json").write_text(json.dumps([asdict(c) for c in cells], indent=2))
    return [
        f"creates: {args.rounds} rounds; per round and cell {args.sequential} sequential creates, "
        f"{args.concurrent} by 8 concurrent creators; medians over rounds",
        *creates_report(cells),
    ]


# --------------------------------------------------------------------------- memory


def dockerconfig(i: int) -> str:
    auth = base64.b64encode(f"user{i}:password-{i:08d}".encode()).decode()
    config = {
        "auths": {
            f"registry{i % 50}.example.com": {"username": f"user{i}", "password": f"password-{i:08d}", "auth": auth}
        }
    }
    return base64.b64encode(json.dumps(config).encode()).decode()


def secret(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"pull-{i}", "labels": {"app": "bench"}},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": dockerconfig(i)},
    }


def service_account(i: int, secrets: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": f"sa-{i}", "labels": {"app": "bench"}},
        "imagePullSecrets": [{"name": f"pull-{(i * 2) % secrets}"}, {"name": f"pull-{(i * 2 + 1) % secrets}"}],
    }


def node(i: int) -> dict[str, Any]:
    arch = "arm64" if i % 4 == 0 else "amd64"
    images = [
        {
            "names": [
                f"registry{j % 50}.example.com/team/app-{j}@sha256:{j:064x}",
                f"registry{j % 50}.example.com/team/app-{j}:v{j}",
            ],
            "sizeBytes": 10_000_000 + j,
        }
        for j in range(i % 100, i % 100 + 30)
    ]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": f"node-{i}",
            "labels": {
                "kubernetes.io/arch": arch,
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": f"node-{i}",
                "node.kubernetes.io/instance-type": "m5.large",
                "topology.kubernetes.io/zone": f"zone-{i % 3}",
                "topology.kubernetes.io/region": "region-1",
                "pool": f"pool-{i % 10}",
            },
        },
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "ready",
                    "lastHeartbeatTime": "2026-11-26T00:00:00Z",
                    "lastTransitionTime": "2026-11-26T00:00:00Z",
                }
            ],
            "nodeInfo": {
                "architecture": arch,
                "operatingSystem": "linux",
                "kubeletVersion": "v1.37.2",
                "containerRuntimeVersion": "containerd://2.1.0",
                "kernelVersion": "6.1.0",
                "osImage": "Debian GNU/Linux 12",
                "kubeProxyVersion": "",
                "machineID": f"{i:032x}",
                "systemUUID": f"{i:032x}",
                "bootID": f"{i:032x}",
            },
            "images": images,
        },
    }


async def create_many(cluster: Cluster, path: str, bodies: list[dict[str, Any]], creators: int = 16) -> float:
    context = ssl.create_default_context(cafile=str(cluster.ca_file))
    items = iter(bodies)
    start = time.monotonic()
    async with httpx.AsyncClient(
        base_url=cluster.server,
        verify=context,
        headers={"Authorization": f"Bearer {cluster.token}"},
        timeout=60,
        limits=httpx.Limits(max_connections=creators),
    ) as client:

        async def creator() -> None:
            for body in items:
                response = await client.post(path, json=body)
                if response.status_code not in (201, 409):
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")

        await asyncio.gather(*(creator() for _ in range(creators)))
    return time.monotonic() - start


def rss_kib(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


@dataclass
class MemoryPoint:
    secrets: int
    service_accounts: int
    nodes: int
    create_seconds: float
    ready_seconds: float
    rss_mib: float
    peak_mib: float
    rss_after_gc_mib: float


def measure_pullguard(cluster: Cluster, work: Path, label: str, extra: list[str]) -> tuple[float, float, float, float]:
    """(seconds from spawn to /readyz 200, RSS 3 s after ready, peak RSS, RSS at ready), MiB."""
    cert_dir = work / "certs"
    port = free_port()
    spawned = time.monotonic()
    process = ManagedProcess.spawn(
        "pullguard",
        pullguard_argv(port, cert_dir, "--kubeconfig", str(cluster.kubeconfig), *extra),
        work / f"pullguard-{label}.log",
        env=env(),
    )
    try:
        wait_ok(f"https://127.0.0.1:{port}/readyz", cert_dir / "ca.crt", process, 120)
        ready = time.monotonic() - spawned
        rss_ready, _ = rss_kib(process.pid)
        time.sleep(3)
        rss, peak = rss_kib(process.pid)
        return ready, rss / 1024, peak / 1024, rss_ready / 1024
    finally:
        process.stop()


def run_memory(args: argparse.Namespace, work: Path) -> list[str]:
    cert_dir = work / "certs"
    if not cert_dir.exists():
        make_certs(cert_dir)
    points: list[MemoryPoint] = []
    sizes = [(0, 0, 0), *(tuple(s) for s in args.scale)]
    with Cluster.start(
        apiserver_args=["--max-requests-inflight=800", "--max-mutating-requests-inflight=400"]
    ) as cluster:
        have = (0, 0, 0)
        for secrets, accounts, nodes in sizes:
            t0 = time.monotonic()
            asyncio.run(
                create_many(cluster, "/api/v1/namespaces/default/secrets", [secret(i) for i in range(have[0], secrets)])
            )
            asyncio.run(
                create_many(
                    cluster,
                    "/api/v1/namespaces/default/serviceaccounts",
                    [service_account(i, max(secrets, 1)) for i in range(have[1], accounts)],
                )
            )
            asyncio.run(create_many(cluster, "/api/v1/nodes", [node(i) for i in range(have[2], nodes)]))
            created = time.monotonic() - t0
            have = (secrets, accounts, nodes)
            # A fresh server each time; ready is counted from the process spawn to /readyz answering 200.
            ready, rss, peak, rss_ready = measure_pullguard(cluster, work, f"{secrets}", list(args.pullguard_args))
            point = MemoryPoint(secrets, accounts, nodes, created, ready, rss, peak, rss_ready)
            points.append(point)
            print(
                f"memory {secrets} secrets {accounts} SAs {nodes} nodes: created in {created:.1f} s; "
                f"ready {ready:.2f} s; RSS {rss:.0f} MiB (at ready {rss_ready:.0f}), peak {peak:.0f} MiB",
                flush=True,
            )
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "apiserver-memory.json").write_text(json.dumps([asdict(p) for p in points], indent=2))
    lines = [
        "| Secrets | ServiceAccounts | Nodes | ready s (from spawn) | RSS at ready MiB | RSS +3 s MiB "
        "| peak (VmHWM) MiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in points:
        lines.append(
            f"| {p.secrets} | {p.service_accounts} | {p.nodes} | {p.ready_seconds:.2f} | {p.rss_after_gc_mib:.0f} | "
            f"{p.rss_mib:.0f} | {p.peak_mib:.0f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sequential", type=int, default=150, help="sequential creates per round and cell")
    parser.add_argument("--concurrent", type=int, default=400, help="creates by 8 creators per round and cell")
    parser.add_argument("--skip-creates", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-storm", action="store_true", help="skip bench/storm.py's connection storm")
    parser.add_argument(
        "--scale",
        type=int,
        nargs=3,
        action="append",
        metavar=("SECRETS", "SERVICEACCOUNTS", "NODES"),
        help="memory points (repeatable; default 5000 2000 1000)",
    )
    parser.add_argument("--pullguard-args", nargs="*", default=[], help="more `serve` flags for pullguard")
    args = parser.parse_args()
    if args.scale is None:
        args.scale = [[5000, 2000, 1000]]
    work = Path(tempfile.mkdtemp(prefix="pullguard-bench-api-"))
    try:
        report: list[str] = []
        if not args.skip_creates:
            report += run_creates(args, work)
        if not args.skip_memory:
            report += ["", *run_memory(args, work)]
        if not args.skip_storm:
            from bench import storm  # noqa: PLC0415 - it imports this module

            report += ["", *storm.run(200, 5, [" ".join(args.pullguard_args)])]
        print("\n" + "\n".join(report))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
