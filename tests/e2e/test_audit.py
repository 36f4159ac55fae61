"""The background audit (webhook/audit/auditor.py) against a real kube-apiserver and real registries on loopback.

It runs in a control plane of its own (the audit walks every namespace, and other modules' workloads name images
on the internet). What breaks after admission is broken for real: a tag deleted from the registry (DELETE of its
manifest), a pull secret deleted, a new arm64-only node pool; the reports appear as PolicyReports
(`kubectl get policyreports -A`), and clear when it is fixed. Registry lookups are counted as they start, and the
registry's own access log counts its requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from policies.config import Policy, parse_policy
from policies.registry_facts import ImageFacts
from tests.e2e.cluster import Cluster
from tests.e2e.cluster_scenarios import NodeSpec, map_host, nodes, policy_configmap, pull_secret
from tests.server import start_pullguard
from tests.support import fixtures
from tests.support.image_model import LINUX_AMD64
from tests.support.polling import eventually
from tests.support.pushers import push_multiarch_index, push_single_arch
from tests.support.registry import RegistryServer, start_basic_registry, start_plain_registry
from webhook.audit.auditor import Auditor, TokenBucket
from webhook.audit.lease import Lease
from webhook.kube.informers import load_api_client
from webhook.registry.client import RegistryClient
from webhook.review.facts import FactGatherer
from webhook.sources.cluster import ClusterConnection, connect, wait_synced

pytestmark = [pytest.mark.timeout(240), pytest.mark.registry]
CRD = Path(__file__).resolve().parents[2] / "manifests" / "crds" / "policyreport-crd.yaml"
NS = "shop"


@dataclass
class Holder:
    policy: Policy


class CountingClient(RegistryClient):
    """The real client; each lookup (a cache miss that reaches the registry) is timed as it starts."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[float] = []

    async def lookup(self, *args: Any, **kwargs: Any) -> ImageFacts:
        self.starts.append(time.monotonic())
        return await super().lookup(*args, **kwargs)


@dataclass(frozen=True)
class Setup:
    cluster: Cluster
    plain: RegistryServer
    basic: RegistryServer
    hosts_dir: Path

    def policy(self, cache: str = "{positiveSeconds: 0, negativeSeconds: 0}") -> Policy:
        return parse_policy(
            f"mode: warn\nregistry:\n  hostsDir: {json.dumps(str(self.hosts_dir))}\n  timeoutSeconds: 5\n"
            f"  cache: {cache}\n"
        )


@pytest.fixture(scope="module")
def setup(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    fixtures.require_docker_registry()
    with contextlib.ExitStack() as stack:
        own = Cluster.start(bin_dir=cluster.bin_dir)  # the session cluster decides whether e2e runs at all
        stack.callback(own.stop)
        plain = stack.enter_context(start_plain_registry(access_log=True))
        basic = stack.enter_context(start_basic_registry())
        push_single_arch(plain, "app", "1.0", platform=LINUX_AMD64)
        push_multiarch_index(plain, "app", "1.1")
        push_multiarch_index(plain, "gone", "1.0")
        push_multiarch_index(basic, "private/app", "1.0")
        hosts_dir = tmp_path_factory.mktemp("audit") / "certs.d"
        map_host(hosts_dir, plain.host, plain.url)
        map_host(hosts_dir, basic.host, basic.url, basic.ca_file)
        own.kubectl("apply", "-f", str(CRD))
        own.kubectl("wait", "--for=condition=established", "crd/policyreports.wgpolicyk8s.io", "--timeout=60s")
        own.create_namespace(NS)
        own.create_namespace("pullguard")
        yield Setup(own, plain, basic, hosts_dir)


def deployment(name: str, image: str, pull_secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": image}]}
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels}, "spec": spec}},
    }


@contextlib.contextmanager
def view(cluster: Cluster) -> Iterator[ClusterConnection]:
    connection = connect(str(cluster.kubeconfig))
    assert wait_synced(connection, 30), connection.problems()
    try:
        yield connection
    finally:
        connection.stop()


def report(cluster: Cluster) -> dict[str, Any]:
    found: dict[str, Any] = cluster.kubectl_json("get", "policyreport", "pullguard-audit", "-n", NS)
    return found


def problems(cluster: Cluster) -> set[tuple[str, str, str]]:
    """(workload, check, result) of every result in the namespace's report."""
    return {(r["resources"][0]["name"], r["policy"], r["result"]) for r in report(cluster)["results"]}


def delete_manifest(registry: RegistryServer, repository: str, tag: str) -> None:
    accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"
    with httpx.Client(base_url=registry.url) as http:
        digest = http.head(f"/v2/{repository}/manifests/{tag}", headers={"Accept": accept}).headers[
            "Docker-Content-Digest"
        ]
        assert http.delete(f"/v2/{repository}/manifests/{digest}").status_code == 202
        assert http.head(f"/v2/{repository}/manifests/{tag}", headers={"Accept": accept}).status_code == 404


def test_audit_finds_what_broke_after_admission_and_clears_it(setup: Setup) -> None:
    cluster, plain, basic = setup.cluster, setup.plain, setup.basic
    cluster.apply(pull_secret(NS, "regcred", basic.host, basic.username or "", basic.password or ""))
    cluster.apply(
        [
            deployment("web", plain.reference("app", "1.1")),
            deployment("gone", plain.reference("gone", "1.0")),
            deployment("private", basic.reference("private/app", "1.0"), ("regcred",)),
            deployment("amd", plain.reference("app", "1.0")),
        ]
    )
    solo = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "solo", "namespace": NS},
        "spec": {"containers": [{"name": "app", "image": plain.reference("app", "1.1")}]},
    }
    cluster.apply(solo)
    done = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "done", "namespace": NS},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "app", "image": plain.reference("app", "9.9")}]},
    }
    cluster.apply(done)  # finished: it pulls nothing again, so its missing tag is no finding
    cluster.kubectl(
        "patch",
        "pod",
        "done",
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Succeeded"}}',
    )
    metrics = CollectorRegistry()

    async def scenario() -> None:  # one event loop, as in serve: the registry client lives in it
        with nodes(cluster, NodeSpec("amd64")), view(cluster) as connection:
            registry = RegistryClient()
            auditor = Auditor(
                load_api_client(str(cluster.kubeconfig)),
                FactGatherer(registry, connection.view),
                Holder(setup.policy()),
                interval=3600,
                rate=50,
                registry=metrics,
            )
            eventually(lambda: connection.view.nodes() and connection.view.secret(NS, "regcred"), "the caches")

            counts = await auditor.run_once()
            assert counts == {NS: 0}, report(cluster)
            clean = report(cluster)
            assert clean["summary"] == {"pass": 5, "fail": 0, "warn": 0, "error": 0, "skip": 0}, clean
            listed = cluster.kubectl("get", "policyreports", "-A").stdout
            assert "pullguard-audit" in listed and NS in listed, listed

            # What breaks without anyone applying anything: a deleted tag, a deleted secret, a new node pool.
            delete_manifest(plain, "gone", "1.0")
            cluster.kubectl("delete", "secret", "regcred", "-n", NS)
            with nodes(cluster, NodeSpec("arm64", prefix="pool-b")):
                eventually(
                    lambda: len(connection.view.nodes()) == 2 and not connection.view.secret(NS, "regcred"),
                    "the caches to see the changes",
                )
                await auditor.run_once()
                found = problems(cluster)
                assert ("gone", "imageExists", "warn") in found, found
                assert ("private", "pullSecrets", "warn") in found, found
                assert ("amd", "architecture", "warn") in found, found
                assert not any(name in ("web", "solo", "done") for name, _, _ in found), found
                broken = report(cluster)
                messages = " ".join(r["message"] for r in broken["results"])
                assert 'imagePullSecret "regcred" does not exist' in messages and "arm64" in messages, messages
                assert f"kubectl create secret docker-registry regcred -n {NS} --docker-server={basic.host}" in messages
                assert broken["summary"]["warn"] == len(broken["results"]) and broken["summary"]["pass"] == 2
                gone = next(r for r in broken["results"] if r["resources"][0]["name"] == "gone")
                assert gone["resources"][0]["kind"] == "Deployment" and gone["resources"][0]["uid"]
                assert gone["rule"] == "ErrImagePull" and gone["properties"]["image"] == plain.reference("gone", "1.0")
                assert (
                    metrics.get_sample_value("pullguard_audit_findings", {"namespace": NS, "check": "imageExists"}) == 1
                )
                assert (metrics.get_sample_value("pullguard_audit_last_run_timestamp_seconds") or 0) > time.time() - 60

            # Fixed: the tag is back, so is the secret, the arm64 pool is gone. The results leave the report.
            push_multiarch_index(plain, "gone", "1.0")
            cluster.apply(pull_secret(NS, "regcred", basic.host, basic.username or "", basic.password or ""))
            eventually(lambda: len(connection.view.nodes()) == 1 and connection.view.secret(NS, "regcred"), "the fixes")
            assert await auditor.run_once() == {NS: 0}
            assert report(cluster)["results"] == [] and report(cluster)["summary"]["pass"] == 5
            assert (
                metrics.get_sample_value("pullguard_audit_findings", {"namespace": NS, "check": "imageExists"}) is None
            )
            await registry.close()

    asyncio.run(scenario())
    for name in ("web", "gone", "private", "amd"):
        cluster.kubectl("delete", "deployment", name, "-n", NS)
    cluster.kubectl("delete", "pod", "solo", "done", "-n", NS)


def test_a_check_that_could_not_run_is_skip_never_pass(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 22: a CronJob with imagePullPolicy Never in a cluster with no Node: which images the nodes hold is
    unknown, so the report says `skip` (with why), not `pass`; and each round logs one line that counts it."""
    cluster = setup.cluster
    image = setup.plain.reference("app", "1.1")
    container = {"name": "job", "image": image, "imagePullPolicy": "Never"}
    template = {"spec": {"restartPolicy": "Never", "containers": [container]}}
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": NS},
        "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": template}}},
    }
    cluster.apply(cronjob)

    async def scenario() -> None:
        with view(cluster) as connection:
            assert connection.view.nodes() == ()
            registry = RegistryClient()
            gatherer = FactGatherer(registry, connection.view)
            auditor = Auditor(
                load_api_client(str(cluster.kubeconfig)), gatherer, Holder(setup.policy()), interval=3600, rate=50
            )
            with caplog.at_level("INFO", logger="pullguard"):
                assert await auditor.run_once() == {NS: 0}
            await registry.close()

    try:
        asyncio.run(scenario())
        found = report(cluster)
        assert found["summary"] == {"pass": 0, "fail": 0, "warn": 0, "error": 0, "skip": 1}, found
        (result,) = found["results"]
        assert (result["policy"], result["rule"], result["result"]) == ("neverPull", "noNodes", "skip")
        assert result["message"] == (
            f'neverPull not checked for container "job" image "{image}": no Node in the view it may run on'
        )
        (fields,) = [r.__dict__["fields"] for r in caplog.records if r.getMessage() == "audit round"]  # one per round
        assert (fields["workloads"], fields["findings"], fields["notChecked"], "durationMs" in fields) == (1, 0, 1, 1)
    finally:
        cluster.kubectl("delete", "cronjob", "nightly", "-n", NS)


def test_lookups_stay_within_the_rate(setup: Setup) -> None:
    cluster, plain = setup.cluster, setup.plain
    tags = [f"3.{i}" for i in range(8)]  # none exists: each is one lookup (manifest, then the tag list)
    cluster.apply([deployment(f"rate-{i}", plain.reference("app", tag)) for i, tag in enumerate(tags)])
    rate = 4.0
    try:

        async def scenario() -> None:
            registry = CountingClient()
            auditor = Auditor(
                load_api_client(str(cluster.kubeconfig)),
                FactGatherer(registry, None),
                Holder(setup.policy(cache="{positiveSeconds: 300, negativeSeconds: 300}")),
                3600,
                rate,
            )
            requests_before = plain.log_text().count("GET /v2/app/manifests/3.")
            await auditor.run_once()
            starts = registry.starts
            assert len(starts) == len(tags), starts
            for i in range(len(starts)):  # in any window: at most the burst (one second's worth) plus rate x window
                for j in range(i, len(starts)):
                    assert j - i + 1 <= rate + rate * (starts[j] - starts[i]) + 1e-6, (i, j, starts)
            assert starts[-1] - starts[0] >= (len(tags) - rate) / rate - 0.05
            requests = plain.log_text().count("GET /v2/app/manifests/3.") - requests_before
            assert requests >= len(tags), requests

            # The next round asks the registry nothing: every answer is in the shared cache.
            await auditor.run_once()
            assert len(registry.starts) == len(tags)
            assert plain.log_text().count("GET /v2/app/manifests/3.") - requests_before == requests
            await registry.close()

        asyncio.run(scenario())
        found = problems(cluster)
        assert len({p for p in found if p[2] != "skip"}) == len(tags)
        # no cluster view here: whether the pods' pull secrets work was not checked, and the report says so
        assert {(check, result) for _, check, result in found if result == "skip"} == {("pullSecrets", "skip")}
    finally:
        cluster.kubectl("delete", "deployment", *[f"rate-{i}" for i in range(len(tags))], "-n", NS)


def test_token_bucket() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)
    now = [0.0]
    bucket = TokenBucket(2, clock=lambda: now[0])

    async def take_three() -> float:
        started = time.monotonic()
        await bucket.take(2)  # the saved-up burst: no wait
        assert time.monotonic() - started < 0.1
        now[0] += 0.5  # half a second later: one more token
        await bucket.take(1)
        return time.monotonic() - started

    assert asyncio.run(take_three()) < 0.1


def test_one_replica_audits(setup: Setup) -> None:
    cluster = setup.cluster
    api = load_api_client(str(cluster.kubeconfig))
    first = Lease(api, "pullguard", "audit-test", "replica-a", 2)
    second = Lease(api, "pullguard", "audit-test", "replica-b", 2)
    assert first.acquire() and not second.acquire() and first.acquire()  # the holder renews
    time.sleep(2.5)  # replica-a stops renewing: its Lease expires
    assert second.acquire() and not first.acquire()
    lease = cluster.kubectl_json("get", "lease", "audit-test", "-n", "pullguard")
    assert lease["spec"]["holderIdentity"] == "replica-b" and lease["spec"]["leaseTransitions"] == 1

    async def two_auditors() -> tuple[int, int]:
        holder = Holder(setup.policy())

        def auditor(identity: str) -> Auditor:
            return Auditor(api, FactGatherer(None, None), holder, 0.2, 10, lease_namespace="pullguard",
                           lease_name="audit-loop", identity=identity, lease_seconds=30)  # fmt: skip

        a, b = auditor("a"), auditor("b")
        a.start()
        await asyncio.sleep(0.5)
        b.start()
        await asyncio.sleep(2.5)
        await a.stop()
        await b.stop()
        return a.rounds, b.rounds

    rounds_a, rounds_b = asyncio.run(two_auditors())
    assert rounds_a >= 1 and rounds_b == 0, (rounds_a, rounds_b)


def test_serve_audits_when_its_policy_turns_the_audit_on(setup: Setup, tmp_path: Path) -> None:
    """`serve` with a cluster runs the audit in its own event loop, switched on by the live policy's `audit`."""
    cluster, plain = setup.cluster, setup.plain
    cluster.apply(deployment("served", plain.reference("app", "7.7")))  # a tag that was never pushed
    policy = (
        f"mode: warn\nregistry: {{hostsDir: {json.dumps(str(setup.hosts_dir))}, timeoutSeconds: 5}}\n"
        "audit: {enabled: true, intervalSeconds: 60, lookupsPerSecond: 20}\n"
    )
    cluster.apply(policy_configmap("pullguard", policy, "pullguard-audit-policy"))
    args = ["--kubeconfig", str(cluster.kubeconfig), "--namespace", "pullguard"]
    extra = [*args, "--policy-configmap", "pullguard-audit-policy"]
    server = start_pullguard(tmp_path, offline=False, extra_args=extra, log_level="info", wait_for="/readyz")
    try:
        eventually(
            lambda: ("served", "imageExists", "warn") in problems(cluster),
            "the serve-run audit to report the missing tag",
            timeout=60,
        )
        with server.new_client() as client:
            assert "pullguard_audit_last_run_timestamp_seconds" in client.get("/metrics").text
    finally:
        server.stop()
        cluster.kubectl("delete", "deployment", "served", "-n", NS, check=False)
