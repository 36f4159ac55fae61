"""Service account tokens for credential provider plugins with tokenAttributes (KEP-4412), from a real API server:
issued with the `serviceaccounts/token create` grant, "could not verify" naming the grant without it."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.e2e.cluster import Cluster
from webhook.kube.informers import load_api_client
from webhook.node.credential_providers import TokenUnavailable
from webhook.node.service_account_tokens import KubeServiceAccountTokens


def _kubeconfig(cluster: Cluster, path: Path, token: str) -> Path:
    config = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    config["users"][0]["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    return path


def _tokens(kubeconfig: Path) -> KubeServiceAccountTokens:
    core = client.CoreV1Api(load_api_client(str(kubeconfig)))
    return KubeServiceAccountTokens(core, lambda namespace, name: {}, timeout_seconds=10)


def _grant(cluster: Cluster, namespace: str, account: str) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "tokens", "namespace": namespace},
        "rules": [{"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "tokens", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tokens"},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
    }
    cluster.apply([role, binding])


def test_a_token_with_the_grant_and_a_named_grant_without_it(cluster: Cluster, tmp_path: Path) -> None:
    namespace = f"tokens-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(namespace)
    for account in ("pullguard", "app"):
        cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    own = cluster.kubectl("create", "token", "pullguard", "-n", namespace, "--duration=600s").stdout.strip()
    as_pullguard = _tokens(_kubeconfig(cluster, tmp_path / "kubeconfig", own))

    with pytest.raises(TokenUnavailable) as refused:
        asyncio.run(as_pullguard.token(namespace, "app", "registry.example.com"))
    assert refused.value.detail == "pullguard may not create one (grant serviceaccounts/token create)"
    assert own not in str(refused.value)

    _grant(cluster, namespace, "pullguard")

    async def twice() -> tuple[str, str]:
        return await as_pullguard.token(namespace, "app", "registry.example.com"), await as_pullguard.token(
            namespace, "app", "registry.example.com"
        )

    first, again = asyncio.run(twice())
    assert first == again  # reused for half its life: a Token-cached plugin is not exec'd per review
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": first, "audiences": ["registry.example.com"]},
    }
    status = cluster.kubectl_json("create", "-o", "json", "-f", "-", input=json.dumps(review))["status"]
    assert status["authenticated"] is True
    assert status["user"]["username"] == f"system:serviceaccount:{namespace}:app"

    with pytest.raises(TokenUnavailable) as missing:
        asyncio.run(as_pullguard.token(namespace, "ghost", "registry.example.com"))
    assert missing.value.detail == f"ServiceAccount {namespace}/ghost does not exist"
