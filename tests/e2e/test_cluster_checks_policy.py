"""The cluster checks end to end, with a `pullguard serve --kubeconfig ... --namespace ... --policy-configmap ...`
of each test's own (see test_cluster_checks.py for the ones sharing one): the policy ConfigMap switches the mode and
an invalid one is refused, and /readyz waits for the caches' first sync and for a valid policy.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from tests.e2e.cluster import Cluster
from tests.e2e.cluster_checks_support import POLICY_CONFIGMAP, Registries, created, serve_args
from tests.e2e.cluster_scenarios import (
    KUBECTL_TIMEOUT,
    TcpForwarder,
    deployment,
    dry_run,
    dry_run_until,
    metric_value,
    policy_configmap,
    policy_text,
)
from tests.e2e.webhook_harness import pullguard_webhook
from tests.server import start_pullguard
from tests.support.loopback import free_port
from tests.support.polling import eventually

# The first test also pays for the registries.
pytestmark = [pytest.mark.timeout(180), pytest.mark.registry]


# --------------------------------------------------------------------------- 8. the policy ConfigMap


def test_policy_configmap_switches_to_enforce_and_survives_an_invalid_one(
    cluster: Cluster, registries: Registries
) -> None:
    own = f"pullguard-cm-{uuid.uuid4().hex[:8]}"
    cluster.create_namespace(own)
    workloads = f"e2e-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(workloads)
    try:
        cluster.apply(policy_configmap(own, policy_text(registries.hosts_dir, "warn"), POLICY_CONFIGMAP))
        with pullguard_webhook(cluster, offline=False, extra_args=serve_args(cluster, own)) as hook:
            pid = hook.server.process.pid
            image = registries.plain_image("app", "9.9")
            manifest = deployment(workloads, image)

            warned = dry_run(cluster, manifest)
            assert warned.code == 0 and created(warned), warned
            assert warned.warning_with(f'image "{image}": not found in registry {registries.plain.host}'), warned

            cluster.apply(policy_configmap(own, policy_text(registries.hosts_dir, "enforce"), POLICY_CONFIGMAP))
            denied = dry_run_until(cluster, manifest, lambda r: r.denied, "enforce mode from the ConfigMap")
            assert "created" not in denied.stdout
            assert f"pullguard denied Deployment {workloads}/web" in denied.stderr, denied
            assert "[ErrImagePull]" in denied.stderr and f'image "{image}": not found in registry' in denied.stderr

            with hook.server.new_client() as client:
                ready = client.get("/readyz").json()
                assert ready["policy"] == f"configmap {own}/{POLICY_CONFIGMAP}" and ready["policyError"] is None
                errors_before = metric_value(
                    client.get("/metrics").text, "pullguard_policy_reloads_total", {"result": "error"}
                )

                # An invalid policy: counted, reported, and the last good one (enforce) stays in force.
                cluster.apply(policy_configmap(own, "mode: sometimes\n", POLICY_CONFIGMAP))
                eventually(
                    lambda: (
                        metric_value(client.get("/metrics").text, "pullguard_policy_reloads_total", {"result": "error"})
                        > errors_before
                    ),
                    "the rejected policy to be counted",
                )
                metrics = client.get("/metrics").text
                assert metric_value(metrics, "pullguard_policy_valid") == 0
                ready = client.get("/readyz").json()
                assert ready["policyError"] and "mode" in ready["policyError"], ready

            still = dry_run(cluster, manifest)
            assert still.denied, still
            assert f'image "{image}": not found in registry' in still.stderr
            assert hook.server.alive() and hook.server.process.pid == pid  # never restarted
            assert "policy rejected, keeping the last good one" in hook.logs()

            # Deleting the ConfigMap keeps the last good policy too.
            cluster.kubectl("delete", "configmap", POLICY_CONFIGMAP, "-n", own, timeout=KUBECTL_TIMEOUT)
            eventually(lambda: "the ConfigMap is gone" in hook.logs(), "the deletion to be noticed")
            assert dry_run(cluster, manifest).denied
    finally:
        for name in (own, workloads):
            cluster.kubectl(
                "delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False, timeout=KUBECTL_TIMEOUT
            )


# --------------------------------------------------------------------------- 9. readiness waits for the caches


def test_readyz_waits_for_the_first_sync(cluster: Cluster, tmp_path: Path) -> None:
    """With the API server out of reach /readyz says 503 (while /healthz is 200); once it can be reached, the
    caches list and /readyz turns 200."""
    upstream = urlsplit(cluster.server)
    forwarder = TcpForwarder(free_port(), (upstream.hostname or "127.0.0.1", upstream.port or 443))
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{forwarder.port}"
    held_back = tmp_path / "kubeconfig"
    held_back.write_text(yaml.safe_dump(kubeconfig))
    held_back.chmod(0o600)
    server = start_pullguard(
        tmp_path / "server",
        offline=True,
        extra_args=["--kubeconfig", str(held_back), "--namespace", "default"],
        wait_for="/healthz",
    )
    try:
        with server.new_client() as client:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                response = client.get("/readyz")
                assert response.status_code == 503, response.text
                assert response.json()["ready"] is False
                assert client.get("/healthz").status_code == 200
                time.sleep(0.25)

            forwarder.start()
            eventually(lambda: client.get("/readyz").status_code == 200, "/readyz after the caches synced")
            assert forwarder.connections > 0
            assert json.loads(client.get("/readyz").text)["ready"] is True
    finally:
        server.stop()
        forwarder.close()


def test_an_invalid_policy_configmap_at_start_is_never_served(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    """No last good policy exists yet: /readyz stays 503 naming the error, rather than serve the embedded default
    in place of the policy the admin gave. A valid edit makes it ready."""
    cluster.apply(policy_configmap(namespace, "mode: enforcee\n", POLICY_CONFIGMAP))
    server = start_pullguard(
        tmp_path / "server",
        offline=True,
        extra_args=serve_args(cluster, namespace),
        wait_for="/healthz",
    )
    try:
        with server.new_client() as client:
            eventually(lambda: "policy rejected" in server.logs(), "the invalid ConfigMap to be read")
            response = client.get("/readyz")
            assert response.status_code == 503, response.text
            (reason,) = response.json()["notReady"]
            source = f"configmap {namespace}/{POLICY_CONFIGMAP}"
            assert reason == f"no valid policy yet: {source}: mode: Input should be 'enforce', 'warn' or 'off'"
            cluster.apply(policy_configmap(namespace, "mode: enforce\n", POLICY_CONFIGMAP))
            eventually(lambda: client.get("/readyz").status_code == 200, "/readyz after a valid policy")
            assert client.get("/readyz").json()["policy"] == f"configmap {namespace}/{POLICY_CONFIGMAP}"
    finally:
        server.stop()
