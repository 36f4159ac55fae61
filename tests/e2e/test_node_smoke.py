"""The test node (node.py) works: it becomes Ready, its kubelet really pulls from loopback registries, says
what real kubelets say when a pull fails, finds node credentials (a credential provider plugin, a docker
config in its root dir) and preloaded images (and re-pulls them under ``AlwaysVerify``), never changes the host's
sysctls or default paths, and what a killed run leaves behind is reaped.

The messages the kubelet reports are printed (``pytest -s`` shows them): they are what pullguard's findings
are compared with.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster_scenarios import docker_config, pull_secret
from tests.e2e.k8s_binaries import REPO_ROOT
from tests.e2e.node import KUBELET_SYSCTLS, KubeletOutcome, Node
from tests.e2e.node_containerd import tls_hosts_toml
from tests.e2e.node_images import build_runnable_image, push_runnable
from tests.e2e.node_ns import existing_host_paths, host_sysctls
from tests.e2e.node_reaper import NodeRecord, leftovers, reap_orphans, records_dir
from tests.support.credential_provider_plugin import API_VERSION, install_plugin, write_provider_config
from tests.support.image_model import PushedImage
from tests.support.registry import RegistryServer, start_basic_registry, start_plain_registry

# kubelet_node, node_namespace (the lead may instead import them into tests/e2e/conftest.py)

pytestmark = [pytest.mark.timeout(300), pytest.mark.registry]

PULL_FAILED = ("ErrImagePull", "ImagePullBackOff")


@dataclass(frozen=True)
class Registries:
    plain: RegistryServer
    app: PushedImage
    basic: RegistryServer
    private: PushedImage


@pytest.fixture(scope="module")
def registries(kubelet_node: Node) -> Iterator[Registries]:
    with contextlib.ExitStack() as stack:
        plain = stack.enter_context(start_plain_registry())
        basic = stack.enter_context(start_basic_registry())
        app = push_runnable(plain, "app", "1.0")
        private = push_runnable(basic, "private/app", "1.0")
        kubelet_node.set_registry_host(plain.host)
        assert basic.ca_file is not None
        kubelet_node.set_registry_host(basic.host, tls_hosts_toml(basic.host, basic.ca_file))
        yield Registries(plain, app, basic, private)


def pinned_kubernetes_version() -> str:
    """The k8s.io/kubernetes version tests/e2e/k8sbin/go.mod pins (what scripts/build-k8s-bins.sh builds)."""
    for line in (REPO_ROOT / "tests" / "e2e" / "k8sbin" / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "k8s.io/kubernetes" and parts[1].startswith("v1."):
            return parts[1]
    raise AssertionError("k8s.io/kubernetes is not in tests/e2e/k8sbin/go.mod")


def pod(name: str, image: str, **container: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "app", "image": image, **container}]}}


def report(what: str, outcome: KubeletOutcome) -> None:
    print(f"\n[kubelet] {what}: state={outcome.state} reason={outcome.reason}\n    message={outcome.message!r}")


def test_node_is_ready_and_describes_itself(kubelet_node: Node) -> None:
    node = kubelet_node.node_object()
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True"
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == pinned_kubernetes_version()
    assert info["containerRuntimeVersion"].startswith("containerd://1.6.")
    assert {"type": "InternalIP", "address": kubelet_node.node_ip} in node["status"]["addresses"]
    print(f"\n[node] started in {kubelet_node.start_seconds:.1f}s; runtime {info['containerRuntimeVersion']}")


def test_pod_from_a_plain_http_registry_runs(kubelet_node: Node, node_namespace: str, registries: Registries) -> None:
    outcome = kubelet_node.run_pod(node_namespace, pod("plain", registries.app.reference))
    assert outcome == KubeletOutcome("running", "", "")


def test_missing_tag_fails_to_pull(kubelet_node: Node, node_namespace: str, registries: Registries) -> None:
    image = f"{registries.plain.host}/app:no-such-tag"
    outcome = kubelet_node.run_pod(node_namespace, pod("missing-tag", image))
    report("missing tag", outcome)
    assert (outcome.state, outcome.reason) in {("waiting", reason) for reason in PULL_FAILED}
    assert "not found" in outcome.message


def test_missing_tag_backs_off(kubelet_node: Node, node_namespace: str, registries: Registries) -> None:
    image = f"{registries.plain.host}/app:no-such-tag-either"
    outcome = kubelet_node.run_pod(node_namespace, pod("backoff", image), decisive=frozenset({"ImagePullBackOff"}))
    report("missing tag, after the first retry", outcome)
    assert (outcome.state, outcome.reason) == ("waiting", "ImagePullBackOff")
    assert "not found" in outcome.message


def test_missing_repository_fails_to_pull(kubelet_node: Node, node_namespace: str, registries: Registries) -> None:
    image = f"{registries.plain.host}/no/such/repository:1.0"
    outcome = kubelet_node.run_pod(node_namespace, pod("missing-repo", image))
    report("missing repository", outcome)
    assert (outcome.state, outcome.reason) in {("waiting", reason) for reason in PULL_FAILED}
    assert "not found" in outcome.message


def test_never_pull_of_an_absent_image(kubelet_node: Node, node_namespace: str, registries: Registries) -> None:
    image = f"{registries.plain.host}/app:absent-from-node"
    outcome = kubelet_node.run_pod(node_namespace, pod("never", image, imagePullPolicy="Never"))
    report("Never, absent", outcome)
    assert (outcome.state, outcome.reason) == ("waiting", "ErrImageNeverPull")


def test_invalid_image_name(kubelet_node: Node, node_namespace: str, registries: Registries) -> None:
    image = f"{registries.plain.host}/UpperCase/app:1.0"
    outcome = kubelet_node.run_pod(node_namespace, pod("invalid", image))
    report("invalid name", outcome)
    assert (outcome.state, outcome.reason) == ("waiting", "InvalidImageName")


def test_private_registry_without_credentials(kubelet_node: Node, node_namespace: str, registries: Registries) -> None:
    outcome = kubelet_node.run_pod(node_namespace, pod("no-creds", registries.private.reference))
    report("unauthorized, no credentials", outcome)
    assert (outcome.state, outcome.reason) in {("waiting", reason) for reason in PULL_FAILED}
    assert "401 Unauthorized" in outcome.message or "unauthorized" in outcome.message.lower()


def test_private_registry_with_a_wrong_password(
    kubelet_node: Node, node_namespace: str, registries: Registries
) -> None:
    basic = registries.basic
    assert basic.username is not None
    secret = pull_secret(node_namespace, "wrong", basic.host, basic.username, "not-the-password")
    kubelet_node.cluster.apply(secret)
    manifest = pod("wrong-password", registries.private.reference)
    manifest["spec"]["imagePullSecrets"] = [{"name": "wrong"}]
    outcome = kubelet_node.run_pod(node_namespace, manifest)
    report("wrong password (pull secret)", outcome)
    assert (outcome.state, outcome.reason) in {("waiting", reason) for reason in PULL_FAILED}


def test_private_registry_with_a_pull_secret_runs(
    kubelet_node: Node, node_namespace: str, registries: Registries
) -> None:
    basic = registries.basic
    assert basic.username is not None and basic.password is not None
    kubelet_node.cluster.apply(pull_secret(node_namespace, "right", basic.host, basic.username, basic.password))
    manifest = pod("pull-secret", registries.private.reference)
    manifest["spec"]["imagePullSecrets"] = [{"name": "right"}]
    assert kubelet_node.run_pod(node_namespace, manifest) == KubeletOutcome("running", "", "")


def test_preloaded_images_run_without_a_pull(kubelet_node: Node, node_namespace: str) -> None:
    """``ctr images pull`` from a registry that is then stopped, and an archive import under the name of a
    registry that never existed: IfNotPresent runs both, and the Node lists them in ``status.images``."""
    with start_plain_registry() as gone:
        pulled = push_runnable(gone, "preloaded/app", "1.0").reference
        kubelet_node.preload(pulled)
    imported = "registry.invalid/airgap/app:1.0"
    kubelet_node.preload_image(build_runnable_image("air-gapped"), imported)
    for name, image in (("pulled", pulled), ("imported", imported)):
        outcome = kubelet_node.run_pod(node_namespace, pod(name, image, imagePullPolicy="IfNotPresent"))
        assert outcome == KubeletOutcome("running", "", ""), image
    kubelet_node.wait_for_image(pulled)
    kubelet_node.wait_for_image(imported)


def test_always_verify_pulls_a_preloaded_image_again(kubelet_node: Node) -> None:
    """``imagePullCredentialsVerificationPolicy: AlwaysVerify``: a preloaded image is not trusted, the kubelet
    pulls it (here from a registry that is gone) even with ``IfNotPresent``."""
    with Node.start(kubelet_node.cluster, name="always-verify-node",
                    image_pull_credentials_verification_policy="AlwaysVerify") as node:  # fmt: skip
        node.ensure_namespace("always-verify")
        with start_plain_registry() as gone:
            image = push_runnable(gone, "preloaded/app", "1.0").reference
            node.preload(image)
        outcome = node.run_pod("always-verify", pod("verify", image, imagePullPolicy="IfNotPresent"))
    report("AlwaysVerify, preloaded image, registry gone", outcome)
    assert (outcome.state, outcome.reason) in {("waiting", reason) for reason in PULL_FAILED}
    assert "connection refused" in outcome.message


def test_host_sysctls_and_paths_are_untouched(kubelet_node: Node) -> None:
    assert host_sysctls(KUBELET_SYSCTLS) == kubelet_node.host_sysctls_before
    assert existing_host_paths() == kubelet_node.host_paths_before
    # the kubelet did write them: inside the node's namespace they have the kubelet's values
    assert kubelet_node.read_sysctl("kernel.panic") == "10"
    assert kubelet_node.read_sysctl("vm.overcommit_memory") == "1"


# ----------------------------------------------------------------------------------------- node credentials


@pytest.fixture
def node_credentials_registry() -> Iterator[tuple[RegistryServer, PushedImage]]:
    with start_basic_registry() as basic:
        yield basic, push_runnable(basic, "private/app", "1.0")


@dataclass(frozen=True)
class OwnNodeRun:
    outcome: KubeletOutcome
    kubelet_log: str


def _run_on_own_node(
    kubelet_node: Node,
    registry: RegistryServer,
    image: PushedImage,
    name: str,
    **node_options: Any,
) -> OwnNodeRun:
    """Start a node with ``node_options`` on the session node's control plane, run one pod without pull
    secrets, stop the node; the host's sysctls and paths must be as before."""
    assert registry.ca_file is not None
    before = host_sysctls(KUBELET_SYSCTLS), existing_host_paths()
    with Node.start(kubelet_node.cluster, name=name,
                    registries_hosts={registry.host: tls_hosts_toml(registry.host, registry.ca_file)},
                    **node_options) as node:  # fmt: skip
        namespace = f"{name}-ns"
        node.ensure_namespace(namespace)
        outcome = node.run_pod(namespace, pod("node-credentials", image.reference))
        assert node.kubelet is not None
        log = node.kubelet.log_path.read_text(errors="replace")
        print(f"\n[node] {name} started in {node.start_seconds:.1f}s")
    assert (host_sysctls(KUBELET_SYSCTLS), existing_host_paths()) == before
    return OwnNodeRun(outcome, log)


def _plugin_node(
    kubelet_node: Node, registry: RegistryServer, image: PushedImage, tmp_path: Path, name: str, mode: str
) -> tuple[OwnNodeRun, list[dict[str, Any]]]:
    """Run the pod on a node whose credential provider plugin (for ``registry``) runs in ``mode``."""
    assert registry.username is not None and registry.password is not None
    bin_dir, log = tmp_path / "plugins", tmp_path / "plugin-requests.jsonl"
    install_plugin(bin_dir, "pullguard-test-provider")
    env = {"PLUGIN_USERNAME": registry.username, "PLUGIN_PASSWORD": registry.password, "PLUGIN_LOG": str(log),
           "PLUGIN_MODE": mode}  # fmt: skip
    config = write_provider_config(tmp_path / "credential-providers.yaml", name="pullguard-test-provider",
                                   match_images=[registry.host], env=env)  # fmt: skip
    run = _run_on_own_node(kubelet_node, registry, image, name,
                           credential_provider_config=config, credential_provider_bin_dir=bin_dir)  # fmt: skip
    requests = [json.loads(json.loads(line)["request"]) for line in log.read_text().splitlines()]
    return run, requests


def test_credential_provider_plugin_supplies_credentials(
    kubelet_node: Node,
    node_credentials_registry: tuple[RegistryServer, PushedImage],
    tmp_path: Path,
) -> None:
    registry, image = node_credentials_registry
    run, requests = _plugin_node(kubelet_node, registry, image, tmp_path, "provider-node", "ok")
    assert run.outcome == KubeletOutcome("running", "", "")
    # the kubelet asks for the repository, without tag or digest
    assert {r["image"] for r in requests} == {f"{image.host}/{image.repository}"}
    assert {(r["kind"], r["apiVersion"]) for r in requests} == {("CredentialProviderRequest", API_VERSION)}


@pytest.mark.parametrize("mode", ["fail", "garbage", "wrong-kind", "wrong-version", "huge", "empty"])
def test_a_failing_credential_provider_plugin_means_no_credentials(
    kubelet_node: Node,
    node_credentials_registry: tuple[RegistryServer, PushedImage],
    tmp_path: Path,
    mode: str,
) -> None:
    """Whatever goes wrong in the plugin, the kubelet pulls without credentials (and logs why)."""
    registry, image = node_credentials_registry
    run, requests = _plugin_node(kubelet_node, registry, image, tmp_path, f"provider-{mode}", mode)
    report(f"credential provider plugin, mode {mode}", run.outcome)
    assert requests, "the kubelet ran the plugin"
    assert (run.outcome.state, run.outcome.reason) in {("waiting", reason) for reason in PULL_FAILED}
    assert "401 Unauthorized" in run.outcome.message
    plugin_lines = [line for line in run.kubelet_log.splitlines() if "credential provider" in line.lower()]
    print("\n".join(f"    kubelet log: {line[:400]}" for line in plugin_lines[-3:]))


def test_node_docker_config_supplies_credentials(
    kubelet_node: Node,
    node_credentials_registry: tuple[RegistryServer, PushedImage],
    tmp_path: Path,
) -> None:
    registry, image = node_credentials_registry
    assert registry.username is not None and registry.password is not None
    config = docker_config(registry.host, registry.username, registry.password).encode()
    run = _run_on_own_node(kubelet_node, registry, image, "docker-config-node", node_docker_config=config)
    assert run.outcome == KubeletOutcome("running", "", "")


# ----------------------------------------------------------------------------------------- a killed run

_KILLED_RUN = """
import json, sys, time
from pathlib import Path
from tests.e2e.cluster import Cluster
from tests.e2e.node import Node
from tests.support.registry import start_plain_registry

cluster = Cluster.start(workdir=Path(sys.argv[1]) / "cluster")  # both under the test's tmp_path:
registry = start_plain_registry(workdir=Path(sys.argv[1]) / "registry")  # the killed child cannot remove them
node = Node.start(cluster, name="doomed-node", pause_registry=registry)
node.ensure_namespace("doomed")
name = node.create_pod("doomed", {"metadata": {"name": "p"},
                                  "spec": {"containers": [{"name": "c", "image": node.pause_image}]}})
print(json.dumps({"outcome": node.wait_outcome("doomed", name).state, "id": node.record.id}), flush=True)
time.sleep(600)
"""


def test_reaper_cleans_up_after_a_killed_run(kubelet_node: Node, tmp_path: Path) -> None:
    """SIGKILL a test process with a running pod: the daemons die with it, the shim and the container do not;
    the next node start's reaper removes them, the cgroups and the address."""
    child = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, str(tmp_path)], cwd=REPO_ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, child.stderr.read() if child.stderr else ""
        state = json.loads(line)
        assert state["outcome"] == "running"
        record = NodeRecord.load(records_dir() / f"{state['id']}.json")
        assert record is not None
    finally:
        child.kill()
        child.wait(timeout=30)
    assert leftovers(record)["shims"], "a running pod's shim outlives its test process"
    assert reap_orphans() == []
    assert leftovers(record) == {"shims": [], "cgroups": [], "address": False, "dirs": []}
