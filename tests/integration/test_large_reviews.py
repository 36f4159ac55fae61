"""One large review must not stall the others (issue 8, item 7), against the real `pullguard serve`.

While the largest reviews pullguard accepts (and a 60,000-container Pod it refuses) are in flight, `/healthz` and
small reviews are sent on their own connections and answered, and every large one is answered as it should be.
Nothing here is timed: tests/unit/test_large_review_offload.py proves, deterministically, that the event loop
answers while a large review is held in the worker, and bench/large_reviews.py measures the latencies.
"""

from __future__ import annotations

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


def probe_health(server: PullguardServer, stop: threading.Event, answers: list[int]) -> None:
    with httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=30) as client:
        while True:  # at least once, even if the work is done first
            answers.append(client.get("/healthz").status_code)
            if stop.is_set():
                return
            time.sleep(0.005)


def while_probing(server: PullguardServer, work: Callable[[], None]) -> list[int]:
    """The /healthz status codes seen while `work` ran."""
    stop, answers = threading.Event(), []
    prober = threading.Thread(target=probe_health, args=(server, stop, answers))
    prober.start()
    try:
        time.sleep(0.2)
        work()
        time.sleep(0.1)
    finally:
        stop.set()
        prober.join(timeout=30)
    return answers


def test_healthz_is_answered_while_the_largest_reviews_are_judged(
    pullguard_factory: Callable[..., PullguardServer],
) -> None:
    server = pullguard_factory(policy=MIRROR_POLICY)
    largest = orjson.dumps(pod(MAX_POD_ENTRIES, pad_to=API_SERVER_BODY_BYTES - 1024))
    assert API_SERVER_BODY_BYTES - 2048 < len(largest) <= API_SERVER_BODY_BYTES
    refused = orjson.dumps(pod(60_000))  # 2.7 MB: the stall
    answers: dict[str, list[httpx.Response]] = {"largest": [], "refused": []}

    def work() -> None:
        """Each kind on both endpoints, twice over."""
        with httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=60) as client:
            for _ in range(2):
                for name, body in (("largest", largest), ("largest", largest), ("refused", refused)):
                    for path in ("/mutate", "/validate"):
                        answers[name].append(client.post(path, content=body, headers={"content-type": JSON}))

    health = while_probing(server, work)
    assert health and set(health) == {200}
    for answer in answers["largest"]:
        assert answer.status_code == 200, answer.text[:300]
        assert answer.json()["response"]["uid"] == "big"
    for answer in answers["refused"]:  # answered as failurePolicy (open) says, never an HTTP error to ignore
        assert answer.status_code == 200, len(answer.content)
        response = answer.json()["response"]
        if response.get("warnings"):  # the validating side says why; the mutating side only ever rewrites
            assert f"over pullguard's limit of {MAX_POD_ENTRIES}" in response["warnings"][0]


def test_small_reviews_are_answered_while_large_ones_queue(pullguard_factory: Callable[..., PullguardServer]) -> None:
    """Four maximal reviews at once, and small reviews meanwhile: all answered (how fast: bench/large_reviews.py)."""
    server = pullguard_factory(policy=MIRROR_POLICY)
    largest = orjson.dumps(pod(MAX_POD_ENTRIES, pad_to=API_SERVER_BODY_BYTES - 1024))
    small = orjson.dumps(pod(2))
    small_answers: list[int] = []
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
        while True:  # at least once, even if the floods are done first
            small_answers.append(client.post("/validate", content=small, headers={"content-type": JSON}).status_code)
            if not any(thread.is_alive() for thread in floods):
                break
            time.sleep(0.01)
    for thread in floods:
        thread.join()
    assert not errors
    assert small_answers and set(small_answers) == {200}
