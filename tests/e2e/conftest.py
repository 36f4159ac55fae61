"""End-to-end fixtures: a real etcd + kube-apiserver, driven with our own kubectl.

Every test under tests/e2e is marked ``e2e``. Without the binaries (see
scripts/build-k8s-bins.sh) the ``cluster`` fixture skips, unless
``PULLGUARD_REQUIRE_E2E=1``, in which case it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import BinariesMissingError, Cluster, ClusterError, require_binaries

E2E_DIR = Path(__file__).resolve().parent
REQUIRE_ENV = "PULLGUARD_REQUIRE_E2E"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items: mark only ours.
    for item in items:
        if item.path.is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)


def _required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """One control plane for the whole session; stopped (never leaked) at the end."""
    try:
        bin_dir = require_binaries()
    except (BinariesMissingError, ClusterError) as exc:
        message = f"e2e binaries not available: {exc}"
        if _required():
            pytest.fail(f"{message} ({REQUIRE_ENV}=1)", pytrace=False)
        pytest.skip(f"{message} (set {REQUIRE_ENV}=1 to fail instead)")
    started = Cluster.start(bin_dir=bin_dir)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace (with its ``default`` ServiceAccount), deleted afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(name)
    yield name
    # No namespace controller runs, so the namespace stays Terminating; that is fine.
    cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)
