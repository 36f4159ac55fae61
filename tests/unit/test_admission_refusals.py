"""Never fail open by size or shape (issue 20, item 1): a review pullguard cannot read is answered as the policy's
failurePolicy says when its head names a uid (every review the API server sends does), never with an HTTP error
that the webhook configuration's `failurePolicy: Ignore` would turn into an admission."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.config import parse_policy
from tests.reviews import review
from tests.unit.test_admission_limits import post
from webhook.admission.envelope import refusal
from webhook.limits import API_SERVER_BODY_BYTES, MAX_BODY_BYTES, MAX_POD_ENTRIES

CLOSED = "failurePolicy: closed\n"


def pod(image: str, *, env: str = "", containers: int = 1) -> dict[str, Any]:
    spec = {
        "containers": [
            {"name": f"c{i}", "image": image, "env": [{"name": "X", "value": env}]} for i in range(containers)
        ]
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"}, "spec": spec}


def go_escaped(document: dict[str, Any]) -> bytes:
    """The review as the API server writes it: Go's encoder escapes `&`, `<`, `>` as 6-byte \\u sequences."""
    return orjson.dumps(document).replace(b"&", b"\\u0026").replace(b"<", b"\\u003c").replace(b">", b"\\u003e")


async def test_the_api_servers_largest_reviews_are_read_and_judged() -> None:
    """The attack: an invalid image and an env value of 600,000 `&` in an UPDATE (object and oldObject): 7 MB as
    the API server sends it. It used to get HTTP 400, and `failurePolicy: Ignore` admitted the pod."""
    document = review(pod("registry.example.com/UPPER/case:1", env="&" * 600_000), uid="big-update")
    document["request"]["operation"] = "UPDATE"
    document["request"]["oldObject"] = pod("nginx:1.27", env="&" * 600_000)
    body = go_escaped(document)
    assert len(body) > 2 * API_SERVER_BODY_BYTES
    answer = (await post(body)).json()["response"]
    assert answer["uid"] == "big-update" and answer["allowed"] is False  # `reference` enforces by default
    assert "must be lowercase" in answer["status"]["message"], answer["status"]


def _over_the_limit() -> bytes:
    document = review(pod("nginx:1.27", env="x" * (MAX_BODY_BYTES + 1024)), uid="too-big")
    return orjson.dumps(document)


async def test_over_the_limit_follows_failure_policy_open() -> None:
    response = await post(_over_the_limit())
    assert response.status_code == 200
    answer = response.json()["response"]
    assert (answer["uid"], answer["allowed"]) == ("too-big", True)
    (warning,) = answer["warnings"]
    assert f"over the {MAX_BODY_BYTES}-byte limit" in warning and "allowed by failurePolicy: open" in warning


async def test_over_the_limit_follows_failure_policy_closed() -> None:
    answer = (await post(_over_the_limit(), policy=CLOSED)).json()["response"]
    assert answer["allowed"] is False
    assert "denied by failurePolicy: closed" in answer["status"]["message"]
    mutating = (await post(_over_the_limit(), "/mutate", policy=CLOSED)).json()["response"]
    assert mutating == {"uid": "too-big", "allowed": True}  # it only ever rewrites; /validate decides


async def test_too_many_containers_is_no_bypass_either() -> None:
    body = orjson.dumps(review(pod("nginx:1.27", containers=MAX_POD_ENTRIES + 1), uid="many"))
    answer = (await post(body, policy=CLOSED)).json()["response"]
    assert answer["allowed"] is False and f"over pullguard's limit of {MAX_POD_ENTRIES}" in answer["status"]["message"]


async def test_excluded_namespaces_stay_excluded() -> None:
    document = review(pod("nginx:1.27", env="x" * (MAX_BODY_BYTES + 1024)), uid="system")
    document["request"]["namespace"] = "kube-system"
    answer = (await post(orjson.dumps(document), policy=CLOSED)).json()["response"]
    assert answer == {"uid": "system", "allowed": True}


@pytest.mark.parametrize("body", [b"not json at all", b'{"request": {"name": "no uid"}}', b""])
async def test_without_a_uid_there_is_nothing_to_answer(body: bytes) -> None:
    response = await post(body, policy=CLOSED)
    assert response.status_code == 400 and set(response.json()) == {"error"}


def test_the_head_is_read_as_the_api_server_writes_it() -> None:
    policy = parse_policy(CLOSED)
    head = (
        b'{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"a\\"b",'
        b'"kind":{"group":"","version":"v1","kind":"Pod"},"name":"p","namespace":"team-a","operation":"CREATE",'
        b'"userInfo":{"username":"u"},"object":{"metadata":{"namespace":"kube-system"'
    )
    answer = refusal(head, "over a limit", policy, validating=True)
    assert answer is not None
    assert answer["apiVersion"] == "admission.k8s.io/v1beta1"
    assert answer["response"]["uid"] == 'a"b'
    assert answer["response"]["allowed"] is False  # team-a, not the object's own (later) namespace


# --- any review the API server may send is answered ------------------------------------------------------------

_TEXT = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(["&" * 5000, "<>" * 3000, "\u2028", ""])


@st.composite
def api_server_reviews(draw: st.DrawFn) -> tuple[bytes, str]:
    """A Pod (any strings where strings go, any number of containers up to the limit, CREATE or UPDATE), written
    the way the API server writes it (`&`, `<`, `>` as 6-byte escapes), with an API-server-like uid."""
    uid = draw(st.uuids()).hex
    containers = [
        {"name": draw(_TEXT), "image": draw(_TEXT), "env": [{"name": "E", "value": draw(_TEXT)}]}
        for _ in range(draw(st.integers(min_value=1, max_value=4)))
    ]
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": draw(_TEXT), "namespace": "shop",
           "labels": draw(st.dictionaries(_TEXT, _TEXT, max_size=3))}, "spec": {"containers": containers}}  # fmt: skip
    document = review(obj, uid=uid)
    if draw(st.booleans()):
        document["request"]["operation"] = "UPDATE"
        document["request"]["oldObject"] = obj
    return go_escaped(document), uid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(api_server_reviews())
async def test_any_review_the_api_server_may_send_is_answered(case: tuple[bytes, str]) -> None:
    body, uid = case
    for path in ("/validate", "/mutate"):
        response = await post(body, path, policy=CLOSED)
        assert response.status_code == 200, response.text[:300]
        assert response.json()["response"]["uid"] == uid
