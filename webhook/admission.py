"""The AdmissionReview envelope: parse and validate a request, build the response in the request's version.

Anything wrong with the envelope raises `ProtocolError`, which the HTTP layer answers with 400 and a JSON error:
the API server logs it, and the webhook's `failurePolicy` decides the outcome.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from policies.model import Decision, PatchOperation, Workload
from policies.render import denial_message, warning_lines
from webhook.wire import API_VERSIONS, AdmissionResponse, AdmissionReviewResponse, Operation
from webhook.workloads import MalformedObjectError, extract, is_workload

MAX_BODY_BYTES = 3 * 1024 * 1024  # the API server's own request limit is 3 MiB
_OPERATIONS: tuple[Operation, ...] = ("CREATE", "UPDATE", "DELETE", "CONNECT")


class ProtocolError(ValueError):
    """The body is not an AdmissionReview we can answer (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Review:
    api_version: str
    uid: str
    operation: Operation
    kind: str  # request.kind.kind: the object's kind as the API server sends it
    sub_resource: str
    namespace: str
    name: str
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    dry_run: bool


def parse_review(body: bytes) -> Review:
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(f"body is {len(body)} bytes, over the {MAX_BODY_BYTES}-byte limit")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ProtocolError("body must be a JSON object (an AdmissionReview)")
    if document.get("kind") != "AdmissionReview":
        raise ProtocolError(f"kind must be AdmissionReview, got {document.get('kind')!r}")
    api_version = document.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise ProtocolError(f"apiVersion must be one of {', '.join(API_VERSIONS)}, got {api_version!r}")
    request = document.get("request")
    if not isinstance(request, dict):
        raise ProtocolError("request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ProtocolError("request.uid is missing or empty")
    operation = request.get("operation")
    if operation not in _OPERATIONS:
        raise ProtocolError(f"request.operation must be one of {', '.join(_OPERATIONS)}, got {operation!r}")
    gvk = request.get("kind")
    if not isinstance(gvk, dict) or not isinstance(gvk.get("kind"), str):
        raise ProtocolError("request.kind must be an object with a string 'kind'")
    obj, old = request.get("object"), request.get("oldObject")
    if operation in ("CREATE", "UPDATE") and not isinstance(obj, dict):
        raise ProtocolError(f"request.object is missing or not an object for {operation}")
    if old is not None and not isinstance(old, dict):
        raise ProtocolError("request.oldObject must be an object or null")
    return Review(
        api_version=api_version,
        uid=uid,
        operation=operation,
        kind=gvk["kind"],
        sub_resource=str(request.get("subResource") or ""),
        namespace=str(request.get("namespace") or ""),
        name=str(request.get("name") or ""),
        object=obj if isinstance(obj, dict) else None,
        old_object=old,
        dry_run=bool(request.get("dryRun")),
    )


def workload_of(review: Review) -> Workload | None:
    """The images this review asks us to judge; None when there is nothing to judge (allow untouched)."""
    if review.operation not in ("CREATE", "UPDATE") or review.object is None or not is_workload(review.kind):
        return None
    old = review.old_object if review.operation == "UPDATE" else None
    try:
        return extract(review.kind, review.object, review.namespace, old, review.name)
    except MalformedObjectError as exc:
        raise ProtocolError(f"request.object: {exc}") from None


def respond(review: Review, decision: Decision, workload: Workload | None) -> AdmissionReviewResponse:
    response: AdmissionResponse = {"uid": review.uid, "allowed": decision.allowed}
    warnings = warning_lines(decision.warnings)
    if warnings:
        response["warnings"] = warnings
    if not decision.allowed and workload is not None:
        message = denial_message(workload.kind, workload.namespace, workload.name, decision.denials)
        response["status"] = {"code": 403, "reason": "Forbidden", "message": message}
    if decision.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = encode_patch(decision.patch)
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}


def allow(review: Review) -> AdmissionReviewResponse:
    return {
        "apiVersion": review.api_version,
        "kind": "AdmissionReview",
        "response": {"uid": review.uid, "allowed": True},
    }


def unverified(review: Review, allowed: bool) -> AdmissionReviewResponse:
    """The answer when pullguard itself failed: allowed with a warning (failurePolicy open) or denied."""
    text = "pullguard could not check this object's images (internal error, see pullguard logs)"
    response: AdmissionResponse = {"uid": review.uid, "allowed": allowed}
    if allowed:
        response["warnings"] = [text + "; allowed by failurePolicy: open"]
    else:
        response["status"] = {
            "code": 500,
            "reason": "InternalError",
            "message": text + "; denied by failurePolicy: closed",
        }
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}


def encode_patch(patch: tuple[PatchOperation, ...]) -> str:
    operations = [{"op": p.op, "path": p.path, "value": p.value} for p in patch]
    return base64.b64encode(orjson.dumps(operations)).decode("ascii")
