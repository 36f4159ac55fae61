"""The node's credentials in the plan (the kubelet's union order), the nodes' docker config file as pullguard reads
it, the policy's nodeCredentials and kubelet blocks, and the runtime a Node reports."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from policies.config import DEFAULT_POLICY, PolicyError, parse_policy
from policies.credentials import NodeCredentials
from policies.image.keyring import Keyring
from policies.image.pull_secret_parse import Credential, CredentialSource
from policies.model import ClusterFacts, Workload
from policies.plan import Side, plan
from tests.unit.cluster_helpers import container, dockerconfigjson
from webhook.kube.view import node_facts
from webhook.node.docker_config_files import NodeConfigFiles

IMAGE = "registry.example.com/team/app:1.0"
REPOSITORY = "registry.example.com/team/app"


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _node_keyring(user: str) -> Keyring:
    source = CredentialSource.of_node("node file /etc/node/config.json", "registry.example.com")
    return Keyring.from_entries([("registry.example.com", Credential(user, "pw", source=source))])


def test_the_plan_tries_the_pods_secrets_then_the_node_files_then_the_providers() -> None:
    provided = Credential("plugin", "pw", source=CredentialSource.of_node("credential provider test"))
    node = NodeCredentials(_node_keyring("file-user"), {REPOSITORY: (provided,)})
    secret = dockerconfigjson("regcred", {"registry.example.com": ("pod-user", "pw")})
    cluster = ClusterFacts(known=True, secrets={"regcred": secret})
    workload = Workload("Pod", "shop", "p", (container(IMAGE, secrets=("regcred",)),))
    (lookup,) = plan(workload, cluster, DEFAULT_POLICY, Side.VALIDATE, node).lookups
    assert [c.username for c in lookup.credentials] == ["pod-user", "file-user", "plugin"]
    assert [c.origin for c in lookup.credentials] == [
        "secret shop/regcred",
        "node file /etc/node/config.json",
        "credential provider test",
    ]


def test_node_credentials_apply_without_a_cluster_view() -> None:
    workload = Workload("Pod", "shop", "p", (container(IMAGE),))
    node = NodeCredentials(_node_keyring("file-user"))
    (lookup,) = plan(workload, ClusterFacts(), DEFAULT_POLICY, Side.VALIDATE, node).lookups
    assert [c.username for c in lookup.credentials] == ["file-user"]


def test_node_credentials_never_show_in_reprs() -> None:
    node = NodeCredentials(_node_keyring("file-user"))
    assert "pw" not in repr(node.lookup(REPOSITORY)) and "file-user" not in repr(node.lookup(REPOSITORY))


# --- the nodes' docker config file ---------------------------------------------------------------------------


def test_the_first_usable_file_is_used_as_the_kubelet_does(tmp_path: Path) -> None:
    broken = tmp_path / "config.json"
    broken.write_text("{not json")
    legacy = tmp_path / "node.dockercfg"
    legacy.write_text(json.dumps({"registry.example.com": {"auth": _auth("legacy", "pw")}}))
    files = NodeConfigFiles()
    held = files.keyring((str(tmp_path / "missing.json"), str(broken), str(legacy)))
    assert held.used == str(legacy) and held.problem is None
    (credential,) = held.keyring.lookup(REPOSITORY)
    assert credential.username == "legacy"
    assert credential.origin == f"node file {legacy}"


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {"registry.example.com": {"auth": _auth("first", "pw")}}}))
    files = NodeConfigFiles()
    assert files.keyring((str(path),)).keyring.lookup(REPOSITORY)[0].username == "first"
    path.write_text(json.dumps({"auths": {"registry.example.com": {"auth": _auth("second-user", "pw")}}}))
    assert files.keyring((str(path),)).keyring.lookup(REPOSITORY)[0].username == "second-user"


def test_no_usable_file_is_a_problem_that_names_each_file_but_no_content(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text('{"auths": {"registry.example.com": {"auth": "c2VjcmV0LXZhbHVl"}}}')  # no ':' in it
    held = NodeConfigFiles().keyring((str(bad), str(tmp_path / "absent.json")))
    assert held.used is None and held.problem is not None
    assert str(bad) in held.problem and "absent.json" in held.problem
    assert "secret-value" not in held.problem and "c2VjcmV0" not in held.problem
    assert held.keyring.lookup(REPOSITORY) == []


# --- the policy ------------------------------------------------------------------------------------------------


def test_defaults() -> None:
    assert "*.dkr.ecr.*.amazonaws.com" in DEFAULT_POLICY.node_credentials.registries
    assert DEFAULT_POLICY.kubelet.image_pull_credentials_verification_policy == "NeverVerifyPreloadedImages"
    assert DEFAULT_POLICY.kubelet.node_status_max_images == 50


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("nodeCredentials: {registries: ['a b']}", "nodeCredentials: registries: 'a b' is not a keyring pattern"),
        ("nodeCredentials: {credentialProviderConfig: /x}", "give both credentialProviderConfig and"),
        ("nodeCredentials: {dockerConfigFile: /x}", "nodeCredentials.dockerConfigFile: unknown key"),
        ("kubelet: {imagePullCredentialsVerificationPolicy: Sometimes}", "kubelet.imagePullCredentialsVerification"),
        ("kubelet: {preloadedImagesVerificationAllowlist: ['nginx:1.27']}", "'nginx:1.27': an image name without"),
        ("kubelet: {preloadedImagesVerificationAllowlist: ['reg/*/x']}", "an image name without tag or digest"),
        ("kubelet: {nodeStatusMaxImages: -2}", "kubelet.nodeStatusMaxImages"),
    ],
)
def test_bad_node_settings_name_the_key(text: str, error: str) -> None:
    with pytest.raises(PolicyError) as raised:
        parse_policy(text)
    assert error in str(raised.value)


def test_allowlist_takes_the_kubelets_patterns() -> None:
    policy = parse_policy("kubelet: {preloadedImagesVerificationAllowlist: ['registry.example.com/team/*', 'nginx']}")
    assert policy.kubelet.preloaded_images_verification_allowlist == ("registry.example.com/team/*", "nginx")


# --- the runtime a Node reports -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "containerd"),
    [("containerd://1.6.20", True), ("cri-o://1.30.2", False), (None, True), ("docker://24.0.7", False)],
)
def test_node_runtime(version: str | None, containerd: bool) -> None:
    status = {"nodeInfo": {"containerRuntimeVersion": version}} if version else {}
    facts = node_facts({"metadata": {"name": "n"}, "status": status})
    assert facts.runtime == (version or "")
    assert facts.runs_containerd is containerd
