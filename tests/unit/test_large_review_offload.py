"""A large review is read and judged off the event loop (issue 8, item 7): while one is held in the worker,
/healthz and a small review are answered, and the large one is answered once released. Deterministic: the
worker is stopped on an event, nothing is timed (bench/large_reviews.py measures the latencies)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.test_large_reviews import MIRROR_POLICY, pod
from tests.unit.test_admission_limits import make_app
from webhook.admission import pipeline
from webhook.limits import API_SERVER_BODY_BYTES, MAX_POD_ENTRIES, OFFLOAD_BODY_BYTES

HANG_GUARD_SECONDS = 30  # only so that a regression fails instead of hanging the suite


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (orjson.dumps(pod(MAX_POD_ENTRIES, pad_to=API_SERVER_BODY_BYTES - 1024)), "/mutate"),
        (orjson.dumps(pod(MAX_POD_ENTRIES, pad_to=API_SERVER_BODY_BYTES - 1024)), "/validate"),
        (orjson.dumps(pod(60_000)), "/validate"),  # refused (over the entry limit), still read in the worker
    ],
    ids=["largest-mutate", "largest-validate", "refused"],
)
async def test_the_event_loop_answers_while_a_large_review_is_held(
    body: bytes, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(body) > OFFLOAD_BODY_BYTES
    entered, release = threading.Event(), threading.Event()
    read = pipeline._read

    def held(*args: Any) -> Any:
        entered.set()
        release.wait(HANG_GUARD_SECONDS)
        return read(*args)

    monkeypatch.setattr(pipeline, "_read", held)
    transport = httpx.ASGITransport(app=make_app(MIRROR_POLICY))
    async with httpx.AsyncClient(transport=transport, base_url="http://pullguard", timeout=60) as client:
        large = asyncio.create_task(client.post(path, content=body, headers={"content-type": "application/json"}))
        try:
            assert await asyncio.to_thread(entered.wait, HANG_GUARD_SECONDS), (
                "the large review never reached the worker"
            )
            health = await asyncio.wait_for(client.get("/healthz"), HANG_GUARD_SECONDS)
            small = await asyncio.wait_for(
                client.post("/validate", content=orjson.dumps(pod(2)), headers={"content-type": "application/json"}),
                HANG_GUARD_SECONDS,
            )
            assert health.status_code == 200 and small.status_code == 200
            assert small.json()["response"]["uid"] == "big"
            assert not large.done()  # both answered while the large review was still held in the worker
        finally:
            release.set()
        answer = await asyncio.wait_for(large, HANG_GUARD_SECONDS)
    assert answer.status_code == 200 and answer.json()["response"]["uid"] == "big"
