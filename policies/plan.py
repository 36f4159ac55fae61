"""Whether a review has anything to do, and which registry lookups it needs with which credentials: decided here,
fetched by the webhook.

`scope` is the one home of "should anything happen" (an excluded namespace, no image, nothing enabled, no mirror
rule): every caller enters through `webhook.review.review`, which asks it once, before any I/O. `plan` and the
decisions after it may assume the answer was "yes".

The plan follows the kubelet: each distinct pull reference once, with the credentials its keyring would send
(the pod's pull secrets, read once per review); an image that is never pulled (`imagePullPolicy: Never`) is never
looked up. The validating side looks up the images its enabled registry checks need; the mutating side looks up
each mirror target with the credentials the kubelet would send for the *rewritten* reference, and the source of
each image whose rule keeps private images.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

from policies import mirrors
from policies.checks import ALL_CHECKS
from policies.config import Policy
from policies.credentials import NodeCredentials, PodCredentials, pod_credentials
from policies.image.keyring import repo_to_pull
from policies.image.pull_secret_parse import Credential
from policies.lookup import Lookup, LookupKind
from policies.mirror_routes import mirrored
from policies.model import ClusterFacts, Mode, Workload


class Side(StrEnum):
    """Which admission webhook asks: they need different facts."""

    VALIDATE = "validate"
    MUTATE = "mutate"


class Skip(StrEnum):
    """Why a review has nothing to do."""

    EXCLUDED = "excluded"  # the namespace is in the policy's excludeNamespaces
    NO_IMAGES = "noImages"
    NOTHING_ENABLED = "nothingEnabled"  # validating: every check is off for this namespace
    NO_MIRROR_RULE = "noMirrorRule"  # mutating: the policy has no mirror rule


@dataclass(frozen=True, slots=True)
class Plan:
    credentials: PodCredentials | None  # None: no cluster view, so the pod's secrets are unknown
    lookups: tuple[Lookup, ...]


CHECKS = tuple(spec.name for spec in ALL_CHECKS)
REGISTRY_CHECKS = tuple(spec.name for spec in ALL_CHECKS if spec.needs_registry)


def scope(workload: Workload, policy: Policy, side: Side, *, exclusions: bool = True) -> Skip | None:
    """Why `side` has nothing to do for `workload`, or None: it has. `exclusions=False` reviews even an excluded
    namespace (`explain`: the user named the pod)."""
    if exclusions and policy.excludes(workload.namespace):
        return Skip.EXCLUDED
    if not workload.images:
        return Skip.NO_IMAGES
    if side is Side.MUTATE:
        return idle(policy, side)
    namespace, off = workload.namespace, Mode.OFF
    for check in CHECKS:  # a loop, not all(): the first check is usually on, and this runs per review
        if policy.mode_for(check, namespace) is not off:
            return None
    return Skip.NOTHING_ENABLED


def idle(policy: Policy, side: Side) -> Skip | None:
    """What `scope` answers for every workload under `policy`, known before the object is read: the mutating side
    has nothing to do without a mirror rule (the webhook then answers without reading the object)."""
    return Skip.NO_MIRROR_RULE if side is Side.MUTATE and not policy.mirrors else None


def plan(
    workload: Workload, cluster: ClusterFacts, policy: Policy, side: Side, node: NodeCredentials | None = None
) -> Plan:
    """The lookups `side` needs for `workload` (which `scope` let through), each with the pod's credentials
    followed by the node's (`node`), as the kubelet unions them."""
    credentials = pod_credentials(workload.images[0].pod, cluster) if cluster.known else None
    keyrings = _Keyrings(credentials, node)
    if side is Side.VALIDATE:
        lookups = _image_lookups(workload, policy, keyrings)
    else:
        lookups = _mirror_lookups(workload, policy, cluster, keyrings)
    return Plan(credentials, lookups)


def credentials_only(workload: Workload, cluster: ClusterFacts, policy: Policy, side: Side) -> Plan:
    """What a caller that cannot look anything up (offline) still needs: the pod's credentials, which the
    validating side's pullSecrets check reads. Planning a large object's lookups would be wasted work."""
    if side is Side.MUTATE or not cluster.known:
        return Plan(None, ())
    return Plan(pod_credentials(workload.images[0].pod, cluster), ())


class _Keyrings(NamedTuple):
    pod: PodCredentials | None
    node: NodeCredentials | None

    def matched(self, image: str) -> tuple[Credential, ...]:
        """Every credential the kubelet tries for `image`, in its order: the pod's secrets, then the node's."""
        if self.pod is None and self.node is None:
            return ()
        repository = repo_to_pull(image)
        pod = tuple(self.pod.keyring.lookup(repository)) if self.pod is not None else ()
        return pod + self.node.lookup(repository) if self.node is not None else pod


def _lookup(kind: LookupKind, reference: str, credentials: tuple[Credential, ...]) -> Lookup:
    return Lookup(kind, reference, credentials) if credentials else _anonymous(kind, reference)


@lru_cache(maxsize=4096)  # most lookups send no credentials, and reviews repeat the same images
def _anonymous(kind: LookupKind, reference: str) -> Lookup:
    return Lookup(kind, reference, ())


def _image_lookups(workload: Workload, policy: Policy, keyrings: _Keyrings) -> tuple[Lookup, ...]:
    namespace = workload.namespace
    if all(policy.mode_for(check, namespace) is Mode.OFF for check in REGISTRY_CHECKS):
        return ()
    lookups: dict[str, Lookup] = {}
    for image in workload.images:
        reference = image.pull_reference
        if reference is None or reference in lookups or image.never_pulled:
            continue  # an image never pulled is never looked up: its registry does not matter
        lookups[reference] = _lookup(LookupKind.IMAGE, reference, keyrings.matched(image.image))
    return tuple(lookups.values())


def _mirror_lookups(
    workload: Workload, policy: Policy, cluster: ClusterFacts, keyrings: _Keyrings
) -> tuple[Lookup, ...]:
    if mirrors.opt_out(None, cluster):
        return ()
    targets: dict[str, Lookup] = {}
    sources: dict[str, Lookup] = {}
    for image in workload.images:
        hit = mirrored(image, policy, cluster)
        if hit is None:
            continue
        rule, target = hit
        if rule.verify and target not in targets:
            targets[target] = _lookup(LookupKind.MIRROR, target, keyrings.matched(target))
        reference = image.pull_reference
        if rule.private_images == "deny" and reference is not None and reference not in sources:
            sources[reference] = _lookup(LookupKind.IMAGE, reference, keyrings.matched(image.image))
    # sorted by reference (one lookup per target, so the credentials are never compared)
    return tuple(sorted(targets.values())) + tuple(sources.values())
