"""With no mirror rule, the API server does not call `/mutate` at all: the toggle adds a `false` matchCondition to
pullguard's MutatingWebhookConfiguration, removes it when a mirror appears, and puts it back after an apply that
drops it. Against the real API server, with the real pullguard as the webhook."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.cluster import Cluster
from tests.e2e.webhook_harness import PullguardWebhook, pullguard_webhook
from tests.server import start_pullguard
from tests.support.polling import eventually
from webhook.kube.informers import load_api_client
from webhook.kube.mutating_toggle import CONDITION_NAME, MutatingToggle

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def api(cluster: Cluster) -> Iterator[client.ApiClient]:
    api_client = load_api_client(str(cluster.kubeconfig))
    yield api_client
    api_client.close()


def _conditions(cluster: Cluster, name: str) -> list[list[str]]:
    live = cluster.kubectl_json("get", "mutatingwebhookconfiguration", name)
    return [[c["name"] for c in w.get("matchConditions") or []] for w in live["webhooks"]]


def _endpoints_called(cluster: Cluster, hook: PullguardWebhook, namespace: str) -> set[str]:
    """Dry-run one Pod; the endpoints that answered a review meanwhile (counted: the mutating side without a
    mirror rule logs nothing)."""
    before = {endpoint: hook.calls(endpoint) for endpoint in ("validate", "mutate")}
    name = f"toggle-{uuid.uuid4().hex[:8]}"
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": "localhost/app:1.0"}]},
    }
    cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=json.dumps(pod))
    return {endpoint for endpoint, count in before.items() if hook.calls(endpoint) > count}


def test_no_mutate_round_trip_without_mirrors(cluster: Cluster, api: client.ApiClient, namespace: str) -> None:
    mirrors = [False]
    with pullguard_webhook(cluster) as hook:
        assert _endpoints_called(cluster, hook, namespace) == {"validate", "mutate"}
        toggle = MutatingToggle(api, hook.name, lambda: mirrors[0])
        toggle.start()
        try:
            eventually(lambda: _conditions(cluster, hook.name) == [[CONDITION_NAME]], "the condition", timeout=20)
            # the API server picks the change up asynchronously: then it stops calling /mutate, not /validate
            eventually(
                lambda: _endpoints_called(cluster, hook, namespace) == {"validate"}, "no /mutate call", timeout=20
            )
            # a mirror rule appears: the condition goes, /mutate is called again
            mirrors[0] = True
            toggle.reconcile()
            assert _conditions(cluster, hook.name) == [[]]
            eventually(
                lambda: _endpoints_called(cluster, hook, namespace) == {"validate", "mutate"},
                "/mutate called again",
                timeout=20,
            )
            # and gone again: inert again
            mirrors[0] = False
            toggle.reconcile()
            eventually(lambda: _conditions(cluster, hook.name) == [[CONDITION_NAME]], "the condition", timeout=20)
            # an apply of the original configuration (an upgrade, a GitOps sync) drops it: the watch puts it back
            cluster.apply([d for d in hook.configurations() if d["kind"] == "MutatingWebhookConfiguration"])
            eventually(lambda: _conditions(cluster, hook.name) == [[CONDITION_NAME]], "the condition back", timeout=20)
            assert toggle.patches >= 3
        finally:
            toggle.stop()


def test_other_match_conditions_are_kept(cluster: Cluster, api: client.ApiClient) -> None:
    name = f"pullguard-{uuid.uuid4().hex[:8]}"
    webhook = {
        "name": "mutate.pullguard.io",
        "clientConfig": {"url": "https://127.0.0.1:9/mutate"},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        "namespaceSelector": {"matchLabels": {"pullguard-e2e": "never"}},  # affects no other test
        "matchConditions": [{"name": "not-a-node", "expression": "!has(request.userInfo.extra)"}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Ignore",
    }
    second = {**webhook, "name": "second.pullguard.io"}
    config = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
              "metadata": {"name": name}, "webhooks": [webhook, second]}  # fmt: skip
    cluster.apply(config)
    mirrors = [False]
    toggle = MutatingToggle(api, name, lambda: mirrors[0])
    try:
        toggle.start()
        both = [["not-a-node", CONDITION_NAME]] * 2
        eventually(lambda: _conditions(cluster, name) == both, "the condition on both webhooks", timeout=20)
        mirrors[0] = True
        toggle.reconcile()
        assert _conditions(cluster, name) == [["not-a-node"]] * 2
    finally:
        toggle.stop()
        cluster.kubectl("delete", "mutatingwebhookconfiguration", name, "--ignore-not-found", check=False)


def test_serve_follows_the_policy_live(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """`serve --manage-certs --mutate-only-with-mirrors`: the toggle follows `--config` edits, both ways."""
    name = f"pullguard-{uuid.uuid4().hex[:8]}"
    webhook = {
        "name": "mutate.pullguard.io",
        "clientConfig": {"url": "https://127.0.0.1:9/mutate"},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        "namespaceSelector": {"matchLabels": {"pullguard-e2e": "never"}},  # affects no other test
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Ignore",
    }
    cluster.apply(
        [
            {
                "apiVersion": "admissionregistration.k8s.io/v1",
                "kind": kind,
                "metadata": {"name": name},
                "webhooks": [{**webhook, "name": f"{kind.lower()}.pullguard.io"}],
            }
            for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
        ]
    )
    args = ["--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace, "--manage-certs"]
    args += ["--webhook-configuration", name, "--mutate-only-with-mirrors"]
    server = start_pullguard(tmp_path / "pullguard", policy="mode: warn\n", extra_args=args, wait_for="/readyz")
    try:
        eventually(lambda: _conditions(cluster, name) == [[CONDITION_NAME]], "inert without mirrors", timeout=30)
        assert server.policy_path is not None
        server.policy_path.write_text("mode: warn\nmirrors:\n  - {registry: docker.io, mirror: mirror.test}\n")
        eventually(lambda: _conditions(cluster, name) == [[]], "restored with a mirror rule", timeout=30)
        server.policy_path.write_text("mode: warn\nmirrors: []\n")
        eventually(lambda: _conditions(cluster, name) == [[CONDITION_NAME]], "inert again", timeout=30)
        validating = cluster.kubectl_json("get", "validatingwebhookconfiguration", name)
        assert "matchConditions" not in validating["webhooks"][0]  # only the mutating webhook is touched
    finally:
        server.stop()
        for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
            cluster.kubectl("delete", kind, name, "--ignore-not-found", check=False)
