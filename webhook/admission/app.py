"""HTTP routes: /validate, /mutate, /healthz, /readyz, /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send

from policies.mirrors import MirrorOutcome, MutateDecision
from policies.plan import Side
from webhook.admission.envelope import ProtocolError, refusal
from webhook.admission.pipeline import Outcome, PolicyConfigMap, mutate_body, validate_body
from webhook.formats.warnings import finding_text
from webhook.limits import MAX_BODY_BYTES, MAX_ECHO_CHARS, MAX_LOGGED_FINDINGS, REFUSAL_HEAD_BYTES, clip
from webhook.logs import REVIEW_LOGGER, review_line
from webhook.metrics import Metrics
from webhook.review.facts import FactGatherer
from webhook.sources.policy import PolicyHolder

log = logging.getLogger(REVIEW_LOGGER)
JSON = "application/json"


@dataclass
class Service:
    holder: PolicyHolder
    metrics: Metrics
    gatherer: FactGatherer = field(default_factory=FactGatherer)
    # Each names what keeps the service from being ready (an empty list: nothing), for /readyz.
    readiness: list[Callable[[], list[str]]] = field(default_factory=list)
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    policy_configmap: PolicyConfigMap | None = None  # judged on /validate: an invalid policy is refused at apply
    shutdown: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()


def not_ready(service: Service) -> list[str]:
    """Everything that keeps the service from being ready (/readyz, pullguard_ready); empty when ready."""
    problems = [f"no valid policy yet: {error}" for error in service.holder.unsettled.values()]
    return problems + [problem for check in service.readiness for problem in check()]


def create_app(service: Service) -> AdmissionFastPath:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(job()) for job in service.background]
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for close in service.shutdown:
            await close()

    app = FastAPI(title="pullguard", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @app.get("/readyz")
    async def readyz() -> Response:
        holder = service.holder
        problems = not_ready(service)
        body: dict[str, object] = {"ready": not problems, "policy": holder.source, "policyError": holder.last_error}
        if holder.note is not None:
            body["policyNote"] = holder.note
        if problems:
            body["notReady"] = problems
        return Response(orjson.dumps(body), status_code=503 if problems else 200, media_type=JSON)

    service.metrics.track_readiness(lambda: not_ready(service))

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return AdmissionFastPath(service, app)


class AdmissionFastPath:
    """`POST /validate` and `/mutate` as a plain ASGI handler in front of FastAPI, which serves the rest.

    The API server calls these for every pod-making object: Starlette's request object, routing and
    dependency solving would cost a third of a warm review, and these two endpoints need none of them.
    """

    def __init__(self, service: Service, fallback: FastAPI) -> None:
        self.service = service
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = _ENDPOINTS.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if endpoint is None:
            await self.fallback(scope, receive, send)
            return
        started = time.perf_counter()
        body = b""
        try:
            body = await _read_body(scope, receive)
            service = self.service
            if endpoint is Side.VALIDATE:
                outcome = await validate_body(body, service.holder.policy, service.gatherer, service.policy_configmap)
            else:
                outcome = await mutate_body(body, service.holder.policy, service.gatherer)
        except ProtocolError as exc:
            await self._refuse(endpoint, exc, body, send)
            return
        except Exception:  # a bug of ours outside the checks: the webhook configuration's failurePolicy decides
            self.service.metrics.requests.labels(endpoint, "", "error").inc()
            log.exception("admission review failed", extra={"fields": {"endpoint": endpoint}})
            await _respond(send, 500, b'{"error":"internal error, see pullguard logs"}')
            return
        _record(self.service.metrics, endpoint, outcome, time.perf_counter() - started)
        await _respond(send, 200, orjson.dumps(outcome.answer))

    async def _refuse(self, endpoint: Side, exc: ProtocolError, body: bytes, send: Send) -> None:
        """A review pullguard cannot read: answered as the policy's failurePolicy says when its head names a uid
        (the API server's reviews always do), else HTTP 400."""
        error = clip(str(exc), 2 * MAX_ECHO_CHARS)  # messages quote at most MAX_ECHO_CHARS of a value
        policy = self.service.holder.policy
        head = exc.head if exc.head is not None else body[:REFUSAL_HEAD_BYTES]
        answer = await asyncio.to_thread(refusal, head, error, policy, validating=endpoint is Side.VALIDATE)
        fields = {"endpoint": endpoint, "error": error, "answered": answer is not None}
        log.warning("unreadable admission review", extra={"fields": fields})
        if answer is None:
            self.service.metrics.requests.labels(endpoint, "", "error").inc()
            await _respond(send, 400, orjson.dumps({"error": error}))
            return
        self.service.metrics.requests.labels(endpoint, "", "unreadable").inc()
        await _respond(send, 200, orjson.dumps(answer))


_ENDPOINTS = {"/validate": Side.VALIDATE, "/mutate": Side.MUTATE}


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The whole body, or ProtocolError. Past MAX_BODY_BYTES only its head is kept (to answer it) and the rest is
    read and dropped, so the answer goes out after the request, on a connection that stays usable."""
    declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
    too_large = declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ProtocolError("the client went away before sending the whole body")
        chunk = message.get("body", b"")
        if size < REFUSAL_HEAD_BYTES or not too_large:
            chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES and not too_large:
            too_large, chunks = True, [b"".join(chunks)[:REFUSAL_HEAD_BYTES]]
        if not message.get("more_body", False):
            break
    if too_large:
        head = b"".join(chunks)[:REFUSAL_HEAD_BYTES]
        raise ProtocolError(f"body is {size} bytes, over the {MAX_BODY_BYTES}-byte limit", head)
    return b"".join(chunks)


def _record(metrics: Metrics, endpoint: Side, outcome: Outcome, elapsed: float) -> None:
    kind = outcome.review.kind if outcome.workload is not None else ""
    label = outcome.label
    metrics.observe_review(endpoint, kind, label, elapsed)
    findings = outcome.decision.findings if outcome.decision is not None else ()
    for judged in findings:
        metrics.count_finding(judged.finding.check, judged.finding.reason, judged.mode)
    mirrored = outcome.decision.mirror_outcomes if isinstance(outcome.decision, MutateDecision) else ()
    for result in mirrored:
        metrics.count_mirror(result.mirror, result.outcome)
    if outcome.workload is None or not log.isEnabledFor(logging.INFO):
        return  # skipped kinds and operations are counted, not logged: they are most of the traffic
    # One bounded line: input values clipped, at most MAX_LOGGED_FINDINGS findings listed and the rest counted.
    uid, namespace, name = outcome.review.uid, outcome.workload.namespace, outcome.workload.name
    fields: dict[str, object] = {
        "uid": uid if len(uid) <= MAX_ECHO_CHARS else clip(uid),
        "endpoint": endpoint,
        "user": outcome.review.user,  # clipped when parsed
        "operation": outcome.review.operation,
        "kind": outcome.workload.kind,
        "namespace": namespace if len(namespace) <= MAX_ECHO_CHARS else clip(namespace),
        "name": name if len(name) <= MAX_ECHO_CHARS else clip(name),
        "decision": label,
        "findings": [
            {
                "check": j.finding.check,
                "mode": j.mode,
                "denies": j.denies,
                "container": j.finding.container.display_path,  # built from field names and indices
                "line": finding_text(j.finding),  # whole (a warning may be cut): the line is bounded as a whole
            }
            for j in findings[:MAX_LOGGED_FINDINGS]
        ],
    }
    if len(findings) > MAX_LOGGED_FINDINGS:
        fields["findingsNotLogged"] = len(findings) - MAX_LOGGED_FINDINGS
    if mirrored:
        _log_mirrors(fields, mirrored)
    fields["durationMs"] = round(elapsed * 1000, 3)
    review_line(fields)


def _log_mirrors(fields: dict[str, object], mirrored: tuple[MirrorOutcome, ...]) -> None:
    """Each rewrite (from, to), and each image a mirror rule applies to but that was kept, with the reason."""
    patched: list[dict[str, str]] = []
    kept: list[dict[str, str]] = []
    for r in mirrored:
        if r.rewritten:
            if len(patched) < MAX_LOGGED_FINDINGS:
                patched.append({"path": r.container.pointer, "from": clip(r.container.image), "to": clip(r.target)})
        elif len(kept) < MAX_LOGGED_FINDINGS:
            kept.append(
                {
                    "path": r.container.pointer,
                    "image": clip(r.container.image),
                    "mirror": clip(r.mirror),
                    "reason": r.outcome,
                    "detail": clip(r.detail),
                }
            )
    if patched:
        fields["patched"] = patched
    if kept:
        fields["mirrorKept"] = kept
