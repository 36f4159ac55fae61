"""Pod creates through a real kube-apiserver + etcd (the e2e harness's) with no webhook, a do-nothing webhook and
pullguard, interleaved (part of `python -m bench.apiserver`).

One control plane; a namespace per target: `bench-none` (no webhook), `bench-raw` (the floor of the stack: a
do-nothing raw ASGI webhook on uvicorn/uvloop/httptools/TLS with orjson, `bench/raw_noop_webhook.py`, the reference
of every "vs raw" figure), `bench-noop` (a do-nothing FastAPI/uvicorn/TLS webhook, `bench/noop_webhook.py`, the
second reference), each registered validating + mutating, `bench-pullguard`
(`pullguard serve --offline`, validating + mutating, the embedded default policy: `mirrors: []`),
`bench-pullguard-inert` (the same process, its mutating webhook carrying the `false` matchCondition that
`serve --manage-certs` adds while there is no mirror rule: webhook/kube/mutating_toggle.py) and
`bench-pullguard-mirror` (a second pullguard, online, with a mirror rule that rewrites every pod) with its control
`bench-noop-patch` and `bench-raw-patch` (the do-nothing webhooks answering /mutate with the same patch, no lookups;
`--skip-mirror` leaves these three out). Each webhook configuration selects only its namespace by label, so all are
registered once and every create is routed by its namespace alone: rounds interleave without re-registration. A
create is
`POST /api/v1/namespaces/NS/pods` (one container, `localhost/bench/app:1.0`: node-local, so pullguard asks no
registry; the two mirror targets' image below) over one httpx client with keep-alive (asyncio; 1 creator for
"sequential", 8 for "concurrent"), real or with `?dryRun=All`. Every round runs each (target, mode, concurrency)
cell once, the target order rotating from round to round; medians over rounds. "Added" latency is a target's median
create latency minus no-webhook's in the same round; ratios are taken per round, then the median.

The mirror target: `pullguard serve` without `--offline` (and without a kubeconfig, as the other pullguard targets),
policy `registry: {hostsDir}` and the mirror rule `{registry: registry.bench.example, mirror: mirror.bench.example}`
(`verify: true`, `privateImages: deny`: the defaults), both hosts mapped by hosts.toml to one loopback
docker-registry holding the image (`bench/run.py`'s `push_bench_images`). Its pods name
`registry.bench.example/shop/sidecar:1.4.2`; the mutating webhook verifies the image on the mirror, checks the
source (an anonymous pull is allowed: not private) and patches the image and the `pullguard.io/original-images`
annotation; the validating webhook then judges the mirror image. Lookups are cached (warm-up first). The rewrite is
checked before measuring (a dry-run create must come back with the mirror image and no warning) and after (every
bench pod's mutating review logged as `patched`, its validating review without findings, every stored pod on the
mirror): otherwise the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from bench.mirror_checks import (
    IMAGE,
    MIRROR_IMAGE,
    MIRROR_TARGET,
    SOURCE_IMAGE,
    check_rewrite,
    check_rewritten_all,
    pod,
    registry_requests,
    review_ms,
)
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
from bench.run import push_bench_images
from tests.e2e.webhook_harness import WEBHOOK_RULES, webhook_configurations
from tests.support.registry import RegistryServer, start_plain_registry
from webhook.kube.mutating_toggle import CONDITION

TARGETS = ("none", "raw", "noop", "pullguard", "pullguard-inert")
PATCH_TARGET = "noop-patch"  # the do-nothing webhook making the same rewrite without lookups (bench/noop_webhook.py)
RAW_PATCH_TARGET = "raw-patch"  # the same from the raw ASGI floor (bench/raw_noop_webhook.py)
FLOOR = "raw"  # the reference of every "vs do-nothing" figure (issue 23); "noop" (FastAPI) is the second row
TARGET_LABEL = "bench.pullguard.io/target"


def image_for(target: str) -> str:
    return SOURCE_IMAGE if target in (MIRROR_TARGET, PATCH_TARGET, RAW_PATCH_TARGET) else IMAGE


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
    p99_ms: float = 0.0  # runs recorded before 2026-12-07 (issue 23) have none


async def run_cell(client: httpx.AsyncClient, target: str, mode: str, creators: int, creates: int, rnd: int) -> Cell:
    namespace = f"bench-{target}"
    suffix = "?dryRun=All" if mode == "dry" else ""
    url = f"/api/v1/namespaces/{namespace}/pods{suffix}"
    latencies: list[float] = []
    errors = 0
    counter = iter(range(creates))
    tag = uuid.uuid4().hex[:6]
    image = image_for(target)

    async def creator() -> None:
        nonlocal errors
        for i in counter:
            body = json.dumps(pod(f"p-{tag}-{i}", image)).encode()
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
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
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


async def creates_phase(
    cluster: Cluster,
    targets: tuple[str, ...],
    rounds: int,
    sequential: int,
    concurrent: int,
    registry: RegistryServer | None = None,
) -> tuple[list[Cell], int]:
    """The cells, and how many requests the registry saw while they were measured (after the warm-up)."""
    cells: list[Cell] = []
    async with api_client(cluster, timeout=30, connections=8) as client:
        for target in targets:  # warm-up: connections, the webhooks' first requests and lookups, apiserver caches
            await run_cell(client, target, "dry", 8, 200, -1)
        before = registry_requests(registry)
        for rnd in range(rounds):
            order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
            for mode in ("dry", "real"):
                for creators, creates in ((1, sequential), (8, concurrent)):
                    for target in order:
                        cell = await run_cell(client, target, mode, creators, creates, rnd)
                        cells.append(cell)
                        print(
                            f"round {rnd} {mode:4} c={creators} {target:16} {cell.creates_per_second:7.0f}/s "
                            f"p50 {cell.p50_ms:6.2f} ms p90 {cell.p90_ms:6.2f} ms errors {cell.errors}",
                            flush=True,
                        )
    return cells, registry_requests(registry) - before


Measured = dict[tuple[str, int], Cell]  # one (mode, creators) cell's measurements by (target, round)


def _per_cell(cells: list[Cell]) -> Iterator[tuple[str, int, Measured, list[int]]]:
    """Per (mode, creators): its measurements by (target, round), and the rounds."""
    for mode in ("dry", "real"):
        for creators in sorted({c.creators for c in cells}):
            mine = [c for c in cells if c.mode == mode and c.creators == creators]
            yield mode, creators, {(c.target, c.round): c for c in mine}, sorted({c.round for c in mine})


def _added_ratio(by: Measured, rounds: list[int], target: str, baseline: str) -> float:
    """The median over rounds of `target`'s added p50 latency (over no webhook's) against `baseline`'s."""
    none = {r: by[("none", r)].p50_ms for r in rounds}
    return statistics.median((by[(target, r)].p50_ms - none[r]) / (by[(baseline, r)].p50_ms - none[r]) for r in rounds)


_PERCENTILES = ("p50_ms", "p90_ms", "p99_ms")


def _added(by: Measured, rounds: list[int], target: str, percentile: str = "p50_ms") -> float:
    """The median over rounds of `target`'s latency at `percentile` minus no webhook's."""
    none = {r: float(getattr(by[("none", r)], percentile)) for r in rounds}
    return statistics.median(float(getattr(by[(target, r)], percentile)) - none[r] for r in rounds)


def _rate_ratio(by: Measured, rounds: list[int], target: str, baseline: str) -> float:
    return statistics.median(by[(target, r)].creates_per_second / by[(baseline, r)].creates_per_second for r in rounds)


def creates_report(cells: list[Cell]) -> list[str]:
    targets = list(dict.fromkeys(c.target for c in cells))
    lines = [
        "| mode | creators | target | creates/s | p50 ms | p90 ms | p99 ms | added p50 ms | added vs raw | "
        "added p99 vs raw | creates/s vs raw | added vs FastAPI no-op | creates/s vs FastAPI no-op | "
        "creates/s vs none |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode, creators, by, rounds in _per_cell(cells):
        added = {t: _added(by, rounds, t) for t in targets}
        added_p99 = {t: _added(by, rounds, t, "p99_ms") for t in targets}
        for t in targets:
            rate = statistics.median(by[(t, r)].creates_per_second for r in rounds)
            p50, p90, p99 = (statistics.median(getattr(by[(t, r)], f) for r in rounds) for f in _PERCENTILES)
            vs_noop = f"{added[t] / added['noop']:.2f}" if t not in ("none", "noop") and added["noop"] else "-"
            vs_raw, p99_vs_raw = (
                f"{a[t] / a[FLOOR]:.2f}" if t not in ("none", FLOOR) and a[FLOOR] else "-" for a in (added, added_p99)
            )
            rates = [f"{_rate_ratio(by, rounds, t, baseline):.2f}" for baseline in (FLOOR, "noop", "none")]
            lines.append(
                f"| {'dryRun=All' if mode == 'dry' else 'real'} | {creators} | {t} | {rate:.0f} | {p50:.2f} | "
                f"{p90:.2f} | {p99:.2f} | {added[t]:.2f} | {vs_raw} | {p99_vs_raw} | {rates[0]} | {vs_noop} | "
                f"{rates[1]} | {rates[2]} |"
            )
    if {PATCH_TARGET, MIRROR_TARGET} <= set(targets):
        lines += ["", versus(cells, MIRROR_TARGET, RAW_PATCH_TARGET), "", versus(cells, MIRROR_TARGET, PATCH_TARGET)]
    return lines


def history_figures(cells: list[Cell]) -> dict[str, dict[str, float]]:
    """The history's creates figures (bench/history.py), per cell: pullguard's added p50 over the raw floor's
    (the medians' ratio, as the table's "added vs raw"), its p99 against the floor's (medians), its creates/s
    against the floor's and, with the mirror targets, pullguard-mirror's added p50 against raw-patch's (per-round
    ratios, as `versus`)."""
    figures: dict[str, dict[str, float]] = {"creates-added": {}, "creates-p99": {}, "creates-rate": {}}
    mirrored = {MIRROR_TARGET, RAW_PATCH_TARGET} <= {c.target for c in cells}
    if mirrored:
        figures["creates-mirror"] = {}
    for mode, creators, by, rounds in _per_cell(cells):
        cell = f"{mode}.c{creators}"
        figures["creates-added"][f"added.{cell}"] = _added(by, rounds, "pullguard") / _added(by, rounds, FLOOR)
        p99 = [statistics.median(by[(t, r)].p99_ms for r in rounds) for t in ("pullguard", FLOOR)]
        figures["creates-p99"][f"p99.{cell}"] = p99[0] / p99[1]
        figures["creates-rate"][f"rate.{cell}"] = _rate_ratio(by, rounds, "pullguard", FLOOR)
        if mirrored:
            figures["creates-mirror"][f"mirror.{cell}"] = _added_ratio(by, rounds, MIRROR_TARGET, RAW_PATCH_TARGET)
    return figures


def versus(cells: list[Cell], target: str, baseline: str) -> str:
    """One line: `target`'s added p50 latency and creates/s against `baseline`'s, per cell (median of per-round
    ratios)."""
    parts = [
        f"{mode} c={creators}: added {_added_ratio(by, rounds, target, baseline):.2f}x, "
        f"creates/s {_rate_ratio(by, rounds, target, baseline):.2f}x"
        for mode, creators, by, rounds in _per_cell(cells)
    ]
    return f"{target} against {baseline}: " + "; ".join(parts)


def _do_nothing(name: str, script: str, port: int, work: Path) -> ManagedProcess:
    """A do-nothing webhook of bench/ (`script PORT CERT_DIR`) on `port`, logging to work/NAME.log."""
    argv = [sys.executable, str(ROOT / "bench" / script), str(port), str(work / "certs")]
    return ManagedProcess.spawn(name, argv, work / f"{name}.log", env=env())


def run_creates(args: argparse.Namespace, work: Path, figures: dict[str, dict[str, float]] | None = None) -> list[str]:
    cert_dir = work / "certs"
    make_certs(cert_dir)
    targets = TARGETS if args.skip_mirror else (*TARGETS, RAW_PATCH_TARGET, PATCH_TARGET, MIRROR_TARGET)
    with Cluster.start() as cluster, contextlib.ExitStack() as stack:
        for target in targets:
            cluster.create_namespace(f"bench-{target}", labels={TARGET_LABEL: target})
        noop_port, raw_port, pg_port = free_port(), free_port(), free_port()
        noop = _do_nothing("noop", "noop_webhook.py", noop_port, work)
        stack.callback(noop.stop)
        raw = _do_nothing("raw", "raw_noop_webhook.py", raw_port, work)
        stack.callback(raw.stop)
        pg = ManagedProcess.spawn(
            "pullguard", pullguard_argv(pg_port, cert_dir, *args.pullguard_args), work / "pullguard.log", env=env()
        )
        stack.callback(pg.stop)
        registry: RegistryServer | None = None
        if not args.skip_mirror:
            registry = start_plain_registry(access_log=True)
            stack.callback(registry.stop)
            policy = push_bench_images(registry, work / "mirror")
            mirror_port = free_port()
            mirror_log = work / "pullguard-mirror.log"
            argv = pullguard_argv(mirror_port, cert_dir, "--config", str(policy), *args.pullguard_args, offline=False)
            pg_mirror = ManagedProcess.spawn("pullguard-mirror", argv, mirror_log, env=env())
            stack.callback(pg_mirror.stop)
        wait_ok(f"https://127.0.0.1:{noop_port}/healthz", cert_dir / "ca.crt", noop)
        wait_ok(f"https://127.0.0.1:{raw_port}/healthz", cert_dir / "ca.crt", raw)
        register(cluster, FLOOR, f"https://127.0.0.1:{raw_port}", cert_dir / "ca.crt")
        wait_called(cluster, FLOOR, "bench-raw mutate")
        wait_ok(f"https://127.0.0.1:{pg_port}/readyz", cert_dir / "ca.crt", pg)
        register(cluster, "noop", f"https://127.0.0.1:{noop_port}", cert_dir / "ca.crt")
        register(cluster, "pullguard", f"https://127.0.0.1:{pg_port}", cert_dir / "ca.crt")
        wait_called(cluster, "noop", "bench-noop mutate")
        pg_url = f"https://127.0.0.1:{pg_port}"
        register(cluster, "pullguard-inert", pg_url, cert_dir / "ca.crt", inert_mutating=True)
        wait_called(cluster, "pullguard", "pullguard")
        wait_called(cluster, "pullguard-inert", "pullguard")
        if registry is not None:
            register(cluster, PATCH_TARGET, f"https://127.0.0.1:{noop_port}", cert_dir / "ca.crt")
            wait_called(cluster, PATCH_TARGET, "bench-noop mutate")
            check_rewrite(cluster, PATCH_TARGET)
            register(cluster, RAW_PATCH_TARGET, f"https://127.0.0.1:{raw_port}", cert_dir / "ca.crt")
            wait_called(cluster, RAW_PATCH_TARGET, "bench-raw mutate")
            check_rewrite(cluster, RAW_PATCH_TARGET)
            wait_ok(f"https://127.0.0.1:{mirror_port}/readyz", cert_dir / "ca.crt", pg_mirror)
            register(cluster, MIRROR_TARGET, f"https://127.0.0.1:{mirror_port}", cert_dir / "ca.crt")
            wait_called(cluster, MIRROR_TARGET, "pullguard")
            check_rewrite(cluster, MIRROR_TARGET)  # its first lookups: the caches are warm before the warm-up
        cells, lookups = asyncio.run(
            creates_phase(cluster, targets, args.rounds, args.sequential, args.concurrent, registry)
        )
        mirror_lines: list[str] = []
        if registry is not None:
            expected = 200 + args.rounds * 2 * (args.sequential + args.concurrent)  # warm-up + dry and real cells
            counts = check_rewritten_all(cluster, mirror_log, expected)
            mirror_lines = [
                f"{MIRROR_TARGET}: {counts['patched']} of {counts['mutate']} mutating reviews of bench pods patched "
                f"{SOURCE_IMAGE} -> {MIRROR_IMAGE}, {counts['validate-clean']} of {counts['validate']} validating "
                f"reviews without findings, {counts['stored-on-mirror']} of {counts['stored']} stored pods on the "
                f"mirror; registry requests: {lookups} while measuring (after the warm-up), "
                f"{registry_requests(registry)} in all",
            ]
            for target, log in (("pullguard", work / "pullguard.log"), (MIRROR_TARGET, mirror_log)):
                ms = ", ".join(f"{e} {v:.3f} ms" for e, v in review_ms(log, f"bench-{target}").items())
                mirror_lines.append(f"{target}: median handling per review (its log's durationMs): {ms}")
    if figures is not None:
        figures.update(history_figures(cells))
    OUT.mkdir(exist_ok=True)
    (OUT / "apiserver-creates.json").write_text(json.dumps([asdict(c) for c in cells], indent=2))
    return [
        f"creates: {args.rounds} rounds; per round and cell {args.sequential} sequential creates, "
        f"{args.concurrent} by 8 concurrent creators; medians over rounds",
        *mirror_lines,
        *creates_report(cells),
    ]
