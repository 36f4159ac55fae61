"""`pullguard check` without a live cluster: a pull secret absent from the input is not verifiable, and says so
once in the summary; it is missing only with --kubeconfig or --complete-input."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.registry_helpers import map_host
from tests.support.pushers import push_single_arch
from tests.support.registry import RegistryServer


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "check", "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def deployment(image: str, **pod: object) -> dict:
    spec = {"containers": [{"name": "web", "image": image}, {"name": "side", "image": image}], **pod}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"template": {"spec": spec}},
    }


def write(path: Path, *objects: dict) -> Path:
    path.write_text("---\n".join(json.dumps(o) + "\n" for o in objects))
    return path


def test_a_service_account_in_the_input_does_not_make_secrets_missing(tmp_path: Path) -> None:
    """A chart's ServiceAccount (another namespace's too) used to make every pull secret "does not exist"."""
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "builder", "namespace": "shop"},
        "imagePullSecrets": [{"name": "gone"}],
    }
    other = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x", "namespace": "elsewhere"}}
    chart = write(
        tmp_path / "chart.yaml",
        account,
        other,
        deployment("registry.example.com/web:1", serviceAccountName="builder"),
        deployment("registry.example.com/api:1", imagePullSecrets=[{"name": "regcred"}])
        | {"metadata": {"name": "api", "namespace": "shop"}},
    )
    result = check("--offline", "-f", str(chart))
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["findings"] == []
    assert body["summary"]["unverifiablePullSecrets"] == 2  # one reference per workload, not per container
    note, offline = body["summary"]["notes"]
    assert offline.startswith(
        "not checked, no registry lookup (offline): imageExists (4 images), pullSecrets (4 images)"
    )
    assert note.startswith("pull secrets not verifiable: 2 references to 2 secrets not in the input")
    assert "gone in shop" in note and "regcred in shop" in note and "--complete-input" in note

    complete = check("--offline", "--complete-input", "-f", str(chart))
    assert complete.returncode == 0
    missing = [(f["name"], f["container"], f["message"]) for f in json.loads(complete.stdout)["findings"]]
    assert (
        "web",
        "web",
        'imagePullSecret "gone" (from its ServiceAccount) does not exist in namespace shop: '
        "the kubelet ignores it and pulls anonymously",
    ) in missing
    assert len(missing) == 4  # each container of each workload
    assert json.loads(complete.stdout)["summary"]["unverifiablePullSecrets"] == 0


def test_without_any_cluster_object_the_pods_own_secrets_are_counted(tmp_path: Path) -> None:
    pod = write(tmp_path / "pod.yaml", deployment("registry.example.com/web:1", imagePullSecrets=[{"name": "a"}]))
    body = json.loads(check("--offline", "-f", str(pod)).stdout)
    assert (body["findings"], body["summary"]["unverifiablePullSecrets"]) == ([], 1)
    assert body["summary"]["clusterSource"] == "none"
    complete = json.loads(check("--offline", "--complete-input", "-f", str(pod)).stdout)
    assert complete["summary"]["clusterSource"] == "input"
    assert {f["reason"] for f in complete["findings"]} == {"FailedToRetrieveImagePullSecret"}


def test_complete_input_and_kubeconfig_exclude_each_other(tmp_path: Path) -> None:
    result = check("--complete-input", "--kubeconfig", str(tmp_path / "kubeconfig"), "-f", "-")
    assert result.returncode == 2 and "not allowed with argument" in result.stderr


@pytest.mark.registry
def test_a_private_registry_with_the_secret_outside_the_input(basic_registry: RegistryServer, tmp_path: Path) -> None:
    """The registry wants credentials the unseen secret may hold: "could not verify", never a definite denial."""
    push_single_arch(basic_registry, "team/private", "1.0")
    image = f"{basic_registry.host}/team/private:1.0"
    hosts = map_host(tmp_path / "certs.d", basic_registry.host, basic_registry.url, basic_registry.ca_file)
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"mode: enforce\nregistry: {{hostsDir: {json.dumps(str(hosts))}, timeoutSeconds: 2}}\n")
    workload = deployment(image, imagePullSecrets=[{"name": "regcred"}])
    alone = write(tmp_path / "alone.yaml", workload)

    result = check("--config", str(policy), "-f", str(alone))
    assert result.returncode == 0, result.stdout + result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert [(f["check"], f["reason"], f["denies"]) for f in findings] == [("pullSecrets", "Unverified", False)] * 2
    assert 'answered unauthorized and pull secret "regcred" is out of sight (no cluster view)' in findings[0]["message"]

    declared = check("--config", str(policy), "--complete-input", "-f", str(alone))
    assert declared.returncode == 1
    reasons = {(f["reason"], f["denies"]) for f in json.loads(declared.stdout)["findings"]}
    assert reasons == {("FailedToRetrieveImagePullSecret", True), ("ErrImagePull", True)}

    auth = base64.b64encode(f"{basic_registry.username}:{basic_registry.password}".encode()).decode()
    config = {"auths": {basic_registry.host: {"auth": auth}}}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "regcred", "namespace": "shop"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    together = write(tmp_path / "together.yaml", secret, workload)
    clean = check("--config", str(policy), "--complete-input", "-f", str(together))
    assert clean.returncode == 0, clean.stdout
    assert json.loads(clean.stdout)["findings"] == []
