"""`make bench`: pullguard's warm admission path (/validate, and /mutate with a mirror rule) against a no-op FastAPI
endpoint, in one run; and pullguard's floor, a review it parses and allows with nothing to judge.

Both servers are single uvicorn processes over TLS on loopback, driven in turn by `wrk` (one thread, keep-alive
connections, a Lua body script) with the same 3-container Deployment AdmissionReview. Rounds alternate
(no-op, pullguard, no-op, pullguard, ...) so drift on a noisy machine hits both; medians are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import history
from bench.processes import make_certs
from tests.reviews import review
from tests.support.images import build_image, build_index
from tests.support.loopback import free_port
from tests.support.pushers import ImagePusher
from tests.support.registry import RegistryServer, start_plain_registry

ROOT = Path(__file__).resolve().parent.parent

HOST = "registry.bench.example"  # mapped by a hosts.toml to a registry on loopback: no DNS, no outside traffic
MIRROR = "mirror.bench.example"  # a mirror rule for HOST, mapped to the same registry (the /mutate target)


def bench_deployment() -> dict[str, Any]:
    """3 containers, as the issue asks: one untagged (a warning to render), one multi-arch, one single-arch."""
    images = [f"{HOST}/shop/web", f"{HOST}/shop/metrics:1.0", f"{HOST}/shop/sidecar:1.4.2"]
    containers = [
        {"name": name, "image": image} for name, image in zip(("web", "metrics", "sidecar"), images, strict=True)
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"replicas": 2, "template": {"spec": {"containers": containers}}},
    }


def push_bench_images(registry: RegistryServer, work: Path) -> Path:
    with ImagePusher(registry) as pusher:
        pusher.push("shop/web", "latest", build_image(seed="web"))
        pusher.push("shop/metrics", "1.0", build_index(seed="metrics"))
        pusher.push("shop/sidecar", "1.4.2", build_image(seed="sidecar"))
    hosts = work / "certs.d"
    for host in (HOST, MIRROR):  # the mirror is the same registry: every rewrite is verified and made
        (hosts / host).mkdir(parents=True)
        (hosts / host / "hosts.toml").write_text(f'server = "{registry.url}"\n')
    policy = work / "policy.yaml"
    policy.write_text(
        f"registry: {{hostsDir: {json.dumps(str(hosts))}}}\nmirrors: [{{registry: {HOST}, mirror: {MIRROR}}}]\n"
    )
    return policy


@dataclass
class Round:
    target: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int


def wait_healthy(url: str, ca: Path, seconds: float = 30) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, context=context, timeout=1)
            return
        except OSError as exc:
            if "405" in str(exc) or "Method Not Allowed" in str(exc):
                return
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def wrk(url: str, body: Path, connections: int, seconds: int) -> Round:
    env = dict(os.environ, BENCH_BODY=str(body))
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "5s",
            "-s",
            str(Path(__file__).with_name("post.lua")),
            url,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=seconds + 60,
        check=True,
    ).stdout
    match = re.search(
        r"BENCH requests=(\d+) errors=(\d+) duration_us=(\d+) p50_us=(\d+) p90_us=(\d+) p99_us=(\d+)", out
    )
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    requests, errors, duration, p50, p90, p99 = map(int, match.groups())
    return Round("", connections, requests / (duration / 1e6), p50 / 1000, p90 / 1000, p99 / 1000, errors)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--record", action="store_true", help="append this run to bench/RESULTS.md's figure history")
    parser.add_argument("--note", default="", help="the recorded row's note (what the run was of)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: run `make deps` (Debian package wrk)")

    work = Path(tempfile.mkdtemp(prefix="pullguard-bench-"))
    registry = start_plain_registry()
    policy = push_bench_images(registry, work)
    body = work / "review.json"
    body.write_text(json.dumps(review(bench_deployment(), uid="bench")))
    # pullguard's floor: a review it parses and allows with nothing to judge (a DELETE of the same Deployment)
    nothing = work / "nothing.json"
    nothing.write_text(json.dumps(review(None, operation="DELETE", old=bench_deployment(), uid="bench")))
    cert_dir = work / "certs"
    make_certs(cert_dir)

    pg_port, noop_port = free_port(), free_port()
    pullguard = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "webhook.cli",
            "serve",
            "--port",
            str(pg_port),
            "--cert-dir",
            str(cert_dir),
            "--config",
            str(policy),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processes = [pullguard]
    try:
        wait_healthy(f"https://127.0.0.1:{pg_port}/healthz", cert_dir / "ca.crt")
        context = ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))
        request = urllib.request.Request(
            f"https://127.0.0.1:{pg_port}/validate",
            data=body.read_bytes(),
            headers={"Content-Type": "application/json"},
        )
        answer = urllib.request.urlopen(request, context=context, timeout=5).read()
        if b"could not verify" in answer or b"not found" in answer:
            raise RuntimeError(f"the bench images did not resolve: {answer.decode()}")
        (work / "answer.json").write_bytes(answer)
        noop = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("noop_app.py")), str(noop_port), str(cert_dir)],
            env=dict(os.environ, BENCH_ANSWER=str(work / "answer.json")),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(noop)
        wait_healthy(f"https://127.0.0.1:{noop_port}/validate", cert_dir / "ca.crt")

        targets = {
            "noop": (f"https://127.0.0.1:{noop_port}/validate", body),
            "floor": (f"https://127.0.0.1:{pg_port}/validate", nothing),
            "pullguard": (f"https://127.0.0.1:{pg_port}/validate", body),
            "mutate": (f"https://127.0.0.1:{pg_port}/mutate", body),  # pullguard's mutating path: 3 verified rewrites
        }
        for url, sent in targets.values():  # warm up both (imports, caches, TLS sessions)
            wrk(url, sent, 10, 2)
        rounds: list[Round] = []
        for connections in args.connections:
            for _ in range(args.rounds):
                for target, (url, sent) in targets.items():
                    result = wrk(url, sent, connections, args.seconds)
                    result.target = target
                    rounds.append(result)
                    print(
                        f"{target:9} c={connections:3} {result.requests_per_second:8.0f} req/s"
                        f"  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  errors {result.errors}",
                        flush=True,
                    )
        report(rounds, args, len(answer))
        if HISTORY_CONNECTIONS in args.connections:
            figures = {"warm-path": history_figures(rounds)}
            print("\n" + history.report(figures, record=args.record, note=args.note))
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / "warm-path.json").write_text(json.dumps([asdict(r) for r in rounds], indent=2))
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


TARGETS = ("noop", "floor", "pullguard", "mutate")  # "pullguard" is its /validate


HISTORY_CONNECTIONS = 50  # the figure history's warm-path table is taken at 50 connections


def _medians(rounds: list[Round], connections: int) -> dict[str, tuple[float, float, float]]:
    """Per target: median req/s, p50 ms and p99 ms over its rounds at `connections`."""
    med = {}
    for target in TARGETS:
        mine = [r for r in rounds if r.target == target and r.connections == connections]
        med[target] = (
            statistics.median(r.requests_per_second for r in mine),
            statistics.median(r.p50_ms for r in mine),
            statistics.median(r.p99_ms for r in mine),
        )
    return med


def history_figures(rounds: list[Round]) -> dict[str, float]:
    """The history's warm-path figure (bench/history.py): ratios to the no-op, and the review's cost per request
    above pullguard's floor (1/req/s of each, so the machine's speed of the day cancels out less than in a ratio
    to the no-op, but the review's own drift shows)."""
    med = _medians(rounds, HISTORY_CONNECTIONS)
    noop_rps, _, noop_p99 = med["noop"]
    return {
        "validate": med["pullguard"][0] / noop_rps,
        "validate-p99": med["pullguard"][2] / noop_p99,
        "mutate": med["mutate"][0] / noop_rps,
        "above-floor-us": 1e6 / med["pullguard"][0] - 1e6 / med["floor"][0],
    }


def report(rounds: list[Round], args: argparse.Namespace, answer_size: int) -> None:
    print(f"\nmedians of {args.rounds} rounds x {args.seconds} s, answer {answer_size} bytes")
    print("| connections | target | req/s | p50 ms | p99 ms | throughput vs no-op | p99 vs no-op |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for connections in args.connections:
        med = _medians(rounds, connections)
        for target in TARGETS:
            rps, p50, p99 = med[target]
            ratio, p99_ratio = f"{rps / med['noop'][0]:.2f}", f"{p99 / med['noop'][2]:.2f}"
            print(f"| {connections} | {target} | {rps:.0f} | {p50:.2f} | {p99:.2f} | {ratio} | {p99_ratio} |")
        print(f"| {connections} | mutate vs validate | | | | {med['mutate'][0] / med['pullguard'][0]:.2f} | |")


if __name__ == "__main__":
    main()
