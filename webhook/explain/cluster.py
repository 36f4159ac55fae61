"""What `pullguard explain` reads from the API server: pods (one, a workload's, or all), their owners and events.

Objects are read as the API's JSON (camelCase, as `kubectl get -o json` prints them), so
`webhook.review.workloads.extract` reads pods exactly as admission does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kubernetes import client

REQUEST_TIMEOUT = 20
JSON = dict[str, Any]

# TARGET kinds, as kubectl spells them (singular, plural, short name, with or without the group).
KINDS: Mapping[str, str] = {
    **dict.fromkeys(("pod", "pods", "po"), "Pod"),
    **dict.fromkeys(("deployment", "deployments", "deploy", "deployment.apps"), "Deployment"),
    **dict.fromkeys(("statefulset", "statefulsets", "sts", "statefulset.apps"), "StatefulSet"),
    **dict.fromkeys(("daemonset", "daemonsets", "ds", "daemonset.apps"), "DaemonSet"),
    **dict.fromkeys(("replicaset", "replicasets", "rs", "replicaset.apps"), "ReplicaSet"),
    **dict.fromkeys(("job", "jobs", "job.batch"), "Job"),
    **dict.fromkeys(("cronjob", "cronjobs", "cj", "cronjob.batch"), "CronJob"),
}
# A kind whose pods belong to an object in between: a Deployment's pods are its ReplicaSets', a CronJob's its Jobs'.
INTERMEDIATE = {"Deployment": "ReplicaSet", "CronJob": "Job"}


class ClusterReadError(Exception):
    """The API server could not be asked, or said no (the message says which object and why)."""


class PodSource:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api_client)
        self._apps = client.AppsV1Api(api_client)
        self._batch = client.BatchV1Api(api_client)

    @staticmethod
    def _call(what: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> JSON:
        try:
            response: Any = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        except client.ApiException as exc:
            if exc.status == 404:
                raise ClusterReadError(f"{what} not found") from None
            reason = _status_message(exc.body) or exc.reason
            raise ClusterReadError(f"reading {what}: HTTP {exc.status}: {reason}") from None
        except Exception as exc:  # urllib3: refused, TLS, timeout; the message names the address
            raise ClusterReadError(f"reading {what}: {exc}") from None
        try:
            data: JSON = json.loads(response.data)
        finally:
            response.release_conn()
        return data

    def pod(self, namespace: str, name: str) -> JSON:
        return self._call(f"pod/{name} in namespace {namespace}", self._core.read_namespaced_pod, name, namespace)

    def pods(self, namespace: str | None) -> list[JSON]:
        if namespace is None:
            listed = self._call("pods in all namespaces", self._core.list_pod_for_all_namespaces)
        else:
            listed = self._call(f"pods in namespace {namespace}", self._core.list_namespaced_pod, namespace)
        return list(listed.get("items") or [])

    def events(self, namespace: str | None, pod: str | None = None) -> list[JSON]:
        """Core v1 Events about pods (events.k8s.io/v1 Events are the same objects, seen through this API): of
        one pod when `pod` is given, else of every pod in the namespace (or in all)."""
        selector = "involvedObject.kind=Pod" + (f",involvedObject.name={pod}" if pod else "")
        if namespace is None:
            listed = self._call(
                "events in all namespaces", self._core.list_event_for_all_namespaces, field_selector=selector
            )
        else:
            listed = self._call(
                f"events in namespace {namespace}",
                self._core.list_namespaced_event,
                namespace,
                field_selector=selector,
            )
        return list(listed.get("items") or [])

    def workload(self, kind: str, namespace: str, name: str) -> JSON:
        what = f"{kind.lower()}/{name} in namespace {namespace}"
        readers: dict[str, Callable[..., Any]] = {
            "Deployment": self._apps.read_namespaced_deployment,
            "StatefulSet": self._apps.read_namespaced_stateful_set,
            "DaemonSet": self._apps.read_namespaced_daemon_set,
            "ReplicaSet": self._apps.read_namespaced_replica_set,
            "Job": self._batch.read_namespaced_job,
            "CronJob": self._batch.read_namespaced_cron_job,
        }
        return self._call(what, readers[kind], name, namespace)

    def _intermediates(self, kind: str, namespace: str) -> list[JSON]:
        if kind == "ReplicaSet":
            listed = self._call(
                f"replicasets in namespace {namespace}", self._apps.list_namespaced_replica_set, namespace
            )
        else:
            listed = self._call(f"jobs in namespace {namespace}", self._batch.list_namespaced_job, namespace)
        return list(listed.get("items") or [])

    def pods_of(self, kind: str, namespace: str, name: str) -> list[JSON]:
        """The pods a workload owns: controlled by it, or by a ReplicaSet/Job it controls (ownerReferences uids)."""
        owner = self.workload(kind, namespace, name)
        uids = {str((owner.get("metadata") or {}).get("uid") or "")}
        if kind in INTERMEDIATE:
            uids = {
                str((item.get("metadata") or {}).get("uid") or "")
                for item in self._intermediates(INTERMEDIATE[kind], namespace)
                if controller_uid(item) in uids
            }
        return [pod for pod in self.pods(namespace) if controller_uid(pod) in uids]


def controller(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ownerReference with controller: true (what `kubectl describe` shows as "Controlled By")."""
    references = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in references if isinstance(r, Mapping) and r.get("controller")), None)


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    found = controller(obj)
    return str(found.get("uid")) if found is not None else None


def newest_first(objects: Iterable[JSON]) -> list[JSON]:
    return sorted(objects, key=lambda o: str((o.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True)


def _status_message(body: Any) -> str:
    try:
        return str(json.loads(body).get("message") or "")
    except (TypeError, ValueError, AttributeError):
        return ""
