"""The policy holder and the ConfigMap callback: a bad policy never replaces a good one."""

from __future__ import annotations

from policies.config import DEFAULT_POLICY
from policies.model import Mode
from webhook.metrics import Metrics
from webhook.sources.cluster import _policy_callback
from webhook.sources.policy import PolicyHolder


def holder() -> tuple[PolicyHolder, Metrics]:
    metrics = Metrics()
    return PolicyHolder(metrics), metrics


def sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float | None:
    return metrics.registry.get_sample_value(name, labels or {})


def test_absent_configmap_at_start_is_not_an_error_and_says_which_policy_is_in_force() -> None:
    policies, metrics = holder()
    offer = _policy_callback(policies, "configmap ns/pullguard-policy")
    assert policies.note is None
    offer(None)
    assert policies.policy is DEFAULT_POLICY and policies.last_error is None and policies.ready
    assert sample(metrics, "pullguard_policy_valid") == 1
    assert policies.note == (
        "configmap ns/pullguard-policy does not exist: the embedded default policy is in force until it is created"
    )
    offer({"policy.yaml": "mode: enforce"})  # created: the note goes
    assert policies.note is None and policies.policy.mode is Mode.ENFORCE


def test_an_invalid_first_configmap_replaces_the_note_with_its_error() -> None:
    policies, _ = holder()
    offer = _policy_callback(policies, "configmap ns/pullguard-policy")
    offer(None)
    offer({"policy.yaml": "mode: enforcee"})
    assert policies.note is None and not policies.ready and "mode" in (policies.last_error or "")


def test_configmap_lifecycle_keeps_the_last_good_policy() -> None:
    policies, metrics = holder()
    offer = _policy_callback(policies, "configmap ns/pullguard-policy")
    offer({"policy.yaml": "mode: enforce"})
    assert policies.policy.mode is Mode.ENFORCE and policies.source == "configmap ns/pullguard-policy"
    offer({"policy.yaml": "mode: sometimes"})
    assert policies.policy.mode is Mode.ENFORCE
    assert policies.last_error is not None and "mode" in policies.last_error
    offer({"other.yaml": "mode: warn"})
    assert policies.policy.mode is Mode.ENFORCE and "no 'policy.yaml' key" in (policies.last_error or "")
    offer(None)
    assert policies.policy.mode is Mode.ENFORCE and "gone" in (policies.last_error or "")
    assert sample(metrics, "pullguard_policy_reloads_total", {"result": "error"}) == 3
    assert sample(metrics, "pullguard_policy_valid") == 0
    offer({"policy.yaml": "mode: warn"})
    assert policies.policy.mode is Mode.WARN and policies.last_error is None
    assert sample(metrics, "pullguard_policy_valid") == 1
    assert policies.ready  # a last good policy exists: later bad edits never make the service unready


def test_a_source_that_never_gave_a_valid_policy_holds_readiness_back() -> None:
    policies, _ = holder()
    offer = _policy_callback(policies, "configmap ns/pullguard-policy")
    assert policies.ready
    offer({"policy.yaml": "mode: enforcee"})
    assert not policies.ready and policies.policy is DEFAULT_POLICY
    assert list(policies.unsettled) == ["configmap ns/pullguard-policy"]
    offer({"no-key.yaml": ""})
    assert not policies.ready and "no 'policy.yaml' key" in policies.unsettled["configmap ns/pullguard-policy"]
    offer(None)  # deleted without ever being valid: back to the install's own policy, ready
    assert policies.ready and policies.policy is DEFAULT_POLICY
    offer({"policy.yaml": "mode: enforce"})
    offer({"policy.yaml": "mode: enforcee"})
    assert policies.ready and policies.policy.mode is Mode.ENFORCE
