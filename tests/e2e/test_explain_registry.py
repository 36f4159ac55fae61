"""`pullguard explain` against a real kube-apiserver and a real registry on loopback (mapped by hosts.toml), against
which pullguard confirms the cause of a pull failure written as a kubelet would (explain_pods.py); see
test_explain.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Cluster
from tests.e2e.cluster_scenarios import map_host, policy_text
from tests.e2e.explain_pods import (
    core_event,
    create_pod,
    only_container,
    pulled,
    waiting,
)
from tests.support import fixtures
from tests.support.image_model import LINUX_AMD64
from tests.support.pushers import push_multiarch_index, push_single_arch
from tests.support.registry import RegistryServer, start_plain_registry
from webhook.explain.verdict import DIFFERS

pytestmark = [pytest.mark.timeout(180)]


# --------------------------------------------------------------------------- 3. confirmed against a real registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, Path]]:
    fixtures.require_docker_registry()
    with contextlib.ExitStack() as stack:
        plain = stack.enter_context(start_plain_registry())
        push_single_arch(plain, "app", "1.0", platform=LINUX_AMD64)
        push_multiarch_index(plain, "app", "1.1")
        workdir = tmp_path_factory.mktemp("explain")
        hosts_dir = map_host(workdir / "certs.d", plain.host, plain.url)
        policy = workdir / "policy.yaml"
        policy.write_text(policy_text(hosts_dir, "warn", timeout_seconds=5))
        yield plain, policy


@pytest.mark.registry
def test_confirmed_against_a_real_registry(
    cluster: Cluster, namespace: str, run_explain: Any, registry: tuple[RegistryServer, Path]
) -> None:
    plain, policy = registry
    missing = plain.reference("app", "1.2")
    pod = create_pod(cluster, namespace, "missing-tag", missing)
    waiting(cluster, pod, "ErrImagePull", "")
    core_event(cluster, pod, "Failed", pulled(missing, "NotFound", f"{missing}: not found"))

    result = run_explain("pod/missing-tag", "-n", namespace, "--config", str(policy), "--format", "json")
    assert result.code == 1, result
    container = only_container(result)
    assert container["verdict"] == "confirmed", container
    assert f"not found in registry {plain.host}" in container["cause"]
    assert container["fix"].startswith("existing tags closest to it: 1.1"), container
    assert any("pullguard asked registry" in e and "notFound" in e for e in container["evidence"]), container
    text = run_explain("pod/missing-tag", "-n", namespace, "--config", str(policy))
    assert "cause:    confirmed by pullguard:" in text.out and "fix:      existing tags closest to it: 1.1" in text.out

    # The node could not resolve the registry, but from here it answers: the node's DNS/hosts.toml differ.
    present = plain.reference("app", "1.1")
    fine_here = create_pod(cluster, namespace, "node-dns", present)
    waiting(cluster, fine_here, "ErrImagePull", "")
    host = plain.host.split(":")[0]
    core_event(cluster, fine_here, "Failed", pulled(present, "Unknown", f"dial tcp: lookup {host}: no such host"))
    differs = only_container(run_explain("pod/node-dns", "-n", namespace, "--config", str(policy), "--format", "json"))
    assert differs["verdict"] == "notReproduced" and differs["cause"] == DIFFERS, differs
    assert "resolv.conf" in differs["fix"]

    # The node pulled anonymously and was refused; the cause is the pull secret that does not exist.
    secretless = create_pod(cluster, namespace, "no-secret", present, pull_secrets=["regcred"])
    waiting(cluster, secretless, "ErrImagePull", "")
    core_event(
        cluster,
        secretless,
        "Failed",
        pulled(present, "Unknown", "pulling from host x failed with status code [manifests 1]: 401 Unauthorized"),
    )
    secret = only_container(run_explain("pod/no-secret", "-n", namespace, "--config", str(policy), "--format", "json"))
    assert secret["class"] == "unauthorized" and secret["verdict"] == "confirmed", secret
    assert f'imagePullSecret "regcred" does not exist in namespace {namespace}' in secret["cause"]
    assert f"kubectl create secret docker-registry regcred -n {namespace} --docker-server={plain.host}" in secret["fix"]
