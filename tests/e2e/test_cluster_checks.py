"""The cluster checks end to end: a real kube-apiserver calls `pullguard serve --kubeconfig ... --namespace ...`
(informer caches of pull Secrets, ServiceAccounts and Nodes; the policy from a ConfigMap) which looks images up
in real registries on loopback (mapped through a containerd hosts directory), and our kubectl shows the outcome
of `kubectl apply --dry-run=server`: `Warning:` lines in warn mode, the denial in enforce mode. One pullguard serves
the whole module (the `hook` fixture); the policy ConfigMap's reloads and readiness before the first sync, which need
a pullguard of their own, are in test_cluster_checks_policy.py.

The webhook's caches follow the API server a moment after kubectl returns, so a check that depends on an object
just created is polled (at most 15 s) until the finding appears.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.cluster import Cluster
from tests.e2e.cluster_checks_support import OTHER_REGISTRY, POLICY_CONFIGMAP, Registries, created, serve_args
from tests.e2e.cluster_scenarios import (
    NodeSpec,
    deployment,
    dry_run,
    dry_run_until,
    metric_value,
    nodes,
    policy_configmap,
    policy_text,
    pull_secret,
    service_account,
)
from tests.e2e.webhook_harness import PullguardWebhook, pullguard_webhook

# The first test also pays for the session's cluster, the registries and the module's pullguard.
pytestmark = [pytest.mark.timeout(180), pytest.mark.registry]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pullguard_namespace(cluster: Cluster) -> Iterator[str]:
    name = f"pullguard-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def hook(cluster: Cluster, registries: Registries, pullguard_namespace: str) -> Iterator[PullguardWebhook]:
    """One pullguard for the module: online lookups, cluster view, warn mode from the policy ConfigMap."""
    cluster.apply(policy_configmap(pullguard_namespace, policy_text(registries.hosts_dir, "warn"), POLICY_CONFIGMAP))
    with pullguard_webhook(cluster, offline=False, extra_args=serve_args(cluster, pullguard_namespace)) as started:
        yield started


# --------------------------------------------------------------------------- 1. a missing pull secret


def test_missing_pull_secret_is_named(
    cluster: Cluster, namespace: str, registries: Registries, hook: PullguardWebhook
) -> None:
    outcome = dry_run(cluster, deployment(namespace, registries.plain_image("app", "1.1"), pull_secrets=["nope"]))
    assert outcome.code == 0, outcome
    assert created(outcome), outcome
    expected = f'imagePullSecret "nope" does not exist in namespace {namespace}: the kubelet ignores it'
    assert outcome.warning_with(expected), outcome
    assert outcome.warning_with(f"kubectl create secret docker-registry nope -n {namespace}"), outcome

    # A Secret that exists but is no pull secret is ignored by the kubelet just the same.
    cluster.kubectl("create", "secret", "generic", "opaque", "-n", namespace, "--from-literal=token=s3cr3t")
    opaque = dry_run_until(
        cluster,
        deployment(namespace, registries.plain_image("app", "1.1"), name="opaque", pull_secrets=["opaque"]),
        lambda r: r.warning_with('imagePullSecret "opaque" cannot be used'),
        "the wrong-type secret finding",
    )
    assert opaque.code == 0 and created(opaque), opaque
    assert "s3cr3t" not in opaque.stderr


# --------------------------------------------------------------------------- 2. a secret for another registry


def test_pull_secret_for_another_registry(
    cluster: Cluster, namespace: str, registries: Registries, hook: PullguardWebhook
) -> None:
    basic = registries.basic
    cluster.apply(pull_secret(namespace, "elsewhere", OTHER_REGISTRY, basic.username or "", basic.password or ""))
    image = registries.private_image
    manifest = deployment(namespace, image, pull_secrets=["elsewhere"])
    outcome = dry_run_until(
        cluster, manifest, lambda r: r.warning_with("no entry of secret"), "the no-matching-entry finding"
    )
    assert outcome.code == 0 and created(outcome), outcome
    warning = outcome.warning_with(
        f'image "{image}": registry {basic.host} requires authentication and no entry of secret "elsewhere" '
        f"matches it (entries: {OTHER_REGISTRY})"
    )
    assert warning, outcome
    assert f"add an entry for {basic.host}" in warning
    assert not outcome.warning_with("does not exist"), outcome
    # It is the registry's answer (401 to an anonymous request) that makes this more than a guess.
    with hook.server.new_client() as client:
        metrics = client.get("/metrics").text
    assert metric_value(metrics, "pullguard_registry_lookups_total", {"status": "unauthorized"}) >= 1
    assert '"GET /v2/private/app/manifests/1.0 HTTP/1.1" 401' in basic.log_text()


# --------------------------------------------------------------------------- 3. wrong and right password


def test_pull_secret_with_a_wrong_password_then_the_right_one(
    cluster: Cluster, namespace: str, registries: Registries, hook: PullguardWebhook
) -> None:
    basic = registries.basic
    username, password = basic.username or "", basic.password or ""
    cluster.apply(pull_secret(namespace, "stale", basic.host, username, password + "-expired"))
    cluster.apply(pull_secret(namespace, "current", basic.host, username, password))
    image = registries.private_image

    wrong = dry_run_until(
        cluster,
        deployment(namespace, image, name="stale", pull_secrets=["stale"]),
        lambda r: r.warning_with("rejected the credentials of"),
        "the rejected-credentials finding",
    )
    assert wrong.code == 0 and created(wrong), wrong
    warning = wrong.warning_with(
        f'image "{image}": registry {basic.host} rejected the credentials of secret {namespace}/stale'
    )
    assert warning, wrong
    assert f"update the secret with current credentials for {basic.host}" in warning
    assert password not in wrong.stderr  # the secret's password never appears, the wrong one neither

    right = dry_run_until(
        cluster,
        deployment(namespace, image, name="current", pull_secrets=["current"]),
        lambda r: r.code == 0 and not r.warnings,
        "a silent dry run with working credentials",
    )
    assert created(right), right

    # Fixing the stale secret in place is picked up without a restart (new credentials, a new lookup).
    cluster.apply(pull_secret(namespace, "stale", basic.host, username, password))
    fixed = dry_run_until(
        cluster,
        deployment(namespace, image, name="stale", pull_secrets=["stale"]),
        lambda r: r.code == 0 and not r.warnings,
        "a silent dry run once the stale secret is fixed",
    )
    assert created(fixed), fixed


# --------------------------------------------------------------------------- 4. credentials through the ServiceAccount


def test_pull_secrets_come_from_the_service_account(
    cluster: Cluster, namespace: str, registries: Registries, hook: PullguardWebhook
) -> None:
    basic = registries.basic
    cluster.apply(pull_secret(namespace, "robot", basic.host, basic.username or "", basic.password or ""))
    cluster.apply(service_account(namespace, "builder", ["robot"]))
    cluster.apply(service_account(namespace, "broken", ["gone"]))
    image = registries.private_image

    # A Deployment's template has not met ServiceAccount admission: the webhook resolves the secrets itself.
    good = dry_run_until(
        cluster,
        deployment(namespace, image, name="good", service_account="builder"),
        lambda r: r.code == 0 and not r.warnings,
        "a silent dry run with the ServiceAccount's secret",
    )
    assert created(good), good

    bad = dry_run_until(
        cluster,
        deployment(namespace, image, name="bad", service_account="broken"),
        lambda r: r.warning_with("(from its ServiceAccount)"),
        "the ServiceAccount's missing secret",
    )
    assert bad.code == 0 and created(bad), bad
    assert bad.warning_with(f'imagePullSecret "gone" (from its ServiceAccount) does not exist in namespace {namespace}')
    # ... and so the kubelet pulls anonymously, which this registry refuses.
    assert bad.warning_with(f'image "{image}"', "requires credentials and the pod has none"), bad

    # A Pod does meet ServiceAccount admission, which copies the account's imagePullSecrets into its spec.
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad-pod", "namespace": namespace},
        "spec": {"serviceAccountName": "broken", "containers": [{"name": "app", "image": image}]},
    }
    bad_pod = dry_run(cluster, pod)
    assert bad_pod.code == 0 and created(bad_pod), bad_pod
    assert bad_pod.warning_with('imagePullSecret "gone"', f"does not exist in namespace {namespace}"), bad_pod


# --------------------------------------------------------------------------- 5. a tag that is not in the registry


def test_missing_tag_is_reported_with_the_closest_tags(
    cluster: Cluster, namespace: str, registries: Registries, hook: PullguardWebhook
) -> None:
    image = registries.plain_image("app", "1.2")
    outcome = dry_run(cluster, deployment(namespace, image))
    assert outcome.code == 0 and created(outcome), outcome
    warning = outcome.warning_with(f'image "{image}": not found in registry {registries.plain.host}')
    assert warning, outcome
    assert "existing tags closest to it:" in warning
    closest = warning.split("existing tags closest to it:", 1)[1]
    assert closest.strip().startswith("1.1"), warning  # the nearest version first
    assert "1.0" in closest, warning

    present = dry_run(cluster, deployment(namespace, registries.plain_image("app", "1.1"), name="present"))
    assert present.code == 0 and not present.warnings, present


# --------------------------------------------------------------------------- 6. architectures of the nodes


def test_architecture_against_nodes(
    cluster: Cluster, namespace: str, registries: Registries, hook: PullguardWebhook
) -> None:
    amd64_only = registries.plain_image("app", "1.0")
    with nodes(cluster, NodeSpec("amd64"), NodeSpec("arm64")) as (amd_node, arm_node):
        # No selector: the pod may land on either node; only the arm64 one would fail.
        spread = dry_run_until(
            cluster,
            deployment(namespace, amd64_only, name="spread"),
            lambda r: r.warning_with("exec format error", arm_node),
            "the warning naming the arm64 node",
        )
        assert spread.code == 0 and created(spread), spread
        # a single-platform image is pulled anywhere (containerd never matches the root manifest's platform)
        warning = spread.warning_with(
            f'image "{amd64_only}" is a single-platform linux/amd64 image: pods on node {arm_node}'
        )
        assert warning, spread
        assert amd_node not in warning
        assert "add nodeSelector kubernetes.io/arch: amd64" in warning

        # Pinned to arm64: no node it may use can run it.
        pinned = dry_run(
            cluster, deployment(namespace, amd64_only, name="pinned", node_selector={"kubernetes.io/arch": "arm64"})
        )
        assert pinned.code == 0 and created(pinned), pinned
        assert pinned.warning_with(
            f'image "{amd64_only}" is a single-platform linux/amd64 image and the pod may only run on linux/arm64 '
            "(from nodeSelector): containerd pulls it and the container fails to start with exec format error"
        ), pinned

        # Pinned to amd64, or a multi-arch image: nothing to say.
        fitting = dry_run(
            cluster, deployment(namespace, amd64_only, name="fitting", node_selector={"kubernetes.io/arch": "amd64"})
        )
        assert fitting.code == 0 and not fitting.warnings, fitting
        multi = dry_run(cluster, deployment(namespace, registries.plain_image("multi", "1.0"), name="multi"))
        assert multi.code == 0 and not multi.warnings, multi


def test_arm64_selector_without_nodes_uses_the_spec(
    cluster: Cluster, namespace: str, registries: Registries, hook: PullguardWebhook
) -> None:
    image = registries.plain_image("app", "2.0")
    outcome = dry_run(cluster, deployment(namespace, image, node_selector={"kubernetes.io/arch": "arm64"}))
    assert outcome.code == 0 and created(outcome), outcome
    assert outcome.warning_with(f'image "{image}" is a single-platform linux/amd64 image', "exec format error"), outcome


# --------------------------------------------------------------------------- 7. imagePullPolicy Never


def test_never_pull_against_the_nodes_image_lists(cluster: Cluster, namespace: str, hook: PullguardWebhook) -> None:
    pool = {"pullguard.e2e/pool": uuid.uuid4().hex[:8]}  # only these nodes are candidates
    cached = "registry.example.test/tools/cached:1.0"
    partial = "registry.example.test/tools/partial:1.0"
    absent = "registry.example.test/tools/debug:1.0"
    with nodes(
        cluster,
        NodeSpec("amd64", labels=pool, images=[cached]),
        NodeSpec("amd64", labels=pool, images=[cached, partial]),
    ) as (first, second):

        def never(image: str, name: str) -> dict[str, object]:
            return deployment(namespace, image, name=name, node_selector=pool, pull_policy="Never")

        missing = dry_run_until(
            cluster,
            never(absent, "absent"),
            lambda r: r.warning_with("imagePullPolicy Never and is on none of the 2 nodes"),
            "the never-pull finding over both nodes",
        )
        assert missing.code == 0 and created(missing), missing
        assert missing.warning_with(
            f'image "{absent}" has imagePullPolicy Never and is on none of the 2 nodes it may run on'
        ), missing
        assert missing.warning_with("ctr -n k8s.io images import"), missing

        present = dry_run(cluster, never(cached, "cached"))
        assert present.code == 0 and created(present), present
        assert not present.warning_with("imagePullPolicy Never"), present

        some = dry_run(cluster, never(partial, "partial"))
        assert some.code == 0, some
        assert some.warning_with(f'image "{partial}" has imagePullPolicy Never and is missing on node {first}'), some
        assert second not in (some.warning_with("is missing on") or "").split(":")[0]


# --------------------------------------------------------------------------- 9. readiness once the caches synced


def test_readyz_is_ok_once_the_harness_returns(hook: PullguardWebhook, pullguard_namespace: str) -> None:
    with hook.server.new_client() as client:
        response = client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ready"] is True
    assert body["policy"] == f"configmap {pullguard_namespace}/{POLICY_CONFIGMAP}"
    assert "cache listed" in hook.logs()


# --------------------------------------------------------------------------- UPDATE: what changed is checked


def test_update_checks_a_changed_pull_context(
    cluster: Cluster, namespace: str, registries: Registries, hook: PullguardWebhook
) -> None:
    image = registries.plain_image("app", "1.1")  # multi-arch, present: silent on its own
    cluster.apply(deployment(namespace, image, name="steady"))  # really created: the UPDATEs below have an old object
    same = deployment(namespace, image, name="steady")
    same["spec"]["replicas"] = 3
    unchanged = dry_run(cluster, same)
    assert unchanged.code == 0 and not unchanged.warnings, unchanged
    with_secret = dry_run(cluster, deployment(namespace, image, name="steady", pull_secrets=["nope"]))
    assert with_secret.code == 0, with_secret
    assert with_secret.warning_with('imagePullSecret "nope" does not exist'), with_secret
