"""Policy exceptions an operator owns: for workloads in one namespace whose labels match a selector, findings of the
named checks do not deny until a date, and every such finding quotes the exception (its name, expiry and reason),
the way Kyverno's PolicyException scopes an exception. They live in the policy only: never in an annotation the
pod's creator could set.

An exception selects a workload by its own labels or its pod template's: the pods a Deployment makes are reviewed
too, and must be covered by the exception that covered their Deployment.
"""

from __future__ import annotations

import datetime
from dataclasses import replace
from typing import Annotated

from pydantic import Field, StrictStr

from policies.model import CheckName, Finding, Workload
from policies.schema import Strict
from policies.selectors import LabelSelector

MAX_EXCEPTIONS = 200  # each is matched once per review
MAX_REASON_CHARS = 300  # quoted in every finding it covers


class PolicyException(Strict):
    name: Annotated[StrictStr, Field(min_length=1, max_length=63)]
    namespace: Annotated[StrictStr, Field(min_length=1, max_length=63)]
    selector: LabelSelector = LabelSelector()  # {}: every workload of the namespace
    checks: Annotated[tuple[CheckName, ...], Field(min_length=1)]
    expires: datetime.date  # the last day it applies (YYYY-MM-DD)
    reason: Annotated[StrictStr, Field(min_length=1, max_length=MAX_REASON_CHARS)]

    def selects(self, workload: Workload) -> bool:
        return workload.namespace == self.namespace and (
            self.selector.matches(workload.labels) or self.selector.matches(workload.pod_labels)
        )


def applying(exceptions: tuple[PolicyException, ...], workload: Workload) -> tuple[PolicyException, ...]:
    """The exceptions that select `workload` (in force or not: an expired one is said too)."""
    return tuple(e for e in exceptions if e.selects(workload)) if exceptions else ()


def covering(exceptions: tuple[PolicyException, ...], finding: Finding) -> PolicyException | None:
    return next((e for e in exceptions if finding.check in e.checks), None)


def quoted(finding: Finding, exception: PolicyException, today: datetime.date | None) -> tuple[Finding, bool]:
    """The finding quoting `exception`, and whether the exception is in force (an unknown date: not in force)."""
    in_force = today is not None and today <= exception.expires
    if in_force:
        note = f" (excepted until {exception.expires} by policy exception {exception.name}: {exception.reason})"
    elif today is None:
        note = f" (policy exception {exception.name} not applied: today's date is unknown)"
    else:
        note = f" (policy exception {exception.name} expired on {exception.expires}: {exception.reason})"
    return replace(finding, message=finding.message + note), in_force
