"""A real Kubernetes node for the end-to-end tests: the kubelet of the pinned release, Debian's containerd 1.6
(CRI plugin) and runc, registered to a control plane started by :class:`tests.e2e.cluster.Cluster`.

Pods really pull images, from loopback registries only. Everything runs in a private mount namespace
(node_ns.py), so the kubelet's sysctl writes and the daemons' runtime files stay out of the host; what cannot be
kept out (processes, cgroups, the node's /32 on ``lo``) is recorded first and reaped at stop, and at the next
start if a run was killed (node_reaper.py).

    cluster = Cluster.start(bin_dir=require_node_binaries())   # a control plane of its own
    node = Node.start(cluster, name="node-a")
    node.set_registry_host(registry.host)                      # plain HTTP
    node.ensure_namespace("demo")
    outcome = node.run_pod("demo", {"metadata": {"name": "p"},
                                    "spec": {"containers": [{"name": "c", "image": ref}]}})
    assert outcome == KubeletOutcome("running", "", "")
    node.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx

from tests.e2e.cluster import Cluster
from tests.e2e.control_plane import ClusterError, ManagedProcess
from tests.e2e.k8s_binaries import require_binaries
from tests.e2e.node_client import NodePods
from tests.e2e.node_containerd import Containerd, missing_runtime
from tests.e2e.node_images import push_runnable, write_oci_archive
from tests.e2e.node_kubelet import KubeletSettings, make_cgroup_root, start_kubelet
from tests.e2e.node_ns import KUBELET_SYSCTLS, MountNamespace, existing_host_paths, host_sysctls, missing_tools
from tests.e2e.node_pods import KubeletOutcome
from tests.e2e.node_reaper import NodeRecord, add_node_ip, process_start, reap, reap_orphans
from tests.support.image_model import BuiltManifest
from tests.support.pushers import RegistryEndpoint
from tests.support.registry import RegistryServer, start_plain_registry

PAUSE_REPOSITORY, PAUSE_TAG = "pullguard/pause", "3.10"
SNAPSHOTTERS = ("overlayfs", "native")

__all__ = ["KUBELET_SYSCTLS", "KubeletOutcome", "Node", "NodeUnavailableError", "require_node_binaries"]


class NodeUnavailableError(ClusterError):
    """Something a node needs is missing on this machine (the kubelet binary, containerd, runc, CNI, root)."""


def require_node_binaries(bin_dir: Path | None = None) -> Path:
    """The k8s bin dir if it also holds the kubelet and this machine can run a node; else NodeUnavailableError."""
    bin_dir = require_binaries(bin_dir)
    missing = (
        [f"{bin_dir / 'kubelet'} (scripts/build-k8s-bins.sh)"] if not os.access(bin_dir / "kubelet", os.X_OK) else []
    )
    missing += missing_runtime() + [f"{tool} (util-linux)" for tool in missing_tools()]
    if os.geteuid() != 0:
        missing.append("root (a kubelet needs it)")
    if missing:
        raise NodeUnavailableError(f"cannot run a test node: missing {', '.join(missing)}")
    return bin_dir


@dataclass
class Node(NodePods):
    """A kubelet + containerd node registered to ``cluster``. Stop it (or use ``with``)."""

    cluster: Cluster
    name: str
    node_ip: str
    directory: Path
    record: NodeRecord = field(repr=False)
    namespace: MountNamespace | None = field(default=None, repr=False)
    containerd: Containerd | None = field(default=None, repr=False)
    kubelet: ManagedProcess | None = field(default=None, repr=False)
    pause_image: str = ""
    start_seconds: float = 0.0
    own_registry: RegistryServer | None = field(default=None, repr=False)
    keep_directory: bool = field(default=False, repr=False)
    #: the host's values of what the kubelet writes, read before the node started
    host_sysctls_before: dict[str, str] = field(default_factory=dict, repr=False)
    #: which of node_ns.HOST_PATHS existed before the node started
    host_paths_before: set[str] = field(default_factory=set, repr=False)

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def start(
        cls,
        cluster: Cluster,
        *,
        name: str,
        workdir: Path | None = None,
        registries_hosts: Mapping[str, str | None] | None = None,
        credential_provider_config: Path | None = None,
        credential_provider_bin_dir: Path | None = None,
        node_docker_config: bytes | None = None,
        pause_registry: RegistryEndpoint | None = None,
        snapshotters: tuple[str, ...] = SNAPSHOTTERS,
        image_pull_credentials_verification_policy: str | None = None,
        kubelet_config: Mapping[str, Any] | None = None,
        ready_timeout: float = 120.0,
    ) -> Node:
        """Start containerd and the kubelet and wait until the Node is Ready.

        ``registries_hosts``: registry host -> ``hosts.toml`` text (None: plain HTTP to that host).
        ``credential_provider_*``: the kubelet's ``--image-credential-provider-config``/``-bin-dir``.
        ``node_docker_config``: written as ``config.json`` in the kubelet's root dir (its preferred docker config).
        ``pause_registry``: a plain-HTTP registry to push the sandbox image to (default: one of the node's own).
        ``workdir``: the node's files (default: a fresh ``/tmp/pgn-*``, removed at stop unless
        ``$PULLGUARD_E2E_KEEP``); keep it short, unix socket paths live under it.
        """
        started = time.monotonic()
        bin_dir = require_node_binaries(cluster.bin_dir)
        reap_orphans()
        node_id = f"{name}-{secrets.token_hex(4)}"
        created = workdir is None
        directory = Path(tempfile.mkdtemp(prefix="pgn-", dir="/tmp")) if workdir is None else workdir
        directory.mkdir(parents=True, exist_ok=True)
        owner_start = process_start(os.getpid()) or ""
        record = NodeRecord(node_id, os.getpid(), owner_start, cgroup=f"pullguard-node-{node_id}",
                            containerd_address=str(directory / "c.sock"),
                            remove_dirs=[str(directory)] if created else [])  # fmt: skip
        record.save()  # before anything exists that the reaper would have to find
        node = cls(cluster, name, "", directory, record, keep_directory=bool(os.environ.get("PULLGUARD_E2E_KEEP")))
        node.host_sysctls_before, node.host_paths_before = host_sysctls(KUBELET_SYSCTLS), existing_host_paths()
        try:
            make_cgroup_root(record.cgroup)
            add_node_ip(record)
            node.node_ip = record.node_ip
            node._start_daemons(
                bin_dir,
                dict(registries_hosts or {}),
                pause_registry,
                snapshotters,
                KubeletSettings(
                    name=name, node_ip=node.node_ip, root_dir=directory / "kubelet", kubeconfig=cluster.kubeconfig,
                    runtime_endpoint=directory / "c.sock", cgroup_root=record.cgroup,
                    resolv_conf=directory / "ns" / "resolv.conf",
                    credential_provider_config=credential_provider_config,
                    credential_provider_bin_dir=credential_provider_bin_dir,
                    image_pull_credentials_verification_policy=image_pull_credentials_verification_policy,
                    extra_config=tuple((kubelet_config or {}).items()),
                ),
                node_docker_config,
            )  # fmt: skip
            node.wait_ready(ready_timeout)
        except BaseException:
            node.stop()
            raise
        node.start_seconds = time.monotonic() - started
        return node

    def _start_daemons(
        self,
        bin_dir: Path,
        registries_hosts: dict[str, str | None],
        pause_registry: RegistryEndpoint | None,
        snapshotters: tuple[str, ...],
        settings: KubeletSettings,
        node_docker_config: bytes | None,
    ) -> None:
        self.namespace = MountNamespace.create(self.directory / "ns")
        self.record.add_daemon("namespace", self.namespace.holder.pid)
        if pause_registry is None:
            pause_registry = self.own_registry = start_plain_registry()
        pause = push_runnable(pause_registry, PAUSE_REPOSITORY, PAUSE_TAG, seed="pullguard pause")
        self.pause_image = pause.reference
        registries_hosts.setdefault(pause_registry.host, None)
        errors: list[str] = []
        for snapshotter in snapshotters:
            try:
                self.containerd = Containerd.start(
                    self.namespace,
                    self.directory / "containerd",
                    self.directory / "c.sock",
                    sandbox_image=self.pause_image,
                    registry_hosts=registries_hosts,
                    snapshotter=snapshotter,
                )
                break
            except ClusterError as exc:  # e.g. overlayfs not usable here: try the next
                errors.append(f"{snapshotter}: {exc}")
        if self.containerd is None:
            raise ClusterError("containerd did not start with any snapshotter:\n" + "\n".join(errors))
        self.record.add_daemon("containerd", self.containerd.process.pid)
        self.containerd.pull(self.pause_image)  # present before the first pod: the pause registry may go away
        settings.root_dir.mkdir(parents=True, exist_ok=True)
        if node_docker_config is not None:
            (settings.root_dir / "config.json").write_bytes(node_docker_config)
        self.kubelet = start_kubelet(self.namespace, bin_dir, settings, self.directory)
        self.record.add_daemon("kubelet", self.kubelet.pid)

    def stop(self) -> None:
        """Stop the daemons, delete the Node object, reap what is left (containers, shims, cgroups, the address,
        the directory). Idempotent."""
        registered = self.kubelet is not None
        for process in (self.kubelet, self.containerd.process if self.containerd else None):
            if process is not None:
                process.stop()
        if registered and self.cluster.running():  # after the kubelet, which would register it again
            with contextlib.suppress(httpx.HTTPError), self.cluster.http_client(timeout=10) as client:
                client.delete(f"/api/v1/nodes/{self.name}")
        if self.namespace is not None:
            self.namespace.stop()
        if self.keep_directory:
            self.record.remove_dirs = []
        problems = reap(self.record)
        if self.own_registry is not None:
            self.own_registry.stop()
        self.kubelet = self.containerd = self.namespace = self.own_registry = None
        if problems:
            raise ClusterError(f"node {self.name}: could not clean up: {'; '.join(problems)}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- status

    def node_object(self) -> dict[str, Any]:
        node: dict[str, Any] = self._get(f"/api/v1/nodes/{self.name}")
        return node

    def ready(self) -> bool:
        try:
            conditions = self.node_object().get("status", {}).get("conditions", [])
        except httpx.HTTPError:
            return False
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    def wait_ready(self, timeout: float = 120.0) -> None:
        self._wait("Node Ready", self.ready, timeout)

    def _wait(self, what: str, probe: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            for process in (self.kubelet, self.containerd.process if self.containerd else None):
                if process is not None and not process.alive():
                    raise ClusterError(f"{what}: {process.describe_exit()}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{what}: not after {timeout:.0f}s\n{self.diagnostics()}")
            time.sleep(interval)

    def diagnostics(self) -> str:
        parts = []
        with contextlib.suppress(httpx.HTTPError, ClusterError):
            parts.append("node conditions: " + json.dumps(self.node_object().get("status", {}).get("conditions")))
        if self.kubelet is not None:
            parts.append(f"kubelet log ({self.kubelet.log_path}):\n{self.kubelet.log_tail(25)}")
        if self.containerd is not None:
            parts.append(f"containerd log:\n{self.containerd.process.log_tail(15)}")
        return "\n".join(parts)

    def status_images(self) -> list[str]:
        """Every name in the Node's ``status.images``."""
        images = self.node_object().get("status", {}).get("images") or []
        return [name for image in images for name in image.get("names", [])]

    def wait_for_image(self, name: str, timeout: float = 120.0) -> None:
        """Until ``name`` is in ``status.images`` (the kubelet relists images every 30 s)."""
        self._wait(f"{name} in status.images of {self.name}", lambda: name in self.status_images(), timeout, 1.0)

    def read_sysctl(self, key: str) -> str:
        """A sysctl as the node's daemons see it (the host's is :func:`tests.e2e.node_ns.host_sysctls`)."""
        assert self.namespace is not None
        return self.namespace.read_sysctl(key)

    # ----------------------------------------------------------------- images

    def set_registry_host(self, host: str, hosts_toml: str | None = None) -> None:
        """Tell containerd how to reach ``host`` (default: plain HTTP); effective from the next pull."""
        assert self.containerd is not None
        self.containerd.set_registry_host(host, hosts_toml)

    def preload(self, reference: str, *, plain_http: bool = True, user: str | None = None) -> None:
        """Put an image on the node without the kubelet (``ctr images pull`` into the CRI namespace, with the node's
        ``certs.d``; ``plain_http`` for hosts it has no ``hosts.toml`` for)."""
        assert self.containerd is not None
        self.containerd.pull(reference, plain_http=plain_http, user=user)

    def preload_archive(self, archive: Path) -> None:
        """Import an OCI/docker archive (``ctr images import``), like ``kind load image-archive``."""
        assert self.containerd is not None
        self.containerd.import_archive(archive)

    def preload_image(self, manifest: BuiltManifest, name: str) -> None:
        """Put ``manifest`` on the node as ``name`` from an archive: no registry is involved at all (air gap)."""
        archive = self.directory / f"preload-{manifest.digest.removeprefix('sha256:')[:16]}.tar"
        self.preload_archive(write_oci_archive(manifest, name, archive))
