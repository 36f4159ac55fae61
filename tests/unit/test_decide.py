from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from policies.checks import image_exists
from policies.config import Policy, parse_policy
from policies.decide import decide, mutate
from policies.model import CheckName, ContainerImage, Facts, Finding, Mode, Reason
from tests.unit.policy_helpers import workload


def modes(decision_policy: str, *images: str, namespace: str = "default") -> list[tuple[str, Mode, bool]]:
    decision = decide(workload(*images, namespace=namespace), Facts(), parse_policy(decision_policy))
    return [(j.finding.check, j.mode, j.denies) for j in decision.findings]


def test_warn_allows_with_findings() -> None:
    decision = decide(workload("nginx"), Facts(), parse_policy("mode: warn"))
    assert decision.allowed and len(decision.warnings) == 1 and decision.denials == ()


def test_enforce_denies() -> None:
    decision = decide(workload("nginx", "nginx:1.25"), Facts(), parse_policy("mode: enforce"))
    assert not decision.allowed
    assert [f.container.name for f in decision.denials] == ["c0"]


def test_off_reports_nothing() -> None:
    assert modes("mode: off\nchecks: {reference: {mode: off}}", "nginx", "Bad Name") == []
    # `reference` defaults to enforce, and a check's own mode beats the policy-wide one
    assert modes("mode: off", "nginx", "Bad Name") == [("reference", Mode.ENFORCE, True)]
    assert modes("checks: {latestTag: {mode: 'off'}}", "nginx") == []


def test_invalid_reference_denied_by_default_and_latest_warned() -> None:
    assert modes("", "Bad Name", "nginx") == [("reference", Mode.ENFORCE, True), ("latestTag", Mode.WARN, False)]


def test_decide_judges_whatever_it_is_given() -> None:
    """Exclusions are decided once, before: policies.plan.scope (tests/unit/test_review_scope.py)."""
    assert modes("mode: enforce", "nginx", namespace="kube-system") != []


def test_namespace_override() -> None:
    assert modes("namespaces: {team-a: {mode: enforce}}", "nginx", namespace="team-a") == [
        ("latestTag", Mode.ENFORCE, True)
    ]


def unknown_check(image: ContainerImage, facts: Facts, policy: Policy) -> Sequence[Finding]:
    return (Finding(CheckName.IMAGE_EXISTS, image, Reason.UNVERIFIED, "could not verify", "retry", unknown=True),)


def test_unknown_outcomes_follow_failure_policy() -> None:
    checks = (replace(image_exists.SPEC, run=unknown_check),)
    open_ = decide(workload("a:1"), Facts(), parse_policy("mode: enforce"), checks)
    closed = decide(workload("a:1"), Facts(), parse_policy("mode: enforce\nfailurePolicy: closed"), checks)
    warned = decide(workload("a:1"), Facts(), parse_policy("mode: warn\nfailurePolicy: closed"), checks)
    assert open_.allowed and len(open_.warnings) == 1
    assert not closed.allowed
    assert warned.allowed


def test_mutate_only_patches() -> None:
    policy = parse_policy("mode: enforce\nmirrors: [{registry: docker.io, mirror: m.example.com, verify: false}]")
    decision = mutate(workload("nginx"), Facts(), policy)
    assert decision.allowed and decision.findings == ()
    assert [(p["op"], p["path"], p["value"]) for p in decision.patch] == [
        ("test", "/spec/containers/0/image", "nginx"),
        ("replace", "/spec/containers/0/image", "m.example.com/library/nginx"),
        ("add", "/metadata/annotations", {"pullguard.io/original-images": '{"spec.containers[0]":"nginx"}'}),
    ]
