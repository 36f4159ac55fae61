"""manifests/ renders with our kubectl's kustomize once its image is named (`make release`/`make install` name it;
without one it refuses to render), and a real kube-apiserver accepts the result."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from policies.config import DEFAULT_POLICY_YAML, parse_policy
from tests.e2e.cluster import REPO_ROOT, Cluster
from tests.e2e.webhook_harness import WEBHOOK_RULES

pytestmark = pytest.mark.timeout(150)

MANIFESTS = REPO_ROOT / "manifests"
CERT_MANAGER = REPO_ROOT / "certs" / "cert-manager"
NAMESPACE = "pullguard"
TIMEOUT = 60.0


def render(cluster: Cluster, directory: str) -> list[dict[str, Any]]:
    text = cluster.kubectl("kustomize", directory, timeout=TIMEOUT).stdout
    return [d for d in yaml.safe_load_all(text) if d]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


IMAGE = "registry.example.test/platform/pullguard:0.1.0"


def release(cluster: Cluster, out: Path, image: str, source: Path = MANIFESTS) -> subprocess.CompletedProcess[str]:
    """`make release IMAGE=...` without make: the script it runs, with the suite's kubectl."""
    kubectl = str(cluster.bin_dir / "kubectl")
    command = [sys.executable, str(REPO_ROOT / "scripts" / "render_install.py"), "--out", str(out), "--image", image]
    command += ["--kubectl", kubectl, "--from", str(source)]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.fixture(scope="module")
def released(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("release")
    done = release(cluster, out, IMAGE)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture(scope="module")
def rendered(released: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((released / "install.yaml").read_text()) if d]


def test_manifests_refuse_to_render_until_the_image_is_named(cluster: Cluster) -> None:
    """The placeholder never ships: `kubectl apply -k manifests/` fails before anything reaches the cluster."""
    refused = cluster.kubectl("kustomize", str(MANIFESTS), check=False, timeout=TIMEOUT)
    assert refused.returncode != 0 and "out of bounds for value pullguard" in refused.stderr, refused
    applied = cluster.kubectl("apply", "--dry-run=server", "-k", str(MANIFESTS), check=False, timeout=TIMEOUT)
    assert applied.returncode != 0 and applied.stdout == "", applied


def test_the_release_sets_the_one_image_and_nothing_else(cluster: Cluster, rendered: list[dict[str, Any]]) -> None:
    (deployment,) = by_kind(rendered)["Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE
    with_image = render(cluster, str(MANIFESTS / "base"))
    for document in with_image:
        if document["kind"] == "Deployment":
            document["spec"]["template"]["spec"]["containers"][0]["image"] = IMAGE
    assert sorted(map(json.dumps, with_image)) == sorted(map(json.dumps, rendered))


@pytest.mark.parametrize(
    ("image", "said"),
    [
        ("", "no image named"),
        ("pullguard:0.1.0", "names no registry"),
        ("registry.example.test/platform/pullguard", "has no tag or digest"),
        ("registry.example.test/Platform/pullguard:1", "is not an image reference"),
    ],
)
def test_release_without_a_usable_image_says_how_to_name_one(
    cluster: Cluster, tmp_path: Path, image: str, said: str
) -> None:
    done = release(cluster, tmp_path, image)
    assert done.returncode == 2 and said in done.stderr and "IMAGE=host/repo:tag" in done.stderr, done.stderr
    assert not (tmp_path / "install.yaml").exists()


def test_a_digest_pins_the_image(cluster: Cluster, tmp_path: Path) -> None:
    digest = "sha256:" + "a" * 64
    assert release(cluster, tmp_path, f"registry.example.test/platform/pullguard@{digest}").returncode == 0
    documents = [d for d in yaml.safe_load_all((tmp_path / "install.yaml").read_text()) if d]
    (deployment,) = by_kind(documents)["Deployment"]
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"registry.example.test/platform/pullguard@{digest}"


@pytest.fixture(scope="module")
def pullguard_namespace(cluster: Cluster) -> str:
    """Namespaced objects cannot be dry-run into a namespace that does not exist yet. It is left in place: this
    control plane has no namespace controller, so a deleted namespace would stay Terminating and refuse every
    later test's objects (the cluster is thrown away with the session)."""
    if cluster.kubectl("get", "namespace", NAMESPACE, check=False, timeout=TIMEOUT).returncode != 0:
        cluster.create_namespace(NAMESPACE)
    return NAMESPACE


def test_base_renders_every_object(rendered: list[dict[str, Any]]) -> None:
    names = sorted((d["kind"], d["metadata"]["name"]) for d in rendered)
    assert names == sorted(
        [
            ("Namespace", "pullguard"),
            ("ServiceAccount", "pullguard"),
            ("ClusterRole", "pullguard"),
            ("ClusterRoleBinding", "pullguard"),
            ("Role", "pullguard"),
            ("RoleBinding", "pullguard"),
            ("Deployment", "pullguard"),
            ("PodDisruptionBudget", "pullguard"),
            ("Service", "pullguard"),
            ("ValidatingWebhookConfiguration", "pullguard"),
            ("MutatingWebhookConfiguration", "pullguard"),
        ]
    )
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"} | {
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    }
    for doc in rendered:
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]


def test_the_policy_is_its_own_kustomization_and_the_embedded_default(
    cluster: Cluster, rendered: list[dict[str, Any]]
) -> None:
    """The install never ships the policy (re-applying it must not reset an operator's edits); manifests/policy/
    renders it alone, in pullguard's namespace."""
    assert "ConfigMap" not in by_kind(rendered)
    (configmap,) = render(cluster, str(MANIFESTS / "policy"))
    assert (configmap["kind"], configmap["metadata"]["name"]) == ("ConfigMap", "pullguard-policy")
    assert configmap["metadata"]["namespace"] == NAMESPACE
    text = configmap["data"]["policy.yaml"]
    assert text == DEFAULT_POLICY_YAML
    assert parse_policy(text) == parse_policy(DEFAULT_POLICY_YAML)


def test_rbac_is_read_only_but_for_its_own_certificate_and_webhooks(rendered: list[dict[str, Any]]) -> None:
    kinds = by_kind(rendered)
    (cluster_role,) = kinds["ClusterRole"]
    (role,) = kinds["Role"]
    assert cluster_role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets", "serviceaccounts", "nodes"], "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["admissionregistration.k8s.io"],
            "resources": ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"],
            "resourceNames": ["pullguard"],
            "verbs": ["get", "list", "watch", "patch"],
        },
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["pullguard-tls"], "verbs": ["update"]},
    ]
    for binding in kinds["ClusterRoleBinding"] + kinds["RoleBinding"]:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pullguard", "namespace": NAMESPACE}]


def test_deployment_is_hardened(rendered: list[dict[str, Any]]) -> None:
    kinds = by_kind(rendered)
    (deployment,) = kinds["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "pullguard"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["affinity"]["podAntiAffinity"]
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["args"] == [
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8443",
        "--cert-dir",
        "/certs",
        "--namespace",
        "$(POD_NAMESPACE)",
        "--manage-certs",
        "--mutate-only-with-mirrors",
        "--shutdown-delay",
        "5",
        "--metrics-port",
        "9090",
    ]
    assert pod["terminationGracePeriodSeconds"] >= 5 + 20  # the delay, then in-flight reviews
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"scheme": "HTTPS", "path": path, "port": "https"}
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "memory" in container["resources"]["limits"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["certs"]["mountPath"] == "/certs" and not mounts["certs"].get("readOnly")
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["certs"]["emptyDir"]["medium"] == "Memory"  # written from Secret pullguard-tls by pullguard

    (pdb,) = kinds["PodDisruptionBudget"]
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    (service,) = kinds["Service"]
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"},
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"},
    ]


def test_webhook_configurations(rendered: list[dict[str, Any]]) -> None:
    kinds = by_kind(rendered)
    (validating,) = kinds["ValidatingWebhookConfiguration"]
    (_, policy_webhook) = validating["webhooks"]
    assert policy_webhook["name"] == "policy.pullguard.io"
    assert policy_webhook["rules"][0]["resources"] == ["configmaps"]
    assert policy_webhook["matchConditions"][0]["expression"] == "object.metadata.name == 'pullguard-policy'"
    assert policy_webhook["namespaceSelector"]["matchExpressions"][0]["values"] == [NAMESPACE]
    assert policy_webhook["failurePolicy"] == "Ignore" and "caBundle" not in policy_webhook["clientConfig"]
    for kind, endpoint in (("ValidatingWebhookConfiguration", "validate"), ("MutatingWebhookConfiguration", "mutate")):
        (configuration,) = kinds[kind]
        webhook = configuration["webhooks"][0]
        assert webhook["clientConfig"]["service"] == {
            "name": "pullguard",
            "namespace": NAMESPACE,
            "path": f"/{endpoint}",
            "port": 443,
        }
        # pullguard injects it; a value here would be put back by every re-apply
        assert "caBundle" not in webhook["clientConfig"]
        assert webhook["sideEffects"] == "None"
        assert webhook["timeoutSeconds"] == 10
        assert webhook["failurePolicy"] == "Ignore"
        assert webhook["admissionReviewVersions"] == ["v1"]
        assert webhook["namespaceSelector"] == {
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", NAMESPACE]}
            ]
        }
        # The same kinds and operations the e2e harness registers pullguard for.
        assert webhook["rules"] == WEBHOOK_RULES
        if endpoint == "mutate":
            assert webhook["reinvocationPolicy"] == "IfNeeded"


def test_server_side_dry_run_of_the_release(cluster: Cluster, pullguard_namespace: str, released: Path) -> None:
    result = cluster.kubectl("apply", "--dry-run=server", "-f", str(released / "install.yaml"), timeout=TIMEOUT)
    lines = result.stdout.splitlines()
    assert all(line.endswith("(server dry run)") for line in lines), result.stdout
    for expected in (
        "deployment.apps/pullguard",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/pullguard",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/pullguard",
        "poddisruptionbudget.policy/pullguard",
        "clusterrole.rbac.authorization.k8s.io/pullguard",
    ):
        assert any(line.startswith(expected + " ") for line in lines), (expected, result.stdout)
    assert len(lines) == 11 and not any(line.startswith("configmap/") for line in lines)
    # Dry run: nothing was stored.
    missing = cluster.kubectl("get", "deployment", "pullguard", "-n", NAMESPACE, check=False, timeout=TIMEOUT)
    assert "NotFound" in missing.stderr


def test_cert_manager_overlay_renders(cluster: Cluster, tmp_path: Path) -> None:
    refused = cluster.kubectl("kustomize", str(CERT_MANAGER), check=False, timeout=TIMEOUT)
    assert "out of bounds for value pullguard" in refused.stderr, refused  # the same guard: name the image first
    assert release(cluster, tmp_path, IMAGE, CERT_MANAGER).returncode == 0
    docs = [d for d in yaml.safe_load_all((tmp_path / "install.yaml").read_text()) if d]
    kinds = by_kind(docs)
    certificates = {c["metadata"]["name"]: c for c in kinds["Certificate"]}
    assert certificates["pullguard-tls"]["spec"]["secretName"] == "pullguard-tls"
    assert "pullguard.pullguard.svc" in certificates["pullguard-tls"]["spec"]["dnsNames"]
    assert certificates["pullguard-ca"]["spec"]["isCA"] is True
    assert {i["metadata"]["name"] for i in kinds["Issuer"]} == {"pullguard-selfsigned", "pullguard-ca"}
    for kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        (configuration,) = kinds[kind]
        assert configuration["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": "pullguard/pullguard-tls"}
        assert "caBundle" not in configuration["webhooks"][0]["clientConfig"]
    # cert-manager owns the certificate: the Secret is mounted and pullguard manages none of it.
    (deployment,) = kinds["Deployment"]
    assert deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] == "pullguard-tls"
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--manage-certs" not in args and "--mutate-only-with-mirrors" not in args  # both need the managed watch


def test_pod_template_meets_the_restricted_pod_security_standard(
    cluster: Cluster, rendered: list[dict[str, Any]]
) -> None:
    """A Pod made from the Deployment's template is admitted where Pod Security `restricted` is enforced."""
    namespace = f"e2e-restricted-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(namespace, labels={"pod-security.kubernetes.io/enforce": "restricted"})
    try:
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "pullguard", "namespace": namespace},
        }
        cluster.kubectl("create", "-f", "-", input=json.dumps(account), timeout=TIMEOUT)
        (deployment,) = by_kind(rendered)["Deployment"]
        template = deployment["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pullguard-0", "namespace": namespace, "labels": template["metadata"]["labels"]},
            "spec": template["spec"],
        }
        result = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), timeout=TIMEOUT)
        assert "pod/pullguard-0 created (server dry run)" in result.stdout
        assert "Warning" not in result.stderr, result.stderr
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False, timeout=TIMEOUT)
