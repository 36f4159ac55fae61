"""Where pullguard's time per create goes beyond the raw floor's (issue 23): `python -m bench.decompose`.

Dry-run pod creates through a real kube-apiserver (the method of `bench/creates.py`: one control plane, a
namespace per target, validating + mutating webhooks selecting it, rounds rotating the target order), against
the raw do-nothing webhook and `pullguard serve --offline` variants that each swap one part
(`bench/decompose_serve.py`): the raw app on pullguard's server, the plain httptools protocol, no review log line,
the allocator setting before issue 23. Besides the latency, the server process's CPU time (all threads, from
/proc/PID/task/*/schedstat) per create: what each part costs even where the latency hides it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

from bench.creates import TARGET_LABEL, register, run_cell, wait_called
from bench.processes import ROOT, Cluster, ManagedProcess, api_client, env, free_port, make_certs, wait_ok

FLOOR = "raw"
VARIANTS = ("rawapp", "rawapp+plainproto", "pullguard", "pullguard+plainproto", "pullguard+nolog", "mmap128k")


def cpu_ns(pid: int) -> int:
    """CPU time of all the process's threads so far, ns (schedstat: /proc/PID/stat's ticks are 10 ms coarse)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that just ended
            total += int((task / "schedstat").read_text().split()[0])
    return total


def _target(variant: str) -> str:
    return variant.replace("+", "-")


async def _measure(
    cluster: Cluster, pids: dict[str, int], rounds: int, creates: dict[int, int]
) -> dict[tuple[str, int], list[tuple[float, float, float]]]:
    """Per (target, creators): (creates/s, p50 ms, server CPU us per create) of each round."""
    targets = ["none", *pids]
    results: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    async with api_client(cluster, timeout=30, connections=8) as client:
        for target in targets:
            await run_cell(client, target, "dry", 8, 100, -1)  # warm-up
        for rnd in range(rounds):
            order = targets[rnd % len(targets) :] + targets[: rnd % len(targets)]
            for creators, count in creates.items():
                for target in order:
                    pid = pids.get(target)
                    before = cpu_ns(pid) if pid else 0
                    cell = await run_cell(client, target, "dry", creators, count, rnd)
                    cpu = (cpu_ns(pid) - before) / count / 1000 if pid else 0.0
                    results.setdefault((target, creators), []).append((cell.creates_per_second, cell.p50_ms, cpu))
                    print(f"round {rnd} c={creators} {target:22} {cell.creates_per_second:5.0f}/s "
                          f"p50 {cell.p50_ms:6.2f} ms cpu/create {cpu:5.0f} us", flush=True)  # fmt: skip
    return results


def report(results: dict[tuple[str, int], list[tuple[float, float, float]]], targets: list[str]) -> list[str]:
    lines = [
        "| creators | target | creates/s | p50 ms | added p50 ms | added vs raw | server CPU us/create | CPU vs raw |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for creators in sorted({c for _, c in results}):
        none = [r[1] for r in results[("none", creators)]]
        added = {
            t: statistics.median(r[1] - n for r, n in zip(results[(t, creators)], none, strict=True)) for t in targets
        }
        cpu = {t: statistics.median(r[2] for r in results[(t, creators)]) for t in targets}
        for t in targets:
            rows = results[(t, creators)]
            vs = f"{added[t] / added[FLOOR]:.2f}" if t not in ("none", FLOOR) else "-"
            cpu_vs = f"{cpu[t] / cpu[FLOOR]:.2f}" if t not in ("none", FLOOR) else "-"
            lines.append(
                f"| {creators} | {t} | {statistics.median(r[0] for r in rows):.0f} | "
                f"{statistics.median(r[1] for r in rows):.2f} | {added[t]:.2f} | {vs} | "
                f"{cpu[t]:.0f} | {cpu_vs} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sequential", type=int, default=300, help="sequential creates per round and target")
    parser.add_argument("--concurrent", type=int, default=600, help="creates by 8 creators per round and target")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pullguard-decompose-"))
    make_certs(work / "certs")
    ca = work / "certs" / "ca.crt"
    with Cluster.start() as cluster, contextlib.ExitStack() as stack:
        cluster.create_namespace("bench-none", labels={TARGET_LABEL: "none"})
        pids: dict[str, int] = {}
        for variant in [FLOOR, *args.variants]:
            target, port = _target(variant), free_port()
            script = "raw_noop_webhook.py" if variant == FLOOR else "decompose_serve.py"
            words = [] if variant == FLOOR else [variant]  # "pullguard": nothing swapped
            argv = [sys.executable, str(ROOT / "bench" / script), *words, str(port), str(work / "certs")]
            process = ManagedProcess.spawn(target, argv, work / f"{target}.log", env=env())
            stack.callback(process.stop)
            wait_ok(f"https://127.0.0.1:{port}/healthz", ca, process)
            cluster.create_namespace(f"bench-{target}", labels={TARGET_LABEL: target})
            register(cluster, target, f"https://127.0.0.1:{port}", ca)
            raw_app = variant == FLOOR or "rawapp" in variant
            wait_called(cluster, target, "bench-raw mutate" if raw_app else "pullguard")
            pids[target] = process.pid
        results = asyncio.run(_measure(cluster, pids, args.rounds, {1: args.sequential, 8: args.concurrent}))
    print(
        f"\ndryRun=All creates, {args.rounds} rounds of {args.sequential} sequential and {args.concurrent} by 8 "
        "creators per target; medians over rounds\n"
    )
    print("\n".join(report(results, ["none", *pids])))


if __name__ == "__main__":
    main()
