"""pullguard's own policy ConfigMap on /validate: refused when invalid, with the key path; any other ConfigMap,
and the policy ConfigMap when `serve` follows none, is simply allowed."""

from __future__ import annotations

import orjson

from policies.config import DEFAULT_POLICY
from webhook.admission.pipeline import mutate_body, validate_body
from webhook.review.facts import FactGatherer

TARGET = ("pullguard", "pullguard-policy", "policy.yaml")


def configmap_review(name: str, data: dict[str, str] | None, namespace: str = "pullguard") -> bytes:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}}
    if data is not None:
        obj["data"] = data
    request = {
        "uid": "u-1",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "operation": "UPDATE",
        "namespace": namespace,
        "name": name,
        "object": obj,
    }
    return orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})


async def answer(body: bytes, target: tuple[str, str, str] | None = TARGET, endpoint: str = "validate") -> dict:
    if endpoint == "mutate":
        outcome = await mutate_body(body, DEFAULT_POLICY, FactGatherer())
    else:
        outcome = await validate_body(body, DEFAULT_POLICY, FactGatherer(), target)
    return dict(outcome.answer["response"])


async def test_an_invalid_policy_is_refused_with_its_key_path() -> None:
    response = await answer(configmap_review("pullguard-policy", {"policy.yaml": "checks: {latestTag: {mode: on}}"}))
    assert response["allowed"] is False and response["status"]["code"] == 422
    message = response["status"]["message"]
    assert message.startswith("pullguard policy rejected: configmap pullguard/pullguard-policy: checks.latestTag.mode")


async def test_a_missing_key_is_refused_and_a_valid_policy_passes() -> None:
    missing = await answer(configmap_review("pullguard-policy", {"other.yaml": "mode: warn"}))
    assert missing["allowed"] is False and "has no 'policy.yaml' key" in missing["status"]["message"]
    valid = await answer(configmap_review("pullguard-policy", {"policy.yaml": "mode: enforce\n"}))
    assert valid == {"uid": "u-1", "allowed": True}


async def test_other_configmaps_and_other_setups_are_left_alone() -> None:
    bad = {"policy.yaml": "mode: enforcee"}
    assert (await answer(configmap_review("app-config", bad)))["allowed"] is True
    assert (await answer(configmap_review("pullguard-policy", bad, namespace="team-a")))["allowed"] is True
    assert (await answer(configmap_review("pullguard-policy", bad), target=None))["allowed"] is True
    assert (await answer(configmap_review("pullguard-policy", bad), endpoint="mutate"))["allowed"] is True
