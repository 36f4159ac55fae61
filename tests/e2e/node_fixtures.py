"""pytest fixtures for a real node (node.py), as a plugin module: ``kubelet_node`` (session) and ``node_namespace``.

The node registers to a control plane of its own, not to the suite's ``cluster``: tests there count nodes.
Without what a node needs (the kubelet binary, containerd, runc, the CNI plugins, docker-registry, root) the
fixture skips, unless ``PULLGUARD_REQUIRE_E2E=1``, in which case it fails (like ``cluster``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.cluster import BinariesMissingError, Cluster, ClusterError
from tests.e2e.node import Node, require_node_binaries
from tests.support.registry import registry_available, skip_reason

REQUIRE_ENV = "PULLGUARD_REQUIRE_E2E"

__all__ = ["kubelet_node", "node_namespace", "node_unavailable"]


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


def node_unavailable(reason: str) -> None:
    """Skip, or fail under ``PULLGUARD_REQUIRE_E2E=1``."""
    message = reason
    if _required():
        pytest.fail(f"{message} ({REQUIRE_ENV}=1)", pytrace=False)
    pytest.skip(f"{message} (set {REQUIRE_ENV}=1 to fail instead)")


def require_node() -> None:
    """Skip/fail unless this machine can run a node (the k8s binaries with the kubelet, runtime, registry)."""
    try:
        require_node_binaries()
    except (BinariesMissingError, ClusterError) as exc:
        node_unavailable(str(exc))
    if not registry_available():
        node_unavailable(f"cannot run a test node: {skip_reason()}")


@pytest.fixture(scope="session")
def kubelet_node() -> Iterator[Node]:
    """One node (and its own control plane, ``kubelet_node.cluster``) for the whole session."""
    require_node()
    cluster = Cluster.start(bin_dir=require_node_binaries())
    try:
        node = Node.start(cluster, name="pullguard-node")
        try:
            yield node
        finally:
            node.stop()
    finally:
        cluster.stop()


@pytest.fixture
def node_namespace(kubelet_node: Node) -> Iterator[str]:
    """A fresh namespace on the node's control plane (ServiceAccount and CA ConfigMap included)."""
    name = f"node-{uuid.uuid4().hex[:10]}"
    kubelet_node.ensure_namespace(name)
    yield name
    # no namespace controller: it stays Terminating, its pods are already gone
    with kubelet_node.cluster.http_client() as client:
        client.delete(f"/api/v1/namespaces/{name}")
