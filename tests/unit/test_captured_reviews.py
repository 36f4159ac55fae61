"""The envelope parser and the workload extraction against AdmissionReviews captured from a real kube-apiserver.

The files under tests/data/admission/ were recorded by tests/e2e/capture_reviews.py (see tests/data/README.md).
The expectations below are written from the manifests in that script, not from the extraction's output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonpointer
import pytest

from policies.config import DEFAULT_POLICY_YAML, parse_policy
from policies.model import ContainerKind
from webhook.admission.envelope import parse_review, workload_of
from webhook.admission.pipeline import validate_body
from webhook.review.facts import FactGatherer

ADMISSION = Path(__file__).resolve().parents[1] / "data" / "admission"
INDEXER = (
    "registry.example.com/shop/search-indexer@sha256:0e4a5fc1b8ef0a5ee8b1b7a3ec0d1bcde4b5b45c0da4ee1c7a4c3ddf1d0c3a11"
)
TEMPLATE = "/spec/template/spec"


@dataclass(frozen=True)
class Expected:
    kind: str
    operation: str
    name: str | None  # None: a generated name (checked against request.name)
    images: dict[str, str] = field(default_factory=dict)  # JSON pointer -> image
    api_version: str = "admission.k8s.io/v1"
    sub_resource: str = ""
    namespace: str = "shop"
    judged: bool = True  # False: workload_of gives None


EXPECTED: dict[str, Expected] = {
    "pod-create.json": Expected(
        "Pod",
        "CREATE",
        "checkout",
        {
            "/spec/initContainers/0/image": "registry.example.com/shop/checkout-migrations:2.4.1",
            "/spec/initContainers/1/image": "busybox:1.36.1",
            "/spec/containers/0/image": "registry.example.com/shop/checkout:2.4.1",
            "/spec/containers/1/image": "docker.io/envoyproxy/envoy:v1.31.2",
            "/spec/volumes/0/image/reference": "registry.example.com/shop/fraud-model:2024.11",
        },
    ),
    "pod-generatename-create.json": Expected(
        "Pod", "CREATE", None, {"/spec/containers/0/image": "ghcr.io/example/batch-worker:0.9.3"}
    ),
    # `kubectl set image`: only the changed container is judged.
    "pod-update.json": Expected(
        "Pod", "UPDATE", "checkout", {"/spec/containers/1/image": "docker.io/envoyproxy/envoy:v1.31.3"}
    ),
    # `kubectl debug`: the ephemeral container is new; busybox:1.36.1 is also an init container, still judged.
    "pod-ephemeralcontainers-update.json": Expected(
        "Pod",
        "UPDATE",
        "checkout",
        {"/spec/ephemeralContainers/0/image": "busybox:1.36.1"},
        sub_resource="ephemeralcontainers",
    ),
    "deployment-create.json": Expected(
        "Deployment",
        "CREATE",
        "storefront",
        {
            f"{TEMPLATE}/containers/0/image": "nginx:1.27.3",
            f"{TEMPLATE}/containers/1/image": "registry.example.com/shop/storefront:3.2.0",
            f"{TEMPLATE}/containers/2/image": "quay.io/prometheuscommunity/postgres-exporter:v0.15.0",
        },
    ),
    "deployment-create-v1beta1.json": Expected(
        "Deployment",
        "CREATE",
        "storefront",
        {
            f"{TEMPLATE}/containers/0/image": "nginx:1.27.3",
            f"{TEMPLATE}/containers/1/image": "registry.example.com/shop/storefront:3.2.0",
            f"{TEMPLATE}/containers/2/image": "quay.io/prometheuscommunity/postgres-exporter:v0.15.0",
        },
        api_version="admission.k8s.io/v1beta1",
    ),
    "deployment-update.json": Expected(
        "Deployment", "UPDATE", "storefront", {f"{TEMPLATE}/containers/0/image": "nginx:1.27.4"}
    ),
    "deployment-delete.json": Expected("Deployment", "DELETE", "storefront", judged=False),
    "deployment-nginx-untagged.json": Expected(
        "Deployment", "CREATE", "web", {f"{TEMPLATE}/containers/0/image": "nginx"}
    ),
    "statefulset-create.json": Expected(
        "StatefulSet",
        "CREATE",
        "postgres",
        {f"{TEMPLATE}/initContainers/0/image": "busybox:1.36.1", f"{TEMPLATE}/containers/0/image": "postgres:16.4"},
    ),
    "daemonset-create.json": Expected(
        "DaemonSet",
        "CREATE",
        "node-exporter",
        {f"{TEMPLATE}/containers/0/image": "quay.io/prometheus/node-exporter:v1.8.2"},
    ),
    "replicaset-create.json": Expected(
        "ReplicaSet", "CREATE", "cache", {f"{TEMPLATE}/containers/0/image": "redis:7.2.4"}
    ),
    "replicationcontroller-create.json": Expected(
        "ReplicationController",
        "CREATE",
        "legacy-api",
        {f"{TEMPLATE}/containers/0/image": "registry.example.com:5000/shop/legacy-api:1.0.9"},
    ),
    "job-create.json": Expected(
        "Job",
        "CREATE",
        "reindex",
        {f"{TEMPLATE}/initContainers/0/image": "curlimages/curl:8.10.1", f"{TEMPLATE}/containers/0/image": INDEXER},
    ),
    "cronjob-create.json": Expected(
        "CronJob",
        "CREATE",
        "nightly-report",
        {
            "/spec/jobTemplate/spec/template/spec/containers/0/image": "registry.example.com/shop/reports:1.12.0",
            "/spec/jobTemplate/spec/template/spec/containers/1/image": "amazon/aws-cli:2.17.0",
        },
    ),
    "podtemplate-create.json": Expected(
        "PodTemplate",
        "CREATE",
        "batch-worker",
        {"/template/spec/containers/0/image": "ghcr.io/example/batch-worker:0.9.3"},
    ),
}


def load(name: str) -> tuple[bytes, dict[str, Any]]:
    raw = (ADMISSION / name).read_bytes()
    return raw, json.loads(raw)


def test_every_capture_has_expectations() -> None:
    assert sorted(p.name for p in ADMISSION.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_captured_review(name: str) -> None:
    expected = EXPECTED[name]
    raw, document = load(name)
    review = parse_review(raw)
    request = document["request"]
    assert review.api_version == expected.api_version
    assert review.uid == request["uid"]
    assert (review.kind, review.operation, review.sub_resource) == (
        expected.kind,
        expected.operation,
        expected.sub_resource,
    )
    assert review.namespace == expected.namespace
    assert review.name == (expected.name or request["name"])
    assert review.dry_run is False

    workload = workload_of(review)
    if not expected.judged:
        assert workload is None
        assert review.object is None
        assert review.old_object is not None
        return
    assert workload is not None
    assert (workload.kind, workload.namespace) == (expected.kind, expected.namespace)
    if expected.name is None:
        assert workload.name == request["name"]
        assert workload.name.startswith(request["object"]["metadata"]["generateName"])
    else:
        assert workload.name == expected.name
    assert len(workload.images) == len(expected.images)
    assert {i.pointer: i.image for i in workload.images} == expected.images
    for image in workload.images:
        # The pointer addresses the image string in the object the apiserver sent (what a JSON patch edits).
        assert jsonpointer.resolve_pointer(request["object"], image.pointer) == image.image
        assert image.pod.namespace == expected.namespace


def test_pod_context_from_a_real_pod() -> None:
    workload = workload_of(parse_review(load("pod-create.json")[0]))
    assert workload is not None
    kinds = [i.kind for i in workload.images]
    assert kinds.count(ContainerKind.INIT_CONTAINER) == 2
    assert kinds.count(ContainerKind.IMAGE_VOLUME) == 1
    volume = next(i for i in workload.images if i.kind is ContainerKind.IMAGE_VOLUME)
    assert (volume.name, volume.display_path, volume.pull_policy) == ("model", "spec.volumes[0].image", "IfNotPresent")
    pod = workload.images[0].pod
    assert pod.service_account == "default"
    assert pod.image_pull_secrets == ("regcred",)
    assert pod.node_selector == (("kubernetes.io/os", "linux"),)
    # The apiserver defaults imagePullPolicy before any webhook sees the object.
    assert all(i.pull_policy == "IfNotPresent" for i in workload.images)


def test_pod_context_from_a_real_deployment() -> None:
    workload = workload_of(parse_review(load("deployment-create.json")[0]))
    assert workload is not None
    assert [i.display_path for i in workload.images] == [f"spec.template.spec.containers[{n}]" for n in range(3)]
    assert [i.pull_policy for i in workload.images] == ["IfNotPresent", "Always", "IfNotPresent"]
    pod = workload.images[0].pod
    assert pod.image_pull_secrets == ("regcred",)
    assert pod.affinity is not None
    assert "nodeAffinity" in pod.affinity


def test_ephemeral_container_update_keeps_the_old_containers_out() -> None:
    _, document = load("pod-ephemeralcontainers-update.json")
    request = document["request"]
    assert request["requestSubResource"] == "ephemeralcontainers"
    assert "ephemeralContainers" not in request["oldObject"]["spec"]
    workload = workload_of(parse_review(json.dumps(document).encode()))
    assert workload is not None
    (debugger,) = workload.images
    assert (debugger.kind, debugger.name) == (ContainerKind.EPHEMERAL_CONTAINER, "debugger")


async def test_readme_example_answer() -> None:
    """README's `curl --data @tests/data/admission/deployment-nginx-untagged.json` answer, offline."""
    raw, document = load("deployment-nginx-untagged.json")
    outcome = await validate_body(raw, parse_policy(DEFAULT_POLICY_YAML), FactGatherer())
    assert outcome.answer["response"]["uid"] == document["request"]["uid"]
    assert outcome.answer["response"]["allowed"] is True
    assert outcome.answer["response"].get("warnings") == [
        'pullguard: container "web" image "nginx" has no tag (resolves to latest): pin a version tag or digest'
    ]


async def test_v1beta1_is_answered_in_v1beta1() -> None:
    raw, _ = load("deployment-create-v1beta1.json")
    outcome = await validate_body(raw, parse_policy(DEFAULT_POLICY_YAML), FactGatherer())
    assert outcome.answer["apiVersion"] == "admission.k8s.io/v1beta1"
    assert outcome.answer["response"]["allowed"] is True
