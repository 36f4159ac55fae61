"""Find every image an object would make a kubelet pull, with its JSON pointer and pod context."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from policies.model import ContainerImage, ContainerKind, PodContext, Workload

# Where each kind keeps its pod spec. Groups are not checked: the kind names are unambiguous in practice.
POD_SPEC_PATHS: Mapping[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "PodTemplate": ("template", "spec"),
    "EphemeralContainers": (),  # the pods/ephemeralcontainers body before Kubernetes 1.22
}
# (kind, field name): enum .value is a slow property lookup, and this loop is on every review
_CONTAINER_LISTS = tuple(
    (kind, kind.value)
    for kind in (ContainerKind.INIT_CONTAINER, ContainerKind.CONTAINER, ContainerKind.EPHEMERAL_CONTAINER)
)


class MalformedObjectError(ValueError):
    """The object does not have the shape of its kind; the message names the field."""


def is_workload(kind: str) -> bool:
    return kind in POD_SPEC_PATHS


def extract(
    kind: str,
    obj: Mapping[str, Any],
    namespace: str = "",
    old: Mapping[str, Any] | None = None,
    name: str = "",
) -> Workload:
    """The images of `obj` (a `kind` from POD_SPEC_PATHS); with `old`, only images that changed (all of them
    when the pod's pull context changed)."""
    metadata = _mapping(obj.get("metadata"), "metadata")
    namespace = namespace or str(metadata.get("namespace") or "default")
    name = str(metadata.get("name") or metadata.get("generateName") or name)
    path = POD_SPEC_PATHS[kind]
    spec = _walk(obj, path)
    pod = _pod_context(spec, namespace)
    images = _images(spec, path, pod)
    if old is not None:
        old_spec = _walk(old, path)
        # Only what changed is checked, but how the kubelet pulls is part of "what": new pull secrets, another
        # ServiceAccount or other nodes make every image new again, and so does a container's pull policy.
        if _pod_context(old_spec, namespace) == pod:
            previous = {(i.kind, i.name, i.image, i.pull_policy) for i in _images(old_spec, path, pod)}
            images = [i for i in images if (i.kind, i.name, i.image, i.pull_policy) not in previous]
    return Workload(kind=kind, namespace=namespace, name=name, images=tuple(images))


def _walk(obj: Mapping[str, Any], path: Sequence[str]) -> Mapping[str, Any]:
    node: Mapping[str, Any] = obj
    for depth, key in enumerate(path):
        node = _mapping(node.get(key), ".".join(path[: depth + 1]))
    return node


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):  # JSON and YAML objects arrive as dicts (an ABC check costs 10x more)
        raise MalformedObjectError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedObjectError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _pod_context(spec: Mapping[str, Any], namespace: str) -> PodContext:
    secrets = _list(spec.get("imagePullSecrets"), "imagePullSecrets")
    selector = _mapping(spec.get("nodeSelector"), "nodeSelector")
    affinity = spec.get("affinity")
    return PodContext(
        namespace=namespace,
        # serviceAccount is the deprecated alias the API server still honours
        service_account=str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"),
        image_pull_secrets=tuple(str(s["name"]) for s in secrets if isinstance(s, Mapping) and s.get("name")),
        node_selector=tuple(sorted((str(k), str(v)) for k, v in selector.items())),
        affinity=_mapping(affinity, "affinity") or None,
    )


def _images(spec: Mapping[str, Any], path: Sequence[str], pod: PodContext) -> list[ContainerImage]:
    prefix = "".join(f"/{p}" for p in path)
    dotted = ".".join(path)
    found: list[ContainerImage] = []
    for kind, field in _CONTAINER_LISTS:
        for index, container in enumerate(_list(spec.get(field), f"{dotted}.{field}")):
            where = f"{dotted}.{field}[{index}]".lstrip(".")
            entry = _mapping(container, where)
            found.append(
                ContainerImage.create(
                    kind=kind,
                    name=str(entry.get("name", "")),
                    image=_image_string(entry.get("image"), f"{where}.image"),
                    pointer=f"{prefix}/{field}/{index}/image",
                    display_path=where,
                    pod=pod,
                    pull_policy=_optional_str(entry.get("imagePullPolicy")),
                )
            )
    for index, volume in enumerate(_list(spec.get("volumes"), f"{dotted}.volumes")):
        where = f"{dotted}.volumes[{index}]".lstrip(".")
        source = _mapping(_mapping(volume, where).get("image"), f"{where}.image")
        if source:
            found.append(
                ContainerImage.create(
                    kind=ContainerKind.IMAGE_VOLUME,
                    name=str(_mapping(volume, where).get("name", "")),
                    image=_image_string(source.get("reference"), f"{where}.image.reference"),
                    pointer=f"{prefix}/volumes/{index}/image/reference",
                    display_path=f"{where}.image",
                    pod=pod,
                    pull_policy=_optional_str(source.get("pullPolicy")),
                )
            )
    return found


def _image_string(value: Any, where: str) -> str:
    if value is None:
        return ""  # the reference check reports the empty name
    if not isinstance(value, str):
        raise MalformedObjectError(f"{where}: expected a string, got {type(value).__name__}")
    return value


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
