"""`pullguard explain` against a real kube-apiserver: workloads that own failing pods through ownerReferences
(Deployment -> ReplicaSet -> Pod), all namespaces (-A), nothing failing and usage errors. The pods are written as a
kubelet would (explain_pods.py); see test_explain.py.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from tests.e2e.cluster import Cluster
from tests.e2e.explain_pods import (
    CASES,
    REF,
    _now,
    core_event,
    create_pod,
    failing_pod,
    head,
    pulled,
    waiting,
    write_status,
)

pytestmark = [pytest.mark.timeout(180)]


# --------------------------------------------------------------------------- 2. workloads and -A


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
    }


def test_deployment_explains_its_newest_failing_pod(cluster: Cluster, namespace: str, run_explain: Any) -> None:
    labels = {"app": "web"}
    template = {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "app", "image": REF}]}}
    cluster.apply(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": namespace},
            "spec": {"selector": {"matchLabels": labels}, "template": template},
        }
    )
    deployment = cluster.kubectl_json("get", "deployment", "web", "-n", namespace)
    cluster.kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {"name": "web-5d9c", "namespace": namespace, "ownerReferences": [_owner(deployment)]},
                "spec": {"selector": {"matchLabels": labels}, "template": template},
            }
        ),
    )
    replicaset = cluster.kubectl_json("get", "replicaset", "web-5d9c", "-n", namespace)

    assert run_explain("deployment/web", "-n", namespace, "--offline").code == 0  # no pods yet: nothing failing

    old = create_pod(cluster, namespace, "web-5d9c-old", REF, labels=labels, owner=_owner(replicaset))
    waiting(cluster, old, "ErrImagePull", "")
    core_event(cluster, old, "Failed", pulled(REF, "NotFound", f"{REF}: not found"))
    time.sleep(1.1)  # creationTimestamp has a resolution of one second
    new = create_pod(cluster, namespace, "web-5d9c-new", REF, labels=labels, owner=_owner(replicaset))
    waiting(cluster, new, "ImagePullBackOff", f'Back-off pulling image "{REF}"')
    core_event(cluster, new, "Failed", pulled(REF, "Unknown", head(REF) + "dial tcp 203.0.113.9:443: i/o timeout"))
    healthy = create_pod(cluster, namespace, "web-5d9c-ok", REF, labels=labels, owner=_owner(replicaset))
    write_status(cluster, healthy, {"running": {"startedAt": _now()}}, phase="Running")
    time.sleep(1.1)
    stranger = create_pod(cluster, namespace, "web-lookalike", REF, labels=labels)  # same labels, not owned
    waiting(cluster, stranger, "ErrImagePull", "")

    result = run_explain("deploy/web", "-n", namespace, "--offline", "--format", "json")
    assert result.code == 1, result
    (pod,) = result.json["pods"]
    assert pod["name"] == "web-5d9c-new" and pod["owner"] == "ReplicaSet/web-5d9c"
    assert pod["containers"][0]["class"] == "timeout"
    assert (
        run_explain("replicaset/web-5d9c", "-n", namespace, "--offline", "--format", "json").json["pods"][0]["name"]
        == "web-5d9c-new"
    )


def test_all_namespaces(cluster: Cluster, namespace: str, run_explain: Any) -> None:
    other = f"e2e-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(other)
    try:
        failing_pod(cluster, namespace, CASES[0])
        failing_pod(cluster, other, CASES[3])
        create_pod(cluster, other, "quiet", REF)  # no status at all: not failing
        result = run_explain("-A", "--offline", "--format", "json")
        assert result.code == 1
        found = {(p["namespace"], p["name"]): p["containers"][0]["class"] for p in result.json["pods"]}
        assert found[(namespace, "notfound")] == "notFound" and found[(other, "dns")] == "dns"
        assert (other, "quiet") not in found
        assert result.json["summary"]["failingPods"] == len(found) and result.json["namespace"] is None
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_nothing_failing_and_errors(cluster: Cluster, namespace: str, run_explain: Any) -> None:
    pod = create_pod(cluster, namespace, "fine", REF)
    write_status(cluster, pod, {"running": {"startedAt": _now()}}, phase="Running")
    fine = run_explain("pod/fine", "-n", namespace)
    assert fine.code == 0 and "nothing failing: pod/fine" in fine.out, fine
    assert run_explain("pod/fine", "-n", namespace, "--format", "json").json["summary"]["exitCode"] == 0

    missing = run_explain("pod/absent", "-n", namespace)
    assert missing.code == 2 and "not found" in missing.err
    assert run_explain("service/web", "-n", namespace).code == 2
    assert run_explain("pod/fine", "-A").code == 2
    assert run_explain("-n", namespace).code == 2
