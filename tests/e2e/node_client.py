"""Pods on a test node, through its control plane's API (mixed into node.Node)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from tests.e2e.cluster import Cluster
from tests.e2e.control_plane import ClusterError, ManagedProcess
from tests.e2e.node_pods import DECISIVE_WAITING, KubeletOutcome, outcome_of, pod_for_node

__all__ = ["NodePods"]


class NodePods:
    """What a test does with pods on a node: create them bound to it, wait for the kubelet's verdict, delete."""

    cluster: Cluster
    name: str
    kubelet: ManagedProcess | None

    def _wait(self, what: str, probe: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
        raise NotImplementedError

    def _get(self, path: str, timeout: float = 10.0) -> Any:
        with self.cluster.http_client(timeout=timeout) as client:
            response = client.get(path)
            response.raise_for_status()
            return response.json()

    # ----------------------------------------------------------------- pods

    def ensure_namespace(self, namespace: str) -> None:
        """The namespace, its ``default`` ServiceAccount and ``kube-root-ca.crt`` (no controller makes them)."""
        with self.cluster.http_client() as client:
            created = client.post("/api/v1/namespaces", json={"metadata": {"name": namespace}})
            if created.status_code not in (201, 409):
                created.raise_for_status()
            configmap = {"metadata": {"name": "kube-root-ca.crt"},
                         "data": {"ca.crt": self.cluster.ca_file.read_text()}}  # fmt: skip
            made = client.post(f"/api/v1/namespaces/{namespace}/configmaps", json=configmap)
            if made.status_code not in (201, 409):
                made.raise_for_status()
        self.cluster.ensure_default_service_account(namespace)

    def create_pod(self, namespace: str, manifest: Mapping[str, Any]) -> str:
        """Create the pod (bound to this node); returns its name."""
        pod = pod_for_node(manifest, namespace, self.name)
        with self.cluster.http_client() as client:
            response = client.post(f"/api/v1/namespaces/{namespace}/pods", json=pod)
            if response.status_code != 201:
                raise ClusterError(f"creating pod: HTTP {response.status_code} {response.text[:500]}")
            return str(response.json()["metadata"]["name"])

    def pod(self, namespace: str, name: str) -> dict[str, Any]:
        pod: dict[str, Any] = self._get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        return pod

    def pod_events(self, namespace: str, name: str) -> list[str]:
        """``reason: message`` of the events about the pod, oldest first."""
        events = self._get(f"/api/v1/namespaces/{namespace}/events?fieldSelector=involvedObject.name={name}")
        items = sorted(events.get("items", []), key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
        return [f"{e.get('reason')}: {e.get('message')}" for e in items]

    def wait_outcome(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        decisive: frozenset[str] = DECISIVE_WAITING,
        timeout: float = 120.0,
    ) -> KubeletOutcome:
        """Poll the pod until the kubelet's status of ``container`` is decisive (see node_pods.outcome_of)."""
        found: list[KubeletOutcome] = []

        def probe() -> bool:
            outcome = outcome_of(self.pod(namespace, name), container, decisive)
            if outcome is not None:
                found.append(outcome)
            return outcome is not None

        try:
            self._wait(f"a decisive status of pod {namespace}/{name}", probe, timeout)
        except ClusterError as exc:
            status = json.dumps(self.pod(namespace, name).get("status"), indent=1)
            events = "\n".join(self.pod_events(namespace, name))
            raise ClusterError(f"{exc}\npod status: {status}\nevents:\n{events}") from None
        return found[-1]

    def delete_pod(self, namespace: str, name: str, timeout: float = 60.0) -> None:
        """Delete and wait (bounded) until the kubelet has removed it; force it after ``timeout``."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        with self.cluster.http_client() as client:
            client.delete(path)
            deadline = time.monotonic() + timeout
            while client.get(path).status_code != 404:
                if time.monotonic() > deadline or self.kubelet is None or not self.kubelet.alive():
                    client.delete(path, params={"gracePeriodSeconds": "0"})
                    return
                time.sleep(0.5)

    @contextlib.contextmanager
    def running_pod(self, namespace: str, manifest: Mapping[str, Any], **wait: Any) -> Iterator[KubeletOutcome]:
        """Create the pod, yield its decisive outcome, delete it afterwards."""
        name = self.create_pod(namespace, manifest)
        try:
            yield self.wait_outcome(namespace, name, **wait)
        finally:
            self.delete_pod(namespace, name)

    def run_pod(
        self, namespace: str, manifest: Mapping[str, Any], timeout: float = 120.0, **wait: Any
    ) -> KubeletOutcome:
        """Create the pod, wait for the kubelet's decisive status, delete the pod; return the outcome."""
        with self.running_pod(namespace, manifest, timeout=timeout, **wait) as outcome:
            return outcome
