"""`pullguard check` with the nodes' own credentials, against a real htpasswd registry: the nodes' docker config
file, the kubelet's credential provider plugin (the test tree's, speaking the v1 protocol), and registries the
nodes authorize themselves. A pod with no pull secret is judged as the node would pull it."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.registry_helpers import map_host
from tests.support.credential_provider_plugin import install_plugin, write_provider_config
from tests.support.pushers import push_single_arch
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.registry

PLUGIN = "pullguard-test-provider"


def check(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """The input is the whole cluster view (--complete-input): the pod has no pull secret, for sure."""
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "check", "--format", "json", "--complete-input", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def private(basic_registry: RegistryServer, tmp_path: Path) -> tuple[str, Path]:
    """A private image, a pod pulling it with no pull secret, and the hosts dir that maps its loopback host."""
    push_single_arch(basic_registry, "team/node-creds", "1.0")
    image = f"{basic_registry.host}/team/node-creds:1.0"
    map_host(tmp_path / "certs.d", basic_registry.host, basic_registry.url, basic_registry.ca_file)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": "shop"},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }
    path = tmp_path / "pod.yaml"
    path.write_text(json.dumps(pod))
    return image, path


def _policy(tmp_path: Path, node_credentials: dict[str, Any]) -> Path:
    policy = {
        "mode": "enforce",
        "registry": {"hostsDir": str(tmp_path / "certs.d"), "timeoutSeconds": 4},
        "nodeCredentials": node_credentials,
    }
    path = tmp_path / "policy.yaml"
    path.write_text(json.dumps(policy))
    return path


def _findings(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    findings: list[dict[str, Any]] = json.loads(result.stdout)["findings"]
    return findings


def _plugin(tmp_path: Path, registry: RegistryServer, **env: str) -> dict[str, Any]:
    bin_dir = tmp_path / "plugins"
    install_plugin(bin_dir, PLUGIN)
    plugin_env = {"PLUGIN_USERNAME": registry.username, "PLUGIN_PASSWORD": registry.password, **env}
    config = write_provider_config(
        tmp_path / "credential-providers.yaml", name=PLUGIN, match_images=[registry.host], env=plugin_env
    )
    return {"credentialProviderConfig": str(config), "credentialProviderBinDir": str(bin_dir)}


def test_without_node_credentials_the_pull_is_unauthorized(
    basic_registry: RegistryServer, private: tuple[str, Path], tmp_path: Path
) -> None:
    _, pod = private
    result = check("--config", str(_policy(tmp_path, {"registries": []})), "-f", str(pod))
    assert result.returncode == 1, result.stdout + result.stderr
    (finding,) = _findings(result)
    assert (finding["check"], finding["reason"], finding["denies"]) == ("pullSecrets", "ErrImagePull", True)
    assert "requires credentials and the pod has none" in finding["message"]


def test_listed_as_a_node_registry_it_is_could_not_verify(
    basic_registry: RegistryServer, private: tuple[str, Path], tmp_path: Path
) -> None:
    _, pod = private
    result = check("--config", str(_policy(tmp_path, {"registries": [basic_registry.host]})), "-f", str(pod))
    assert result.returncode == 0, result.stdout + result.stderr
    (finding,) = _findings(result)
    assert (finding["reason"], finding["denies"]) == ("Unverified", False)
    assert f"the nodes may hold credentials for {basic_registry.host}" in finding["message"]


def test_the_nodes_docker_config_file_verifies_the_pull(
    basic_registry: RegistryServer, private: tuple[str, Path], tmp_path: Path
) -> None:
    _, pod = private
    auth = base64.b64encode(f"{basic_registry.username}:{basic_registry.password}".encode()).decode()
    config = tmp_path / "node-config.json"
    config.write_text(json.dumps({"auths": {basic_registry.host: {"auth": auth}}}))
    result = check(
        "--config", str(_policy(tmp_path, {"registries": [], "dockerConfigFiles": [str(config)]})), "-f", str(pod)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert _findings(result) == []


def test_the_credential_provider_plugin_verifies_the_pull(
    basic_registry: RegistryServer, private: tuple[str, Path], tmp_path: Path
) -> None:
    _, pod = private
    log = tmp_path / "plugin.log"
    settings = {"registries": [], **_plugin(tmp_path, basic_registry, PLUGIN_LOG=str(log))}
    result = check("--config", str(_policy(tmp_path, settings)), "-f", str(pod))
    assert result.returncode == 0, result.stdout + result.stderr
    assert _findings(result) == []
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    request = json.loads(entry["request"])
    assert request["kind"] == "CredentialProviderRequest"
    assert request["image"] == f"{basic_registry.host}/team/node-creds"  # the kubelet's repository, no tag


def test_credentials_a_plugin_gives_that_the_registry_rejects_are_named_never_shown(
    basic_registry: RegistryServer, private: tuple[str, Path], tmp_path: Path
) -> None:
    _, pod = private
    settings = {"registries": [], **_plugin(tmp_path, basic_registry, PLUGIN_PASSWORD="wrong-pw-9f3a1c")}
    result = check("--config", str(_policy(tmp_path, settings)), "-f", str(pod))
    assert result.returncode == 1, result.stdout + result.stderr
    (finding,) = _findings(result)
    assert f"rejected the credentials of credential provider {PLUGIN}" in finding["message"]
    assert "wrong-pw-9f3a1c" not in result.stdout + result.stderr


@pytest.mark.parametrize("mode", ["fail", "garbage", "wrong-kind", "hang"])
def test_a_failing_plugin_is_could_not_verify_naming_it(
    basic_registry: RegistryServer, private: tuple[str, Path], tmp_path: Path, mode: str
) -> None:
    _, pod = private
    settings = {"registries": [], **_plugin(tmp_path, basic_registry, PLUGIN_MODE=mode)}
    result = check("--config", str(_policy(tmp_path, settings)), "-f", str(pod))  # a hang ends within the budget
    assert result.returncode == 0, result.stdout + result.stderr
    (finding,) = _findings(result)
    assert (finding["reason"], finding["denies"]) == ("Unverified", False)
    assert f"could not verify: credential provider {PLUGIN}: " in finding["message"]
    assert basic_registry.password not in result.stdout + result.stderr


def test_an_unusable_provider_config_is_could_not_verify_naming_the_file(
    basic_registry: RegistryServer, private: tuple[str, Path], tmp_path: Path
) -> None:
    _, pod = private
    config = tmp_path / "credential-providers.yaml"
    config.write_text("apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders: [{name: x}]\n")
    settings = {"registries": [], "credentialProviderConfig": str(config), "credentialProviderBinDir": str(tmp_path)}
    result = check("--config", str(_policy(tmp_path, settings)), "-f", str(pod))
    assert result.returncode == 0, result.stdout + result.stderr
    (finding,) = _findings(result)
    assert (finding["reason"], finding["denies"]) == ("Unverified", False)
    assert f"could not verify: credential provider config {config} cannot be used" in finding["message"]
