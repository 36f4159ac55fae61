"""Which namespaces a mirror rule covers: names, or a label selector on the Namespace (Kubernetes' semantics);
a namespace opts out with the label `pullguard.io/rewrite: "false"`; labels nobody knows are said to be unknown,
never guessed."""

from __future__ import annotations

import pytest

from policies.config import LabelSelector, PolicyError, parse_policy
from policies.decide import mutate
from policies.mirrors import NAMESPACE_UNKNOWN, OPTED_OUT, REWRITTEN, plan
from policies.model import ClusterFacts, Facts, Reason
from policies.plan import Side
from policies.plan import plan as plan_lookups
from tests.unit.policy_helpers import workload
from webhook.kube.view import StaticClusterView

SELECTED = parse_policy(
    """
mirrors:
  - registry: docker.io
    mirror: team.example.com
    verify: false
    namespaces: {matchLabels: {team: a}, matchExpressions: [{key: tier, operator: NotIn, values: [prod]}]}
  - {registry: docker.io, mirror: everyone.example.com, verify: false}
"""
)


def facts(labels: dict[str, str] | None) -> Facts:
    return Facts(cluster=ClusterFacts(known=labels is not None, namespace_labels=labels))


@pytest.mark.parametrize(
    ("labels", "target"),
    [
        ({"team": "a"}, "team.example.com/library/nginx:1"),  # NotIn matches a namespace without the key
        ({"team": "a", "tier": "dev"}, "team.example.com/library/nginx:1"),
        ({"team": "a", "tier": "prod"}, "everyone.example.com/library/nginx:1"),  # the next rule
        ({"team": "b"}, "everyone.example.com/library/nginx:1"),
        ({}, "everyone.example.com/library/nginx:1"),
    ],
)
def test_a_label_selector_picks_the_rule(labels: dict[str, str], target: str) -> None:
    outcomes = plan(workload("nginx:1", namespace="shop"), facts(labels), SELECTED)
    assert [(o.outcome, o.target) for o in outcomes] == [(REWRITTEN, target)]


@pytest.mark.parametrize(
    ("expression", "labels", "expected"),
    [
        ({"key": "env", "operator": "In", "values": ["dev", "qa"]}, {"env": "qa"}, True),
        ({"key": "env", "operator": "In", "values": ["dev"]}, {}, False),
        ({"key": "env", "operator": "NotIn", "values": ["dev"]}, {}, True),
        ({"key": "env", "operator": "NotIn", "values": ["dev"]}, {"env": "dev"}, False),
        ({"key": "env", "operator": "Exists"}, {"env": ""}, True),
        ({"key": "env", "operator": "Exists"}, {}, False),
        ({"key": "env", "operator": "DoesNotExist"}, {}, True),
        ({"key": "env", "operator": "DoesNotExist"}, {"env": "x"}, False),
    ],
)
def test_selector_operators_as_kubernetes_has_them(
    expression: dict[str, object], labels: dict[str, str], expected: bool
) -> None:
    assert LabelSelector.model_validate({"matchExpressions": [expression]}).matches(labels) is expected


def test_an_empty_selector_selects_every_namespace() -> None:
    assert LabelSelector().matches({}) and LabelSelector().matches({"a": "b"})


@pytest.mark.parametrize(
    ("namespaces", "error"),
    [
        ("{matchExpressions: [{key: env, operator: In}]}", "operator In needs values"),
        ("{matchExpressions: [{key: env, operator: Exists, values: [x]}]}", "operator Exists takes no values"),
        ("{matchExpressions: [{key: env, operator: Near, values: [x]}]}", "mirrors.0.namespaces"),
        ("{matchLabel: {a: b}}", "mirrors.0.namespaces"),
    ],
)
def test_selector_schema_errors(namespaces: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error):
        parse_policy(f"mirrors: [{{registry: docker.io, mirror: m.example.com, namespaces: {namespaces}}}]")


def test_unknown_labels_keep_the_image_and_say_so() -> None:
    """No cluster view: whether the selector rule applies is unknown, and the later rule may not be chosen in its
    place (the first rule might be the one that applies)."""
    decision = mutate(workload("nginx:1", namespace="shop"), facts(None), SELECTED)
    assert decision.patch == ()
    [outcome] = decision.mirror_outcomes
    assert outcome.outcome == NAMESPACE_UNKNOWN and "namespace shop's are unknown" in outcome.detail
    [finding] = decision.findings
    assert finding.finding.unknown and finding.finding.reason is Reason.UNVERIFIED
    assert not plan_lookups(workload("nginx:1"), ClusterFacts(), SELECTED, Side.MUTATE).lookups


def test_a_rule_by_names_needs_no_labels() -> None:
    policy = parse_policy("mirrors: [{registry: docker.io, mirror: m.example.com, verify: false, namespaces: [shop]}]")
    outcomes = plan(workload("nginx:1", namespace="shop"), facts(None), policy)
    assert [o.outcome for o in outcomes] == [REWRITTEN]


@pytest.mark.parametrize("value", ["false", "False", " false "])
def test_a_namespace_label_opts_out(value: str) -> None:
    labels = {"pullguard.io/rewrite": value, "team": "a"}
    decision = mutate(workload("nginx:1", namespace="shop"), facts(labels), SELECTED)
    assert decision.patch == () and decision.findings == ()  # deliberate: logged and counted, not warned about
    [outcome] = decision.mirror_outcomes
    assert (outcome.outcome, outcome.detail) == (OPTED_OUT, 'namespace label pullguard.io/rewrite: "false"')
    planned = plan_lookups(workload("nginx:1", namespace="shop"), facts(labels).cluster, SELECTED, Side.MUTATE)
    assert planned.lookups == ()  # nothing to verify for images that stay


def test_another_label_value_does_not_opt_out() -> None:
    outcomes = plan(workload("nginx:1"), facts({"pullguard.io/rewrite": "true"}), SELECTED)
    assert [o.outcome for o in outcomes] == [REWRITTEN]


def test_check_reads_namespace_labels_from_its_input() -> None:
    view = StaticClusterView(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"a": "1"}}}]
    )
    assert view.namespace_labels("shop") == {"a": "1"}
    assert view.namespace_labels("other") is None
