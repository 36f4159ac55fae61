"""Build AdmissionReview bodies the way the API server sends them, from plain manifests."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).parent / "data"
GROUPS = {
    "Pod": ("", "v1", "pods"),
    "PodTemplate": ("", "v1", "podtemplates"),
    "ReplicationController": ("", "v1", "replicationcontrollers"),
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "ConfigMap": ("", "v1", "configmaps"),
    "Service": ("", "v1", "services"),
}


def manifests(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DATA / "manifests" / name).read_text()) if d]


def manifest(name: str, kind: str | None = None) -> dict[str, Any]:
    docs = manifests(name)
    return next(d for d in docs if kind is None or d["kind"] == kind)


def review(
    obj: dict[str, Any] | None,
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    api_version: str = "admission.k8s.io/v1",
    kind: str | None = None,
    sub_resource: str | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    source = obj if obj is not None else old
    assert source is not None
    kind = kind or source["kind"]
    group, version, resource = GROUPS.get(kind, ("", "v1", kind.lower() + "s"))
    gvk = {"group": group, "version": version, "kind": kind}
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": gvk,
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": gvk,
        "name": source.get("metadata", {}).get("name", ""),
        "namespace": source.get("metadata", {}).get("namespace", "default"),
        "operation": operation,
        "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": False,
    }
    if sub_resource:
        request["subResource"] = sub_resource
    return {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}
