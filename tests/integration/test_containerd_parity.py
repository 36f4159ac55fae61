"""pullguard's verdict equals containerd's: each scenario is pulled by the real containerd (`ctr images pull
--hosts-dir --user --platform`, DNS on loopback only) and judged by pullguard's whole pipeline (pod -> keyring ->
registry lookups -> checks), both reading the same hosts.toml directory. A disagreement fails with both outputs.

The credentials `ctr` gets are written into each scenario by hand from the kubelet's rules (keyring match by
image name; the pod's imagePullSecrets, else its ServiceAccount's; each matching entry tried in turn), so the
oracle's input does not come from pullguard's own keyring port.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from policies.config import Policy
from policies.decide import decide
from policies.model import Decision, Facts, Finding, Reason
from policies.registry_facts import LookupStatus
from tests.integration.containerd_parity_scenarios import (
    NAMESPACE,
    SCENARIOS,
    Scenario,
)
from tests.support.containerd import ContainerdDaemon, HostEntry, PullResult, containerd_fixture, write_hosts_dir
from tests.support.faults import RefusedEndpoint, refused_endpoint
from tests.support.pushers import PushedImage, push_arm64_only_index, push_multiarch_index, push_single_arch
from tests.support.registry import RegistryServer
from webhook.kube.view import StaticClusterView
from webhook.registry.client import RegistryClient
from webhook.review.facts import FactGatherer
from webhook.review.workloads import extract

pytestmark = pytest.mark.registry

# pullguard's lookup outcomes under containerd's names for the same result
_OUTCOMES = {
    LookupStatus.EXISTS: "exists",
    LookupStatus.NOT_FOUND: "notFound",
    LookupStatus.UNAUTHORIZED: "unauthorized",
    LookupStatus.DENIED: "denied",
    LookupStatus.TLS: "tls",
    LookupStatus.REFUSED: "refused",
    LookupStatus.DNS: "dns",
    LookupStatus.TIMEOUT: "timeout",
    LookupStatus.RATE_LIMITED: "rateLimited",
    LookupStatus.SERVER_ERROR: "serverError",
    LookupStatus.MALFORMED: "malformed",
}


@dataclass(frozen=True)
class World:
    hosts_dir: Path
    digests: Mapping[str, str]


@pytest.fixture(scope="module")
def containerd() -> Iterator[ContainerdDaemon]:
    yield from containerd_fixture()


@pytest.fixture(scope="module")
def down() -> Iterator[RefusedEndpoint]:
    with refused_endpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def world(
    plain_registry: RegistryServer,
    basic_registry: RegistryServer,
    token_registry: RegistryServer,
    down: RefusedEndpoint,
    tmp_path_factory: pytest.TempPathFactory,
) -> World:
    multi = push_multiarch_index(plain_registry, "pub/multi", "1.0")
    push_arm64_only_index(plain_registry, "pub/arm64only", "1.0")
    push_single_arch(plain_registry, "pub/single", "1.0")
    push_single_arch(plain_registry, "shared/app", "1.0")
    team: PushedImage = push_multiarch_index(basic_registry, "team/app", "1.0")
    push_arm64_only_index(basic_registry, "team/arm64only", "1.0")
    push_multiarch_index(token_registry, "private/app", "1.0")
    push_multiarch_index(token_registry, "allowed/app", "1.0")

    hosts = tmp_path_factory.mktemp("parity") / "certs.d"
    basic_ca = Path(basic_registry.ca_file or "")
    write_hosts_dir(hosts, "pub.example", server=plain_registry.url)
    write_hosts_dir(hosts, "priv.example", server=basic_registry.url, ca_file=basic_ca)
    # server = the same endpoint: a name that resolves nowhere would send pullguard's fall-through to a resolver
    own = HostEntry(basic_registry.url, ca_file=basic_ca)
    write_hosts_dir(hosts, "privhost.example", [own], server=basic_registry.url, ca_file=basic_ca)
    mirror = HostEntry(plain_registry.url)
    write_hosts_dir(hosts, "mirrored.example", [mirror], server=basic_registry.url, ca_file=basic_ca)
    write_hosts_dir(hosts, "tok.example", server=token_registry.url)
    write_hosts_dir(hosts, "untrusted.example", server=basic_registry.url)
    write_hosts_dir(hosts, "down.example", server=f"http://127.0.0.1:{down.port}")
    return World(hosts, {"multi": multi.digest, "team": team.digest})


def test_the_table_is_large_enough() -> None:
    assert len(SCENARIOS) >= 30
    assert len({s.id for s in SCENARIOS}) == len(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
async def test_pullguard_agrees_with_containerd(scenario: Scenario, world: World, containerd: ContainerdDaemon) -> None:
    image = scenario.image.format(**world.digests)
    pulled = kubelet_pull(containerd, scenario, image, world.hosts_dir)
    decision, facts = await pullguard_verdict(scenario, image, world.hosts_dir)
    verdict = pullguard_class(decision, facts)
    report = f"\ncontainerd: {pulled.outcome}\n{pulled.output}\npullguard: {verdict}\n{facts.images}\n" + "\n".join(
        j.finding.message for j in decision.findings
    )
    assert verdict == pulled.outcome, report
    assert pulled.outcome == scenario.expected, report
    _assert_messages_are_true(scenario, [j.finding for j in decision.findings], report)


def kubelet_pull(containerd: ContainerdDaemon, scenario: Scenario, image: str, hosts_dir: Path) -> PullResult:
    """The kubelet tries each matching credential in turn (kuberuntime_image.go PullImage); none: anonymous."""
    users = [f"{u}:{p}" for u, p in scenario.kubelet_users] or [None]
    results = []
    for user in users:
        result = containerd.pull(image, hosts_dir=hosts_dir, user=user, platform=f"linux/{scenario.arch}")
        if result.ok:
            return result
        results.append(result)
    return results[0]


async def pullguard_verdict(scenario: Scenario, image: str, hosts_dir: Path) -> tuple[Decision, Facts]:
    policy = Policy.model_validate({"mode": "enforce", "registry": {"hostsDir": str(hosts_dir), "timeoutSeconds": 10}})
    names = list(scenario.secrets)
    spec: dict[str, Any] = {
        "containers": [{"name": "app", "image": image}],
        "nodeSelector": {"kubernetes.io/arch": scenario.arch},
    }
    account: dict[str, Any] = {"apiVersion": "v1", "kind": "ServiceAccount"}
    account["metadata"] = {"name": "default", "namespace": NAMESPACE}
    if scenario.from_service_account:
        account["imagePullSecrets"] = [{"name": n} for n in names]
    elif names:
        spec["imagePullSecrets"] = [{"name": n} for n in names]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NAMESPACE}, "spec": spec}
    objects = [account, *(_secret(name, entries) for name, entries in scenario.secrets.items())]
    workload = extract("Pod", pod)
    registry = RegistryClient()
    try:
        facts = await FactGatherer(registry, StaticClusterView(objects)).gather(workload, policy)
    finally:
        await registry.close()
    return decide(workload, facts, policy), facts


def pullguard_class(decision: Decision, facts: Facts) -> str:
    """What pullguard predicts for the pull, in containerd's terms. A single-platform image on another
    architecture is pulled (the container fails later, at start): that is containerd's "exists"."""
    findings = [j.finding for j in decision.findings if not j.finding.advisory]
    if any(f.check == "architecture" and f.reason is Reason.ERR_IMAGE_PULL for f in findings):
        return "noMatchingPlatform"
    (found,) = facts.images.values()
    failing = [
        f for f in findings if f.check in ("imageExists", "pullSecrets") and f.reason is not Reason.SECRET_IGNORED
    ]
    if not failing:
        return "exists"
    return _OUTCOMES.get(found.status, str(found.status))


def _assert_messages_are_true(scenario: Scenario, findings: list[Finding], report: str) -> None:
    for finding in findings:
        if "no entry of" in finding.message:  # said only when no key of the pod's secrets matches the image
            assert not scenario.kubelet_users, report
        if "rejected the credentials" in finding.message:
            assert scenario.kubelet_users, report
        if finding.check == "architecture" and finding.reason is Reason.CRASH_LOOP_BACK_OFF:
            assert "exec format error" in finding.message, report


def _secret(name: str, entries: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    auths = {key: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()} for key, (u, p) in entries.items()}
    data = base64.b64encode(json.dumps({"auths": auths}).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {".dockerconfigjson": data},
    }
