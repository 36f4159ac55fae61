"""The one-command install, proven on the real API server: `kubectl apply -k` of manifests/ (through a test overlay
that only points the webhooks at a loopback URL and at labelled namespaces), then pullguard run as its pod would
run it (the Deployment's own args, the ServiceAccount's TokenRequest token, in-cluster files). It creates its
certificate, injects its CA, answers `kubectl apply` with warnings, survives re-applying the manifests and a
rotation, and the manifests' RBAC is exactly enough: a removed verb shows on /readyz by name."""

from __future__ import annotations

import base64
import datetime
import json
import os
import socket
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.cluster import REPO_ROOT, Cluster
from tests.e2e.in_cluster import InClusterProcess, start_in_cluster
from tests.support.loopback import free_port
from tests.support.polling import eventually
from webhook.certs.secret import TLSBundle, service_hosts

pytestmark = pytest.mark.timeout(240)

APPS_LABEL = "pullguard-e2e-install"
KINDS = ("validatingwebhookconfiguration", "mutatingwebhookconfiguration")


@dataclass
class Install:
    overlay: Path
    port: int
    namespace: str
    rendered: list[dict[str, Any]]

    def args(self, cert_dir: Path) -> list[str]:
        """The Deployment's own args, with the address and the cert directory of this machine."""
        (deployment,) = [d for d in self.rendered if d["kind"] == "Deployment"]
        args = [
            a.replace("$(POD_NAMESPACE)", self.namespace)
            for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        ]
        values = {"--host": "127.0.0.1", "--port": str(self.port), "--cert-dir": str(cert_dir)}
        args = [values.get(args[i - 1], a) if i else a for i, a in enumerate(args)]
        # localhost: the name the webhooks dial here; a quick certificate check so a rotation shows in seconds
        return [*args, "--dns", "localhost", "--cert-check-seconds", "1", "--offline"]


def write_overlay(directory: Path, port: int, rbac_patches: list[dict[str, Any]] | None = None) -> tuple[Path, str]:
    """The manifests in a namespace of their own: without a namespace controller here, a deleted namespace stays
    Terminating for good, so no two tests may share one."""
    namespace = f"pullguard-install-{uuid.uuid4().hex[:6]}"
    directory.mkdir(parents=True, exist_ok=True)
    webhook_patch = []
    for endpoint in ("validate", "mutate"):
        webhook_patch.append(
            {
                "target": {
                    "group": "admissionregistration.k8s.io",
                    "kind": f"{'Validating' if endpoint == 'validate' else 'Mutating'}WebhookConfiguration",
                },
                "patch": json.dumps(
                    [
                        {"op": "remove", "path": "/webhooks/0/clientConfig/service"},
                        {
                            "op": "add",
                            "path": "/webhooks/0/clientConfig/url",
                            "value": f"https://localhost:{port}/{endpoint}",
                        },
                        {
                            "op": "replace",
                            "path": "/webhooks/0/namespaceSelector",
                            "value": {"matchLabels": {APPS_LABEL: "true"}},  # no other test's namespace
                        },
                        *(_policy_webhook(port, namespace) if endpoint == "validate" else []),
                    ]
                ),
            }
        )
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": [os.path.relpath(REPO_ROOT / "manifests" / "base", directory)],  # kustomize wants it relative
        "images": [{"name": "pullguard", "newName": "registry.example.test/platform/pullguard", "newTag": "0.1.0"}],
        "patches": webhook_patch + (rbac_patches or []),
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory, namespace


def _policy_webhook(port: int, namespace: str) -> list[dict[str, Any]]:
    """The policy ConfigMap webhook: by URL, and for this install's namespace (kustomize renames only objects)."""
    return [
        {"op": "remove", "path": "/webhooks/1/clientConfig/service"},
        {"op": "add", "path": "/webhooks/1/clientConfig/url", "value": f"https://localhost:{port}/validate"},
        {
            "op": "replace",
            "path": "/webhooks/1/namespaceSelector",
            "value": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
        },
    ]


@pytest.fixture
def install(cluster: Cluster, tmp_path: Path) -> Iterator[Install]:
    port = free_port()
    overlay, namespace = write_overlay(tmp_path / "overlay", port)
    yield from _installed(cluster, overlay, port, namespace)


def _installed(cluster: Cluster, overlay: Path, port: int, namespace: str) -> Iterator[Install]:
    rendered = [d for d in yaml.safe_load_all(cluster.kubectl("kustomize", str(overlay)).stdout) if d]
    applied = cluster.kubectl("apply", "-k", str(overlay), timeout=60)
    assert "validatingwebhookconfiguration.admissionregistration.k8s.io/pullguard created" in applied.stdout
    try:
        yield Install(overlay, port, namespace, rendered)
    finally:
        cluster.kubectl("delete", "-k", str(overlay), "--ignore-not-found", "--wait=false", timeout=60, check=False)


@pytest.fixture
def apps(cluster: Cluster) -> Iterator[str]:
    name = f"install-apps-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(name, labels={APPS_LABEL: "true"})
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def run_pullguard(cluster: Cluster, install: Install, workdir: Path) -> InClusterProcess:
    cert_dir = workdir / "certs"
    args = install.args(cert_dir)
    return start_in_cluster(cluster, install.namespace, "pullguard", args, workdir, install.port, cert_dir)


def ready(process: InClusterProcess) -> bool:
    answer = process.ready()
    return answer is not None and answer.status_code == 200


def secret_bundle(cluster: Cluster, namespace: str) -> TLSBundle:
    secret = cluster.kubectl_json("get", "secret", "pullguard-tls", "-n", namespace, "-o", "json")
    bundle = TLSBundle.from_secret(secret["data"])
    assert bundle is not None and secret["type"] == "kubernetes.io/tls"
    return bundle


def injected(cluster: Cluster) -> set[str]:
    return {
        cluster.kubectl_json("get", kind, "pullguard", "-o", "json")["webhooks"][0]["clientConfig"].get("caBundle", "")
        for kind in KINDS
    }


def untagged_pod(namespace: str) -> str:
    metadata = {"name": f"web-{uuid.uuid4().hex[:6]}", "namespace": namespace}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
    }
    return json.dumps(pod)


def served_serial(process: InClusterProcess) -> int:
    """The serial of the certificate a new handshake gets."""
    context = ssl.create_default_context(cafile=str(process.cert_dir / "ca.crt"))
    port = int(process.url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der or b"").serial_number


def test_one_apply_then_warnings_reapply_and_rotation(
    cluster: Cluster, install: Install, apps: str, tmp_path: Path
) -> None:
    process = run_pullguard(cluster, install, tmp_path / "pullguard")
    try:
        eventually(lambda: ready(process), "/readyz once the certificate is injected", timeout=60)
        eventually(lambda: _mutating_inert(cluster), "the mutating webhook to be inert without mirrors", timeout=30)
        bundle = secret_bundle(cluster, install.namespace)
        assert injected(cluster) == {base64.b64encode(bundle.ca_cert).decode()}
        assert (process.cert_dir / "tls.crt").read_bytes() == bundle.cert
        # start-up is told once per event: one injection line per configuration, one listening line
        started = process.logs()
        assert started.count('"msg":"caBundle injected"') == 2, started
        assert started.count('"msg":"pullguard listening"') == 1, started

        created = cluster.kubectl("apply", "-f", "-", input=untagged_pod(apps), timeout=60)
        assert 'Warning: pullguard: container "web" image "nginx" has no tag' in created.stderr, created

        # matchConditions: an UPDATE that changes no pod template never reaches pullguard; an image change does
        deployment = _deployment(apps, "nginx:1.27")
        cluster.kubectl("apply", "-f", "-", input=deployment, timeout=60)
        before = _deployment_reviews(process)
        cluster.kubectl("label", "deployment", "web", "-n", apps, "team=shop", timeout=60)
        cluster.kubectl("annotate", "deployment", "web", "-n", apps, "note=relabelled", timeout=60)
        assert _deployment_reviews(process) == before
        cluster.kubectl("apply", "-f", "-", input=_deployment(apps, "nginx:1.28"), timeout=60)
        # validating only: without a mirror rule the mutating webhook is inert (--mutate-only-with-mirrors)
        assert _deployment_reviews(process) == before + 1

        # the policy ConfigMap is checked at apply time: a typo is refused with its key path
        typo = cluster.kubectl("apply", "-f", "-", input=_policy(install.namespace, "mode: enforcee\n"), check=False)
        assert typo.returncode != 0, typo
        assert 'admission webhook "policy.pullguard.io" denied the request: pullguard policy rejected: ' in typo.stderr
        assert f"configmap {install.namespace}/pullguard-policy: mode: Input should be" in typo.stderr
        fixed = cluster.kubectl("apply", "-f", "-", input=_policy(install.namespace, "mode: warn\n"), timeout=60)
        assert "configmap/pullguard-policy created" in fixed.stdout, fixed  # the install ships no policy

        # re-applying the manifests (an upgrade, a GitOps sync) changes nothing that matters
        again = cluster.kubectl("apply", "-k", str(install.overlay), timeout=60)
        assert "pullguard unchanged" in again.stdout
        assert injected(cluster) == {base64.b64encode(bundle.ca_cert).decode()} and ready(process)
        created = cluster.kubectl("apply", "-f", "-", input=untagged_pod(apps), timeout=60)
        assert "has no tag" in created.stderr, created

        # a certificate past two thirds of its life is rotated by pullguard itself, same CA, no restart
        with process.client() as kept_alive:
            assert kept_alive.get("/healthz").status_code == 200
            hosts = [*service_hosts("pullguard", install.namespace), "localhost", "127.0.0.1", "::1"]
            old = bundle.rotated(hosts, now=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=300))
            cluster.kubectl("apply", "-f", "-", input=json.dumps(_secret(old, install.namespace)), timeout=60)
            planted = old.serving().serial_number
            eventually(
                lambda: secret_bundle(cluster, install.namespace).cert not in (old.cert, bundle.cert),
                "pullguard's rotation",
                30,
            )
            rotated = secret_bundle(cluster, install.namespace)
            assert rotated.ca_cert == bundle.ca_cert and not rotated.due(datetime.datetime.now(datetime.UTC), [])
            eventually(lambda: served_serial(process) == rotated.serving().serial_number, "the new certificate", 30)
            assert served_serial(process) != planted
            assert kept_alive.get("/healthz").status_code == 200  # the open connection went on
        created = cluster.kubectl("apply", "-f", "-", input=untagged_pod(apps), timeout=60)
        assert "has no tag" in created.stderr, created
    finally:
        process.stop()


def policy_overlay(directory: Path, namespace: str) -> Path:
    """manifests/policy/ (the policy, applied on its own) into the install's namespace."""
    directory.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": [os.path.relpath(REPO_ROOT / "manifests" / "policy", directory)],
    }
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return directory


def test_the_install_never_resets_the_operators_policy(
    cluster: Cluster, install: Install, apps: str, tmp_path: Path
) -> None:
    """Issue 22: the install ships no policy. Until the policy ConfigMap exists pullguard runs its embedded default
    and says so; once the operator has set `enforce`, re-applying the install (an upgrade, a GitOps sync) leaves it,
    and enforce still denies."""
    assert not [d for d in install.rendered if d["kind"] == "ConfigMap"], "the install renders no policy"
    process = run_pullguard(cluster, install, tmp_path / "pullguard")
    source = f"configmap {install.namespace}/pullguard-policy"
    try:
        eventually(lambda: ready(process), "/readyz", timeout=60)
        answer = process.ready()
        assert answer is not None
        assert answer.json()["policyNote"] == (
            f"{source} does not exist: the embedded default policy is in force until it is created"
        )
        created = cluster.kubectl("apply", "-k", str(policy_overlay(tmp_path / "policy", install.namespace)))
        assert "configmap/pullguard-policy created" in created.stdout, created

        def in_force(expected: str) -> bool:
            answer = process.ready()
            return answer is not None and answer.json().get("policy") == expected and "policyNote" not in answer.json()

        eventually(lambda: in_force(source), "the policy ConfigMap in force", timeout=30)

        enforce = json.dumps({"data": {"policy.yaml": "mode: enforce\n"}})  # as `kubectl edit` would leave it
        edit = ("patch", "configmap", "pullguard-policy", "-n", install.namespace, "--type=merge", "-p", enforce)
        cluster.kubectl(*edit)

        def denied() -> bool:
            attempt = cluster.kubectl("apply", "-f", "-", input=untagged_pod(apps), timeout=60, check=False)
            return attempt.returncode != 0 and "denied the request" in attempt.stderr

        eventually(denied, "enforce to deny an untagged image", timeout=30)

        again = cluster.kubectl("apply", "-k", str(install.overlay), timeout=60)
        assert "configmap" not in again.stdout, again.stdout  # the install does not touch the policy
        kept = cluster.kubectl_json("get", "configmap", "pullguard-policy", "-n", install.namespace, "-o", "json")
        assert kept["data"]["policy.yaml"] == "mode: enforce\n"
        assert denied(), "enforce still denies after the install was re-applied"
    finally:
        process.stop()
        cluster.kubectl("delete", "configmap", "pullguard-policy", "-n", install.namespace, check=False)


def _deployment(namespace: str, image: str) -> str:
    labels = {"app": "web"}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web", "image": image}]}}
    spec = {"replicas": 1, "selector": {"matchLabels": labels}, "template": template}
    metadata = {"name": "web", "namespace": namespace}
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec})


def _mutating_inert(cluster: Cluster) -> bool:
    webhook = cluster.kubectl_json("get", "mutatingwebhookconfiguration", "pullguard", "-o", "json")["webhooks"][0]
    return any(c["name"] == "pullguard-no-mirrors" for c in webhook.get("matchConditions", []))


def _deployment_reviews(process: InClusterProcess) -> float:
    """Every review pullguard answered, from its own metrics (skipped ones included: their `kind` label is empty);
    the apps namespace holds nothing but the Deployment."""
    with process.client() as client:
        families = text_string_to_metric_families(client.get("/metrics").text)
        return sum(
            sample.value
            for family in families
            for sample in family.samples
            if sample.name == "pullguard_admission_requests_total"
        )


def _policy(namespace: str, text: str) -> str:
    metadata = {"name": "pullguard-policy", "namespace": namespace}
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"policy.yaml": text}})


def _secret(bundle: TLSBundle, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "pullguard-tls", "namespace": namespace}, "data": bundle.secret_data()}  # fmt: skip


# Each removal must make pullguard unready and name why: the manifests' RBAC holds nothing it does not use.
REMOVALS = {
    "patch webhook configurations": ("ClusterRole", 1, ["get", "list", "watch"], "caBundle is not the serving CA"),
    "create the certificate Secret": ("Role", 1, ["get"], "certificate"),
    "list nodes": ("ClusterRole", 0, None, "nodes"),
    "list namespaces": ("ClusterRole", 2, ["watch"], "namespaces"),
}


@pytest.mark.parametrize("removal", list(REMOVALS))
def test_a_removed_verb_is_named_on_readyz(cluster: Cluster, tmp_path: Path, removal: str) -> None:
    kind, rule, verbs, named = REMOVALS[removal]
    port = free_port()
    if verbs is None:  # nodes out of the first ClusterRole rule
        op = {"op": "replace", "path": f"/rules/{rule}/resources", "value": ["secrets", "serviceaccounts"]}
    else:
        op = {"op": "replace", "path": f"/rules/{rule}/verbs", "value": verbs}
    rbac = {"target": {"kind": kind, "name": "pullguard"}, "patch": json.dumps([op])}
    overlay, namespace = write_overlay(tmp_path / "overlay", port, [rbac])
    installed = _installed(cluster, overlay, port, namespace)
    process = run_pullguard(cluster, next(installed), tmp_path / "pullguard")
    try:
        eventually(lambda: (r := process.ready()) is not None and named in r.text, f"/readyz naming {named}", 60)
        answer = process.ready()
        assert answer is not None and answer.status_code == 503, answer
    finally:
        process.stop()
        installed.close()
