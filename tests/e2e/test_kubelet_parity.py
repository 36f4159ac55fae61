"""The kubelet differential table: each scenario's pod is created WITHOUT pullguard on a real node (kubelet 1.37
from the pinned module, containerd's CRI, runc), the kubelet's own status is awaited, and pullguard's verdict for
the same pod (`pullguard check --kubeconfig`, enforce mode, the node's own hosts.toml, plugin and config.json)
must agree: nothing denies a pod the kubelet runs, and every pull failure the kubelet reports is denied by the
check that predicts it, in the kubelet's class. While a failing pod exists, `pullguard explain` must confirm it.

Where pullguard by design cannot know, the table says so (`expect_unverified`/`expect_advisory`): such a finding
must be there, and must not deny. The world is described in kubelet_parity_setup.py.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster_scenarios import pull_secret
from tests.e2e.kubelet_parity_setup import PRELOADED, PRELOADED_PRIVATE, ParityWorld, parity_world
from tests.e2e.node import KubeletOutcome, Node
from tests.e2e.node_pods import pod_for_node

pytestmark = [pytest.mark.timeout(600), pytest.mark.registry]

PULL_FAILED = frozenset({"ErrImagePull", "ImagePullBackOff"})


@dataclass(frozen=True)
class Scenario:
    name: str
    registry: str  # a ParityWorld registry
    image: str  # repository:tag in it
    kubelet: str  # "running", or the kubelet's reason (ErrImagePull stands for ImagePullBackOff too)
    denied_by: str | None  # the check that must deny it; None: nothing may deny
    why: str
    pull_policy: str | None = None
    secret: str | None = None  # "right" | "wrong": a pull secret for the `locked` registry
    mutate: bool = False  # as the API server runs the webhooks: the mirror rewrite first
    expect_unverified: str | None = None  # a check that must say "could not verify" (never denying here)
    expect_advisory: str | None = None  # a check that must say something that never denies


SCENARIOS = (
    Scenario("public image", "public", "app:1.0", "running", None, "the registry serves it"),
    Scenario("missing tag", "public", "app:no-such-tag", "ErrImagePull", "imageExists", "manifest unknown"),
    Scenario("missing repository", "public", "no/such/repo:1.0", "ErrImagePull", "imageExists", "repository unknown"),
    Scenario("no credentials", "locked", "private/app:1.0", "ErrImagePull", "pullSecrets", "401, nothing to send"),
    Scenario("wrong password", "locked", "private/app:1.0", "ErrImagePull", "pullSecrets", "401", secret="wrong"),
    Scenario("right pull secret", "locked", "private/app:1.0", "running", None, "the secret's entry", secret="right"),
    Scenario("credential provider", "plugin", "private/app:1.0", "running", None, "the node's plugin, run alike"),
    Scenario("node config.json", "nodefile", "private/app:1.0", "running", None, "the node's file, held alike"),
    Scenario(
        "preloaded, registry lacks it",
        "public",
        PRELOADED,
        "running",
        None,
        "IfNotPresent: on the node, not pulled; the registry's 404 is only an advisory",
        expect_advisory="imageExists",
    ),
    Scenario(
        "preloaded private image",
        "locked",
        PRELOADED_PRIVATE,
        "running",
        None,
        "on the node; whether the kubelet pulled it with another pod's secret (KEP-2535) is not in the API",
        expect_unverified="pullSecrets",
    ),
    Scenario(
        "Never, absent",
        "public",
        "app:absent",
        "ErrImageNeverPull",
        "neverPull",
        "not on the node",
        pull_policy="Never",
    ),
    Scenario("Never, preloaded", "public", PRELOADED, "running", None, "on the node", pull_policy="Never"),
    Scenario("invalid name", "public", "UpperCase/app:1.0", "InvalidImageName", "reference", "uppercase"),
    Scenario("wrong architecture", "public", "arm64/app:1.0", "ErrImagePull", "architecture", "arm64 only"),
    Scenario("mirror source, as written", "source", "team/app:1.0", "ErrImagePull", "imageExists", "not there"),
    Scenario("mirror rewrite", "source", "team/app:1.0", "running", None, "the mirror serves it", mutate=True),
)


@pytest.fixture(scope="module")
def world(kubelet_node: Node, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParityWorld]:
    with parity_world(kubelet_node, tmp_path_factory.mktemp("parity")) as made:
        yield made


def pullguard(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "webhook.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def judge(world: ParityWorld, pod: dict[str, Any], tmp_path: Path, *, mutate: bool) -> tuple[list[Any], str]:
    """pullguard's findings for the pod (and what --mutate rewrote it to, "" when nothing)."""
    path = tmp_path / "pod.json"
    path.write_text(json.dumps(pod))
    kubeconfig = str(world.node.cluster.kubeconfig)
    args = ["check", "--kubeconfig", kubeconfig, "--config", str(world.policy), "--format", "json", "-f", str(path)]
    result = pullguard(*args, *(["--mutate"] if mutate else []))
    assert result.returncode in (0, 1), result.stdout + result.stderr
    rewrites = [line.split(" -> ", 1)[1] for line in result.stderr.splitlines() if ": rewrite " in line]
    return json.loads(result.stdout)["findings"], rewrites[0] if rewrites else ""


def explain(world: ParityWorld, namespace: str, name: str, policy: Path | None = None) -> dict[str, Any]:
    kubeconfig = str(world.node.cluster.kubeconfig)
    config = str(policy or world.policy)
    args = ["explain", f"pod/{name}", "-n", namespace, "--kubeconfig", kubeconfig, "--config", config]
    result = pullguard(*args, "--format", "json")
    assert result.returncode == 1, result.stdout + result.stderr  # something is failing
    (pod,) = json.loads(result.stdout)["pods"]
    (container,) = pod["containers"]
    return dict(container)


def kubelet_class(outcome: KubeletOutcome) -> str:
    if outcome.state == "running":
        return "running"
    return "ErrImagePull" if outcome.reason in PULL_FAILED else outcome.reason


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_pullguard_agrees_with_the_kubelet(
    world: ParityWorld, node_namespace: str, scenario: Scenario, tmp_path: Path
) -> None:
    node = world.node
    image = world.image(scenario.registry, scenario.image)
    container: dict[str, Any] = {"name": "app", "image": image}
    if scenario.pull_policy:
        container["imagePullPolicy"] = scenario.pull_policy
    spec: dict[str, Any] = {"containers": [container]}
    if scenario.secret:
        locked = world.locked
        assert locked.username is not None and locked.password is not None
        password = locked.password if scenario.secret == "right" else "not-the-password"
        node.cluster.apply(pull_secret(node_namespace, "regcred", locked.host, locked.username, password))
        spec["imagePullSecrets"] = [{"name": "regcred"}]
    name = scenario.name.lower().replace(" ", "-").replace(",", "").replace(".", "-")
    pod = pod_for_node({"metadata": {"name": name}, "spec": spec}, node_namespace, node.name)

    findings, rewritten = judge(world, pod, tmp_path, mutate=scenario.mutate)
    if scenario.mutate:
        assert rewritten == world.image("public", scenario.image), "the mirror rewrite did not happen"
        pod["spec"]["containers"][0]["image"] = rewritten  # what the mutating webhook's patch does

    denying = [(f["check"], f["reason"]) for f in findings if f["denies"]]
    with node.running_pod(node_namespace, pod) as outcome:
        seen = kubelet_class(outcome)
        assert seen == scenario.kubelet, f"the kubelet: {outcome}"
        if scenario.denied_by is None:
            assert denying == [], f"pullguard denies a pod the kubelet runs: {findings}"
        else:
            assert (scenario.denied_by, seen) in denying, f"pullguard misses {outcome}: {findings}"
            verdict = explain(world, node_namespace, name)
            assert verdict["verdict"] == "confirmed", verdict
    for check, field in ((scenario.expect_unverified, "Unverified"), (scenario.expect_advisory, None)):
        if check is not None:
            said = [f for f in findings if f["check"] == check and not f["denies"]]
            assert said, f"expected a non-denying {check} finding: {findings}"
            assert field is None or said[0]["reason"] == field, said


def test_explain_judges_with_the_node_credentials_it_is_given(
    world: ParityWorld, node_namespace: str, tmp_path: Path
) -> None:
    """`explain` asks with the policy's node credentials: holding credentials the node lacks, pullguard pulls
    what the kubelet could not (the node differs); told only that the nodes may hold some, the kubelet's own 401
    is the evidence, and pullguard's anonymous 401 the same."""
    locked = world.locked
    policy = json.loads(world.policy.read_text())
    held = tmp_path / "config.json"
    held.write_text(json.dumps({"auths": {locked.host: {"auth": _basic_auth(locked)}}}))
    policy["nodeCredentials"]["dockerConfigFiles"] = [str(held)]
    holding = tmp_path / "holding.yaml"
    holding.write_text(json.dumps(policy))
    policy["nodeCredentials"] = {"registries": [locked.host]}
    trusting = tmp_path / "trusting.yaml"
    trusting.write_text(json.dumps(policy))

    spec = {"containers": [{"name": "app", "image": world.image("locked", "private/app:1.0")}]}
    pod = pod_for_node({"metadata": {"name": "explained"}, "spec": spec}, node_namespace, world.node.name)
    with world.node.running_pod(node_namespace, pod) as outcome:
        assert kubelet_class(outcome) == "ErrImagePull", outcome
        assert explain(world, node_namespace, "explained")["verdict"] == "confirmed"
        differs = explain(world, node_namespace, "explained", policy=holding)
        assert differs["verdict"] == "notReproduced", differs
        assert any(f"node file {held}" in line for line in differs["evidence"]), differs
        # A prediction says "the nodes may hold credentials"; a pod that failed with 401 shows this node had none.
        settled = explain(world, node_namespace, "explained", policy=trusting)
        assert settled["verdict"] == "confirmed", settled
        assert settled["cause"].startswith("pullguard sees the same from here"), settled
        assert any(f["reason"] == "Unverified" for f in settled["findings"]), settled


def _basic_auth(registry: Any) -> str:
    return base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
