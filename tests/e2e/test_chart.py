"""The Helm chart (charts/pullguard), with a real `helm` built from its pinned Go module (scripts/build-helm.sh):
linted, rendered equal to the kustomize install for the same settings, and installed, upgraded and uninstalled
against a real API server, where pullguard (run as its pod would run it, reached through the chart's
`webhook.url`) keeps denying under the operator's `enforce` policy across the upgrade."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import REPO_ROOT, Cluster
from tests.e2e.test_install import Install, ready, run_pullguard, untagged_pod
from tests.support.loopback import free_port
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(300)

CHART = REPO_ROOT / "charts" / "pullguard"
REPOSITORY, TAG = "registry.example.test/platform/pullguard", "0.1.0"
IMAGE_VALUES = ["--set", f"image.repository={REPOSITORY}", "--set", f"image.tag={TAG}"]
# Helm's own labels (pullguard.labels in _helpers.tpl): the only difference from the kustomize install.
HELM_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
}


@pytest.fixture(scope="module")
def helm() -> str:
    build = ["bash", str(REPO_ROOT / "scripts" / "build-helm.sh")]
    done = subprocess.run(build, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        message = f"helm could not be built: {done.stderr[-2000:]}"
        if os.environ.get("PULLGUARD_REQUIRE_E2E", "") not in ("", "0"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return str(Path(done.stdout.split()[-1]) / "helm")


def run(helm: str, *args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    config = ["--kubeconfig", str(kubeconfig)] if kubeconfig is not None else []
    return subprocess.run([helm, *args, *config], capture_output=True, text=True, timeout=120, check=False)


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def without_helm_labels(document: dict[str, Any]) -> dict[str, Any]:
    labels = document["metadata"].get("labels") or {}
    document["metadata"]["labels"] = {k: v for k, v in labels.items() if k not in HELM_LABELS}
    return document


def test_helm_lints_the_chart(helm: str) -> None:
    linted = run(helm, "lint", "--strict", str(CHART), *IMAGE_VALUES)
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ([], "image.repository is required: name the image you pushed (make push IMAGE=host/repo:tag)"),
        (["--set", f"image.repository={REPOSITORY}"], "image.tag or image.digest is required"),
        ([*IMAGE_VALUES, "--set", "replica=3"], "additional properties 'replica' not allowed"),
    ],
)
def test_rendering_without_an_image_or_with_a_typo_fails_saying_why(helm: str, values: list[str], said: str) -> None:
    done = run(helm, "template", "pullguard", str(CHART), "-n", "pullguard", *values)
    assert done.returncode != 0 and said in done.stderr, done.stderr


def test_another_namespace_is_refused(helm: str) -> None:
    done = run(helm, "template", "pullguard", str(CHART), "-n", "default", *IMAGE_VALUES)
    assert done.returncode != 0 and "install pullguard into namespace pullguard, not default" in done.stderr


def test_the_chart_renders_what_kustomize_renders(helm: str, cluster: Cluster, tmp_path: Path) -> None:
    """Same settings (the image, every optional part on), same objects, but for Helm's own labels."""
    switches = ["namespace.create", "audit.rbac", "networkPolicy.enabled", "monitoring.enabled"]
    values = [a for s in switches for a in ("--set", f"{s}=true")]
    rendered = run(helm, "template", "pullguard", str(CHART), "-n", "pullguard", *IMAGE_VALUES, *values)
    assert rendered.returncode == 0, rendered.stderr
    charted = [without_helm_labels(d) for d in documents(rendered.stdout)]
    overlay = {
        "resources": [os.path.relpath(REPO_ROOT / "manifests" / "base", tmp_path)],
        "components": [
            os.path.relpath(REPO_ROOT / "manifests" / "components" / name, tmp_path)
            for name in ("policyreports", "networkpolicy", "monitoring")
        ],
        "images": [{"name": "pullguard", "newName": REPOSITORY, "newTag": TAG}],
    }
    (tmp_path / "kustomization.yaml").write_text(json.dumps(overlay))
    kustomized = documents(cluster.kubectl("kustomize", str(tmp_path)).stdout)
    assert sorted(json.dumps(d, sort_keys=True) for d in charted) == sorted(
        json.dumps(d, sort_keys=True) for d in kustomized
    )


def test_the_policy_in_values_is_the_configmap(helm: str, tmp_path: Path) -> None:
    text = "mode: enforce\nexcludeNamespaces: [kube-system, pullguard]\n"
    (tmp_path / "policy.yaml").write_text(text)
    policy = ["--set-file", f"policy.text={tmp_path / 'policy.yaml'}"]
    done = run(helm, "template", "pullguard", str(CHART), "-n", "pullguard", *IMAGE_VALUES, *policy)
    (configmap,) = [d for d in documents(done.stdout) if d["kind"] == "ConfigMap"]
    assert configmap["metadata"]["name"] == "pullguard-policy" and configmap["data"]["policy.yaml"] == text
    unmanaged = run(helm, "template", "pullguard", str(CHART), "-n", "pullguard", *IMAGE_VALUES)
    assert not [d for d in documents(unmanaged.stdout) if d["kind"] == "ConfigMap"]


@pytest.fixture(scope="module")
def own(fresh_cluster: Cluster) -> Cluster:
    """A control plane of its own: the chart registers cluster-wide webhooks named `pullguard`."""
    return fresh_cluster


def test_install_upgrade_uninstall_keep_the_operators_policy(helm: str, own: Cluster, tmp_path: Path) -> None:
    port = free_port()
    url = ["--set", f"webhook.url=https://localhost:{port}"]
    install = run(helm, "install", "pullguard", str(CHART), "-n", "pullguard", "--create-namespace", *IMAGE_VALUES,
                  *url, kubeconfig=own.kubeconfig)  # fmt: skip
    assert install.returncode == 0, install.stderr
    assert "The policy is yours" in install.stdout  # NOTES.txt
    manifest = documents(run(helm, "get", "manifest", "pullguard", "-n", "pullguard", kubeconfig=own.kubeconfig).stdout)
    assert not [d for d in manifest if d["kind"] == "ConfigMap"]
    apps = f"apps-{uuid.uuid4().hex[:6]}"
    own.create_namespace(apps)
    process = run_pullguard(own, Install(tmp_path, port, "pullguard", manifest), tmp_path / "pullguard")
    try:
        eventually(lambda: ready(process), "/readyz once the CA is injected", timeout=60)
        own.kubectl("apply", "-k", str(REPO_ROOT / "manifests" / "policy"))
        enforce = json.dumps({"data": {"policy.yaml": "mode: enforce\n"}})
        own.kubectl("patch", "configmap", "pullguard-policy", "-n", "pullguard", "--type=merge", "-p", enforce)

        def denied() -> bool:
            attempt = own.kubectl("apply", "-f", "-", input=untagged_pod(apps), timeout=60, check=False)
            return attempt.returncode != 0 and "denied the request" in attempt.stderr

        eventually(denied, "enforce to deny an untagged image", timeout=30)

        values = ["--set", f"image.repository={REPOSITORY}", "--set", "image.tag=0.2.0", *url]
        upgrade = run(helm, "upgrade", "pullguard", str(CHART), "-n", "pullguard", *values, kubeconfig=own.kubeconfig)
        assert upgrade.returncode == 0, upgrade.stderr
        deployment = own.kubectl_json("get", "deployment", "pullguard", "-n", "pullguard", "-o", "json")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{REPOSITORY}:0.2.0"
        kept = own.kubectl_json("get", "configmap", "pullguard-policy", "-n", "pullguard", "-o", "json")
        assert kept["data"]["policy.yaml"] == "mode: enforce\n"
        assert ready(process) and denied(), "the upgrade kept the injected CA and the operator's policy"

        uninstall = run(helm, "uninstall", "pullguard", "-n", "pullguard", kubeconfig=own.kubeconfig)
        assert uninstall.returncode == 0, uninstall.stderr
        assert own.kubectl("get", "validatingwebhookconfiguration", "pullguard", check=False).returncode != 0
        allowed = own.kubectl("apply", "-f", "-", input=untagged_pod(apps), timeout=60, check=False)
        assert allowed.returncode == 0, allowed.stderr
        assert own.kubectl("get", "configmap", "pullguard-policy", "-n", "pullguard", check=False).returncode == 0
    finally:
        process.stop()
