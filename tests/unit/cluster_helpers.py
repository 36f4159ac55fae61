"""Builders of cluster facts for policy tests."""

from __future__ import annotations

import base64
import json
from typing import Any

from policies.model import ContainerImage, ContainerKind, NodeFacts, PodContext, SecretFacts


def dockerconfigjson(name: str, auths: dict[str, tuple[str, str]], namespace: str = "shop") -> SecretFacts:
    config = {
        "auths": {host: {"auth": base64.b64encode(f"{u}:{p}".encode()).decode()} for host, (u, p) in auths.items()}
    }
    data = {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}
    return SecretFacts(namespace, name, "kubernetes.io/dockerconfigjson", data)


def node(
    name: str,
    arch: str = "amd64",
    *,
    images: tuple[str, ...] = (),
    listed: int | None = None,
    ready: bool = True,
    schedulable: bool = True,
    labels: dict[str, str] | None = None,
    runtime: str = "containerd://1.7.2",
) -> NodeFacts:
    return NodeFacts(
        name=name,
        labels={"kubernetes.io/arch": arch, "kubernetes.io/os": "linux", **(labels or {})},
        ready=ready,
        schedulable=schedulable,
        images=frozenset(images),
        images_listed=len(images) if listed is None else listed,
        runtime=runtime,
    )


def container(
    image: str,
    *,
    namespace: str = "shop",
    secrets: tuple[str, ...] = (),
    account: str = "default",
    selector: dict[str, str] | None = None,
    affinity: dict[str, Any] | None = None,
    pull_policy: str | None = None,
    node_name: str | None = None,
) -> ContainerImage:
    pod = PodContext(namespace, account, secrets, tuple(sorted((selector or {}).items())), affinity, node_name)
    return ContainerImage.create(
        kind=ContainerKind.CONTAINER,
        name="app",
        image=image,
        pointer="/spec/containers/0/image",
        display_path="spec.containers[0]",
        pod=pod,
        pull_policy=pull_policy,
    )


def arch_affinity(operator: str, *arches: str) -> dict[str, Any]:
    expression = {"key": "kubernetes.io/arch", "operator": operator, "values": list(arches)}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [expression]}]
            }
        }
    }
