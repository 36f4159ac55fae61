"""Small builders for policy-core tests."""

from __future__ import annotations

from policies.model import ContainerImage, ContainerKind, PodContext, Workload


def image(text: str, name: str = "app", index: int = 0, namespace: str = "default") -> ContainerImage:
    return ContainerImage.create(
        kind=ContainerKind.CONTAINER,
        name=name,
        image=text,
        pointer=f"/spec/containers/{index}/image",
        display_path=f"spec.containers[{index}]",
        pod=PodContext(namespace=namespace),
    )


def workload(*images: str, namespace: str = "default", kind: str = "Pod") -> Workload:
    return Workload(
        kind=kind,
        namespace=namespace,
        name="w",
        images=tuple(image(t, f"c{i}", i, namespace) for i, t in enumerate(images)),
    )
