"""One review, one direction: envelope -> images -> plan and facts -> pure decision -> response.

`validate_body` and `mutate_body` are the HTTP routes' entries. The review itself is `webhook.review.review`, as
for `check`, `explain` and the audit; this module adds what only admission needs: the envelope, the worker
thread for large objects, the patch check and the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from policies.config import Policy
from policies.decide import allowed_unchecked
from policies.mirrors import MutateDecision
from policies.mirrors import Outcome as MirrorResult
from policies.model import Decision, Workload
from policies.plan import Side, idle
from webhook.admission.envelope import (
    ProtocolError,
    Review,
    allow,
    parse_review,
    policy_verdict,
    respond,
    unverified,
    workload_of,
)
from webhook.admission.patch_check import patch_problem
from webhook.admission.wire import AdmissionReviewResponse
from webhook.limits import OFFLOAD_BODY_BYTES, OFFLOAD_IMAGES, clip
from webhook.logs import REVIEW_LOGGER
from webhook.review.facts import FactGatherer
from webhook.review.review import review as reviewed

log = logging.getLogger(REVIEW_LOGGER)
T = TypeVar("T")
# Large reviews are parsed and judged here, off the event loop; two at a time, the rest queue.
_large_reviews = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pullguard-large-review")


@dataclass(frozen=True, slots=True)
class Outcome:
    review: Review
    workload: Workload | None
    decision: Decision | None
    answer: AdmissionReviewResponse

    @property
    def label(self) -> str:
        """The decision as a metric label."""
        if self.decision is None:
            return "skipped"
        if not self.decision.allowed:
            return "denied"
        if self.decision.patch:
            return "patched"
        return "warned" if self.decision.findings else "allowed"


PolicyConfigMap = tuple[str, str, str]  # namespace, name, key: the ConfigMap `serve` reads its policy from


async def validate_body(
    body: bytes, policy: Policy, gatherer: FactGatherer, policy_configmap: PolicyConfigMap | None = None
) -> Outcome:
    """The validating webhook: the checks' findings, and the policy ConfigMap's own validation."""
    return await _review_body(body, policy, gatherer, Side.VALIDATE, policy_configmap)


async def mutate_body(body: bytes, policy: Policy, gatherer: FactGatherer) -> Outcome:
    """The mutating webhook: mirror rewrites as a JSON patch, and why any image was kept."""
    return await _review_body(body, policy, gatherer, Side.MUTATE, None)


async def _review_body(
    body: bytes,
    policy: Policy,
    gatherer: FactGatherer,
    side: Side,
    policy_configmap: PolicyConfigMap | None,
) -> Outcome:
    """Raises ProtocolError for a body that is not an answerable AdmissionReview.

    A body over OFFLOAD_BODY_BYTES is read and judged in a worker thread, and so is an object with over
    OFFLOAD_IMAGES images: the event loop keeps answering /healthz and other reviews meanwhile. The common path
    below is written inline, with no thread hop or extra call: it is most of the traffic. A side with nothing to do
    under the policy (`idle`: mutating without a mirror rule) answers the envelope without reading the object.
    """
    read_object = idle(policy, side) is None
    if len(body) > OFFLOAD_BODY_BYTES:
        review, workload = await _in_worker(_read, body, read_object)
        offload = True
    else:
        try:
            review = parse_review(body)
            workload = workload_of(review) if read_object else None
        except RecursionError:  # nothing recurses into input values; should that change, this is still a 400
            raise ProtocolError("the review nests too deeply") from None
        offload = workload is not None and len(workload.images) > OFFLOAD_IMAGES
    if workload is None:
        if policy_configmap is not None and review.kind == "ConfigMap":
            namespace, name, key = policy_configmap
            if (review.namespace, review.name) == (namespace, name):
                # YAML and schema work, bounded but not free: never on the event loop that answers /healthz
                return Outcome(review, None, None, await _in_worker(policy_verdict, review, key))
        return Outcome(review, None, None, allow(review))
    try:
        worker = _in_worker if offload else None
        decision = (await reviewed(workload, policy, side, gatherer, document=review.object, offload=worker)).decision
    except Exception:  # a bug of ours must not become a 500: answer as failurePolicy says
        log.exception("review failed", extra={"fields": {"uid": clip(review.uid), "kind": clip(review.kind)}})
        return Outcome(review, workload, None, unverified(review, allowed_unchecked(policy)))
    if offload:
        return await _in_worker(_answer, review, workload, decision)
    if decision.patch and not patch_applies(review, decision):
        decision = without_patch(decision)
    return Outcome(review, workload, decision, respond(review, decision, workload))


async def _in_worker(function: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_large_reviews, partial(function, *args))


def _read(body: bytes, read_object: bool) -> tuple[Review, Workload | None]:
    """parse_review and workload_of, for the worker thread (review_body does the same inline)."""
    try:
        review = parse_review(body)
        return review, workload_of(review) if read_object else None
    except RecursionError:  # nothing recurses into input values; should that change, this is still a 400
        raise ProtocolError("the review nests too deeply") from None


def _answer(review: Review, workload: Workload, decision: Decision) -> Outcome:
    """The end of review_body, for the worker thread."""
    if decision.patch and not patch_applies(review, decision):
        decision = without_patch(decision)
    return Outcome(review, workload, decision, respond(review, decision, workload))


def without_patch(decision: Decision) -> Decision:
    """The decision once its patch was dropped: no image was rewritten after all."""
    if isinstance(decision, MutateDecision):
        kept = tuple(
            o._replace(outcome=MirrorResult.PATCH_FAILED, detail="the patch did not apply") if o.rewritten else o
            for o in decision.mirror_outcomes
        )
        return MutateDecision(allowed=decision.allowed, findings=decision.findings, mirror_outcomes=kept)
    return Decision(allowed=decision.allowed, findings=decision.findings)


def patch_applies(review: Review, decision: Decision) -> bool:
    """A patch that does not apply fails the whole request at the API server: never send one."""
    problem = patch_problem(review.object or {}, decision.patch)
    if problem is not None:
        fields = {"uid": clip(review.uid), "error": clip(problem)}
        log.error("dropping a patch that does not apply", extra={"fields": fields})
        return False
    return True
