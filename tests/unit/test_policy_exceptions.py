"""Issue 22: exceptions an operator owns. In the policy only (namespace + label selector + checks, an expiry and a
reason): a covered finding never denies while the exception is in force, and quotes it; an expired one, or one
whose date cannot be judged, is said and does not apply."""

from __future__ import annotations

import datetime

import pytest

from policies.config import PolicyError, parse_policy
from policies.decide import decide
from policies.model import Facts, Workload
from tests.unit.policy_helpers import image
from webhook.formats.policyreport import result_of

POLICY = parse_policy(
    """
mode: enforce
exceptions:
  - name: legacy-batch
    namespace: batch
    selector: {matchLabels: {app: legacy}}
    checks: [latestTag]
    expires: 2027-01-31
    reason: vendor image without tags, ticket OPS-123
"""
)
BEFORE, AFTER = datetime.date(2027, 1, 31), datetime.date(2027, 2, 1)


def workload(namespace: str = "batch", labels: dict[str, str] | None = None, pod_labels: dict[str, str] | None = None,
             *images: str) -> Workload:  # fmt: skip
    built = tuple(image(text, f"c{i}", i, namespace) for i, text in enumerate(images or ("vendor/tool",)))
    return Workload("Deployment", namespace, "tool", built, labels or {}, pod_labels or {})


def test_a_covered_finding_does_not_deny_and_quotes_the_exception() -> None:
    decision = decide(workload(labels={"app": "legacy"}), Facts(today=BEFORE), POLICY)
    assert decision.allowed
    (judged,) = decision.findings
    assert judged.excepted and not judged.denies
    assert judged.finding.message.endswith(
        "(excepted until 2027-01-31 by policy exception legacy-batch: vendor image without tags, ticket OPS-123)"
    )
    assert result_of(judged) == "skip"


def test_the_pods_of_a_covered_deployment_are_covered_by_their_template_labels() -> None:
    pod = Workload(
        "Pod", "batch", "tool-abc", (image("vendor/tool", "c0", 0, "batch"),), {"app": "legacy"}, {"app": "legacy"}
    )
    assert decide(pod, Facts(today=BEFORE), POLICY).allowed
    templated = workload(labels={"team": "x"}, pod_labels={"app": "legacy"})
    assert decide(templated, Facts(today=BEFORE), POLICY).allowed


@pytest.mark.parametrize(
    ("today", "said"),
    [
        (AFTER, "(policy exception legacy-batch expired on 2027-01-31: vendor image without tags, ticket OPS-123)"),
        (None, "(policy exception legacy-batch not applied: today's date is unknown)"),
    ],
)
def test_an_expired_or_unjudgeable_exception_is_said_and_does_not_apply(today: datetime.date | None, said: str) -> None:
    decision = decide(workload(labels={"app": "legacy"}), Facts(today=today), POLICY)
    assert not decision.allowed
    (judged,) = decision.findings
    assert judged.denies and not judged.excepted and judged.finding.message.endswith(said)


@pytest.mark.parametrize(
    "other",
    [workload("shop", {"app": "legacy"}), workload("batch", {"app": "other"}), workload("batch")],
    ids=["another namespace", "another label", "no labels"],
)
def test_it_covers_only_its_namespace_and_selector(other: Workload) -> None:
    decision = decide(other, Facts(today=BEFORE), POLICY)
    assert not decision.allowed and "exception" not in decision.findings[0].finding.message


def test_it_covers_only_its_checks() -> None:
    invalid = workload("batch", {"app": "legacy"}, None, "vendor/Tool:1")  # a reference finding, not latestTag
    decision = decide(invalid, Facts(today=BEFORE), POLICY)
    assert not decision.allowed and decision.findings[0].finding.check == "reference"


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        ("{name: a, namespace: b, checks: [latestTagz], expires: 2027-01-01, reason: r}", "exceptions.0.checks.0"),
        ("{name: a, namespace: b, checks: [latestTag], expires: 2027-01-01}", "exceptions.0.reason: Field required"),
        ("{name: a, namespace: b, checks: [latestTag], expires: someday, reason: r}", "exceptions.0.expires"),
        ("{name: a, namespace: b, checks: [], expires: 2027-01-01, reason: r}", "exceptions.0.checks"),
        ("{name: a, namespace: b, checks: [latestTag], expires: 2027-01-01, reason: r, annotation: x}", "unknown key"),
    ],
)
def test_a_malformed_exception_is_refused_with_its_key_path(entry: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error.replace(".", r"\.")):
        parse_policy(f"exceptions: [{entry}]")


def test_exception_names_are_unique() -> None:
    entry = "{name: a, namespace: b, checks: [latestTag], expires: 2027-01-01, reason: r}"
    with pytest.raises(PolicyError, match=r"names must be unique \(a repeated\)"):
        parse_policy(f"exceptions: [{entry}, {entry}]")
