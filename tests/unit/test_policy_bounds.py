"""A policy validator that cannot be stalled (issue 20, item 2): size, expanded YAML nodes and depth are bounded
before any policy is built; lists have limits; errors are clipped; `exemptImages` is one compiled matcher; the
ConfigMap validator and the loader accept exactly the same texts."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from policies.checks import latest_tag
from policies.config import (
    DEFAULT_POLICY_YAML,
    MAX_ERROR_CHARS,
    MAX_PATTERNS,
    MAX_POLICY_BYTES,
    PolicyError,
    parse_policy,
)
from policies.model import Facts
from tests.reviews import review
from tests.unit.cluster_helpers import container
from webhook.admission.app import Service, create_app
from webhook.metrics import Metrics
from webhook.review.facts import FactGatherer
from webhook.sources.policy import PolicyHolder

NAMESPACE, NAME, KEY = "pullguard", "pullguard-policy", "policy.yaml"


def alias_bomb(levels: int = 9, fan: int = 10) -> str:
    """Each anchor lists the previous one `fan` times: fan**levels nodes once expanded, a few hundred bytes."""
    lines = ["l0: &l0 [" + ", ".join(["x"] * fan) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (alias_bomb(), "expands to over 50000 YAML nodes"),
        ("a: &a [*a]\n", "refers to itself"),
        ("a: &a {b: *a}\n", "refers to itself"),
        ("x: " + "[" * 40 + "]" * 40 + "\n", "nests deeper than 32 levels"),
        ("# " + "&" * MAX_POLICY_BYTES + "\nmode: warn\n", f"over the {MAX_POLICY_BYTES} limit"),
    ],
)
def test_bounded_before_anything_is_built(text: str, problem: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(text)
    assert problem in str(raised.value)


def test_list_limits_name_the_key() -> None:
    patterns = ", ".join(f'"r{i}.example.com/*"' for i in range(MAX_PATTERNS + 1))
    with pytest.raises(PolicyError) as raised:
        parse_policy(f"checks: {{latestTag: {{exemptImages: [{patterns}]}}}}")
    assert "checks.latestTag.exemptImages: Tuple should have at most 1000 items" in str(raised.value)


def test_errors_are_clipped_and_counted() -> None:
    text = "".join(f"unknown{i}{'k' * 200}: 1\n" for i in range(1000))
    with pytest.raises(PolicyError) as raised:
        parse_policy(text)
    message = str(raised.value)
    assert len(message) <= MAX_ERROR_CHARS + 40
    assert "unknown key" in message and "characters)" in message


def test_a_thousand_exempt_patterns_are_one_matcher() -> None:
    patterns = [f"registry{i}.example.com/team/*" for i in range(MAX_PATTERNS - 1)] + ["docker.io/library/*"]
    policy = parse_policy(orjson.dumps({"checks": {"latestTag": {"exemptImages": patterns}}}).decode())
    assert latest_tag.check(container("nginx"), _facts(), policy) == ()  # the last pattern, familiar or not
    assert latest_tag.check(container("registry500.example.com/team/app"), _facts(), policy) == ()
    assert latest_tag.check(container("registry500.example.com/other/app"), _facts(), policy) != ()
    latest_tag._matcher.cache_clear()
    for _ in range(3):
        latest_tag.check(container("quay.io/app"), _facts(), policy)
    assert latest_tag._matcher.cache_info().misses == 1


def _facts() -> Facts:
    return Facts()


# --- the ConfigMap validator and the loader -----------------------------------------------------------------------

CORPUS = [
    DEFAULT_POLICY_YAML,
    "mode: enforce\n",
    "mode: sometimes\n",
    "checks: {latestTag: {exemptImages: ['docker.io/library/*']}}\n",
    "mirrors: [{registry: docker.io, mirror: mirror.example.com}]\n",
    "mirrors: [{registry: docker.io}]\n",
    "kubelet: {imagePullCredentialsVerificationPolicy: AlwaysVerify}\n",
    "nodeCredentials: {registries: ['not a glob']}\n",
    alias_bomb(),
    alias_bomb(levels=2),
    "a: &a [*a]\n",
    "- a list\n",
    "{{{{ not yaml",
    "",
]


def _configmap_review(text: str) -> dict[str, Any]:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "data": {KEY: text},
    }
    return review(configmap, uid="policy")


async def _validated(text: str) -> dict[str, Any]:
    metrics = Metrics()
    app = create_app(
        Service(
            holder=PolicyHolder(metrics),
            metrics=metrics,
            gatherer=FactGatherer(),
            policy_configmap=(NAMESPACE, NAME, KEY),
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://pullguard") as client:
        response = await client.post("/validate", content=orjson.dumps(_configmap_review(text)))
    assert response.status_code == 200, response.text[:300]
    answer: dict[str, Any] = response.json()["response"]
    return answer


@pytest.mark.parametrize("text", CORPUS, ids=range(len(CORPUS)))
async def test_the_validator_accepts_exactly_what_the_loader_accepts(text: str) -> None:
    answer = await _validated(text)
    loaded = PolicyHolder(Metrics()).offer(text, f"configmap {NAMESPACE}/{NAME}")
    assert answer["allowed"] is loaded, answer
    if not loaded:
        assert len(answer["status"]["message"]) <= 600


async def test_a_megabyte_of_ampersands_in_a_comment_is_refused_not_admitted() -> None:
    """The issue's 6 MB review (a 1 MB comment of `&`, escaped by the API server): read, and the policy refused."""
    text = "# " + "&" * 1_000_000 + "\nunknownKey: 1\n"
    answer = await _validated(text)
    assert answer["allowed"] is False
    assert f"over the {MAX_POLICY_BYTES} limit" in answer["status"]["message"]
