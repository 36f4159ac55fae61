"""One review, one direction: envelope -> images -> facts -> pure decision -> response.

Shared by the HTTP routes and by `pullguard check`, so both give the same verdicts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import jsonpatch

from policies.config import Policy
from policies.decide import decide, mutate
from policies.model import Decision, Workload
from webhook.admission import Review, allow, parse_review, respond, unverified, workload_of
from webhook.facts import FactGatherer
from webhook.wire import AdmissionReviewResponse

Endpoint = Literal["validate", "mutate"]
log = logging.getLogger("pullguard.review")


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


async def judge(workload: Workload, policy: Policy, gatherer: FactGatherer, endpoint: Endpoint) -> Decision:
    facts = await gatherer.gather(workload, policy, images=endpoint == "validate")
    return decide(workload, facts, policy) if endpoint == "validate" else mutate(workload, facts, policy)


async def review_body(body: bytes, policy: Policy, gatherer: FactGatherer, endpoint: Endpoint) -> Outcome:
    """Raises ProtocolError for a body that is not an answerable AdmissionReview."""
    review = parse_review(body)
    workload = workload_of(review)
    if workload is None:
        return Outcome(review, None, None, allow(review))
    try:
        decision = await judge(workload, policy, gatherer, endpoint)
    except Exception:  # a bug of ours must not become a 500: answer as failurePolicy says
        log.exception("review failed", extra={"fields": {"uid": review.uid, "kind": review.kind}})
        allowed = policy.failure_policy == "open"
        return Outcome(review, workload, None, unverified(review, allowed))
    if decision.patch and not _patch_applies(review, decision):
        decision = Decision(allowed=decision.allowed, findings=decision.findings)
    return Outcome(review, workload, decision, respond(review, decision, workload))


def _patch_applies(review: Review, decision: Decision) -> bool:
    """A patch that does not apply fails the whole request at the API server: never send one."""
    operations = [{"op": p.op, "path": p.path, "value": p.value} for p in decision.patch]
    try:
        jsonpatch.apply_patch(review.object, operations)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        log.error("dropping a patch that does not apply", extra={"fields": {"uid": review.uid, "error": str(exc)}})
        return False
    return True
