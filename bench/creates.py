"""Pod creates through a real kube-apiserver + etcd (the e2e harness's) with no webhook, a do-nothing webhook and
pullguard, interleaved (part of `python -m bench.apiserver`).

One control plane; four namespaces, one per target: `bench-none` (no webhook), `bench-noop` (a do-nothing
FastAPI/uvicorn/TLS webhook, `bench/noop_webhook.py`, registered validating + mutating), `bench-pullguard`
(`pullguard serve --offline`, validating + mutating, the embedded default policy: `mirrors: []`) and
`bench-pullguard-inert` (the same process, its mutating webhook carrying the `false` matchCondition that
`serve --manage-certs` adds while there is no mirror rule: webhook/kube/mutating_toggle.py). Each webhook
configuration selects only its namespace by label, so all are registered once and every create is routed by its
namespace alone: rounds interleave without re-registration. A create is `POST /api/v1/namespaces/NS/pods` (one
container, `localhost/bench/app:1.0`: node-local, so pullguard asks no registry) over one httpx client with
keep-alive (asyncio; 1 creator for "sequential", 8 for "concurrent"), real or with `?dryRun=All`. Every round runs
each (target, mode, concurrency) cell once, the target order rotating from round to round; medians over rounds.
"Added" latency is a target's median create latency minus no-webhook's in the same round; ratios are taken per
round, then the median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.processes import (
    OUT,
    ROOT,
    Cluster,
    ManagedProcess,
    api_client,
    env,
    free_port,
    make_certs,
    pullguard_argv,
    wait_ok,
)
from tests.e2e.webhook_harness import WEBHOOK_RULES, webhook_configurations
from webhook.kube.mutating_toggle import CONDITION

TARGETS = ("none", "noop", "pullguard", "pullguard-inert")
TARGET_LABEL = "bench.pullguard.io/target"
IMAGE = "localhost/bench/app:1.0"


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
    async with api_client(cluster, timeout=30, connections=8) as client:
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
    OUT.mkdir(exist_ok=True)
    (OUT / "apiserver-creates.json").write_text(json.dumps([asdict(c) for c in cells], indent=2))
    return [
        f"creates: {args.rounds} rounds; per round and cell {args.sequential} sequential creates, "
        f"{args.concurrent} by 8 concurrent creators; medians over rounds",
        *creates_report(cells),
    ]
