from __future__ import annotations

import copy

import pytest

from policies.model import ContainerKind
from tests.reviews import manifest, manifests
from webhook.review.workloads import MalformedObjectError, extract


def images_of(obj: dict, **kwargs: object) -> list[tuple[str, str, str]]:
    workload = extract(obj["kind"], obj, **kwargs)  # type: ignore[arg-type]
    return [(i.pointer, i.display_path, i.image) for i in workload.images]


def test_pod_images_contexts_and_pointers() -> None:
    pod = manifest("pod.yaml")
    workload = extract("Pod", pod)
    assert (workload.kind, workload.namespace, workload.name) == ("Pod", "default", "debug")
    assert [(i.kind, i.pointer, i.display_path) for i in workload.images] == [
        (ContainerKind.INIT_CONTAINER, "/spec/initContainers/0/image", "spec.initContainers[0]"),
        (ContainerKind.CONTAINER, "/spec/containers/0/image", "spec.containers[0]"),
    ]
    context = workload.images[0].pod
    assert context.service_account == "builder"
    assert context.image_pull_secrets == ("regcred",)
    assert context.node_selector == (("kubernetes.io/arch", "arm64"),)
    assert workload.images[1].pull_policy == "IfNotPresent"
    assert workload.images[0].pull_policy is None


@pytest.mark.parametrize(
    ("kind", "pointer", "image"),
    [
        ("StatefulSet", "/spec/template/spec/containers/0/image", "postgres:16.4"),
        ("DaemonSet", "/spec/template/spec/containers/0/image", "fluent/fluent-bit"),
        ("ReplicaSet", "/spec/template/spec/containers/0/image", "registry.example.com/shop/api:v3.2.0"),
        ("ReplicationController", "/spec/template/spec/containers/0/image", "httpd:latest"),
        ("Job", "/spec/template/spec/containers/0/image", "perl:5.34.0"),
        ("CronJob", "/spec/jobTemplate/spec/template/spec/containers/0/image", "busybox:1.28"),
        ("PodTemplate", "/template/spec/containers/0/image", "registry.example.com/team/worker:1.0.0"),
    ],
)
def test_every_workload_kind(kind: str, pointer: str, image: str) -> None:
    found = images_of(manifest("workloads.yaml", kind))
    assert (pointer, image) in [(p, i) for p, _, i in found]


def test_cronjob_init_containers_and_display_path() -> None:
    found = images_of(manifest("workloads.yaml", "CronJob"))
    assert found[0] == (
        "/spec/jobTemplate/spec/template/spec/initContainers/0/image",
        "spec.jobTemplate.spec.template.spec.initContainers[0]",
        "alpine",
    )


def test_image_volumes_are_images_too() -> None:
    workload = extract("PodTemplate", manifest("workloads.yaml", "PodTemplate"))
    volume = workload.images[-1]
    assert volume.kind is ContainerKind.IMAGE_VOLUME
    assert volume.pointer == "/template/spec/volumes/0/image/reference"
    assert volume.image == "registry.example.com/team/models"
    assert volume.pull_policy == "IfNotPresent"
    assert volume.label == 'image volume "models" image "registry.example.com/team/models"'


def test_ephemeral_containers_of_a_pod() -> None:
    pod = manifest("pod.yaml")
    pod["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": "busybox:1.36"}]
    assert ("/spec/ephemeralContainers/0/image", "spec.ephemeralContainers[0]", "busybox:1.36") in images_of(pod)


def test_old_style_ephemeral_containers_body() -> None:
    body = {
        "kind": "EphemeralContainers",
        "metadata": {"name": "p"},
        "ephemeralContainers": [{"name": "d", "image": "x:1"}],
    }
    assert images_of(body) == [("/ephemeralContainers/0/image", "ephemeralContainers[0]", "x:1")]


def test_update_checks_only_changed_images() -> None:
    old = manifest("deployment.yaml")
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][1]["image"] = "quay.example.com/prom/nginx-exporter:0.11.0"
    new["spec"]["replicas"] = 5
    assert [i for _, _, i in images_of(new, old=old)] == ["quay.example.com/prom/nginx-exporter:0.11.0"]
    assert images_of(old, old=old) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("imagePullSecrets", [{"name": "regcred"}]),
        ("serviceAccountName", "builder"),
        ("nodeSelector", {"kubernetes.io/arch": "arm64"}),
        ("affinity", {"nodeAffinity": {}}),
        ("nodeName", "node-a"),
    ],
)
def test_update_of_the_pull_context_checks_every_image(field: str, value: object) -> None:
    old = manifest("deployment.yaml")
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"][field] = value
    assert len(images_of(new, old=old)) == 3


def test_update_of_a_pull_policy_checks_that_image() -> None:
    old = manifest("deployment.yaml")
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Never"
    assert [i for _, _, i in images_of(new, old=old)] == ["nginx"]


def test_a_bound_pod_names_its_node() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"}}
    pod["spec"] = {"nodeName": "node-a", "containers": [{"name": "app", "image": "nginx:1.27"}]}
    (image,) = extract("Pod", pod).images
    assert image.pod.node_name == "node-a"
    del pod["spec"]["nodeName"]
    assert extract("Pod", pod).images[0].pod.node_name is None


def test_namespace_and_name_fallbacks() -> None:
    pod = {"kind": "Pod", "metadata": {"generateName": "web-"}, "spec": {"containers": [{"name": "a", "image": "a:1"}]}}
    workload = extract("Pod", pod, namespace="team-a")
    assert (workload.namespace, workload.name) == ("team-a", "web-")
    assert extract("Pod", {"kind": "Pod", "spec": {}}).namespace == "default"


def test_missing_image_is_reported_not_crashed() -> None:
    pod = {"kind": "Pod", "spec": {"containers": [{"name": "a"}]}}
    (image,) = extract("Pod", pod).images
    assert image.image == "" and image.reference is None and image.reference_error


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"containers": "nginx"}, "spec.containers: expected a list, got str"),
        ({"containers": ["nginx"]}, "spec.containers[0]: expected an object, got str"),
        ({"containers": [{"name": "a", "image": 3}]}, "spec.containers[0].image: expected a string, got int"),
        ({"nodeSelector": ["a"]}, "nodeSelector: expected an object, got list"),
        ({"volumes": [{"name": "v", "image": {"reference": 1}}]}, "spec.volumes[0].image.reference: expected a string"),
    ],
)
def test_malformed_objects_name_the_field(spec: dict, message: str) -> None:
    with pytest.raises(MalformedObjectError, match=message.replace("[", r"\[").replace("]", r"\]")):
        extract("Pod", {"kind": "Pod", "spec": spec})


def test_all_manifest_documents_extract() -> None:
    kinds = [d["kind"] for d in manifests("workloads.yaml")]
    assert kinds == ["StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob", "PodTemplate"]
