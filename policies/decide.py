"""Findings x modes -> decision. The one place where `enforce`, `warn`, `off` and `failurePolicy` meet."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from policies.checks import ALL_CHECKS, CheckSpec
from policies.config import Policy
from policies.exceptions import applying, covering, quoted
from policies.mirrors import MutateDecision, ObjectMeta, patch_for, plan, skip_findings
from policies.model import Decision, Facts, Finding, JudgedFinding, Mode, Unchecked, Workload


def decide(
    workload: Workload,
    facts: Facts,
    policy: Policy,
    checks: tuple[CheckSpec, ...] = ALL_CHECKS,
) -> Decision:
    """Run every enabled check on every image; deny when an enforced check found a definite problem.

    An `unknown` finding (the outcome could not be established) denies only under `failurePolicy: closed`.
    Whether to run at all was decided before (`policies.plan.scope`).
    """
    enabled = [
        (spec.run, mode, spec.reword)
        for spec in checks
        if (mode := policy.mode_for(spec.name, workload.namespace)) is not Mode.OFF
    ]
    judged: list[JudgedFinding] = []
    reworded: dict[Callable[..., Sequence[Finding]], list[int]] = {}  # a reword's findings, by index in `judged`
    excepting = applying(policy.exceptions, workload) if policy.exceptions else ()
    for image in workload.images:
        for check, mode, reword in enabled:
            for finding in check(image, facts, policy):
                denies = (
                    mode is Mode.ENFORCE
                    and not finding.advisory
                    and (not finding.unknown or policy.failure_policy == "closed")
                )
                if reword is not None:
                    reworded.setdefault(reword, []).append(len(judged))
                if excepting and (exception := covering(excepting, finding)) is not None:
                    told, in_force = quoted(finding, exception, facts.today)
                    judged.append(JudgedFinding(told, mode, denies and not in_force, excepted=in_force))
                    continue
                judged.append(JudgedFinding(finding, mode, denies))
    for reword, indexes in reworded.items():
        if len(indexes) > 1:  # the wording changes, never the verdict
            for index, finding in zip(indexes, reword([judged[i].finding for i in indexes]), strict=True):
                judged[index] = replace(judged[index], finding=finding)
    return Decision(allowed=not any(j.denies for j in judged), findings=tuple(judged))


def unchecked(
    workload: Workload, facts: Facts, policy: Policy, checks: tuple[CheckSpec, ...] = ALL_CHECKS
) -> tuple[Unchecked, ...]:
    """Every enabled check that could not run for an image, and why: what `check`, `explain` and the audit report
    as "not checked" rather than let a missing fact pass as a clean result."""
    enabled = [spec for spec in checks if policy.mode_for(spec.name, workload.namespace) is not Mode.OFF]
    return tuple(
        Unchecked(spec.name, image, gap)
        for image in workload.images
        for spec in enabled
        if (gap := spec.blind(image, facts)) is not None
    )


def allowed_unchecked(policy: Policy) -> bool:
    """A review the checks could not complete (a bug of ours) is allowed or denied as `failurePolicy` says."""
    return policy.failure_policy == "open"


def mutate(workload: Workload, facts: Facts, policy: Policy, meta: ObjectMeta | None = None) -> MutateDecision:
    """The mutating side only rewrites (and says which images it kept, and why); the validating side reports
    the checks' findings, so users see each of those once. Whether to run at all was decided before
    (`policies.plan.scope`)."""
    outcomes = plan(workload, facts, policy, meta)
    return MutateDecision(
        allowed=True, findings=skip_findings(outcomes), patch=patch_for(outcomes, meta), mirror_outcomes=outcomes
    )
