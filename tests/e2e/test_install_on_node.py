"""The install proven on a real node, with the image a user would run: `make push IMAGE=...` to a loopback registry,
`make install IMAGE=...` against a control plane with kube-controller-manager and kube-scheduler (built from the
pinned module like the API server), and pullguard running as the Deployment's pod on the kubelet + containerd node:
it creates its certificate, injects its CA, becomes Ready, and `kubectl` sees its warnings, then its denials once
the operator's policy says enforce.

What the harness needs and a real cluster would not (applied after `make install`, as an operator's patch): this
node's pods run with `hostNetwork: true` (the node has no pod network, tests/e2e/node_containerd.py), so the
namespace is Pod Security `privileged` rather than `restricted`; there is no kube-proxy, so the pod reaches the API
server on its loopback address (KUBERNETES_SERVICE_HOST) and the API server reaches the webhook through the
Service's endpoints (`--enable-aggregator-routing`); one replica, on ports of this machine that are free.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.cluster import REPO_ROOT, Cluster
from tests.e2e.control_loops import control_loops
from tests.e2e.node import Node, require_node_binaries
from tests.e2e.node_fixtures import require_node
from tests.support.loopback import free_port
from tests.support.polling import eventually
from tests.support.registry import RegistryServer, start_plain_registry

pytestmark = [pytest.mark.registry, pytest.mark.timeout(900)]


@dataclass
class Installed:
    cluster: Cluster
    node: Node
    registry: RegistryServer
    image: str


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    require_node()
    cluster = Cluster.start(bin_dir=require_node_binaries(), apiserver_args=["--enable-aggregator-routing=true"])
    try:
        with start_plain_registry() as registry, control_loops(cluster):
            node = Node.start(cluster, name="install-node", registries_hosts={registry.host: None})
            try:
                yield Installed(cluster, node, registry, f"{registry.host}/platform/pullguard:0.1.0")
            finally:
                node.stop()
    finally:
        cluster.stop()


def make(target: str, installed: Installed) -> subprocess.CompletedProcess[str]:
    """The README's commands; `-o` the venv stamps (the suite already runs in that venv)."""
    cluster = installed.cluster
    variables = [
        f"IMAGE={installed.image}",
        f"KUBECTL={cluster.bin_dir / 'kubectl'}",
        f"KUBECONFIG={cluster.kubeconfig}",
    ]
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".stamps/runtime",
            "-o",
            ".stamps/venv",
            "-o",
            "debs",
            target,
            *variables,
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PUSH_TLS_VERIFY": "false"},  # the loopback registry speaks plain HTTP
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def harness_patch(deployment: dict[str, Any], cluster: Cluster, port: int, metrics_port: int) -> dict[str, Any]:
    """The module docstring's list, and nothing else: the image, args and probes stay the install's."""
    spec = deployment["spec"]
    spec["replicas"] = 1
    pod = spec["template"]["spec"]
    pod["hostNetwork"] = True
    (container,) = pod["containers"]
    args = container["args"]
    args[args.index("--port") + 1] = str(port)
    args[args.index("--metrics-port") + 1] = str(metrics_port)
    ports = {p["name"]: p for p in container["ports"]}
    ports["https"]["containerPort"], ports["metrics"]["containerPort"] = port, metrics_port
    server = urlsplit(cluster.server)
    container["env"] += [
        {"name": "KUBERNETES_SERVICE_HOST", "value": server.hostname},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(server.port)},
    ]
    for key in ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields"):
        deployment["metadata"].pop(key, None)
    deployment.pop("status", None)
    return deployment


def available(cluster: Cluster) -> bool:
    status = cluster.kubectl_json("get", "deployment", "pullguard", "-n", "pullguard", "-o", "json").get("status", {})
    return int(status.get("availableReplicas") or 0) >= 1


def test_make_push_and_make_install_run_pullguard_on_a_node(installed: Installed, tmp_path: Path) -> None:
    cluster = installed.cluster
    pushed = make("push", installed)
    assert pushed.returncode == 0, pushed.stderr[-3000:]
    assert f"pushed {installed.image} (sha256:" in pushed.stdout

    done = make("install", installed)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "deployment.apps/pullguard created" in done.stdout and "configmap/pullguard-policy created" in done.stdout

    cluster.kubectl("label", "namespace", "pullguard", "pod-security.kubernetes.io/enforce=privileged", "--overwrite")
    deployment = cluster.kubectl_json("get", "deployment", "pullguard", "-n", "pullguard", "-o", "json")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == installed.image
    patched = harness_patch(deployment, cluster, free_port(), free_port())
    cluster.kubectl("replace", "-f", "-", input=json.dumps(patched))

    deadline = time.monotonic() + 300
    while not available(cluster):
        if time.monotonic() > deadline:
            pods = cluster.kubectl("get", "pods", "-n", "pullguard", "-o", "wide", check=False).stdout
            events = cluster.kubectl("get", "events", "-n", "pullguard", check=False).stdout
            pytest.fail(f"the pullguard pod never became Ready:\n{pods}\n{events}\n{installed.node.diagnostics()}")
        time.sleep(1)
    pods = cluster.kubectl_json("get", "pods", "-n", "pullguard", "-o", "json")["items"]
    (pod,) = [p for p in pods if p["status"].get("phase") == "Running"]  # the first ReplicaSet's may still pend
    assert pod["spec"]["nodeName"] == "install-node"
    configuration = cluster.kubectl_json("get", "validatingwebhookconfiguration", "pullguard", "-o", "json")
    assert configuration["webhooks"][0]["clientConfig"].get("caBundle")  # injected by the pod itself

    apps = f"apps-{uuid.uuid4().hex[:6]}"
    cluster.create_namespace(apps)
    run = ["run", "try", "-n", apps, "--image=nginx", "--dry-run=server"]

    def warned() -> bool:
        return "Warning: pullguard:" in cluster.kubectl(*run, check=False).stderr

    eventually(warned, "kubectl to print pullguard's warning", timeout=60)
    enforce = json.dumps({"data": {"policy.yaml": "mode: enforce\n"}})
    cluster.kubectl("patch", "configmap", "pullguard-policy", "-n", "pullguard", "--type=merge", "-p", enforce)

    def denied() -> bool:
        attempt = cluster.kubectl(*run, check=False)
        return (
            attempt.returncode != 0 and 'admission webhook "validate.pullguard.io" denied the request' in attempt.stderr
        )

    eventually(denied, "the operator's enforce policy to deny", timeout=60)
