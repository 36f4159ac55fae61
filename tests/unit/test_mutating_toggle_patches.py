"""The mutating toggle's JSON patches, applied to configurations in memory, and `follow()` reacting to the policy."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import jsonpatch
import pytest

from webhook.kube import mutating_toggle
from webhook.kube.mutating_toggle import CONDITION, CONDITION_NAME, MutatingToggle, _webhooks, patch_for


def _config(*conditions: list[dict[str, str]] | None) -> dict[str, Any]:
    webhooks: list[dict[str, Any]] = []
    for i, found in enumerate(conditions):
        webhook: dict[str, Any] = {"name": f"w{i}.pullguard.io"}
        if found is not None:
            webhook["matchConditions"] = found
        webhooks.append(webhook)
    return {"webhooks": webhooks}


def _apply(config: dict[str, Any], inert: bool) -> dict[str, Any]:
    ops = patch_for(_webhooks(config), inert)
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(config), ops)
    assert patch_for(_webhooks(result), inert) == []  # converged in one patch
    return result


OTHER = {"name": "other", "expression": "true"}


@pytest.mark.parametrize("conditions", [[None], [[]], [[OTHER]], [None, [OTHER]]])
def test_made_inert_and_restored(conditions: list[Any]) -> None:
    config = _config(*conditions)
    inert = _apply(config, True)
    for webhook in inert["webhooks"]:
        assert webhook["matchConditions"][-1] == CONDITION
        assert [c for c in webhook["matchConditions"] if c != CONDITION] in ([], [OTHER])
    restored = _apply(inert, False)
    for before, after in zip(config["webhooks"], restored["webhooks"], strict=True):
        assert (after.get("matchConditions") or []) == (before.get("matchConditions") or [])


def test_nothing_to_do() -> None:
    assert patch_for(_webhooks(_config(None, [OTHER])), False) == []
    assert patch_for(_webhooks(_config([OTHER, dict(CONDITION)])), True) == []
    assert patch_for((), True) == []


def test_removal_is_guarded_by_the_condition_name() -> None:
    ops = patch_for(_webhooks(_config([OTHER, {"name": CONDITION_NAME, "expression": "false"}])), False)
    assert {"op": "test", "path": "/webhooks/0/matchConditions/1/name", "value": CONDITION_NAME} in ops
    assert ops[-1] == {"op": "remove", "path": "/webhooks/0/matchConditions/1"}


class _FakeReflector:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def synced(self) -> bool:
        return True


def test_follow_reconciles_when_the_policy_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mutating_toggle, "Reflector", _FakeReflector)
    monkeypatch.setattr(mutating_toggle.client, "AdmissionregistrationV1Api", lambda api: type("A", (), {
        "patch_mutating_webhook_configuration": None, "list_mutating_webhook_configuration": None})())  # fmt: skip
    mirrors = [False]
    toggle = MutatingToggle(object(), "pullguard", lambda: mirrors[0], poll_seconds=0.01)
    calls: list[bool] = []
    monkeypatch.setattr(toggle, "reconcile", lambda: calls.append(mirrors[0]))

    async def run() -> None:
        task = asyncio.create_task(toggle.follow())
        await asyncio.sleep(0.05)
        mirrors[0] = True
        await asyncio.sleep(0.05)
        mirrors[0] = False
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(run())
    assert calls == [False, True, False]  # once per change, not once per poll
