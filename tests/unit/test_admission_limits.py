"""Hostile AdmissionReviews (issue 8, items 6 and 9): deep nesting, huge values, too many containers.

Each is sent through the ASGI app in-process, the way uvicorn calls it: the answer is never a 500, a 400's
error is short, and the log line a review writes stays bounded.
"""

from __future__ import annotations

import base64
import copy
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import jsonpatch
import orjson
import pytest

from policies.config import parse_policy
from tests.reviews import manifest, review
from webhook.admission.app import AdmissionFastPath, Service, create_app
from webhook.admission.envelope import MAX_BODY_BYTES, ProtocolError, parse_review, workload_of
from webhook.limits import MAX_ECHO_CHARS, MAX_LOGGED_FINDINGS, MAX_POD_ENTRIES, MAX_UID_CHARS
from webhook.logs import JsonFormatter
from webhook.metrics import Metrics
from webhook.review.facts import FactGatherer
from webhook.sources.policy import PolicyHolder

MIRROR_POLICY = "mirrors: [{registry: docker.io, mirror: mirror.example.com, verify: false}]\n"
DEEP = 1000  # orjson accepts up to 1,024 levels; Python's recursion limit is 1,000 frames
MARK = "\u0001deep\u0001"


def make_app(policy: str | None = None) -> AdmissionFastPath:
    metrics = Metrics()
    holder = PolicyHolder(metrics)
    if policy is not None:
        holder.policy = parse_policy(policy)
    return create_app(Service(holder=holder, metrics=metrics, gatherer=FactGatherer()))


async def post(raw: bytes, path: str = "/validate", policy: str | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=make_app(policy))
    async with httpx.AsyncClient(transport=transport, base_url="http://pullguard") as client:
        return await client.post(path, content=raw, headers={"content-type": "application/json"})


def deep_body(document: Any, depth: int = DEEP) -> bytes:
    """`document` with the string MARK replaced by a list nested `depth` deep (orjson cannot write that)."""
    raw = orjson.dumps(document)
    nested = b"[" * depth + b'"x"' + b"]" * depth
    assert orjson.dumps(MARK) in raw
    return raw.replace(orjson.dumps(MARK), nested)


def deployment(**changes: Any) -> dict[str, Any]:
    document = orjson.loads(orjson.dumps(review(manifest("deployment.yaml"), uid="deep-1")))  # nothing shared
    for path, value in changes.items():
        node = document
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return document


POD_SPEC = "request.object.spec.template.spec"
AFFINITY = f"{POD_SPEC}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"


@pytest.mark.parametrize(
    "where",
    [
        "apiVersion",
        "request.uid",
        "request.operation",
        "request.kind",
        "request.kind.kind",
        "request.name",
        "request.namespace",
        "request.subResource",
        "request.dryRun",
        "request.object.metadata.name",
        "request.object.metadata.labels.app",
        f"{POD_SPEC}.serviceAccountName",
        f"{POD_SPEC}.nodeSelector.disk",
        f"{POD_SPEC}.imagePullSecrets",
        f"{POD_SPEC}.containers.0.name",
        f"{POD_SPEC}.containers.0.image",
        f"{POD_SPEC}.containers.0.imagePullPolicy",
        f"{POD_SPEC}.containers.0.env",
        f"{POD_SPEC}.affinity.podAntiAffinity",
        f"{AFFINITY}.nodeSelectorTerms",
    ],
)
@pytest.mark.parametrize("path", ["/validate", "/mutate"])
async def test_deep_nesting_anywhere_is_never_a_500(where: str, path: str) -> None:
    raw = deep_body(deployment(**{where: MARK}))
    response = await post(raw, path, MIRROR_POLICY)
    assert response.status_code in (200, 400), response.text[:500]
    if response.status_code == 400:
        assert len(response.content) < 400, response.content[:500]
        assert set(response.json()) == {"error"}
    else:
        answer = response.json()["response"]
        assert answer["uid"] == "deep-1"
        assert not any("internal error" in w for w in answer.get("warnings", [])), answer["warnings"]


def test_the_issue_example_deeply_nested_kind() -> None:
    raw = b'{"apiVersion":"admission.k8s.io/v1","kind":' + b"[" * DEEP + b"]" * DEEP + b"}"
    with pytest.raises(ProtocolError, match="kind must be AdmissionReview, got a list") as caught:
        parse_review(raw)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("operation", ["CREATE", "UPDATE"])
async def test_deep_affinity_elsewhere_is_not_walked_and_node_affinity_still_counts(operation: str) -> None:
    document = deployment(**{f"{POD_SPEC}.affinity.podAntiAffinity": MARK})
    if operation == "UPDATE":
        old = copy.deepcopy(document["request"]["object"])
        document["request"]["operation"] = "UPDATE"
        document["request"]["oldObject"] = old
    response = await post(deep_body(document))
    assert response.status_code == 200, response.text[:500]


async def test_a_patch_is_checked_without_copying_the_whole_object() -> None:
    """jsonpatch's apply_patch deep-copies the object: 1,000 levels anywhere in it used to be a 500."""
    document = deployment(**{"request.object.metadata.labels.app": MARK})
    raw = deep_body(document)
    response = await post(raw, "/mutate", MIRROR_POLICY)
    assert response.status_code == 200, response.text[:500]
    answer = response.json()["response"]
    assert answer["patchType"] == "JSONPatch"
    patch = orjson.loads(base64.b64decode(answer["patch"]))
    assert patch and [op["op"] for op in patch] == ["test", "replace", "add"]  # test, then replace; annotation
    obj = orjson.loads(raw)["request"]["object"]
    patched = jsonpatch.apply_patch(obj, patch, in_place=True)  # in place: a copy would recurse 1,000 deep
    assert patched["spec"]["template"]["spec"]["containers"][0]["image"].startswith("mirror.example.com/")


async def test_a_patch_that_does_not_apply_is_still_dropped() -> None:
    from policies.model import Decision, PatchOperation
    from webhook.admission.pipeline import patch_applies

    parsed = parse_review(orjson.dumps(deployment()))
    good = PatchOperation(op="replace", path="/spec/template/spec/containers/0/image", value="x:1")
    missing = PatchOperation(op="replace", path="/spec/template/spec/containers/9/image", value="x:1")
    assert patch_applies(parsed, Decision(allowed=True, patch=(good,)))
    assert not patch_applies(parsed, Decision(allowed=True, patch=(good, missing)))
    containers = (parsed.object or {})["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] != "x:1", "checking a patch must not change the request's object"


def test_a_dropped_patch_keeps_every_image_and_says_so() -> None:
    from policies.decide import mutate
    from policies.mirrors import object_meta
    from policies.model import Facts
    from webhook.admission.pipeline import patch_applies, without_patch

    parsed = parse_review(orjson.dumps(deployment()))
    workload = workload_of(parsed)
    assert workload is not None
    decision = mutate(workload, Facts(), parse_policy(MIRROR_POLICY), object_meta(parsed.object, workload))
    assert decision.patch and all(o.rewritten for o in decision.mirror_outcomes)
    del (parsed.object or {})["spec"]["template"]["spec"]["containers"][0]["image"]  # the test would fail
    assert not patch_applies(parsed, decision)
    dropped = without_patch(decision)
    assert dropped.patch == () and dropped.allowed
    assert [(o.outcome, o.detail) for o in dropped.mirror_outcomes] == [("patchFailed", "the patch did not apply")]


def pod(containers: int, *, init: int = 0, volumes: int = 0, image: str = "team/app{i}") -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": f"c{i}", "image": image.format(i=i)} for i in range(containers)]}
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "image": "busybox:1.36"} for i in range(init)]
    if volumes:
        spec["volumes"] = [{"name": f"v{i}", "emptyDir": {}} for i in range(volumes)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "many", "namespace": "default"}, "spec": spec}


def test_at_most_max_pod_entries_containers_and_volumes_per_object() -> None:
    assert workload_of(parse_review(orjson.dumps(review(pod(MAX_POD_ENTRIES - 20, init=10, volumes=10)))))
    for over in (pod(MAX_POD_ENTRIES + 1), pod(MAX_POD_ENTRIES - 20, init=11, volumes=10), pod(60_000)):
        with pytest.raises(ProtocolError, match=f"over pullguard's limit of {MAX_POD_ENTRIES}") as caught:
            workload_of(parse_review(orjson.dumps(review(over))))
        assert len(str(caught.value)) < 300


def test_the_old_object_is_limited_too() -> None:
    document = review(pod(1), old=pod(MAX_POD_ENTRIES + 1), operation="UPDATE")
    with pytest.raises(ProtocolError, match=r"request\.oldObject: .*over pullguard's limit"):
        workload_of(parse_review(orjson.dumps(document)))


def test_one_definition_of_the_body_limit() -> None:
    from webhook import limits
    from webhook.admission import app

    assert MAX_BODY_BYTES == limits.MAX_BODY_BYTES == 2 * 6 * limits.API_SERVER_BODY_BYTES + 4 * 1024 * 1024
    assert "MAX_BODY_BYTES" not in vars(app) or app.MAX_BODY_BYTES is limits.MAX_BODY_BYTES


def test_an_overlong_uid_is_rejected_rather_than_echoed() -> None:
    parse_review(orjson.dumps(deployment(**{"request.uid": "u" * MAX_UID_CHARS})))
    with pytest.raises(ProtocolError, match=r"request\.uid is longer than"):
        parse_review(orjson.dumps(deployment(**{"request.uid": "u" * (MAX_UID_CHARS + 1)})))


@pytest.mark.parametrize(
    "where", ["request.object.metadata.name", f"{POD_SPEC}.containers.0.name", f"{POD_SPEC}.nodeSelector.disk"]
)
def test_numbers_for_strings_are_read_as_text_but_objects_are_malformed(where: str) -> None:
    assert workload_of(parse_review(orjson.dumps(deployment(**{where: 7}))))
    with pytest.raises(ProtocolError, match="expected a string, got dict"):
        workload_of(parse_review(orjson.dumps(deployment(**{where: {"a": "b"}}))))


# --- item 9: nothing echoes more than ~200 characters of input -------------------------------------------------


@pytest.fixture
def json_log(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """Every record pullguard logs, formatted as `serve` writes it."""
    lines: list[str] = []
    caplog.set_level(logging.INFO)
    yield lines
    lines.extend(JsonFormatter().format(record) for record in caplog.records)


HUGE = "K" * 1_000_000


@pytest.mark.parametrize("where", ["kind", "apiVersion", "request.operation", "request.uid", "request.name"])
async def test_a_megabyte_value_gives_a_short_error(where: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    document = deployment(**{where: HUGE})
    if where == "request.name":
        document["request"]["object"] = []
    response = await post(orjson.dumps(document))
    if response.status_code == 200:  # the uid came before the value: answered by failurePolicy (open: a warning)
        (warning,) = response.json()["response"]["warnings"]
        assert len(warning) < 3 * MAX_ECHO_CHARS, warning
    else:
        assert response.status_code == 400
        assert len(response.content) < MAX_ECHO_CHARS + 200, response.content[:500]
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert lines and all(len(line) < 2048 for line in lines), [len(line) for line in lines]


async def test_a_review_log_line_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """1,000 findings and a 1 MB name: one log line under 16 KiB that says how many findings it left out."""
    caplog.set_level(logging.INFO)
    obj = pod(MAX_POD_ENTRIES, image="team/app{i}")  # untagged: a latestTag finding each
    obj["metadata"]["name"] = "n" * 1_000_000
    response = await post(orjson.dumps(review(obj, uid="many-findings")))
    assert response.status_code == 200
    answer = response.json()["response"]
    assert sum(len(w) for w in answer["warnings"]) <= 4096
    records = [r for r in caplog.records if r.name == "pullguard.review" and r.getMessage() == "review"]
    assert len(records) == 1
    line = JsonFormatter().format(records[0])
    assert len(line) < 16 * 1024, len(line)
    entry = orjson.loads(line)
    assert entry["uid"] == "many-findings"
    assert len(entry["findings"]) == MAX_LOGGED_FINDINGS
    assert entry["findingsNotLogged"] == MAX_POD_ENTRIES - MAX_LOGGED_FINDINGS
    assert len(entry["name"]) <= MAX_ECHO_CHARS + 40


async def test_a_denial_message_does_not_echo_a_huge_image() -> None:
    obj = pod(2, image="A" * 100_000 + "{i}")
    response = await post(orjson.dumps(review(obj)))
    assert response.status_code == 200
    status = response.json()["response"]["status"]
    assert status["code"] == 403
    assert "InvalidImageName" in status["message"]
    assert len(status["message"]) < 4096


def test_required_node_affinity_is_read_beside_a_deep_pod_anti_affinity() -> None:
    terms = [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["arm64"]}]}]
    document = deployment(
        **{
            f"{POD_SPEC}.affinity.podAntiAffinity": MARK,
            f"{AFFINITY}.nodeSelectorTerms": terms,
        }
    )
    workload = workload_of(parse_review(deep_body(document)))
    assert workload is not None
    assert workload.images[0].pod.affinity == {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
    }


def test_a_review_line_over_16_kib_counts_its_findings_instead(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Findings arrive clipped to characters; 4-byte characters could still make 20 of them long in bytes."""
    import io

    from webhook.limits import MAX_REVIEW_LINE_BYTES
    from webhook.logs import review_line

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    caplog.set_level(logging.INFO, logger="pullguard.review")
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    findings = [{"check": "latestTag", "line": "\U0001f642" * 256} for _ in range(MAX_LOGGED_FINDINGS)]
    review_line({"uid": "u", "findings": findings, "findingsNotLogged": 5})
    review_line({"uid": "v", "findings": findings[:1]})
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert (first["uid"], first["findings"], first["findingsNotLogged"]) == ("u", [], MAX_LOGGED_FINDINGS + 5)
    assert len(stream.getvalue().splitlines()[0].encode()) < MAX_REVIEW_LINE_BYTES
    assert second["findings"] == findings[:1]


def test_a_huge_traceback_keeps_its_head_and_tail() -> None:
    from webhook.logs import MAX_TRACEBACK_CHARS

    try:
        raise KeyError("k" * 1_000_000)
    except KeyError:
        record = logging.getLogger("pullguard.test").makeRecord(
            "pullguard.test", logging.ERROR, __file__, 1, "failed", (), exc_info=__import__("sys").exc_info()
        )
    entry = orjson.loads(JsonFormatter().format(record))
    assert len(entry["error"]) < MAX_TRACEBACK_CHARS + 100
    assert entry["error"].startswith("Traceback") and "characters left out" in entry["error"]


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ([{"matchExpressions": [{"key": "a", "operator": "In", "values": [1, "b"]}]}], [("a", "In", ["1", "b"])]),
        ([{"matchExpressions": [{"key": "a", "operator": "Exists"}]}], [("a", "Exists", [])]),
        ([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}], []),
        ("not a list", "nodeSelectorTerms: expected a list"),
        (["x"], r"nodeSelectorTerms\[0\]: expected an object"),
        ([{"matchExpressions": "x"}], r"nodeSelectorTerms\[0\]\.matchExpressions: expected a list"),
        ([{"matchExpressions": [{"key": {"a": "b"}}]}], r"matchExpressions\[0\]\.key: expected a string, got dict"),
        ([{"matchExpressions": [{"key": "a", "values": "b"}]}], r"matchExpressions\[0\]\.values: expected a list"),
    ],
)
def test_required_node_affinity_is_read_with_its_types_checked(terms: object, expected: object) -> None:
    document = deployment(**{f"{AFFINITY}.nodeSelectorTerms": terms})
    if isinstance(expected, str):
        with pytest.raises(ProtocolError, match=expected):
            workload_of(parse_review(orjson.dumps(document)))
        return
    workload = workload_of(parse_review(orjson.dumps(document)))
    assert workload is not None
    affinity = workload.images[0].pod.affinity
    assert affinity is not None
    (term,) = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert [(e["key"], e["operator"], e["values"]) for e in term["matchExpressions"]] == expected
