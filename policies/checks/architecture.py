"""`architecture`: the image has a build for the platforms of the nodes the pod may land on.

containerd pulls with a platform matcher that it applies to an index's entries only: an index without a matching
entry fails with "no match for platform in manifest" (ErrImagePull). A single-platform manifest is the pull's
root, whose platform containerd never checks (core/images/image.go `Manifest`: `desc.Digest != image.Digest`),
so it is pulled and unpacked, and the container then dies at start with "exec format error".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from policies.checks.spec import CheckSpec, RuleText
from policies.image.platforms import Platform, format, matches, node_platform
from policies.model import CheckName, ContainerImage, Facts, Finding, Gap, Reason
from policies.node_pull import seen_from_nodes
from policies.render import node_names
from policies.scheduling import platform_demand

if TYPE_CHECKING:  # the policy schema is built from this module's record (policies.checks.spec)
    from policies.config import Policy

NAME = CheckName.ARCHITECTURE


def check(image: ContainerImage, facts: Facts, policy: Policy) -> Sequence[Finding]:
    return tuple(seen_from_nodes(finding, image, facts, policy) for finding in _check(image, facts))


def _check(image: ContainerImage, facts: Facts) -> Sequence[Finding]:
    found = facts.image(image)
    if found is None or not found.platforms or image.never_pulled:
        return ()
    demand = platform_demand(image.pod, facts.cluster.nodes if facts.cluster.known else ())
    if demand is None:
        return ()
    offered = found.platforms
    fitting = [p for p in demand.platforms if any(matches(o, p) for o in offered)]
    missing = [p for p in demand.platforms if p not in fitting]
    if not missing:
        return ()
    offers = _list(offered)
    if not fitting and not found.is_index:
        message = (
            f"{image.label} is a single-platform {offers} image and the pod may only run on {_list(missing)} "
            f"(from {demand.source}): containerd pulls it and the container fails to start with exec format error"
        )
        hint = f"push a {_list(missing)} build (a multi-arch index), or run the pod on {offers} nodes"
        return (Finding(NAME, image, Reason.CRASH_LOOP_BACK_OFF, message, hint),)
    if not fitting:
        message = f"{image.label} has no build for {_list(missing)} (from {demand.source}; it offers {offers})"
        hint = f"push a {_list(missing)} build (a multi-arch index), or pin the pod to {_arch_selector(offered)}"
        return (Finding(NAME, image, Reason.ERR_IMAGE_PULL, message + ": no match for platform", hint),)
    nodes = [n.name for n in demand.nodes if _node_platform_in(n.labels, missing)]
    where = node_names(nodes) if nodes else _list(missing)
    hint = f"add nodeSelector {_arch_selector(fitting)} or push a multi-arch image"
    if not found.is_index:
        message = (
            f"{image.label} is a single-platform {offers} image: pods on {where} would pull it and fail to start "
            "with exec format error"
        )
        return (Finding(NAME, image, Reason.CRASH_LOOP_BACK_OFF, message, hint, advisory=True, nodes=tuple(nodes)),)
    message = f"{image.label} has no build for {_list(missing)}: pods on {where} would fail (no match for platform)"
    return (Finding(NAME, image, Reason.ERR_IMAGE_PULL, message, hint, advisory=True, nodes=tuple(nodes)),)


def blind(image: ContainerImage, facts: Facts) -> Gap | None:
    """Offline there are no platforms to compare; with no Node the pod may run on and no architecture pinned in
    its spec, nothing to compare them with. (A failed lookup has no platforms either: imageExists says why.)"""
    if image.pull_reference is None or image.never_pulled:
        return None
    found = facts.image(image)
    if found is None:
        return Gap.NO_LOOKUP
    if not found.platforms:
        return None
    if platform_demand(image.pod, facts.cluster.nodes if facts.cluster.known else ()) is None:
        return Gap.NO_NODES if facts.cluster.known else Gap.NO_CLUSTER
    return None


def _node_platform_in(labels: Mapping[str, str], platforms: list[Platform]) -> bool:
    return node_platform(labels) in platforms


def _list(platforms: Sequence[Platform]) -> str:
    return ", ".join(dict.fromkeys(format(p) for p in platforms))


def _arch_selector(platforms: Sequence[Platform]) -> str:
    return f"kubernetes.io/arch: {platforms[0].architecture}" if platforms else "a matching architecture"


SPEC = CheckSpec(
    NAME,
    check,
    needs_registry=True,
    blind=blind,
    rule=RuleText(
        "The image has a build for the nodes' platform",
        "The image must offer a build for the platform of every node the pod may land on (nodeSelector, "
        "required node affinity, Ready nodes); otherwise containerd reports no match for platform, or a "
        "single-platform image fails with exec format error.",
        "Push a multi-platform image index, or constrain the pod to nodes of a platform the image has.",
    ),
)
