"""Building blocks for the cluster-check scenarios (tests/e2e/test_cluster_checks.py): manifests (Deployments,
pull Secrets, ServiceAccounts, Nodes, the policy ConfigMap), a server-side dry run that splits kubectl's
``Warning:`` lines out, bounded polling, Prometheus text parsing and a loopback TCP forwarder (to hold the
apiserver back from a webhook's caches until a test lets it through)."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import Cluster
from tests.support.polling import WAIT

KUBECTL_TIMEOUT = 30.0
WARNING_PREFIX = "Warning: pullguard: "
POLICY_KEY = "policy.yaml"


# --------------------------------------------------------------------------- kubectl apply --dry-run=server


@dataclass(frozen=True)
class DryRun:
    code: int
    stdout: str
    stderr: str

    @property
    def warnings(self) -> list[str]:
        """pullguard's ``Warning:`` lines, without the ``Warning: pullguard: `` prefix."""
        return [line[len(WARNING_PREFIX) :] for line in self.stderr.splitlines() if line.startswith(WARNING_PREFIX)]

    def warning_with(self, *words: str) -> str | None:
        """The first pullguard warning containing every one of ``words``."""
        return next((w for w in self.warnings if all(word in w for word in words)), None)

    @property
    def denied(self) -> bool:
        return self.code != 0 and "denied the request" in self.stderr

    def __str__(self) -> str:
        return f"exit {self.code}\nstdout: {self.stdout.strip()}\nstderr: {self.stderr.strip()}"


def dry_run(cluster: Cluster, manifest: Mapping[str, Any] | str) -> DryRun:
    """``kubectl apply --dry-run=server -f -`` with the manifest on stdin."""
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=text, check=False, timeout=KUBECTL_TIMEOUT)
    return DryRun(proc.returncode, proc.stdout, proc.stderr)


def dry_run_until(
    cluster: Cluster, manifest: Mapping[str, Any], accept: Callable[[DryRun], object], what: str, timeout: float = WAIT
) -> DryRun:
    """Dry-run ``manifest`` until ``accept`` likes the outcome (the webhook's caches follow the API server a
    moment later than kubectl); fail with the last outcome after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = dry_run(cluster, manifest)
        if accept(outcome):
            return outcome
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last dry run:\n{outcome}")
        time.sleep(0.3)


# --------------------------------------------------------------------------- manifests


def deployment(
    namespace: str,
    image: str,
    *,
    name: str = "web",
    pull_secrets: Sequence[str] = (),
    service_account: str | None = None,
    node_selector: Mapping[str, str] | None = None,
    pull_policy: str | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": image}
    if pull_policy is not None:
        container["imagePullPolicy"] = pull_policy
    spec: dict[str, Any] = {"containers": [container]}
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in pull_secrets]
    if service_account is not None:
        spec["serviceAccountName"] = service_account
    if node_selector:
        spec["nodeSelector"] = dict(node_selector)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def docker_config(server: str, username: str, password: str) -> str:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    return json.dumps({"auths": {server: {"username": username, "password": password, "auth": auth}}})


def pull_secret(namespace: str, name: str, server: str, username: str, password: str) -> dict[str, Any]:
    """A ``kubernetes.io/dockerconfigjson`` Secret whose only entry is ``server``."""
    payload = base64.b64encode(docker_config(server, username, password).encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": payload},
    }


def service_account(namespace: str, name: str, pull_secrets: Sequence[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
        "imagePullSecrets": [{"name": s} for s in pull_secrets],
    }


def policy_configmap(namespace: str, policy: str, name: str = "pullguard-policy") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": {POLICY_KEY: policy},
    }


def policy_text(hosts_dir: Path, mode: str = "warn", timeout_seconds: int = 2) -> str:
    return f"mode: {mode}\nregistry:\n  hostsDir: {json.dumps(str(hosts_dir))}\n  timeoutSeconds: {timeout_seconds}\n"


def map_host(hosts_dir: Path, host: str, server: str, ca_file: str | Path | None = None) -> Path:
    """A containerd ``hosts.toml`` for ``host`` (as tests/integration/registry_helpers.map_host writes it):
    pullguard only contacts a loopback registry that hostsDir maps."""
    directory = hosts_dir / host
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f'server = "{server}"']
    if ca_file is not None:
        lines.append(f'ca = "{ca_file}"')
    (directory / "hosts.toml").write_text("\n".join(lines) + "\n")
    return hosts_dir


# --------------------------------------------------------------------------- Nodes


@dataclass(frozen=True)
class NodeSpec:
    arch: str
    labels: Mapping[str, str] = field(default_factory=dict)
    images: Sequence[str] = ()
    ready: bool = True
    prefix: str = "pg-node"

    def manifest(self, name: str) -> dict[str, Any]:
        labels = {"kubernetes.io/arch": self.arch, "kubernetes.io/os": "linux", "kubernetes.io/hostname": name}
        return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels | dict(self.labels)}}

    def status(self) -> dict[str, Any]:
        condition = {
            "type": "Ready",
            "status": "True" if self.ready else "False",
            "reason": "KubeletReady" if self.ready else "KubeletNotReady",
            "message": "set by the e2e test",
        }
        return {
            "status": {
                "conditions": [condition],
                "images": [{"names": [image], "sizeBytes": 1024} for image in self.images],
                "nodeInfo": {"architecture": self.arch, "operatingSystem": "linux"},
            }
        }


@contextlib.contextmanager
def nodes(cluster: Cluster, *specs: NodeSpec) -> Iterator[list[str]]:
    """Create one Node per spec through the API (``kubectl create``, then a status patch with its Ready
    condition and images, as a kubelet would report); delete them all afterwards. Yields their names."""
    names: list[str] = []
    try:
        for spec in specs:
            name = f"{spec.prefix}-{spec.arch}-{uuid.uuid4().hex[:6]}"
            cluster.kubectl("create", "-f", "-", input=json.dumps(spec.manifest(name)), timeout=KUBECTL_TIMEOUT)
            names.append(name)
            cluster.kubectl(
                "patch",
                "node",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps(spec.status()),
                timeout=KUBECTL_TIMEOUT,
            )
        yield names
    finally:
        if names:
            cluster.kubectl(
                "delete", "node", *names, "--ignore-not-found", "--wait=false", check=False, timeout=KUBECTL_TIMEOUT
            )


# --------------------------------------------------------------------------- Prometheus text


_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")


def metric_value(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """The value of sample ``name{labels}`` in Prometheus text format (0 when absent)."""
    wanted = dict(labels or {})
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None or match["name"] != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        if all(found.get(k) == v for k, v in wanted.items()):
            return float(match["value"])
    return 0.0


# --------------------------------------------------------------------------- a loopback TCP forwarder


class TcpForwarder:
    """Forwards 127.0.0.1:``port`` to ``upstream`` byte for byte (TLS passes through untouched) once
    ``start()`` is called; until then the port refuses connections."""

    def __init__(self, port: int, upstream: tuple[str, int]) -> None:
        self.port = port
        self.upstream = upstream
        self.connections = 0
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.2)
        self._listener = listener
        self._spawn(self._accept)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5.0)
            except OSError:
                client.close()
                continue
            client.settimeout(None)
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
                self.connections += 1
            self._spawn(self._pump, client, server)
            self._spawn(self._pump, server, client)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()
        for thread in self._threads:
            thread.join(timeout=2.0)
