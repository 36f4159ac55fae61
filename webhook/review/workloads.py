"""Find every image an object would make a kubelet pull, with its JSON pointer and pod context.

The object may come from anyone who can reach the webhook: every value read is type-checked where it is read,
strings only ever come from scalars (never `str()` of a list or object, which is unbounded and recursive), and
nothing outside the fixed paths below is walked, however deep it nests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
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

_ENTRY_LISTS = (*(field for _, field in _CONTAINER_LISTS), "volumes")


class MalformedObjectError(ValueError):
    """The object does not have the shape of its kind, or exceeds a limit; the message names the field."""

    def __init__(self, message: str, *, old: bool = False) -> None:
        super().__init__(message)
        self.old = old  # raised for the old object of an UPDATE


def is_workload(kind: str) -> bool:
    return kind in POD_SPEC_PATHS


def extract(
    kind: str,
    obj: Mapping[str, Any],
    namespace: str = "",
    old: Mapping[str, Any] | None = None,
    name: str = "",
    *,
    max_entries: int | None = None,
) -> Workload:
    """The images of `obj` (a `kind` from POD_SPEC_PATHS); with `old`, only images that changed (all of them
    when the pod's pull context changed). With `max_entries`, a pod spec holding more containers and volumes
    than that is refused (MalformedObjectError) before any of them is read."""
    metadata = _mapping(obj.get("metadata"), "metadata")
    if not namespace:
        namespace = metadata.get("namespace") or "default"
        if not isinstance(namespace, str):
            namespace = _text(namespace, "metadata.namespace")
    found = metadata.get("name") or metadata.get("generateName")
    name = (found if isinstance(found, str) else _text(found, "metadata.name")) or name
    path = POD_SPEC_PATHS[kind]
    spec = _walk(obj, path)
    pod = _pod_context(spec, namespace)
    images = _images(spec, path, pod, max_entries)
    if old is not None:
        try:
            old_spec = _walk(old, path)
            _check_entries(old_spec, ".".join(path), max_entries)
            old_pod = _pod_context(old_spec, namespace)
            # Only what changed is checked, but how the kubelet pulls is part of "what": new pull secrets, another
            # ServiceAccount or other nodes make every image new again, and so does a container's pull policy.
            if old_pod == pod:
                previous = {(i.kind, i.name, i.image, i.pull_policy) for i in _images(old_spec, path, pod, max_entries)}
                images = [i for i in images if (i.kind, i.name, i.image, i.pull_policy) not in previous]
        except MalformedObjectError as exc:
            raise MalformedObjectError(str(exc), old=True) from None
    labels = _labels(metadata)
    pod_labels = labels if len(path) < 2 else _labels(_walk(obj, path[:-1]).get("metadata"))
    return Workload(
        kind=kind, namespace=namespace, name=name, images=tuple(images), labels=labels, pod_labels=pod_labels
    )


def _labels(metadata: Any) -> Mapping[str, str]:
    """The labels as the object holds them (read only by a policy exception's selector, on every review: not
    copied). A value that is not a string, which the API server never admits, matches no selector."""
    labels = metadata.get("labels") if type(metadata) is dict else None
    return labels if type(labels) is dict else _NO_LABELS


_NO_LABELS: Mapping[str, str] = MappingProxyType({})


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


def _text(value: Any, where: str, field: str = "") -> str:
    """A string field as text: numbers and booleans (YAML writes them unquoted) as `str()` would give them.
    The field's name is `where` + `field` (joined only for the error: this runs for every container)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | float) or (isinstance(value, int) and abs(value) < 10**100):
        return str(value)
    raise MalformedObjectError(f"{where}{field}: expected a string, got {type(value).__name__}")


def _pod_context(spec: Mapping[str, Any], namespace: str) -> PodContext:
    secrets = _list(spec.get("imagePullSecrets"), "imagePullSecrets")
    selector = _mapping(spec.get("nodeSelector"), "nodeSelector")
    # serviceAccount is the deprecated alias the API server still honours
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    affinity = spec.get("affinity")
    node_name = spec.get("nodeName")
    return PodContext(
        namespace=namespace,
        service_account=(account if isinstance(account, str) else _text(account, "serviceAccountName")) or "default",
        image_pull_secrets=_pull_secret_names(secrets) if secrets else (),
        node_selector=tuple(sorted((str(k), _text(v, "nodeSelector values")) for k, v in selector.items())),
        affinity=_node_affinity(affinity) if affinity is not None else None,
        node_name=_text(node_name, "nodeName") or None if node_name is not None else None,
    )


def _pull_secret_names(secrets: list[Any]) -> tuple[str, ...]:
    names = []
    for index, secret in enumerate(secrets):
        if isinstance(secret, Mapping):
            name = secret.get("name")
            if not isinstance(name, str):
                name = _text(name, f"imagePullSecrets[{index}]", ".name")
            if name:
                names.append(name)
    return tuple(names)


_REQUIRED = "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
_TERMS = f"{_REQUIRED}.nodeSelectorTerms"


def _node_affinity(value: Any) -> Mapping[str, Any] | None:
    """The part of `affinity` the checks read, the required node affinity, copied with its strings checked
    (None: nothing of it). Pod (anti-)affinity and preferred terms are not walked, however deep they nest.
    Written flat, with field paths built only for an error: it runs for every pod spec that has an affinity."""
    if not isinstance(value, dict):
        raise MalformedObjectError(f"affinity: expected an object, got {type(value).__name__}")
    node = value.get("nodeAffinity")
    if node is None:
        return None
    if not isinstance(node, dict):
        raise MalformedObjectError(f"affinity.nodeAffinity: expected an object, got {type(node).__name__}")
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return {"nodeAffinity": {}}
    copied: list[dict[str, Any]] = []
    for t, term in enumerate(_list(_mapping(required, _REQUIRED).get("nodeSelectorTerms"), _TERMS)):
        if not isinstance(term, dict):
            raise MalformedObjectError(f"{_TERMS}[{t}]: expected an object")
        expressions = term.get("matchExpressions")
        if expressions is not None and not isinstance(expressions, list):
            raise MalformedObjectError(f"{_TERMS}[{t}].matchExpressions: expected a list")
        matched = []
        for e, expression in enumerate(expressions or ()):
            if isinstance(expression, dict):
                key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values")
                if (
                    isinstance(key, str)
                    and isinstance(operator, str)
                    and isinstance(values, list)
                    and all(isinstance(v, str) for v in values)
                ):
                    matched.append({"key": key, "operator": operator, "values": list(values)})
                    continue
            matched.append(_expression(expression, f"{_TERMS}[{t}].matchExpressions[{e}]"))
        copied.append({"matchExpressions": matched})
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": copied}}}


def _expression(expression: Any, where: str) -> dict[str, Any]:
    """The slow path of a match expression: fields missing, numbers for strings, or malformed (raises)."""
    if not isinstance(expression, dict):
        raise MalformedObjectError(f"{where}: expected an object")
    values = _list(expression.get("values"), f"{where}.values")
    return {
        "key": _text(expression.get("key"), where, ".key"),
        "operator": _text(expression.get("operator"), where, ".operator"),
        "values": [_text(v, where, ".values") for v in values],
    }


def _check_entries(spec: Mapping[str, Any], dotted: str, max_entries: int | None) -> None:
    if max_entries is None:
        return
    entries = 0
    for field in _ENTRY_LISTS:
        value = spec.get(field)
        if isinstance(value, list):
            entries += len(value)
    if entries > max_entries:
        raise MalformedObjectError(
            f"{dotted or 'the object'} has {entries} containers, initContainers, ephemeralContainers and "
            f"volumes, over pullguard's limit of {max_entries} per object"
        )


def _images(
    spec: Mapping[str, Any], path: Sequence[str], pod: PodContext, max_entries: int | None
) -> list[ContainerImage]:
    prefix = "".join(f"/{p}" for p in path)
    dotted = ".".join(path)
    _check_entries(spec, dotted, max_entries)
    found: list[ContainerImage] = []
    for kind, field in _CONTAINER_LISTS:
        for index, container in enumerate(_list(spec.get(field), f"{dotted}.{field}")):
            where = f"{dotted}.{field}[{index}]".lstrip(".")
            entry = _mapping(container, where)
            found.append(
                ContainerImage.create(
                    kind=kind,
                    name=name if isinstance(name := entry.get("name"), str) else _text(name, where, ".name"),
                    image=_image_string(entry.get("image"), f"{where}.image"),
                    pointer=f"{prefix}/{field}/{index}/image",
                    display_path=where,
                    pod=pod,
                    pull_policy=_optional_str(entry.get("imagePullPolicy")),
                )
            )
    for index, volume in enumerate(_list(spec.get("volumes"), f"{dotted}.volumes")):
        where = f"{dotted}.volumes[{index}]".lstrip(".")
        entry = _mapping(volume, where)
        source = _mapping(entry.get("image"), f"{where}.image")
        if source:
            found.append(
                ContainerImage.create(
                    kind=ContainerKind.IMAGE_VOLUME,
                    name=_text(entry.get("name"), where, ".name"),
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
