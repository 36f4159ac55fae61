"""Pods for a test node, and what the kubelet said about them (pure functions: no I/O).

:func:`pod_for_node` completes a manifest so the node runs it without a scheduler: ``spec.nodeName`` set,
``hostNetwork: true`` (the node's CNI network is the loopback plugin alone, which cannot give a pod an ``eth0``),
no service account token volume (no controller publishes ``kube-root-ca.crt`` here) and a short grace period
(the pause program exits on SIGTERM). :func:`outcome_of` reads a pod's status the way a person reading
``kubectl get pod`` would: a container running, terminated, or waiting for a reason that will not change by
itself.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

#: waiting reasons after which nothing changes without a new pull attempt or a new pod
DECISIVE_WAITING = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "ImageInspectError",
        "RegistryUnavailable",
        "SignatureValidationFailed",
        "CreateContainerError",
        "CreateContainerConfigError",
        "PreCreateHookError",
        "PreStartHookError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)
#: waiting reasons that mean "still working on it"
PENDING_WAITING = frozenset({"ContainerCreating", "PodInitializing"})

__all__ = ["DECISIVE_WAITING", "KubeletOutcome", "outcome_of", "pod_for_node"]


@dataclass(frozen=True)
class KubeletOutcome:
    """What the kubelet reported for one container.

    ``state`` is ``running``, ``terminated`` or ``waiting`` (the container's state), or ``failed`` when the
    kubelet rejected the whole pod (``status.phase: Failed`` with no container status: ``reason`` and
    ``message`` are then the pod's)."""

    state: str
    reason: str
    message: str


def pod_for_node(manifest: Mapping[str, Any], namespace: str, node_name: str) -> dict[str, Any]:
    """A copy of ``manifest`` bound to ``node_name`` in ``namespace``, with the node's defaults filled in
    (anything the manifest sets itself is kept)."""
    pod = copy.deepcopy(dict(manifest))
    pod.setdefault("apiVersion", "v1")
    pod.setdefault("kind", "Pod")
    metadata = pod.setdefault("metadata", {})
    metadata["namespace"] = namespace
    spec = pod.setdefault("spec", {})
    spec["nodeName"] = node_name
    spec.setdefault("hostNetwork", True)
    spec.setdefault("automountServiceAccountToken", False)
    spec.setdefault("terminationGracePeriodSeconds", 2)
    spec.setdefault("restartPolicy", "Always")
    return pod


def _container_status(pod: Mapping[str, Any], container: str | None) -> Mapping[str, Any] | None:
    status = pod.get("status") or {}
    statuses = list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    if container is not None:
        return next((s for s in statuses if s.get("name") == container), None)
    # the first init container that has not finished, else the first app container
    for candidate in status.get("initContainerStatuses") or []:
        terminated = (candidate.get("state") or {}).get("terminated") or {}
        if terminated.get("exitCode") != 0:
            return dict(candidate)
    app = status.get("containerStatuses") or []
    return dict(app[0]) if app else None


def outcome_of(
    pod: Mapping[str, Any],
    container: str | None = None,
    decisive: Collection[str] = DECISIVE_WAITING,
) -> KubeletOutcome | None:
    """The outcome if the kubelet's status of ``container`` (default: the one that matters) is decisive, else
    None (still creating, or not looked at yet)."""
    status = pod.get("status") or {}
    found = _container_status(pod, container)
    if found is None:
        if status.get("phase") == "Failed":
            return KubeletOutcome("failed", str(status.get("reason", "")), str(status.get("message", "")))
        return None
    state = found.get("state") or {}
    if "running" in state:
        return KubeletOutcome("running", "", "")
    if "terminated" in state:
        terminated = state["terminated"]
        return KubeletOutcome("terminated", str(terminated.get("reason", "")), str(terminated.get("message", "")))
    waiting = state.get("waiting") or {}
    reason = str(waiting.get("reason", ""))
    if reason in decisive:
        return KubeletOutcome("waiting", reason, str(waiting.get("message", "")))
    return None
