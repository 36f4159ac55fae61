"""Findings x modes -> decision. The one place where `enforce`, `warn`, `off` and `failurePolicy` meet."""

from __future__ import annotations

from policies.checks import ALL_CHECKS, CheckFunction
from policies.config import Policy
from policies.mirrors import rewrites
from policies.model import Decision, Facts, JudgedFinding, Mode, Workload


def decide(
    workload: Workload,
    facts: Facts,
    policy: Policy,
    checks: tuple[tuple[str, CheckFunction], ...] = ALL_CHECKS,
) -> Decision:
    """Run every enabled check on every image; deny when an enforced check found a definite problem.

    An `unknown` finding (the outcome could not be established) denies only under `failurePolicy: closed`.
    """
    if policy.excludes(workload.namespace):
        return Decision(allowed=True)
    enabled = [
        (check, mode) for name, check in checks if (mode := policy.mode_for(name, workload.namespace)) != Mode.OFF
    ]
    judged: list[JudgedFinding] = []
    for image in workload.images:
        for check, mode in enabled:
            for finding in check(image, facts, policy):
                denies = (
                    mode is Mode.ENFORCE
                    and not finding.advisory
                    and (not finding.unknown or policy.failure_policy == "closed")
                )
                judged.append(JudgedFinding(finding, mode, denies))
    return Decision(allowed=not any(j.denies for j in judged), findings=tuple(judged))


def mutate(workload: Workload, facts: Facts, policy: Policy) -> Decision:
    """The mutating side only rewrites; the validating side reports, so users see each finding once."""
    if policy.excludes(workload.namespace):
        return Decision(allowed=True)
    return Decision(allowed=True, patch=rewrites(workload, facts, policy))
