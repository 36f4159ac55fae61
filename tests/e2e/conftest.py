"""End-to-end fixtures: a real etcd + kube-apiserver, driven with our own kubectl.

Every test under tests/e2e is marked ``e2e``. Without the binaries (see
scripts/build-k8s-bins.sh) the ``cluster`` fixture skips, unless
``PULLGUARD_REQUIRE_E2E=1``, in which case it fails.

Also the fixtures that several modules share: ``registries`` (test_cluster_checks*.py)
and ``run_explain`` (test_explain*.py).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import BinariesMissingError, Cluster, ClusterError, require_binaries
from tests.e2e.cluster_checks_support import Registries
from tests.e2e.cluster_scenarios import map_host
from tests.e2e.explain_pods import Explained
from tests.e2e.node_fixtures import kubelet_node, node_namespace  # noqa: F401 - a real node's fixtures
from tests.support import fixtures
from tests.support.image_model import LINUX_AMD64
from tests.support.pushers import push_multiarch_index, push_single_arch
from tests.support.registry import start_basic_registry, start_plain_registry
from webhook.explain import command as explain

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


# --------------------------------------------------------------------------- cluster checks (test_cluster_checks*.py)


@pytest.fixture(scope="module")
def registries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registries]:
    fixtures.require_docker_registry()  # skips (with the reason) without Debian's docker-registry
    with contextlib.ExitStack() as stack:
        plain = stack.enter_context(start_plain_registry())
        basic = stack.enter_context(start_basic_registry(access_log=True))  # its log shows the 401s
        for tag in ("1.0", "2.0"):
            push_single_arch(plain, "app", tag, platform=LINUX_AMD64)
        # Multi-arch where a test wants silence whatever nodes exist (no architecture finding can arise).
        push_multiarch_index(plain, "app", "1.1")
        push_multiarch_index(plain, "multi", "1.0")
        push_multiarch_index(basic, "private/app", "1.0")
        hosts_dir = tmp_path_factory.mktemp("cluster-checks") / "certs.d"
        map_host(hosts_dir, plain.host, plain.url)
        map_host(hosts_dir, basic.host, basic.url, basic.ca_file)
        yield Registries(plain=plain, basic=basic, hosts_dir=hosts_dir)


# --------------------------------------------------------------------------- explain (test_explain*.py)


@pytest.fixture
def run_explain(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> Explained:
        capsys.readouterr()
        code = explain.main(["--kubeconfig", str(cluster.kubeconfig), *args])
        captured = capsys.readouterr()
        return Explained(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def fresh_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """A control plane of the module's own, for tests that register cluster-wide objects other tests register too
    (webhook configurations named `pullguard`, an install in namespace `pullguard`)."""
    own = Cluster.start(bin_dir=cluster.bin_dir)
    try:
        yield own
    finally:
        own.stop()
