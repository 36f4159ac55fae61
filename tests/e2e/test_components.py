"""The optional kustomize components (manifests/components/monitoring, networkpolicy): off in the base, rendered
by our kubectl's kustomize when an overlay asks for them, the NetworkPolicy accepted by the real API server, and
every metric the alerts read exported by a running `pullguard serve`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from policies.registry_facts import LookupStatus
from tests.e2e.cluster import REPO_ROOT, Cluster
from tests.server import start_pullguard

pytestmark = pytest.mark.timeout(150)

MANIFESTS = REPO_ROOT / "manifests"
COMPONENTS = ("monitoring", "networkpolicy")
# Series from outside pullguard the rules may read: Prometheus' own and kube-state-metrics'.
FOREIGN = {"up", "kube_deployment_status_replicas_unavailable"}
PROMQL_WORDS = {"sum", "rate", "by", "and", "or", "time", "offset", "on", "min", "max", "unless"}


def render(cluster: Cluster, directory: Path) -> list[dict[str, Any]]:
    text = cluster.kubectl("kustomize", str(directory), timeout=60).stdout
    return [d for d in yaml.safe_load_all(text) if d]


def overlay(tmp_path: Path, components: tuple[str, ...]) -> Path:
    """An overlay next to a copy of manifests/, as a user's repository would hold one."""
    shutil.copytree(MANIFESTS, tmp_path / "manifests")
    directory = tmp_path / "overlay"
    directory.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../manifests/base"],
        "components": [f"../manifests/components/{name}" for name in components],
        "images": [{"name": "pullguard", "newName": "registry.example.test/platform/pullguard", "newTag": "0.1.0"}],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


def kinds(docs: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(d["kind"], d["metadata"]["name"]) for d in docs}


def test_components_are_off_by_default_and_render_when_asked(cluster: Cluster, tmp_path: Path) -> None:
    optional = {("ServiceMonitor", "pullguard"), ("PrometheusRule", "pullguard"), ("NetworkPolicy", "pullguard")}
    base = render(cluster, MANIFESTS / "base")
    assert not kinds(base) & optional
    with_all = render(cluster, overlay(tmp_path, COMPONENTS))
    assert kinds(with_all) == kinds(base) | optional
    added = [d for d in with_all if (d["kind"], d["metadata"]["name"]) in optional]
    assert {d["metadata"]["namespace"] for d in added} == {"pullguard"}

    monitor = next(d for d in added if d["kind"] == "ServiceMonitor")
    service = next(d for d in with_all if d["kind"] == "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}

    policy = next(d for d in added if d["kind"] == "NetworkPolicy")
    deployment = next(d for d in with_all if d["kind"] == "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    ports = [p["containerPort"] for c in deployment["spec"]["template"]["spec"]["containers"] for p in c["ports"]]
    assert {p["port"] for p in policy["spec"]["ingress"][0]["ports"]} <= set(ports)


def test_the_network_policy_is_accepted_by_the_api_server(cluster: Cluster, tmp_path: Path) -> None:
    if cluster.kubectl("get", "namespace", "pullguard", check=False).returncode != 0:
        cluster.create_namespace("pullguard")  # a namespaced object is dry-run into an existing namespace
    docs = render(cluster, overlay(tmp_path, ("networkpolicy",)))
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy")
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(policy)).stdout
    assert "networkpolicy.networking.k8s.io/pullguard" in out


def test_alerts_read_only_metrics_pullguard_exports(cluster: Cluster, tmp_path: Path) -> None:
    docs = render(cluster, overlay(tmp_path, ("monitoring",)))
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    alerts = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert {"PullguardDenialSpike", "PullguardUnverifiableLookups", "PullguardCertificateExpiresSoon",
            "PullguardNotReady"} <= {a["alert"] for a in alerts}  # fmt: skip

    server = start_pullguard(tmp_path / "server")
    try:
        text = server.client().get("/metrics").text
    finally:
        server.stop()
    exported = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    exported |= {family.name for family in text_string_to_metric_families(text)}
    # Counters are exposed with _total; a histogram's series too. Families with no child yet still have HELP.
    exported |= {line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")}
    exported |= {f"{name}_total" for name in exported}

    for alert in alerts:
        expression = re.sub(r'"[^"]*"', '""', alert["expr"])  # label values are not metric names
        names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?=\s*[{\[]|\s*[-<>=/*+)]|\s*$)", expression))
        names -= PROMQL_WORDS
        names = {n for n in names if not n.isdigit()}
        labels = set(re.findall(r"([a-zA-Z_]+)\s*(?:=~|!=|=)", alert["expr"]))
        names -= labels
        unknown = {n for n in names if n not in exported and n not in FOREIGN}
        assert not unknown, (alert["alert"], unknown)
        assert any(n.startswith("pullguard_") for n in names) or names <= FOREIGN, alert["alert"]

    statuses = {s for a in alerts for m in re.findall(r'status=~"([^"]+)"', a["expr"]) for s in m.split("|")}
    assert statuses and statuses <= {str(s) for s in LookupStatus}
    decisions = {d for a in alerts for d in re.findall(r'decision!?="([^"]+)"', a["expr"])}
    assert decisions <= {"allowed", "warned", "denied", "patched", "skipped"}
