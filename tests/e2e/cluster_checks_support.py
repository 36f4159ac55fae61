"""Shared by the cluster-check e2e tests (test_cluster_checks*.py): the registries they look images up in, the
name of the policy ConfigMap and `pullguard serve`'s arguments for the cluster view. The `registries` fixture (one
pair of registries per module) is in conftest.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.e2e.cluster import Cluster
from tests.e2e.cluster_scenarios import DryRun
from tests.support.registry import RegistryServer

POLICY_CONFIGMAP = "pullguard-policy"
OTHER_REGISTRY = "other-registry.example.test"


@dataclass(frozen=True)
class Registries:
    plain: RegistryServer  # http, anonymous: app:1.0 and 2.0 (linux/amd64 only), app:1.1 and multi:1.0 (multi-arch)
    basic: RegistryServer  # https + htpasswd: private/app:1.0 (multi-arch)
    hosts_dir: Path

    def plain_image(self, repository: str, tag: str) -> str:
        return self.plain.reference(repository, tag)

    @property
    def private_image(self) -> str:
        return self.basic.reference("private/app", "1.0")


def serve_args(cluster: Cluster, namespace: str) -> list[str]:
    return ["--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace, "--policy-configmap", POLICY_CONFIGMAP]


def created(outcome: DryRun) -> bool:
    return "created (server dry run)" in outcome.stdout
