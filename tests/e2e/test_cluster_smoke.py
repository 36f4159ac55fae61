"""The harness itself: a real apiserver stores, admits and serves what kubectl sends."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.cluster import REPO_ROOT, Cluster

# The first test also pays for starting the session's cluster (a few seconds;
# Cluster.start gives up after 90s with the apiserver log in the error).
pytestmark = pytest.mark.timeout(150)

KUBECTL_TIMEOUT = 30.0


def _pinned_k8s_version() -> str:
    go_mod = (REPO_ROOT / "tests" / "e2e" / "k8sbin" / "go.mod").read_text()
    match = re.search(r"^\s*k8s\.io/kubernetes (v1\.\d+\.\d+)\s*$", go_mod, re.MULTILINE)
    assert match, "k8s.io/kubernetes is not pinned in tests/e2e/k8sbin/go.mod"
    return match.group(1)


def test_apiserver_is_ready_and_reports_the_pinned_version(cluster: Cluster) -> None:
    with cluster.http_client() as client:
        assert client.get("/readyz").status_code == 200
        version = client.get("/version").json()
    assert version["gitVersion"] == _pinned_k8s_version()

    client_version = json.loads(cluster.kubectl("version", "--client", "-o", "json", timeout=KUBECTL_TIMEOUT).stdout)
    assert client_version["clientVersion"]["gitVersion"] == _pinned_k8s_version()


def test_admin_token_is_cluster_admin(cluster: Cluster) -> None:
    answer = cluster.kubectl("auth", "can-i", "*", "*", "--all-namespaces", timeout=KUBECTL_TIMEOUT)
    assert answer.stdout.strip() == "yes"


def test_admission_webhook_plugins_are_enabled(cluster: Cluster) -> None:
    # The webhook configuration APIs are served, and the flag we pass is in effect.
    resources = cluster.kubectl("api-resources", "--api-group=admissionregistration.k8s.io", "-o", "name")
    names = set(resources.stdout.split())
    assert "mutatingwebhookconfigurations.admissionregistration.k8s.io" in names
    assert "validatingwebhookconfigurations.admissionregistration.k8s.io" in names
    flags = (cluster.workdir / "kube-apiserver.log").read_text()
    assert re.search(r"FLAG: --enable-admission-plugins=.*MutatingAdmissionWebhook", flags)


def test_create_namespace_with_kubectl(cluster: Cluster) -> None:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    created = cluster.kubectl("create", "namespace", name, timeout=KUBECTL_TIMEOUT)
    assert f"namespace/{name} created" in created.stdout

    namespace = cluster.kubectl_json("get", "namespace", name, timeout=KUBECTL_TIMEOUT)
    assert namespace["status"]["phase"] == "Active"

    missing = cluster.kubectl("get", "namespace", "no-such-namespace", check=False, timeout=KUBECTL_TIMEOUT)
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr


DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.example.test/team/web:1.2.3
"""


def test_server_side_dry_run_of_a_deployment(cluster: Cluster, namespace: str) -> None:
    result = cluster.kubectl(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=DEPLOYMENT, timeout=KUBECTL_TIMEOUT
    )
    assert "deployment.apps/web created (server dry run)" in result.stdout

    # Dry run: defaulted by the server, but nothing stored.
    dry = cluster.kubectl_json(
        "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=DEPLOYMENT, timeout=KUBECTL_TIMEOUT
    )
    assert dry["spec"]["strategy"]["type"] == "RollingUpdate"
    assert dry["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    stored = cluster.kubectl("get", "deployment", "web", "-n", namespace, check=False, timeout=KUBECTL_TIMEOUT)
    assert stored.returncode != 0
    assert "NotFound" in stored.stderr


def test_pod_is_admitted_with_the_service_account_plugin_on(cluster: Cluster, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "registry.example.test/team/app:1"}]},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(pod), timeout=KUBECTL_TIMEOUT)
    stored = cluster.kubectl_json("get", "pod", "p", "-n", namespace, timeout=KUBECTL_TIMEOUT)
    assert stored["spec"]["serviceAccountName"] == "default"
    # Mutated by the ServiceAccount admission plugin exactly as in a real cluster.
    volumes = [v["name"] for v in stored["spec"]["volumes"]]
    assert any(v.startswith("kube-api-access-") for v in volumes)
    # No scheduler or kubelet: it just waits.
    assert stored["status"]["phase"] == "Pending"


@pytest.fixture
def node_name(cluster: Cluster) -> Iterator[str]:
    name = f"arm-node-{uuid.uuid4().hex[:8]}"
    yield name
    cluster.kubectl("delete", "node", name, "--ignore-not-found", check=False, timeout=KUBECTL_TIMEOUT)


def test_node_with_arm64_label_and_patched_status(cluster: Cluster, node_name: str) -> None:
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node_name,
            "labels": {
                "kubernetes.io/arch": "arm64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": node_name,
            },
        },
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(node), timeout=KUBECTL_TIMEOUT)

    status = {
        "status": {
            "images": [
                {
                    "names": [
                        "registry.example.test/team/web@sha256:" + "a" * 64,
                        "registry.example.test/team/web:1.2.3",
                    ],
                    "sizeBytes": 12345678,
                }
            ],
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
            "nodeInfo": {"architecture": "arm64", "operatingSystem": "linux"},
        }
    }
    cluster.kubectl(
        "patch",
        "node",
        node_name,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
        timeout=KUBECTL_TIMEOUT,
    )

    stored = cluster.kubectl_json("get", "node", node_name, timeout=KUBECTL_TIMEOUT)
    assert stored["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"
    images = stored["status"]["images"]
    assert images[0]["names"][1] == "registry.example.test/team/web:1.2.3"
    assert images[0]["sizeBytes"] == 12345678
    ready = [c for c in stored["status"]["conditions"] if c["type"] == "Ready"]
    assert ready
    assert ready[0]["status"] == "True"
    assert stored["status"]["nodeInfo"]["architecture"] == "arm64"

    # The same object through the label selector a webhook would use.
    by_arch = cluster.kubectl_json("get", "nodes", "-l", "kubernetes.io/arch=arm64", timeout=KUBECTL_TIMEOUT)
    assert node_name in [n["metadata"]["name"] for n in by_arch["items"]]
