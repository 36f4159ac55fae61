"""One review, whoever asks (the webhook, `check`, `explain`, the audit): scope -> facts -> decision.

`policies.plan.scope` says once whether anything is to be done; the gatherer fetches what the plan needs; the
core decides. Nothing before or after this function re-decides any of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from policies.config import Policy
from policies.decide import decide, mutate, unchecked
from policies.mirrors import MutateDecision, object_meta
from policies.model import Decision, Facts, Unchecked, Workload
from policies.plan import Side, Skip, scope
from webhook.review.facts import FactGatherer

# Decides in a worker thread (the webhook's large reviews); None decides inline.
Offload = Callable[..., Awaitable[Decision]]

_NOTHING_TO_DO = {Side.VALIDATE: Decision(allowed=True), Side.MUTATE: MutateDecision(allowed=True)}
_NO_FACTS = Facts()


class Reviewed(NamedTuple):
    decision: Decision
    facts: Facts  # what the decision was made from (empty when skipped)
    skipped: Skip | None  # why nothing was done, or None
    unchecked: tuple[Unchecked, ...] = ()  # enabled checks that could not run (asked for with `coverage`)


async def review(
    workload: Workload,
    policy: Policy,
    side: Side,
    gatherer: FactGatherer,
    *,
    document: Mapping[str, Any] | None = None,
    exclusions: bool = True,
    offload: Offload | None = None,
    coverage: bool = False,
) -> Reviewed:
    """`document` is the raw object: the mutating side reads its annotations (opt-out, originals recorded).
    `exclusions=False` reviews an excluded namespace too (`explain`: the user named the pod). `coverage` also
    names the checks that could not run (a report says so; the webhook's warnings do not repeat it per pod)."""
    skipped = scope(workload, policy, side, exclusions=exclusions)
    if skipped is not None:
        return Reviewed(_NOTHING_TO_DO[side], _NO_FACTS, skipped)
    facts = await gatherer.gather(workload, policy, side)
    if offload is not None:
        decision = await offload(_decide, side, workload, facts, policy, document)
    else:
        decision = _decide(side, workload, facts, policy, document)
    gaps = unchecked(workload, facts, policy) if coverage and side is Side.VALIDATE else ()
    return Reviewed(decision, facts, None, gaps)


def _decide(
    side: Side, workload: Workload, facts: Facts, policy: Policy, document: Mapping[str, Any] | None
) -> Decision:
    if side is Side.VALIDATE:
        return decide(workload, facts, policy)
    return mutate(workload, facts, policy, object_meta(document, workload))
