"""A side with nothing to do under the policy (`policies.plan.idle`: mutating without a mirror rule) answers the
envelope without reading the object (issue 23): allowed, no patch, counted as skipped, no review log line. With a
mirror rule the same object is read, and the validating side reads it either way."""

from __future__ import annotations

import io
import json

import httpx
import orjson

from policies.config import DEFAULT_POLICY, parse_policy
from policies.plan import Side, Skip, idle
from tests.reviews import review
from tests.unit.test_admission_limits import MIRROR_POLICY
from webhook.admission.app import Service, create_app
from webhook.metrics import Metrics
from webhook.review.facts import FactGatherer
from webhook.sources.policy import PolicyHolder

# containers is not a list: reading the object is a protocol error
UNREADABLE_OBJECT = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": "nginx"}}


async def _post(path: str, policy: str | None, metrics: Metrics) -> dict[str, object]:
    holder = PolicyHolder(metrics)
    if policy is not None:
        holder.policy = parse_policy(policy)
    app = create_app(Service(holder=holder, metrics=metrics, gatherer=FactGatherer()))
    body = orjson.dumps(review(UNREADABLE_OBJECT, uid="idle-1"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pullguard") as client:
        response = await client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200
    answer: dict[str, object] = response.json()["response"]
    return answer


def _pullguard_lines(out: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return [line for line in lines if str(line["logger"]).startswith("pullguard")]


def _counted(metrics: Metrics, endpoint: str, decision: str) -> float:
    labels = {"endpoint": endpoint, "kind": "", "decision": decision}
    return metrics.registry.get_sample_value("pullguard_admission_requests_total", labels) or 0.0


def test_idle_is_the_mutating_side_without_a_mirror_rule() -> None:
    mirrored = parse_policy(MIRROR_POLICY)
    assert idle(DEFAULT_POLICY, Side.MUTATE) is Skip.NO_MIRROR_RULE
    assert idle(DEFAULT_POLICY, Side.VALIDATE) is None
    assert idle(mirrored, Side.MUTATE) is None


async def test_mutating_without_a_mirror_rule_does_not_read_the_object(log_stream: io.StringIO) -> None:
    metrics = Metrics()
    answer = await _post("/mutate", None, metrics)
    assert answer == {"uid": "idle-1", "allowed": True}
    assert _counted(metrics, "mutate", "skipped") == 1
    assert (
        _pullguard_lines(log_stream) == []
    )  # counted, not logged: the validating review is the one that says anything


async def test_with_a_mirror_rule_the_object_is_read(log_stream: io.StringIO) -> None:
    metrics = Metrics()
    answer = await _post("/mutate", MIRROR_POLICY, metrics)
    assert answer == {"uid": "idle-1", "allowed": True}  # unreadable: the mutating side only ever rewrites
    assert _counted(metrics, "mutate", "unreadable") == 1
    (line,) = _pullguard_lines(log_stream)
    assert line["msg"] == "unreadable admission review"


async def test_the_validating_side_reads_it_either_way(log_stream: io.StringIO) -> None:
    metrics = Metrics()
    answer = await _post("/validate", "failurePolicy: closed\n", metrics)
    assert answer["allowed"] is False and _counted(metrics, "validate", "unreadable") == 1
