"""Which containers of a pod fail to pull (or to start, for `exec format error`), and what the kubelet said.

The sources, as the kubelet writes them: each container status's `state.waiting` (reason ErrImagePull,
ImagePullBackOff, InvalidImageName, ErrImageNeverPull; CrashLoopBackOff whose `lastState.terminated` says
`exec format error`) and the pod's events (`Failed to pull image "…": …`, `ErrImageNeverPull`, `InspectFailed`;
`FailedCreatePodSandBox` when the sandbox image could not be pulled). The runtime's message is taken from the
newest event that names a cause, else from the status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from webhook.explain.pull_errors import PullError, PullErrorClass, classify

PULL_REASONS = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
EVENT_REASONS = frozenset({"Failed", "ErrImageNeverPull", "InspectFailed", "BackOff"})
SANDBOX_EVENT = "FailedCreatePodSandBox"
SANDBOX = "sandbox"  # the `kind` of the pseudo-container standing for the pod sandbox
_STATUS_LISTS = (
    ("initContainerStatuses", "initContainers"),
    ("containerStatuses", "containers"),
    ("ephemeralContainerStatuses", "ephemeralContainers"),
)


@dataclass(frozen=True, slots=True)
class FailingContainer:
    kind: str  # containers | initContainers | ephemeralContainers | sandbox
    name: str
    image: str
    reason: str  # the waiting reason (or FailedCreatePodSandBox)
    message: str  # the status's own message (waiting, or the last termination's)
    event: str | None  # the event message the classification comes from, when there is one
    error: PullError


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def event_time(event: Mapping[str, Any]) -> str:
    series = event.get("series") or {}
    return _text(
        event.get("lastTimestamp")
        or (series.get("lastObservedTime") if isinstance(series, Mapping) else None)
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
    )


def events_for(pod: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The pod's events, newest first (matched by uid when both have one, else by namespace and name)."""
    metadata = pod.get("metadata") or {}
    uid, namespace, name = metadata.get("uid"), metadata.get("namespace"), metadata.get("name")
    mine = []
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("kind", "Pod") != "Pod":
            continue
        if involved.get("uid") and uid and involved.get("uid") != uid:
            continue
        event_namespace = involved.get("namespace") or (event.get("metadata") or {}).get("namespace")
        if involved.get("name") == name and event_namespace == namespace:
            mine.append(event)
    return sorted(mine, key=event_time, reverse=True)


def _container_events(events: list[Mapping[str, Any]], kind: str, name: str, image: str) -> list[Mapping[str, Any]]:
    field_path = f"spec.{kind}{{{name}}}"
    found = []
    for event in events:
        if event.get("reason") not in EVENT_REASONS:
            continue
        path = _text((event.get("involvedObject") or {}).get("fieldPath"))
        if path == field_path or (not path and f'"{image}"' in _text(event.get("message"))):
            found.append(event)
    return found


def _is_failing(status: Mapping[str, Any]) -> tuple[str, str] | None:
    """(reason, message) when this container status is a pull failure or an `exec format error` crash loop."""
    waiting = (status.get("state") or {}).get("waiting") or {}
    reason, message = _text(waiting.get("reason")), _text(waiting.get("message"))
    if reason in PULL_REASONS:
        return reason, message
    if reason == "CrashLoopBackOff":
        terminated = (status.get("lastState") or {}).get("terminated") or {}
        said = " ".join(_text(terminated.get(k)) for k in ("message", "reason")).strip()
        if "exec format error" in f"{said} {message}".lower():
            return reason, said or message
    return None


def failing_containers(pod: Mapping[str, Any], events: Iterable[Mapping[str, Any]]) -> list[FailingContainer]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    mine = events_for(pod, events)
    found: list[FailingContainer] = []
    for status_list, kind in _STATUS_LISTS:
        images = {_text(c.get("name")): _text(c.get("image")) for c in spec.get(kind) or [] if isinstance(c, Mapping)}
        for container in status.get(status_list) or []:
            failing = _is_failing(container) if isinstance(container, Mapping) else None
            if failing is None:
                continue
            reason, message = failing
            name = _text(container.get("name"))
            image = images.get(name) or _text(container.get("image"))
            events_of = _container_events(mine, kind, name, image)
            found.append(_classified(kind, name, image, reason=reason, message=message, events=events_of))
    sandbox = _sandbox(pod, mine)
    if sandbox is not None:
        found.append(sandbox)
    return found


def _classified(
    kind: str, name: str, image: str, *, reason: str, message: str, events: list[Mapping[str, Any]]
) -> FailingContainer:
    """The newest event that names a cause wins; then the status's message; then the reason alone."""
    candidates = [(_text(e.get("message")), True) for e in events] + [(message, False)]
    for text, from_event in candidates:
        if not text:
            continue
        error = classify(text, reason)
        if error.klass is not PullErrorClass.UNKNOWN:
            return FailingContainer(kind, name, image, reason, message, text if from_event else None, error)
    fallback = next((text for text, from_event in candidates if from_event and text), None)
    return FailingContainer(kind, name, image, reason, message, fallback, classify(message or fallback or "", reason))


def _sandbox(pod: Mapping[str, Any], events: list[Mapping[str, Any]]) -> FailingContainer | None:
    """A pod whose sandbox cannot start because its (pause) image cannot be pulled: pending, nothing running."""
    status = pod.get("status") or {}
    if status.get("phase") not in (None, "Pending"):
        return None
    for event in events:
        if event.get("reason") != SANDBOX_EVENT:
            continue
        text = _text(event.get("message"))
        error = classify(text)
        if error.sandbox_image is not None:
            return FailingContainer(SANDBOX, SANDBOX, error.sandbox_image, SANDBOX_EVENT, "", text, error)
    return None


def owner_label(pod: Mapping[str, Any]) -> str | None:
    references = (pod.get("metadata") or {}).get("ownerReferences") or []
    owner = next((r for r in references if isinstance(r, Mapping) and r.get("controller")), None)
    return f"{owner.get('kind')}/{owner.get('name')}" if owner is not None else None
