"""How fast pullguard answers while the largest reviews are judged (issue 8, item 7): `python -m bench.large_reviews`.

`pullguard serve --offline` with a mirror rule (so /mutate has work); one client sends the largest review pullguard
accepts (a Pod of MAX_POD_ENTRIES containers padded to the API server's 3 MiB body) and a 60,000-container Pod it
refuses, to /mutate and /validate in turn, for `--seconds`; meanwhile `/healthz` and a 2-container review are sent on
connections of their own, every 5 ms. Printed: p50/p99/max of each, and of the large reviews themselves. The tests
prove the same property without timing it (tests/unit/test_large_review_offload.py,
tests/integration/test_large_reviews.py).
"""

from __future__ import annotations

import argparse
import math
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import orjson

from bench.processes import ManagedProcess, env, free_port, make_certs, pullguard_argv, wait_ok
from tests.integration.test_large_reviews import MIRROR_POLICY, pod
from webhook.limits import API_SERVER_BODY_BYTES, MAX_POD_ENTRIES

JSON = {"content-type": "application/json"}


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p50, p99 = (ordered[math.ceil(q * len(ordered)) - 1] for q in (0.5, 0.99))
    return f"n={len(ordered)} p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"


def _probe(url: str, context: ssl.SSLContext, stop: threading.Event, send: str, out: list[float]) -> None:
    small = orjson.dumps(pod(2))
    with httpx.Client(base_url=url, verify=context, timeout=30) as client:
        client.get("/healthz")  # the handshake is not measured
        while not stop.is_set():
            started = time.perf_counter()
            response = (
                client.get("/healthz") if send == "healthz" else client.post("/validate", content=small, headers=JSON)
            )
            if response.status_code != 200:
                raise RuntimeError(f"{send}: HTTP {response.status_code}")
            out.append(time.perf_counter() - started)
            time.sleep(0.005)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pullguard-large-"))
    make_certs(work / "certs")
    (work / "policy.yaml").write_text(MIRROR_POLICY)
    port = free_port()
    argv = pullguard_argv(port, work / "certs", "--config", str(work / "policy.yaml"))
    server = ManagedProcess.spawn("pullguard", argv, work / "pullguard.log", env=env())
    try:
        url, ca = f"https://127.0.0.1:{port}", work / "certs" / "ca.crt"
        wait_ok(f"{url}/readyz", ca, server)
        context = ssl.create_default_context(cafile=str(ca))
        largest = orjson.dumps(pod(MAX_POD_ENTRIES, pad_to=API_SERVER_BODY_BYTES - 1024))
        refused = orjson.dumps(pod(60_000))
        measured: dict[str, list[float]] = {"healthz": [], "small review": [], "largest": [], "refused": []}
        stop = threading.Event()
        probes = [
            threading.Thread(target=_probe, args=(url, context, stop, kind, measured[key]))
            for kind, key in (("healthz", "healthz"), ("small", "small review"))
        ]
        for probe in probes:
            probe.start()
        with httpx.Client(base_url=url, verify=context, timeout=60) as client:
            deadline = time.monotonic() + args.seconds
            while time.monotonic() < deadline:
                for name, body in (("largest", largest), ("refused", refused)):
                    for path in ("/mutate", "/validate"):
                        started = time.perf_counter()
                        client.post(path, content=body, headers=JSON).raise_for_status()
                        measured[name].append(time.perf_counter() - started)
        stop.set()
        for probe in probes:
            probe.join(timeout=30)
        print(f"while the largest reviews were judged for {args.seconds:g} s (one client, back to back):")
        for name, values in measured.items():
            print(f"  {name:13} {_percentiles(values)}")
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
