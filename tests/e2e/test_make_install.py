"""`make install IMAGE=...` is one command against a real API server: the install with that image, and the default
policy only when the cluster has none; an upgrade (the same command again) keeps the operator's policy. Its own
control plane: the install registers cluster-wide webhooks named `pullguard`, which other tests register too."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.cluster import REPO_ROOT, Cluster

pytestmark = pytest.mark.timeout(240)

IMAGE = "registry.example.test/platform/pullguard:0.1.0"


@pytest.fixture(scope="module")
def own(fresh_cluster: Cluster) -> Cluster:
    return fresh_cluster


def make_install(cluster: Cluster, image: str) -> subprocess.CompletedProcess[str]:
    """The README's command; `-o` the venv stamps: the suite already runs in that venv (make would not rebuild it
    either, unless pyproject.toml is newer)."""
    command = ["make", "--no-print-directory", "-o", ".stamps/runtime", "-o", ".stamps/venv", "install"]
    variables = [f"IMAGE={image}", f"KUBECTL={cluster.bin_dir / 'kubectl'}", f"KUBECONFIG={cluster.kubeconfig}"]
    return subprocess.run(
        [*command, *variables], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_make_install_is_one_command_and_an_upgrade_keeps_the_policy(own: Cluster) -> None:
    refused = make_install(own, "")
    assert refused.returncode != 0 and "no image named" in refused.stderr, refused.stderr
    assert own.kubectl("get", "namespace", "pullguard", check=False).returncode != 0  # nothing was applied

    first = make_install(own, IMAGE)
    assert first.returncode == 0, first.stderr
    assert "deployment.apps/pullguard created" in first.stdout and "configmap/pullguard-policy created" in first.stdout
    deployment = own.kubectl_json("get", "deployment", "pullguard", "-n", "pullguard", "-o", "json")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == IMAGE

    enforce = json.dumps({"data": {"policy.yaml": "mode: enforce\n"}})
    own.kubectl("patch", "configmap", "pullguard-policy", "-n", "pullguard", "--type=merge", "-p", enforce)
    upgrade = make_install(own, IMAGE.replace("0.1.0", "0.2.0"))
    assert upgrade.returncode == 0, upgrade.stderr
    assert "configmap/pullguard-policy kept" in upgrade.stdout
    assert "deployment.apps/pullguard configured" in upgrade.stdout
    kept = own.kubectl_json("get", "configmap", "pullguard-policy", "-n", "pullguard", "-o", "json")
    assert kept["data"]["policy.yaml"] == "mode: enforce\n"


def test_uninstall_leaves_the_shared_policyreport_crd_and_other_tools_reports(own: Cluster, tmp_path: Path) -> None:
    """The CRD is applied on its own (manifests/crds/); removing the install, audit component included, keeps it
    and every other tool's reports."""
    own.kubectl("apply", "-k", str(REPO_ROOT / "manifests" / "crds"))
    own.kubectl("wait", "--for=condition=established", "crd/policyreports.wgpolicyk8s.io", "--timeout=60s")
    other = {
        "apiVersion": "wgpolicyk8s.io/v1alpha2",
        "kind": "PolicyReport",
        "metadata": {"name": "another-tool", "namespace": "default"},
        "results": [],
    }
    own.apply(other)
    overlay = {
        "resources": [os.path.relpath(REPO_ROOT / "manifests" / "base", tmp_path)],
        "components": [os.path.relpath(REPO_ROOT / "manifests" / "components" / "policyreports", tmp_path)],
        "images": [{"name": "pullguard", "newName": IMAGE.split(":", maxsplit=1)[0], "newTag": "0.1.0"}],
    }
    (tmp_path / "kustomization.yaml").write_text(json.dumps(overlay))
    rendered = own.kubectl("kustomize", str(tmp_path)).stdout
    assert "kind: CustomResourceDefinition" not in rendered and "kind: ClusterRole" in rendered
    own.kubectl("apply", "-f", "-", input=rendered)
    own.kubectl("delete", "-f", "-", "--wait=false", input=rendered)
    assert own.kubectl("get", "crd", "policyreports.wgpolicyk8s.io", check=False).returncode == 0
    assert own.kubectl("get", "policyreport", "another-tool", "-n", "default", check=False).returncode == 0
