"""kube-controller-manager and kube-scheduler of the pinned release (scripts/build-k8s-bins.sh) for a control plane
of :class:`tests.e2e.cluster.Cluster`: what turns a Deployment into a pod bound to a node (the deployment,
replicaset, endpointslice, root-ca-cert-publisher and serviceaccount controllers, nodelifecycle to lift the not-ready
taint a new node registers with, and the scheduler). Started as children that die with the test process
(ManagedProcess), serving nothing of their own (--secure-port=0)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.e2e.cluster import Cluster
from tests.e2e.control_plane import ManagedProcess

CONTROLLERS = ("deployment", "replicaset", "endpointslice", "root-ca-cert-publisher", "serviceaccount", "nodelifecycle")


@contextlib.contextmanager
def control_loops(cluster: Cluster) -> Iterator[tuple[ManagedProcess, ManagedProcess]]:
    bin_dir, workdir, kubeconfig = cluster.bin_dir, cluster.workdir, str(cluster.kubeconfig)
    manager = ManagedProcess.spawn(
        "kube-controller-manager",
        [
            str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--controllers={','.join(CONTROLLERS)}",
            f"--root-ca-file={cluster.ca_file}",  # published as ConfigMap kube-root-ca.crt: the pods' API CA
            "--leader-elect=false",
            "--secure-port=0",
            "--use-service-account-credentials=false",
            "--v=1",
        ],
        workdir / "kube-controller-manager.log",
    )
    scheduler = ManagedProcess.spawn(
        "kube-scheduler",
        [
            str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--secure-port=0",
            "--v=1",
        ],
        workdir / "kube-scheduler.log",
    )
    try:
        yield manager, scheduler
    finally:
        for process in (scheduler, manager):
            process.stop()
