"""One large review must not stall the others (issue 8, item 7), against the real `pullguard serve`.

While the largest reviews pullguard accepts (and a 60,000-container Pod it refuses) are in flight, `/healthz`
is polled on its own connection: its p99 stays under 50 ms, so liveness probes never fail meanwhile.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from tests.reviews import review
from tests.server import PullguardServer
from webhook.limits import API_SERVER_BODY_BYTES, MAX_POD_ENTRIES

JSON = "application/json"
MIRROR_POLICY = "mirrors: [{registry: docker.io, mirror: mirror.example.com, verify: false}]\n"


def pod(containers: int, pad_to: int = 0) -> dict[str, Any]:
    """Distinct untagged Docker Hub images: each is parsed, warned about and (on /mutate) rewritten."""
    spec = {"containers": [{"name": f"c{i}", "image": f"team/app-{i}"} for i in range(containers)]}
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "big", "namespace": "default"}}
    obj["spec"] = spec
    body = review(obj, uid="big")
    if pad_to:
        size = len(orjson.dumps(body))
        obj["metadata"]["annotations"] = {"pad": "x" * (pad_to - size - 64)}
    return body


def probe_health(server: PullguardServer, stop: threading.Event, latencies: list[float]) -> None:
    with httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=30) as client:
        client.get("/healthz")  # the TLS handshake is not what is measured
        while not stop.is_set():
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.005)


def while_probing(server: PullguardServer, work: Callable[[], None]) -> list[float]:
    stop, latencies = threading.Event(), []
    prober = threading.Thread(target=probe_health, args=(server, stop, latencies))
    prober.start()
    try:
        time.sleep(0.2)
        work()
        time.sleep(0.1)
    finally:
        stop.set()
        prober.join(timeout=30)
    return latencies


def p99(values: list[float]) -> float:
    """Nearest rank: a value that was measured."""
    ordered = sorted(values)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


def test_healthz_stays_fast_while_the_largest_reviews_are_judged(
    pullguard_factory: Callable[..., PullguardServer],
) -> None:
    server = pullguard_factory(policy=MIRROR_POLICY)
    largest = orjson.dumps(pod(MAX_POD_ENTRIES, pad_to=API_SERVER_BODY_BYTES - 1024))
    assert API_SERVER_BODY_BYTES - 2048 < len(largest) <= API_SERVER_BODY_BYTES
    refused = orjson.dumps(pod(60_000))  # 2.7 MB: the stall
    durations: dict[str, list[float]] = {"largest": [], "refused": []}
    answers: dict[str, list[httpx.Response]] = {"largest": [], "refused": []}

    def work() -> None:
        """At least 2.5 s of reviews back to back: enough /healthz samples for a p99 that is not one sample."""
        deadline = time.monotonic() + 2.5
        with httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=60) as client:
            while time.monotonic() < deadline or not answers["refused"]:
                for name, body in (("largest", largest), ("largest", largest), ("refused", refused)):
                    for path in ("/mutate", "/validate"):
                        started = time.perf_counter()
                        answers[name].append(client.post(path, content=body, headers={"content-type": JSON}))
                        durations[name].append(time.perf_counter() - started)

    latencies = while_probing(server, work)
    report = {name: sorted(round(d * 1000) for d in values)[-5:] for name, values in durations.items()}
    assert len(latencies) > 200
    assert p99(latencies) < 0.050, (round(p99(latencies) * 1000), round(max(latencies) * 1000), report)
    for answer in answers["largest"]:
        assert answer.status_code == 200, answer.text[:300]
        assert answer.json()["response"]["uid"] == "big"
    for answer in answers["refused"]:  # answered as failurePolicy (open) says, never an HTTP error to ignore
        assert answer.status_code == 200, len(answer.content)
        response = answer.json()["response"]
        if response.get("warnings"):  # the validating side says why; the mutating side only ever rewrites
            assert f"over pullguard's limit of {MAX_POD_ENTRIES}" in response["warnings"][0]
    assert max(durations["largest"]) < 1.0, report
    assert max(durations["refused"]) < 1.0, report


def test_small_reviews_are_answered_while_large_ones_queue(pullguard_factory: Callable[..., PullguardServer]) -> None:
    """Four maximal reviews at once, and a small review meanwhile: the small one is not queued behind them."""
    server = pullguard_factory(policy=MIRROR_POLICY)
    largest = orjson.dumps(pod(MAX_POD_ENTRIES, pad_to=API_SERVER_BODY_BYTES - 1024))
    small = orjson.dumps(pod(2))
    small_latencies: list[float] = []
    errors: list[str] = []

    def flood() -> None:
        with httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=60) as client:
            response = client.post("/mutate", content=largest, headers={"content-type": JSON})
            if response.status_code != 200:
                errors.append(response.text[:300])

    floods = [threading.Thread(target=flood) for _ in range(4)]
    with httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=60) as client:
        client.get("/healthz")
        for thread in floods:
            thread.start()
        while any(thread.is_alive() for thread in floods):
            started = time.perf_counter()
            response = client.post("/validate", content=small, headers={"content-type": JSON})
            small_latencies.append(time.perf_counter() - started)
            assert response.status_code == 200
            time.sleep(0.01)
    for thread in floods:
        thread.join()
    assert not errors
    assert small_latencies and p99(small_latencies) < 0.100, sorted(small_latencies)[-5:]
