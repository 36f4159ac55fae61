"""`pullguard explain` against a real kube-apiserver: pods whose statuses and events say what a kubelet says when a
pull fails (there is no kubelet here: the test writes `status` through the status subresource and the kubelet's
Events through the API, core v1 and events.k8s.io/v1), every failure class from that evidence alone (--offline).

Workloads that own such pods are in test_explain_workloads.py, the causes confirmed against a real registry in
test_explain_registry.py; what the tests write in place of a kubelet is in explain_pods.py, the `run_explain`
fixture in conftest.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.cluster import Cluster
from tests.e2e.explain_pods import (
    CASES,
    NODE,
    REF,
    core_event,
    create_pod,
    failing_pod,
    new_event,
    only_container,
    pulled,
    waiting,
)

pytestmark = [pytest.mark.timeout(180)]


# --------------------------------------------------------------------------- 1. every class, from the evidence


def test_each_class_from_statuses_and_events(cluster: Cluster, namespace: str, run_explain: Any) -> None:
    for case in CASES:
        failing_pod(cluster, namespace, case)
    for case in CASES:
        result = run_explain(f"pod/{case.name}", "-n", namespace, "--offline", "--format", "json")
        assert result.code == 1, (case, result)
        container = only_container(result)
        assert container["class"] == case.klass, (case.name, container)
        assert container["reason"] == case.reason
        assert container["verdict"] == ("node" if case.klass == "noSpaceLeft" else "notChecked"), container
        assert container["fix"]
        assert result.json["pods"][0]["node"] == NODE
    text = run_explain("pod/x509-ca", "-n", namespace, "--offline")
    assert text.code == 1
    assert "kubelet:  ErrImagePull" in text.out
    assert "event:    Failed to pull image" in text.out
    assert "tlsUnknownAuthority" in text.out
    assert (
        "fix:      install the registry's CA on every node: /etc/containerd/certs.d/registry.example.test/ca.crt"
        in text.out
    )
    space = only_container(run_explain("pod/nospace", "-n", namespace, "--offline", "--format", "json"))
    assert f"free disk space on node {NODE}" in space["fix"]
    rate = only_container(run_explain("pod/ratelimit", "-n", namespace, "--offline", "--format", "json"))
    assert "pull-through mirror for docker.io in hosts.toml" in rate["fix"]


def test_events_k8s_io_and_the_sandbox_image(cluster: Cluster, namespace: str, run_explain: Any) -> None:
    pod = create_pod(cluster, namespace, "newer", REF)
    waiting(cluster, pod, "ErrImagePull", "")
    new_event(cluster, pod, "Failed", pulled(REF, "NotFound", f"{REF}: not found"))
    newer = only_container(run_explain("pod/newer", "-n", namespace, "--offline", "--format", "json"))
    assert newer["class"] == "notFound" and newer["event"].startswith("Failed to pull image")

    sandbox = create_pod(cluster, namespace, "sandboxed", "registry.example.test/shop/web:2.1")
    pause = "registry.k8s.io/pause:3.10"
    core_event(
        cluster,
        sandbox,
        "FailedCreatePodSandBox",
        f'Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox image "{pause}": '
        f'failed to pull image "{pause}": failed to pull and unpack image "{pause}": failed to resolve reference '
        f'"{pause}": failed to do request: Head "https://registry.k8s.io/v2/pause/manifests/3.10": dial tcp '
        "34.96.108.209:443: i/o timeout",
        field_path=None,
    )
    found = only_container(run_explain("pod/sandboxed", "-n", namespace, "--offline", "--format", "json"))
    assert found["kind"] == "sandbox" and found["sandboxImage"] == pause and found["class"] == "timeout"
    assert "sandbox_image" in found["fix"]
