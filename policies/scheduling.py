"""Where a pod may run: the nodes its nodeSelector and required node affinity allow, and the platforms that
implies. Taints and resources are not modelled: this answers "which nodes could this image land on"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.image.platforms import NODE_ARCH_LABEL, NODE_OS_LABEL, Platform, from_goarch, node_platform
from policies.model import NodeFacts, PodContext

ARCH_KEYS = (NODE_ARCH_LABEL, "beta." + NODE_ARCH_LABEL)
OS_KEYS = (NODE_OS_LABEL, "beta." + NODE_OS_LABEL)


def _terms(affinity: Mapping[str, Any] | None) -> list[list[Mapping[str, Any]]]:
    """Required node affinity as OR-ed terms of AND-ed label expressions (matchFields are not labels)."""
    if not affinity:
        return []
    node = affinity.get("nodeAffinity") or {}
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms") or []
    return [list(t.get("matchExpressions") or []) for t in terms if isinstance(t, Mapping)]


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, operator = str(expression.get("key", "")), expression.get("operator")
    values = [str(v) for v in expression.get("values") or []]
    present = key in labels
    match operator:
        case "In":
            return present and labels[key] in values
        case "NotIn":
            return not present or labels[key] not in values
        case "Exists":
            return present
        case "DoesNotExist":
            return not present
        case "Gt" | "Lt":
            try:
                actual, bound = int(labels[key]), int(values[0])
            except (KeyError, IndexError, ValueError):
                return False
            return actual > bound if operator == "Gt" else actual < bound
    return False


def node_allowed(pod: PodContext, node: NodeFacts) -> bool:
    if pod.node_name is not None and node.name != pod.node_name:
        return False
    if any(node.labels.get(key) != value for key, value in pod.node_selector):
        return False
    terms = _terms(pod.affinity)
    return not terms or any(all(_expression_matches(e, node.labels) for e in term) for term in terms)


def lists_full(node: NodeFacts, limit: int) -> bool:
    """The node's status.images holds the kubelet's maximum (`limit`: --node-status-max-images, the policy's
    `kubelet.nodeStatusMaxImages`; -1: no maximum), so an image it does not list may still be on it."""
    return limit >= 0 and node.images_listed >= limit


def candidate_nodes(pod: PodContext, nodes: Sequence[NodeFacts]) -> list[NodeFacts]:
    """Ready, schedulable nodes the pod's selector and required affinity allow."""
    return [n for n in nodes if n.ready and n.schedulable and node_allowed(pod, n)]


@dataclass(frozen=True, slots=True)
class PlatformDemand:
    """The platforms a pod needs and where the answer came from (for messages)."""

    platforms: tuple[Platform, ...]
    source: str  # "nodeSelector", "node affinity", "nodes"
    nodes: tuple[NodeFacts, ...] = ()  # the candidate nodes, when the answer came from them


def _declared_arches(pod: PodContext) -> tuple[set[str] | None, str]:
    """Architectures the pod spec itself pins, from nodeSelector or required affinity (None: not pinned)."""
    selector = dict(pod.node_selector)
    for key in ARCH_KEYS:
        if key in selector:
            return {selector[key]}, "nodeSelector"
    allowed: set[str] = set()
    for term in _terms(pod.affinity):
        arches = [e for e in term if e.get("key") in ARCH_KEYS and e.get("operator") == "In"]
        if not arches:
            return None, ""  # one term leaves the architecture open: the pod is not pinned
        allowed.update(str(v) for e in arches for v in e.get("values") or [])
    return (allowed, "node affinity") if allowed else (None, "")


def platform_demand(pod: PodContext, nodes: Sequence[NodeFacts]) -> PlatformDemand | None:
    candidates = candidate_nodes(pod, nodes)
    declared, source = _declared_arches(pod)
    if candidates:
        platforms = tuple(dict.fromkeys(p for n in candidates if (p := node_platform(n.labels)) is not None))
        if platforms:
            return PlatformDemand(platforms, source or "nodes", tuple(candidates))
    if declared:  # no node is known to fit: the spec's own words are all there is
        goos = next((v for k, v in pod.node_selector if k in OS_KEYS), "linux")
        return PlatformDemand(tuple(from_goarch(goos, arch) for arch in sorted(declared)), source)
    return None
