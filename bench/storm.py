"""Connection storm: N new TLS connections opened at once, each sending one AdmissionReview to `/validate`.

Targets are started by this script on loopback over TLS with the same certificate: the do-nothing webhook
(`bench/noop_webhook.py`) and `pullguard serve --offline` (with any extra `serve` flags given, e.g. `--workers 2`).
The client is 4 asyncio processes (50 connections each, started together) with the standard `ssl` module (no
session resumption, as the API server's webhook client: every connection is a full handshake). Per connection:
time from the storm's start to the whole answer. Rounds alternate between targets; medians over rounds of p50,
p90 and max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.processes import ROOT, ManagedProcess, env, free_port, make_certs, pullguard_argv, wait_ok
from tests.reviews import review

CLIENTS = 4


def body() -> bytes:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "storm", "namespace": "default"},
        "spec": {"containers": [{"name": "app", "image": "localhost/bench/app:1.0"}]},
    }
    return json.dumps(review(pod, uid="storm")).encode()


async def one(port: int, context: ssl.SSLContext, payload: bytes, start: float) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
    head = (
        f"POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    writer.write(head + payload)
    await writer.drain()
    data = await reader.read()
    elapsed = time.perf_counter() - start
    writer.close()
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(data[:200])
    return elapsed


async def _storm(port: int, ca: Path, connections: int, payload: bytes, at: float) -> list[float]:
    context = ssl.create_default_context(cafile=str(ca))
    await asyncio.sleep(max(0.0, at - time.time()))
    start = time.perf_counter() - (time.time() - at)  # the shared start, on this process's clock
    return list(await asyncio.gather(*(one(port, context, payload, start) for _ in range(connections))))


def _client(port: int, ca: Path, connections: int, payload: bytes, at: float) -> list[float]:
    return asyncio.run(_storm(port, ca, connections, payload, at))


def storm(port: int, ca: Path, connections: int, payload: bytes, clients: int = CLIENTS) -> list[float]:
    """`connections` spread over `clients` processes that start together (one client process would measure its
    own handshakes: on loopback the client's TLS work is as large as the server's)."""
    at = time.time() + 0.5
    share = [connections // clients + (1 if i < connections % clients else 0) for i in range(clients)]
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        parts = pool.starmap(_client, [(port, ca, n, payload, at) for n in share if n])
    return sorted(t for part in parts for t in part)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--variant", action="append", default=None, help="a pullguard target: extra serve flags, e.g. '--workers 2'"
    )
    args = parser.parse_args()
    print("\n".join(run(args.connections, args.rounds, args.variant or [""])))


def run(
    connections: int, rounds: int, variants: list[str], figures: dict[str, dict[str, float]] | None = None
) -> list[str]:
    """Run the storms; return the report's lines. `figures` gets the history's (bench/history.py) storm figure."""
    work = Path(tempfile.mkdtemp(prefix="pullguard-storm-"))
    cert_dir = work / "certs"
    make_certs(cert_dir)
    ca = cert_dir / "ca.crt"
    processes: list[ManagedProcess] = []
    ports: dict[str, int] = {}
    try:
        port = free_port()
        noop = ManagedProcess.spawn(
            "noop", [sys.executable, str(ROOT / "bench" / "noop_webhook.py"), str(port), str(cert_dir)],
            work / "noop.log", env=env(),
        )  # fmt: skip
        processes.append(noop)
        wait_ok(f"https://127.0.0.1:{port}/healthz", ca, noop)
        ports["noop"] = port
        for variant in variants:
            port = free_port()
            process = ManagedProcess.spawn(
                "pullguard", pullguard_argv(port, cert_dir, *variant.split()), work / f"pg-{len(ports)}.log", env=env()
            )
            processes.append(process)
            wait_ok(f"https://127.0.0.1:{port}/readyz", ca, process)
            ports[f"pullguard {variant}".strip()] = port
        payload = body()
        for target_port in ports.values():  # warm up
            storm(target_port, ca, 20, payload)
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ports}
        for rnd in range(rounds):
            for name, target_port in ports.items():
                times = storm(target_port, ca, connections, payload)
                p50, p90, top = times[len(times) // 2], times[int(len(times) * 0.9)], times[-1]
                results[name].append((p50, p90, top))
                print(f"round {rnd} {name:24} p50 {p50 * 1000:6.0f} ms p90 {p90 * 1000:6.0f} ms max {top * 1000:6.0f}")
                time.sleep(1)
        lines = [
            f"{connections} new TLS connections at once ({CLIENTS} client processes), medians of {rounds} rounds",
            "| target | p50 ms | p90 ms | max ms |",
            "| --- | --- | --- | --- |",
        ]
        for name, rows in results.items():
            p50, p90, top = (statistics.median(r[i] for r in rows) * 1000 for i in range(3))
            lines.append(f"| {name} | {p50:.0f} | {p90:.0f} | {top:.0f} |")
        if figures is not None and "pullguard" in results:
            p50_of = {name: statistics.median(r[0] for r in results[name]) * 1000 for name in ("pullguard", "noop")}
            figures["storm"] = {
                "pullguard-p50": p50_of["pullguard"],
                "noop-p50": p50_of["noop"],
                "vs-noop": p50_of["pullguard"] / p50_of["noop"],
            }
        return lines
    finally:
        for process in processes:
            process.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
