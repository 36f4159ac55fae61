"""Self-managed certificates against the real API server: replicas racing to create the Secret agree on one CA,
a rotation keeps it and reaches every replica's files, and the webhook configurations get the CA injected again
after an apply overwrites it."""

from __future__ import annotations

import base64
import datetime
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.e2e.cluster import Cluster
from tests.support.polling import eventually
from webhook.certs.ca_injection import WebhookCAInjector
from webhook.certs.secret import SecretCertificates, TLSBundle
from webhook.kube.informers import load_api_client

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def api(cluster: Cluster) -> Iterator[client.ApiClient]:
    api_client = load_api_client(str(cluster.kubeconfig))
    yield api_client
    api_client.close()


def keeper(api: client.ApiClient, namespace: str, directory: Path, **kwargs: Any) -> SecretCertificates:
    return SecretCertificates(api, namespace, "pullguard-tls", "pullguard", directory, **kwargs)


def test_replicas_racing_at_start_share_one_secret(api: client.ApiClient, namespace: str, tmp_path: Path) -> None:
    replicas = [keeper(api, namespace, tmp_path / f"r{i}") for i in range(4)]
    results: list[TLSBundle] = []
    threads = [threading.Thread(target=lambda r=r: results.append(r.sync())) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 4 and len({r.ca_cert for r in results}) == 1 and len({r.cert for r in results}) == 1
    for i in range(4):
        assert (tmp_path / f"r{i}" / "tls.crt").read_bytes() == results[0].cert
        assert (tmp_path / f"r{i}" / "tls.key").stat().st_mode & 0o777 == 0o600
        assert not (tmp_path / f"r{i}" / "ca.key").exists()  # the CA key stays in the Secret
    secret = client.CoreV1Api(api).read_namespaced_secret("pullguard-tls", namespace)
    assert secret.type == "kubernetes.io/tls" and TLSBundle.from_secret(secret.data) == results[0]


def test_a_rotation_keeps_the_ca_and_reaches_every_replica(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    first = keeper(api, namespace, tmp_path / "a")
    original = first.sync()
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=300)  # past two thirds of a year
    rotating = keeper(api, namespace, tmp_path / "b", clock=lambda: later)
    rotated = rotating.sync()
    assert rotated.ca_cert == original.ca_cert and rotated.cert != original.cert
    assert first.sync() == rotated  # the other replica reads the new certificate and writes its files
    assert (tmp_path / "a" / "tls.crt").read_bytes() == rotated.cert
    # an unusable Secret (someone emptied it) is replaced, not served
    core = client.CoreV1Api(api)
    core.patch_namespaced_secret("pullguard-tls", namespace, {"data": {"tls.crt": "bm90IGEgY2VydA=="}})
    repaired = first.sync()
    assert (
        repaired.serving() is not None
        and TLSBundle.from_secret(core.read_namespaced_secret("pullguard-tls", namespace).data) == repaired
    )


def _configuration(kind: str, name: str, namespace: str, ca_bundle: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {"service": {"name": "pullguard", "namespace": namespace, "path": "/validate"}}
    if ca_bundle is not None:
        config["caBundle"] = ca_bundle
    webhook = {
        "name": f"{kind.lower()}.pullguard.io",
        "clientConfig": config,
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        "namespaceSelector": {"matchLabels": {"pullguard-e2e": "never"}},  # affects no other test
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Ignore",
    }
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
            "webhooks": [webhook]}  # fmt: skip


def test_the_ca_is_injected_and_injected_again_after_an_overwrite(
    cluster: Cluster, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    name = f"pullguard-{uuid.uuid4().hex[:8]}"
    kinds = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
    placeholder = "UExBQ0VIT0xERVI="
    cluster.apply([_configuration(kind, name, namespace, placeholder) for kind in kinds])
    bundle = keeper(api, namespace, tmp_path / "certs").sync()
    injector = WebhookCAInjector(api, name, lambda: bundle.ca_cert)
    try:
        injector.start()
        eventually(lambda: injector.missing() == [], "the caBundle of both configurations to be the CA", timeout=20)
        live = cluster.kubectl_json("get", "validatingwebhookconfiguration", name, "-o", "json")
        assert live["webhooks"][0]["clientConfig"]["caBundle"] == _b64(bundle.ca_cert)
        # an apply (an upgrade, a GitOps sync) that brings the placeholder back is undone
        cluster.apply([_configuration(kind, name, namespace, placeholder) for kind in kinds])
        eventually(
            lambda: all(
                cluster.kubectl_json("get", kind.lower(), name, "-o", "json")["webhooks"][0]["clientConfig"]["caBundle"]
                == _b64(bundle.ca_cert)
                for kind in kinds
            ),
            "the CA to be injected again",
            timeout=20,
        )
        # an apply without caBundle (the manifests' way) leaves the injected one in place
        cluster.apply([_configuration(kind, name, namespace, None) for kind in kinds])
        live = cluster.kubectl_json("get", "mutatingwebhookconfiguration", name, "-o", "json")
        assert live["webhooks"][0]["clientConfig"]["caBundle"] == _b64(bundle.ca_cert)
    finally:
        injector.stop()
        for kind in kinds:
            cluster.kubectl("delete", kind.lower(), name, "--ignore-not-found", check=False)


def test_missing_configurations_are_named(api: client.ApiClient, tmp_path: Path) -> None:
    injector = WebhookCAInjector(api, f"absent-{uuid.uuid4().hex[:6]}", lambda: b"-----BEGIN CERTIFICATE-----")
    try:
        injector.start()
        eventually(lambda: all("does not exist" in m for m in injector.missing()), "both lists", timeout=20)
        assert len(injector.missing()) == 2
    finally:
        injector.stop()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_two_replicas_converge_on_the_secrets_ca_without_fighting(
    cluster: Cluster, api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    """Replica b rotates to a new CA (its clock says the old one expires); replica a, which still serves the old
    one, sees a caBundle that is not its own, re-reads the Secret and adopts it: a few patches, then none."""
    name = f"pullguard-{uuid.uuid4().hex[:8]}"
    kinds = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
    cluster.apply([_configuration(kind, name, namespace, "UExBQ0VIT0xERVI=") for kind in kinds])
    near_ca_end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=3600)
    replicas = [
        keeper(api, namespace, tmp_path / "a"),
        keeper(api, namespace, tmp_path / "b", clock=lambda: near_ca_end),
    ]
    injectors = []
    for replica in replicas:
        injector = WebhookCAInjector(api, name, lambda r=replica: r.current.ca_cert if r.current else None,
                                     refresh=replica.sync)  # fmt: skip
        replica.on_change = injector.reconcile
        injectors.append(injector)
    try:
        first = replicas[0].sync()
        injectors[0].start()
        eventually(lambda: injectors[0].missing() == [], "a's CA injected", timeout=20)
        injectors[1].start()
        rotated = replicas[1].sync()  # b's clock: the CA is about to expire, so b makes a new one
        assert rotated.ca_cert != first.ca_cert

        def settled() -> bool:
            bundles = {
                cluster.kubectl_json("get", kind.lower(), name, "-o", "json")["webhooks"][0]["clientConfig"]["caBundle"]
                for kind in kinds
            }
            return bundles == {_b64(rotated.ca_cert)} and replicas[0].current == rotated

        eventually(settled, "both configurations and replica a on the Secret's new CA", timeout=30)
        patches = sum(i.injections for i in injectors)
        threading.Event().wait(8)  # a fight never settles: it would show as more patches
        assert sum(i.injections for i in injectors) == patches, [i.injections for i in injectors]
        assert patches < 50, patches  # a fight patched a thousand times in this time; a few is the adoption
        assert all(i.missing() == [] for i in injectors)
    finally:
        for injector in injectors:
            injector.stop()
        for kind in kinds:
            cluster.kubectl("delete", kind.lower(), name, "--ignore-not-found", check=False)


def test_an_injection_is_logged_once_per_configuration_and_ca(
    api: client.ApiClient, cluster: Cluster, namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 22: until the watch shows our own patch, the next event patches again (a no-op at the API server);
    that is said at debug level, so a start logs one `caBundle injected` per configuration."""
    name = f"pullguard-log-{uuid.uuid4().hex[:6]}"
    kinds = ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration")
    cluster.apply([_configuration(kind, name, namespace, None) for kind in kinds])
    bundle = keeper(api, namespace, tmp_path / "certs").sync()
    injector = WebhookCAInjector(api, name, lambda: bundle.ca_cert)
    try:
        with caplog.at_level(logging.DEBUG, logger="pullguard.certificates"):
            injector.start()
            for _ in range(5):  # as a burst of watch events at start would, before the caches catch up
                injector.reconcile()
            eventually(lambda: injector.missing() == [], "the caBundle of both configurations to be the CA", timeout=20)
        told = [r for r in caplog.records if r.getMessage() == "caBundle injected"]
        assert len([r for r in told if r.levelno == logging.INFO]) == 2, told
        assert injector.injections == len(told) >= 2
    finally:
        injector.stop()
        for kind in kinds:
            cluster.kubectl("delete", kind.lower(), name, "--ignore-not-found", check=False)
