from __future__ import annotations

import base64
import json

import orjson
import pytest

from policies.model import Decision, PatchOperation
from tests.reviews import manifest, review
from webhook.admission.envelope import MAX_BODY_BYTES, ProtocolError, allow, parse_review, respond, workload_of


def body(document: object) -> bytes:
    return orjson.dumps(document)


def valid() -> dict:
    return review(manifest("deployment.yaml"))


def without(path: str) -> dict:
    document = valid()
    node = document
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    del node[last]
    return document


def with_value(path: str, value: object) -> dict:
    document = valid()
    node = document
    *parents, last = path.split(".")
    for key in parents:
        node = node[key]
    node[last] = value
    return document


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "body is not JSON"),
        (b"", "body is not JSON"),
        (b"[1, 2]", r"body is not a JSON object \(an AdmissionReview"),
        (body(with_value("kind", "Pod")), "kind must be AdmissionReview"),
        (body(with_value("apiVersion", "admission.k8s.io/v2")), "apiVersion must be one of"),
        (body(without("request")), "request is missing"),
        (body(with_value("request", "x")), "request is missing or not an object"),
        (body(without("request.uid")), "request.uid is missing"),
        (body(with_value("request.uid", "")), "request.uid is missing"),
        (body(with_value("request.uid", 7)), "request.uid is missing"),
        (body(without("request.operation")), "request.operation must be one of"),
        (body(with_value("request.operation", "PATCH")), "request.operation must be one of"),
        (body(without("request.kind")), "request.kind must be an object"),
        (body(without("request.object")), "request.object is missing or not an object for CREATE"),
        (body(with_value("request.object", [])), "request.object is missing"),
        (body(with_value("request.oldObject", "x")), "request.oldObject must be an object or null"),
        (b" " * (MAX_BODY_BYTES + 1), "over the"),
    ],
)
def test_malformed_envelopes_are_protocol_errors(raw: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_review(raw)


def test_malformed_object_is_a_protocol_error() -> None:
    document = valid()
    document["request"]["object"]["spec"]["template"]["spec"]["containers"] = {"web": "nginx"}
    with pytest.raises(ProtocolError, match=r"request\.object: spec\.template\.spec\.containers: expected a list"):
        workload_of(parse_review(body(document)))


@pytest.mark.parametrize("api_version", ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"])
def test_answer_in_the_request_version_with_its_uid(api_version: str) -> None:
    parsed = parse_review(body(review(manifest("pod.yaml"), api_version=api_version, uid="abc-123")))
    answer = respond(parsed, Decision(allowed=True), None)
    assert answer == {
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "response": {"uid": "abc-123", "allowed": True},
    }
    assert allow(parsed) == answer


def test_delete_and_connect_and_other_kinds_have_no_workload() -> None:
    deployment = manifest("deployment.yaml")
    assert workload_of(parse_review(body(review(None, old=deployment, operation="DELETE")))) is None
    assert workload_of(parse_review(body(review(deployment, operation="CONNECT")))) is None
    assert workload_of(parse_review(body(review(manifest("not-workloads.yaml"))))) is None


def test_update_uses_old_object() -> None:
    old = manifest("pod.yaml")
    parsed = parse_review(body(review(old, old=old, operation="UPDATE")))
    workload = workload_of(parsed)
    assert workload is not None and workload.images == ()


def test_namespace_comes_from_the_request() -> None:
    pod = manifest("pod.yaml")
    del pod["metadata"]["namespace"]
    document = review(pod)
    document["request"]["namespace"] = "team-a"
    workload = workload_of(parse_review(body(document)))
    assert workload is not None and workload.namespace == "team-a"


def test_patch_is_base64_json_patch_only_when_present() -> None:
    parsed = parse_review(body(valid()))
    path, image = "/spec/template/spec/containers/0/image", "mirror.example.com/library/nginx"
    patch: tuple[PatchOperation, ...] = ({"op": "replace", "path": path, "value": image},)
    answer = respond(parsed, Decision(allowed=True, patch=patch), workload_of(parsed))["response"]
    assert answer["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["patch"])) == [
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "mirror.example.com/library/nginx"}
    ]
    assert "patch" not in respond(parsed, Decision(allowed=True), workload_of(parsed))["response"]
