"""`pullguard dev --kubeconfig K` against a real API server with the install applied (`make install`'s script): the
cluster's webhooks call the local `serve` (kubectl apply prints its warnings) while the Deployment is scaled to 0;
Ctrl-C puts both back as they were; after a SIGKILL, `dev --restore` does. Its own control plane: the install
registers cluster-wide webhooks named `pullguard`."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import REPO_ROOT, Cluster
from tests.e2e.test_install import untagged_pod
from tests.support.loopback import free_port
from tests.support.polling import eventually

pytestmark = pytest.mark.timeout(240)

IMAGE = "registry.example.test/platform/pullguard:0.1.0"


@pytest.fixture(scope="module")
def installed(fresh_cluster: Cluster) -> Cluster:
    script = [sys.executable, str(REPO_ROOT / "scripts" / "render_install.py"), "--apply", "--image", IMAGE]
    config = ["--kubectl", str(fresh_cluster.bin_dir / "kubectl"), "--kubeconfig", str(fresh_cluster.kubeconfig)]
    subprocess.run([*script, *config], check=True, capture_output=True, timeout=120)
    return fresh_cluster


def dev(cluster: Cluster, *args: str) -> list[str]:
    return [sys.executable, "-m", "webhook.cli", "dev", "--kubeconfig", str(cluster.kubeconfig), *args]


def client_configs(cluster: Cluster) -> dict[str, Any]:
    found = {}
    for kind in ("validatingwebhookconfiguration", "mutatingwebhookconfiguration"):
        document = cluster.kubectl_json("get", kind, "pullguard", "-o", "json")
        found[kind] = ([w["clientConfig"] for w in document["webhooks"]], document["metadata"].get("annotations"))
    return found


def replicas(cluster: Cluster) -> int:
    return int(
        cluster.kubectl_json("get", "deployment", "pullguard", "-n", "pullguard", "-o", "json")["spec"]["replicas"]
    )


def start(cluster: Cluster, tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    args = [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--address",
        "127.0.0.1",
        "--cert-dir",
        str(tmp_path),
        "--offline",
    ]
    log = (tmp_path / "dev.log").open("wb")
    return subprocess.Popen(dev(cluster, *args), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)


def redirected(cluster: Cluster, port: int) -> bool:
    configs = client_configs(cluster)["validatingwebhookconfiguration"][0]
    return configs[0].get("url") == f"https://127.0.0.1:{port}/validate"


def test_dev_points_the_webhooks_here_and_puts_them_back(installed: Cluster, tmp_path: Path) -> None:
    cluster = installed
    before, replicas_before = client_configs(cluster), replicas(cluster)
    assert replicas_before == 2
    apps = f"apps-{uuid.uuid4().hex[:6]}"
    cluster.create_namespace(apps)
    port = free_port()
    process = start(cluster, tmp_path, port)
    try:
        eventually(lambda: redirected(cluster, port), "the webhooks to call the local serve", timeout=60)
        assert replicas(cluster) == 0  # the installed replicas would fight over caBundle and answer half the calls

        def warned() -> bool:
            created = cluster.kubectl("apply", "-f", "-", input=untagged_pod(apps), timeout=60, check=False)
            return "Warning: pullguard:" in created.stderr and "has no tag" in created.stderr

        eventually(warned, "kubectl apply to print the local pullguard's warning", timeout=30)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, (tmp_path / "dev.log").read_text()
    log = (tmp_path / "dev.log").read_text()
    assert "the cluster's webhooks and Deployment are back as they were" in log, log
    assert client_configs(cluster) == before and replicas(cluster) == replicas_before


def test_after_a_kill_dev_restore_puts_them_back(installed: Cluster, tmp_path: Path) -> None:
    cluster = installed
    before = client_configs(cluster)
    port = free_port()
    process = start(cluster, tmp_path, port)
    try:
        eventually(lambda: redirected(cluster, port), "the webhooks to call the local serve", timeout=60)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert redirected(cluster, port) and replicas(cluster) == 0  # what a kill leaves behind
    restored = subprocess.run(dev(cluster, "--restore"), capture_output=True, text=True, timeout=60, check=False)
    assert restored.returncode == 0, restored.stderr
    assert client_configs(cluster) == before and replicas(cluster) == 2
