"""`policies.plan.scope` is the one answer to "should anything happen", and `webhook.review.review` asks it once
for every caller: nothing is gathered and nothing decided for a review it skips."""

from __future__ import annotations

import pytest

from policies.config import DEFAULT_POLICY, Policy, parse_policy
from policies.mirrors import MutateDecision
from policies.model import Facts, Workload
from policies.plan import Side, Skip, scope
from tests.unit.policy_helpers import workload
from webhook.review.facts import FactGatherer
from webhook.review.review import review

MIRRORED = parse_policy("mode: enforce\nmirrors: [{registry: docker.io, mirror: m.example.com, verify: false}]")


@pytest.mark.parametrize(
    ("policy", "namespace", "side", "images", "expected"),
    [
        (DEFAULT_POLICY, "kube-system", Side.VALIDATE, ("nginx",), Skip.EXCLUDED),
        (DEFAULT_POLICY, "pullguard", Side.MUTATE, ("nginx",), Skip.EXCLUDED),
        (DEFAULT_POLICY, "default", Side.VALIDATE, (), Skip.NO_IMAGES),
        (DEFAULT_POLICY, "default", Side.MUTATE, ("nginx",), Skip.NO_MIRROR_RULE),
        (MIRRORED, "default", Side.MUTATE, ("nginx",), None),
        (
            parse_policy("mode: off\nchecks: {reference: {mode: off}}"),
            "default",
            Side.VALIDATE,
            ("a",),
            Skip.NOTHING_ENABLED,
        ),
        (parse_policy("mode: off\nnamespaces: {shop: {mode: warn}}"), "shop", Side.VALIDATE, ("a",), None),
        (DEFAULT_POLICY, "default", Side.VALIDATE, ("nginx",), None),
    ],
)
def test_scope(policy: Policy, namespace: str, side: Side, images: tuple[str, ...], expected: Skip | None) -> None:
    assert scope(workload(*images, namespace=namespace), policy, side) is expected


def test_explain_reviews_an_excluded_namespace() -> None:
    assert scope(workload("nginx", namespace="kube-system"), DEFAULT_POLICY, Side.VALIDATE, exclusions=False) is None


class _Refusing(FactGatherer):
    """A gatherer that fails the test if a skipped review asks it anything."""

    async def gather(self, workload: Workload, policy: Policy, side: Side = Side.VALIDATE) -> Facts:
        raise AssertionError("a skipped review gathered facts")


async def test_a_skipped_review_gathers_nothing_and_allows() -> None:
    validated = await review(workload("nginx", namespace="kube-system"), MIRRORED, Side.VALIDATE, _Refusing())
    assert validated.skipped is Skip.EXCLUDED and validated.decision.allowed and validated.decision.findings == ()
    mutated = await review(workload("nginx"), DEFAULT_POLICY, Side.MUTATE, _Refusing())
    assert mutated.skipped is Skip.NO_MIRROR_RULE and isinstance(mutated.decision, MutateDecision)
    assert mutated.decision.patch == ()


async def test_a_review_decides_both_sides() -> None:
    validated = await review(workload("nginx"), MIRRORED, Side.VALIDATE, FactGatherer())
    assert validated.skipped is None and not validated.decision.allowed  # latestTag, enforced
    mutated = await review(workload("nginx"), MIRRORED, Side.MUTATE, FactGatherer())
    assert [p["path"] for p in mutated.decision.patch][:2] == ["/spec/containers/0/image"] * 2


async def test_explain_review_sees_excluded_pods() -> None:
    reviewed = await review(
        workload("nginx", namespace="kube-system"), MIRRORED, Side.VALIDATE, FactGatherer(), exclusions=False
    )
    assert reviewed.skipped is None and reviewed.decision.findings
