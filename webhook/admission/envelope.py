"""The AdmissionReview envelope: parse and validate a request, build the response in the request's version.

Anything wrong with the envelope raises `ProtocolError`. When the body's head names a uid, the HTTP layer answers it
with `refusal` (the policy's failurePolicy decides); otherwise with HTTP 400 and a JSON error.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

import orjson

from policies.config import Policy, PolicyError, parse_policy
from policies.model import Decision, PatchOperation, Workload
from webhook.admission.wire import API_VERSIONS, AdmissionResponse, AdmissionReviewResponse, Operation
from webhook.formats.warnings import denial_message, warning_lines
from webhook.limits import (
    MAX_BODY_BYTES,
    MAX_DENIAL_LINE,
    MAX_DENIAL_LINES,
    MAX_ECHO_CHARS,
    MAX_POD_ENTRIES,
    MAX_UID_CHARS,
    REFUSAL_HEAD_BYTES,
    clip,
    describe,
)
from webhook.review.workloads import MalformedObjectError, extract, is_workload
from webhook.util.json_object import json_object

_OPERATIONS: tuple[Operation, ...] = ("CREATE", "UPDATE", "DELETE", "CONNECT")


class ProtocolError(ValueError):
    """The body is not an AdmissionReview pullguard can read. Its message quotes at most `limits.MAX_ECHO_CHARS` of
    any input value (see `limits.describe`). Answered by `refusal` when the body's head names a uid, else HTTP 400.
    `head` is what was kept of a body too large to hold (its first `REFUSAL_HEAD_BYTES`)."""

    def __init__(self, message: str, head: bytes | None = None) -> None:
        super().__init__(message)
        self.head = head


# What the API server writes first in an AdmissionReview (encoding/json, fields in declaration order): apiVersion,
# then request.uid, then ..., request.namespace, ..., request.object. A refused body is answered from its head.
_UID = re.compile(rb'"uid"\s*:\s*"((?:[^"\\]|\\.){1,%d})"' % MAX_UID_CHARS)
_NAMESPACE = re.compile(rb'"namespace"\s*:\s*"((?:[^"\\]|\\.){0,253})"')
_API_VERSION = re.compile(rb'"apiVersion"\s*:\s*"(admission\.k8s\.io/v1(?:beta1)?)"')


def refusal(head: bytes, reason: str, policy: Policy, *, validating: bool) -> AdmissionReviewResponse | None:
    """The answer to a review pullguard cannot read (over a limit, malformed), when its head names the request's
    uid: what the policy's failurePolicy says (open: allowed, with a warning; closed: denied with the reason), never
    an HTTP error, which the webhook configuration's `failurePolicy: Ignore` would turn into an admission. The
    mutating side only ever rewrites: it allows, without a patch. None: no uid, nothing to answer (HTTP 400)."""
    head = head[:REFUSAL_HEAD_BYTES]
    uid = _json_string(_UID.search(head))
    if not uid:
        return None
    version = _API_VERSION.search(head)
    api_version = version.group(1).decode() if version else API_VERSIONS[0]
    namespace = _json_string(_NAMESPACE.search(head.split(b'"object"', 1)[0])) or ""
    text = f"pullguard could not check this object: {clip(reason, 2 * MAX_ECHO_CHARS)}"
    response: AdmissionResponse = {"uid": uid, "allowed": True}
    if not validating or policy.excludes(namespace):
        pass
    elif policy.failure_policy == "open":
        response["warnings"] = [text + "; allowed by failurePolicy: open"]
    else:
        response["allowed"] = False
        message = text + "; denied by failurePolicy: closed"
        response["status"] = {"code": 400, "reason": "BadRequest", "message": message}
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def _json_string(match: re.Match[bytes] | None) -> str | None:
    if match is None:
        return None
    try:
        value = orjson.loads(b'"' + match.group(1) + b'"')
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, str) else None


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
    user: str = ""  # request.userInfo.username: who asked, for the review log


def parse_review(body: bytes) -> Review:
    """Every value is type-checked before it is rendered: messages describe containers by type, never by repr."""
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(f"body is {len(body)} bytes, over the {MAX_BODY_BYTES}-byte limit")
    try:
        document = json_object(body)
    except ValueError as exc:
        raise ProtocolError(f"body is {clip(str(exc))} (an AdmissionReview is a JSON object)") from None
    if document.get("kind") != "AdmissionReview":
        raise ProtocolError(f"kind must be AdmissionReview, got {describe(document.get('kind'))}")
    api_version = document.get("apiVersion")
    if api_version not in API_VERSIONS:
        raise ProtocolError(f"apiVersion must be one of {', '.join(API_VERSIONS)}, got {describe(api_version)}")
    request = document.get("request")
    if not isinstance(request, dict):
        raise ProtocolError("request is missing or not an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        raise ProtocolError("request.uid is missing or empty")
    if len(uid) > MAX_UID_CHARS:  # it is echoed whole in the answer, so it is refused rather than clipped
        raise ProtocolError(f"request.uid is longer than {MAX_UID_CHARS} characters ({len(uid)})")
    operation = request.get("operation")
    if operation not in _OPERATIONS:
        raise ProtocolError(f"request.operation must be one of {', '.join(_OPERATIONS)}, got {describe(operation)}")
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
        sub_resource=sub if isinstance(sub := request.get("subResource"), str) else _text(request, "subResource"),
        namespace=ns if isinstance(ns := request.get("namespace"), str) else _text(request, "namespace"),
        name=name if isinstance(name := request.get("name"), str) else _text(request, "name"),
        object=obj if isinstance(obj, dict) else None,
        old_object=old,
        dry_run=bool(request.get("dryRun")),
        user=_username(request),
    )


def _username(request: dict[str, Any]) -> str:
    info = request.get("userInfo")
    name = info.get("username") if isinstance(info, dict) else None
    return clip(name) if isinstance(name, str) else ""


def _text(request: dict[str, Any], key: str) -> str:
    value = request.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProtocolError(f"request.{key} must be a string, got {describe(value)}")
    return value


def workload_of(review: Review) -> Workload | None:
    """The images this review asks us to judge; None when there is nothing to judge (allow untouched)."""
    if review.operation not in ("CREATE", "UPDATE") or review.object is None or not is_workload(review.kind):
        return None
    old = review.old_object if review.operation == "UPDATE" else None
    try:
        return extract(review.kind, review.object, review.namespace, old, review.name, max_entries=MAX_POD_ENTRIES)
    except MalformedObjectError as exc:
        where = "request.oldObject" if exc.old else "request.object"
        raise ProtocolError(f"{where}: {exc}") from None


def respond(review: Review, decision: Decision, workload: Workload | None) -> AdmissionReviewResponse:
    response: AdmissionResponse = {"uid": review.uid, "allowed": decision.allowed}
    warnings = warning_lines(decision.warnings)
    if warnings:
        response["warnings"] = warnings
    if not decision.allowed and workload is not None:
        message = denial_message(workload.kind, clip(workload.namespace), clip(workload.name), decision.denials)
        response["status"] = {"code": 403, "reason": "Forbidden", "message": _bounded_denial(message)}
    if decision.patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = encode_patch(decision.patch)
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}


def _bounded_denial(message: str) -> str:
    """The first problem lines, each clipped: a finding's message quotes the image, which may be huge."""
    if len(message) <= MAX_DENIAL_LINE:  # the common case: one short problem
        return message
    head, *problems = message.split("\n")
    lines = [clip(head, MAX_DENIAL_LINE)] + [clip(p, MAX_DENIAL_LINE) for p in problems[:MAX_DENIAL_LINES]]
    if len(problems) > MAX_DENIAL_LINES:
        lines.append(f"- and {len(problems) - MAX_DENIAL_LINES} more: run `pullguard check` for all")
    return "\n".join(lines)


def allow(review: Review) -> AdmissionReviewResponse:
    return {
        "apiVersion": review.api_version,
        "kind": "AdmissionReview",
        "response": {"uid": review.uid, "allowed": True},
    }


def policy_verdict(review: Review, key: str) -> AdmissionReviewResponse:
    """pullguard's own policy ConfigMap, judged as `serve` would read it: an invalid policy is refused at apply
    time with the key path (it would only be rejected later, keeping the last good one), as Kyverno does."""
    if review.object is None:  # DELETE: pullguard keeps its last good policy
        return allow(review)
    data = review.object.get("data")
    text = data.get(key) if isinstance(data, dict) else None
    if not isinstance(text, str):
        problem = f"the ConfigMap has no {key!r} key: pullguard would keep its last good policy"
    else:
        try:
            parse_policy(text, f"configmap {review.namespace}/{review.name}")
        except PolicyError as exc:
            problem = str(exc)
        else:
            return allow(review)
    message = clip(f"pullguard policy rejected: {problem}", MAX_DENIAL_LINE)
    response: AdmissionResponse = {
        "uid": review.uid,
        "allowed": False,
        "status": {"code": 422, "reason": "Invalid", "message": message},
    }
    return {"apiVersion": review.api_version, "kind": "AdmissionReview", "response": response}


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
    return base64.b64encode(orjson.dumps(patch)).decode("ascii")
