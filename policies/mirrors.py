"""Mirror rewrites: which images move to which mirror, and why an image was kept (the rules themselves are
matched in `policies.mirror_routes`).

A rule with `verify: true` rewrites only when the facts say the mirror serves that exact image to this pod (the
lookup the webhook made with the pod's credentials matched to the *mirror* host, through the mirror's
hosts.toml), so a rewrite can never turn a pullable image into an ErrImagePull. A source image the pod's own
credentials cannot pull (the source answers unauthorized or denied) is kept unless the rule says
`privateImages: allow`: a pull-through mirror serves whatever its own upstream credentials reach.

Every rewrite is two RFC 6902 operations, `test` (the image is still what was judged) then `replace`, plus one
`add` of the annotation `pullguard.io/original-images` (JSON: container path -> original image). An image already
under a rule's mirror is never rewritten again (reinvocation, pods made from a rewritten template).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from policies.config import Mirror, Policy
from policies.mirror_routes import rule_for
from policies.model import (
    ClusterFacts,
    ContainerImage,
    Decision,
    Facts,
    Finding,
    JudgedFinding,
    MirrorCheck,
    Mode,
    PatchOperation,
    Reason,
    Workload,
)
from policies.registry_facts import ImageFacts, LookupStatus

ORIGINAL_IMAGES = "pullguard.io/original-images"
OPT_OUT = "pullguard.io/rewrite"  # "false" on the object or its pod template: never rewrite its images
CHECK = MirrorCheck.MIRROR  # what names the findings of kept images


class Outcome(StrEnum):
    """What happened to an image a rule applies to: the `outcome` label of pullguard_mirror_rewrites_total and
    `reason` in the review log."""

    REWRITTEN = "rewritten"
    OPTED_OUT = "optedOut"
    INVALID = "invalidName"
    MIRROR_MISSING = "mirrorMissing"
    MIRROR_DENIED = "mirrorDenied"
    MIRROR_FAILED = "mirrorFailed"
    MIRROR_UNKNOWN = "mirrorUnknown"
    MIRROR_DIFFERS = "mirrorDiffers"
    PRIVATE_SOURCE = "privateSource"
    NAMESPACE_UNKNOWN = "namespaceUnknown"  # a rule's namespace selector with no cluster view to read labels from
    PATCH_FAILED = "patchFailed"  # rewritten here, but the patch did not apply (webhook.admission.patch_check)


# The outcomes by their former module-level names, for importers that use them.
REWRITTEN = Outcome.REWRITTEN
OPTED_OUT = Outcome.OPTED_OUT
INVALID = Outcome.INVALID
MIRROR_MISSING = Outcome.MIRROR_MISSING
MIRROR_DENIED = Outcome.MIRROR_DENIED
MIRROR_FAILED = Outcome.MIRROR_FAILED
MIRROR_UNKNOWN = Outcome.MIRROR_UNKNOWN
MIRROR_DIFFERS = Outcome.MIRROR_DIFFERS
PRIVATE_SOURCE = Outcome.PRIVATE_SOURCE
NAMESPACE_UNKNOWN = Outcome.NAMESPACE_UNKNOWN

_REFUSED = frozenset({LookupStatus.UNAUTHORIZED, LookupStatus.DENIED})  # the registry wants other credentials


class MirrorOutcome(NamedTuple):  # a tuple: one per rewritten image per review, cheaper to make than a dataclass
    """What happened to one image a rule applies to."""

    container: ContainerImage
    mirror: str  # the rule's mirror (the metric label)
    target: str  # the image it would be rewritten to ("" when the name would be invalid)
    outcome: Outcome  # REWRITTEN or the reason it was kept
    detail: str = ""  # why it was kept, in a few words

    @property
    def rewritten(self) -> bool:
        return self.outcome == REWRITTEN


@dataclass(frozen=True, slots=True)
class MutateDecision(Decision):
    """The mutating side's decision, with each rule's outcome for the log and the metrics."""

    mirror_outcomes: tuple[MirrorOutcome, ...] = ()


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    """What the mutating side reads from the object itself: its annotations and its pod template's."""

    annotations: Mapping[str, Any] | None = None  # metadata.annotations (None: absent)
    has_metadata: bool = True
    pod_annotations: Mapping[str, Any] | None = None  # the pod's (a Pod) or the pod template's

    @property
    def opted_out(self) -> bool:
        return _says_false(self.annotations) or _says_false(self.pod_annotations)


def _says_false(annotations: Mapping[str, Any] | None) -> bool:
    value = annotations.get(OPT_OUT) if annotations else None  # most objects have no annotations at all
    return value is not None and str(value).strip().lower() == "false"


def object_meta(document: Mapping[str, Any] | None, workload: Workload) -> ObjectMeta:
    """Read annotations from the raw object: `metadata`, and the pod template's next to the images' pod spec.

    The object is parsed JSON, so its objects are dicts (an ABC isinstance check per step would cost more than
    the rest of this function)."""
    if document is None:
        return ObjectMeta()
    metadata = document.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    pod_annotations: Mapping[str, Any] | None = annotations if isinstance(annotations, dict) else None
    if workload.images:
        node: Any = document
        for token in _pod_path(workload.images[0].pointer):
            node = node.get(token) if isinstance(node, dict) else None
        template_meta = node.get("metadata") if isinstance(node, dict) else None
        found = template_meta.get("annotations") if isinstance(template_meta, dict) else None
        pod_annotations = found if isinstance(found, dict) else None
    return ObjectMeta(
        annotations=annotations if isinstance(annotations, dict) else None,
        has_metadata=isinstance(metadata, dict),
        pod_annotations=pod_annotations,
    )


@lru_cache(maxsize=256)  # a few shapes: one per kind and container list
def _pod_path(pointer: str) -> tuple[str, ...]:
    """The keys from the object to the pod (or pod template) of an image's pointer: () for a Pod,
    ("spec", "template") for a Deployment."""
    return tuple(t for t in pointer[: pointer.rfind("/spec/")].split("/") if t)


def _mirror_verdict(rule: Mirror, target: str, facts: Facts) -> tuple[Outcome, str] | None:
    """(outcome, detail) when the mirror lookup says no; None when the mirror serves the image to this pod."""
    if not rule.verify:
        return None
    served = facts.mirror_serves.get(target)
    if served is True:
        return None
    looked: ImageFacts | None = facts.images.get(target)
    host = target.split("/", 1)[0]
    if looked is None:
        return MIRROR_UNKNOWN, f"mirror {host} was not asked (offline)"
    status = looked.status
    if status is LookupStatus.NOT_FOUND:
        return MIRROR_MISSING, f"mirror {host} has no such manifest"
    if status in _REFUSED:
        if looked.credentials_sent:
            return MIRROR_DENIED, f"mirror {host} refused the pod's pull secret for it ({status})"
        return MIRROR_DENIED, f"mirror {host} needs credentials the pod has no pull secret for ({status})"
    if served is False:
        detail = f": {looked.detail}" if looked.detail else ""
        return MIRROR_FAILED, f"mirror {host} would fail the pull ({status}{detail})"
    detail = f": {looked.detail}" if looked.detail else ""
    return MIRROR_UNKNOWN, f"could not verify mirror {host} ({status}{detail})"


def _source_verdict(image: ContainerImage, rule: Mirror, target: str, facts: Facts) -> tuple[Outcome, str] | None:
    source = facts.image(image)
    if source is None:
        return None
    if rule.private_images == "deny" and source.status in _REFUSED:
        whose = "refused the pod's pull secret" if source.credentials_sent else "needs credentials the pod lacks"
        return PRIVATE_SOURCE, f"the source {source.registry} {whose} ({source.status}): the mirror would expose it"
    looked = facts.images.get(target)
    if not rule.verify or looked is None or not looked.digest or not source.digest or looked.digest == source.digest:
        return None  # the cheap tests first: mostly the two digests agree
    pinned = image.reference is not None and image.reference.digest is not None
    if not pinned and looked.status is LookupStatus.EXISTS and source.status is LookupStatus.EXISTS:
        host = target.split("/", 1)[0]
        return MIRROR_DIFFERS, f"mirror {host} has another image for this tag ({looked.digest[:19]})"
    return None


def opt_out(meta: ObjectMeta | None, cluster: ClusterFacts) -> str:
    """Why the object's images must not be rewritten ("" when nothing says so): the opt-out annotation on the
    object or its pod template, or the opt-out label on its namespace."""
    if meta is not None and meta.opted_out:
        return f'annotation {OPT_OUT}: "false"'
    labels = cluster.namespace_labels
    if labels is not None and labels.get(OPT_OUT, "").strip().lower() == "false":
        return f'namespace label {OPT_OUT}: "false"'
    return ""


def plan(workload: Workload, facts: Facts, policy: Policy, meta: ObjectMeta | None = None) -> tuple[MirrorOutcome, ...]:
    """Each image a rule applies to, rewritten or kept with the reason."""
    opted_out = opt_out(meta, facts.cluster)
    outcomes: list[MirrorOutcome] = []
    for image in workload.images:
        hit = rule_for(image, policy, facts.cluster)
        if hit is None:
            continue
        rule, target, known = hit
        verdict: tuple[Outcome, str] | None
        if opted_out:
            verdict = OPTED_OUT, opted_out
        elif not known:
            namespace = image.pod.namespace
            verdict = NAMESPACE_UNKNOWN, f"the rule selects namespaces by label and namespace {namespace}'s are unknown"
        elif not target:
            verdict = INVALID, f"its name would not be a valid reference on mirror {rule.mirror}"
        else:
            verdict = _mirror_verdict(rule, target, facts) or _source_verdict(image, rule, target, facts)
        if verdict is None:
            outcomes.append(MirrorOutcome(image, rule.mirror, target, REWRITTEN))
        else:
            outcomes.append(MirrorOutcome(image, rule.mirror, target, verdict[0], verdict[1]))
    return tuple(outcomes)


def rewrites(
    workload: Workload, facts: Facts, policy: Policy, meta: ObjectMeta | None = None
) -> tuple[PatchOperation, ...]:
    return patch_for(plan(workload, facts, policy, meta), meta)


def patch_for(outcomes: tuple[MirrorOutcome, ...], meta: ObjectMeta | None) -> tuple[PatchOperation, ...]:
    """`test` then `replace` for each rewrite, then the annotation with every original (merged with one already
    there, so a reinvocation or an update keeps what the first rewrite recorded)."""
    if not any(o.rewritten for o in outcomes):
        return ()
    operations: list[PatchOperation] = []
    meta = meta or ObjectMeta()
    originals = _recorded(meta.annotations)
    for o in outcomes:
        container = o.container
        if o.rewritten:
            operations.append({"op": "test", "path": container.pointer, "value": container.image})
            operations.append({"op": "replace", "path": container.pointer, "value": o.target})
            originals[container.display_path] = container.image
        else:
            originals.pop(container.display_path, None)  # the image there is now the one written
    text = orjson.dumps(originals, option=orjson.OPT_SORT_KEYS).decode()  # compact, keys sorted: a stable text
    if meta.annotations is not None:
        operations.append({"op": "add", "path": _ORIGINAL_IMAGES_POINTER, "value": text})
    elif meta.has_metadata:
        operations.append({"op": "add", "path": "/metadata/annotations", "value": {ORIGINAL_IMAGES: text}})
    else:
        operations.append({"op": "add", "path": "/metadata", "value": {"annotations": {ORIGINAL_IMAGES: text}}})
    return tuple(operations)


_ORIGINAL_IMAGES_POINTER = "/metadata/annotations/" + ORIGINAL_IMAGES.replace("~", "~0").replace("/", "~1")


def _recorded(annotations: Mapping[str, Any] | None) -> dict[str, str]:
    text = annotations.get(ORIGINAL_IMAGES) if annotations is not None else None
    if not isinstance(text, str) or len(text) > 65536:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def skip_findings(outcomes: tuple[MirrorOutcome, ...]) -> tuple[JudgedFinding, ...]:
    """One warning per image kept (an opt-out is deliberate: logged and counted, not warned about)."""
    judged: list[JudgedFinding] = []
    for o in outcomes:
        if o.rewritten or o.outcome == OPTED_OUT:
            continue
        reference = o.container.reference
        shown = str(reference) if reference is not None else o.container.image
        unknown = o.outcome in (MIRROR_UNKNOWN, NAMESPACE_UNKNOWN)
        reason = Reason.UNVERIFIED if unknown else Reason.ERR_IMAGE_PULL
        finding = Finding(
            check=CHECK,
            container=o.container,
            reason=reason,
            message=f"kept {shown}: {o.detail}",
            hint="it is pulled from its source",
            unknown=unknown,
            advisory=True,
        )
        judged.append(JudgedFinding(finding, Mode.WARN, denies=False))
    return tuple(judged)
