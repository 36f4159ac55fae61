"""The node's side of a registry answer: does the kubelet pull at all, and is containerd's model the node's?

The checks read the registry's answer for the pod's credentials. Three things on the node can make that answer
beside the point, and a definite finding drawn from it would deny a pod the kubelet runs:

1. **Images already on the node.** With `imagePullPolicy: IfNotPresent` the kubelet pulls only what the node lacks
   (pkg/kubelet/images/image_manager.go `EnsureImageExists`). Since KEP-2535 it still pulls an image it pulled
   itself with a pod's secret for a pod that cannot show the same secret (pullmanager `MustAttemptImagePull`),
   unless `imagePullCredentialsVerificationPolicy` says otherwise (pullmanager/image_pull_policies.go):
   NeverVerify trusts every image on the node, NeverVerifyPreloadedImages (the default) those it did not pull,
   NeverVerifyAllowlistedImages those on its allowlist, AlwaysVerify none. Images pulled anonymously or with the
   node's own credentials are open to every pod on the node. pullguard sees which images a node lists
   (`status.images`, at most `nodeStatusMaxImages`), not which the kubelet pulled with a secret.
2. **Credentials the nodes hold.** Registries the platform authorizes for its nodes (`nodeCredentials.registries`):
   an unauthorized answer to pullguard says nothing about the node's pull.
3. **Another runtime.** A CRI-O node resolves names through registries.conf (short names, mirrors, blocked
   registries), which pullguard does not model: containerd's answer is not its answer.

`seen_from_nodes` turns a definite finding into what can honestly be said: unchanged, "could not verify" (unknown,
follows failurePolicy), or an advisory (never denies) that names the nodes where the pull fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING

from policies import render
from policies.image.keyring import repo_to_pull, urls_match_str
from policies.image.reference import InvalidReference
from policies.image.reference import parse as parse_reference
from policies.model import ContainerImage, Facts, Finding, NodeFacts, Reason
from policies.registry_facts import ImageFacts, LookupStatus
from policies.render import node_names
from policies.scheduling import candidate_nodes, lists_full

if TYPE_CHECKING:  # the policy schema is built from the checks, which build on this module
    from policies.config import Policy

AUTHORIZATION_FAILURES = frozenset({LookupStatus.UNAUTHORIZED, LookupStatus.DENIED})
# Answers that credentials the node would have sent could change (registries hide private repositories as missing).
_CREDENTIAL_DEPENDENT = AUTHORIZATION_FAILURES | {LookupStatus.NOT_FOUND}


class OnNodes(Enum):
    """Where the image already is, among the nodes the pod may land on."""

    UNKNOWN = "unknown"  # no node view, no candidate node, or the kubelet always pulls (Always)
    NOWHERE = "nowhere"  # every candidate node lacks it for sure: each would pull
    EVERYWHERE = "everywhere"  # every candidate node lists it
    SOME = "some"  # some list it, others lack it
    UNSURE = "unsure"  # none lists it, but some lists are full and may hide it


@dataclass(frozen=True, slots=True)
class Placement:
    where: OnNodes
    candidates: tuple[NodeFacts, ...] = ()
    holding: tuple[NodeFacts, ...] = ()
    unsure: tuple[NodeFacts, ...] = ()  # full lists that do not name it

    @property
    def pulling(self) -> tuple[NodeFacts, ...]:
        """The candidate nodes that would (or may) pull."""
        held = {n.name for n in self.holding}
        return tuple(n for n in self.candidates if n.name not in held)


def placement(image: ContainerImage, facts: Facts, policy: Policy) -> Placement:
    """Which candidate nodes already hold the image, by tag or digest in their pull form (webhook.kube.view
    normalizes status.images as the kubelet's pull form), for an image the kubelet pulls only when absent."""
    if image.effective_pull_policy != "IfNotPresent" or not facts.cluster.known:
        return Placement(OnNodes.UNKNOWN)
    candidates = tuple(candidate_nodes(image.pod, facts.cluster.nodes))
    wanted = image.pull_reference
    if not candidates or wanted is None:
        return Placement(OnNodes.UNKNOWN, candidates)
    holding = tuple(n for n in candidates if wanted in n.images)
    unsure = tuple(n for n in candidates if n not in holding and lists_full(n, policy.kubelet.node_status_max_images))
    if len(holding) == len(candidates):
        where = OnNodes.EVERYWHERE
    elif holding:
        where = OnNodes.SOME
    elif unsure:
        where = OnNodes.UNSURE
    else:
        where = OnNodes.NOWHERE
    return Placement(where, candidates, holding, unsure)


def kubelet_trusts_node_copy(image: ContainerImage, found: ImageFacts, policy: Policy) -> bool | None:
    """Whether the kubelet runs a copy already on the node without pulling (True), pulls again to verify the pod's
    credentials (False), or that hangs on how the copy got there, which the API does not show (None)."""
    match policy.kubelet.image_pull_credentials_verification_policy:
        case "NeverVerify":
            return True
        case "NeverVerifyAllowlistedImages" if _allowlisted(image, policy):
            return True
        case "NeverVerifyPreloadedImages":
            # Preloaded copies are trusted, and so are copies the kubelet pulled anonymously or with the node's
            # credentials. Only a copy it pulled with another pod's secret is pulled again, and only a private
            # image needs a secret: for those the answer hangs on a record pullguard cannot read.
            return None if found.status in AUTHORIZATION_FAILURES else True
    # AlwaysVerify, or not on the allowlist: a preloaded copy is verified by pulling. Only a copy the kubelet itself
    # pulled anonymously or with node-wide credentials is open to every pod, and the registry did not give this
    # image to pullguard asking that way (it asks with the node's credentials it holds).
    return False


def _allowlisted(image: ContainerImage, policy: Policy) -> bool:
    """NeverVerifyAllowlistedImages.imageMatches: the image as the pod writes it (not normalized) without tag or
    digest (trimImageTagDigest), whole or by a "/*" prefix."""
    try:
        written = parse_reference(image.image)
        name = written.name if written.name else image.image
    except InvalidReference:
        name = image.image  # the kubelet too matches what it was given, in a best-effort manner
    for pattern in policy.kubelet.preloaded_images_verification_allowlist:
        if (pattern.endswith("/*") and name.startswith(pattern[:-1])) or name == pattern:
            return True
    return False


def node_credentials_may_cover(image: ContainerImage, policy: Policy) -> str | None:
    """The `nodeCredentials.registries` glob that says the nodes authorize this image's pulls themselves."""
    if image.reference is None:
        return None
    repository = repo_to_pull(image.image)
    for glob in policy.node_credentials.registries:
        try:
            if urls_match_str(glob, repository):
                return glob
        except ValueError:
            continue  # the policy validates its globs; a glob Go would reject matches nothing
    return None


def seen_from_nodes(finding: Finding, image: ContainerImage, facts: Facts, policy: Policy) -> Finding:
    """A definite finding drawn from the registry's answer, as far as the nodes let it stand (see the module)."""
    found = facts.image(image)
    if found is None or finding.unknown or finding.advisory:
        return finding
    failed = facts.node_credentials.failures_for(image) if facts.node_credentials is not None else ()
    if failed and found.status in _CREDENTIAL_DEPENDENT:
        hint = "fix the credential provider (pullguard runs the nodes' plugins with its own identity), then retry"
        return _unknown(finding, image, "; ".join(failed), hint)
    where = placement(image, facts, policy)
    if where.where is OnNodes.EVERYWHERE:
        trusted = kubelet_trusts_node_copy(image, found, policy)
        count = _count(where.candidates)
        if trusted:
            note = f"the pod runs from the copy on all {count} it may run on (imagePullPolicy IfNotPresent)"
            return _advisory(finding, image, note, ())
        if trusted is None:
            note = (
                f"it is on all {count} it may run on, and the kubelet pulls it again only if it pulled it itself with "
                "another pod's pull secret (imagePullCredentialsVerificationPolicy "
                f"{policy.kubelet.image_pull_credentials_verification_policy})"
            )
            return _unknown(finding, image, note)
    elif where.where is OnNodes.SOME:
        lacking = [n.name for n in where.pulling]
        note = (
            f"{len(lacking)} of {len(where.candidates)} candidate nodes lack it ({node_names(lacking)}), "
            f"{node_names([n.name for n in where.holding])} hold it"
        )
        return _advisory(finding, image, note, lacking)
    elif where.where is OnNodes.UNSURE:
        unsure = [n.name for n in where.unsure]
        note = (
            f"{node_names(unsure)} list the maximum of {policy.kubelet.node_status_max_images} images and may hold it"
        )
        return _unknown(finding, image, note, nodes=unsure)
    if found.status in AUTHORIZATION_FAILURES and (glob := node_credentials_may_cover(image, policy)) is not None:
        note = f"the nodes may hold credentials for {found.registry} (nodeCredentials.registries: {glob})"
        hint = (
            "mount the nodes' credential provider config and plugins (nodeCredentials.credentialProviderConfig) "
            "so pullguard asks with the same credentials, or give the pod an imagePullSecret"
        )
        return _unknown(finding, image, note, hint)
    pulling = where.pulling if where.candidates else _candidates(image, facts)
    other = [n for n in pulling if not n.runs_containerd]
    if other:
        runtimes = ", ".join(sorted({n.runtime.split("://", 1)[0] for n in other}))
        names = [n.name for n in other]
        note = (
            f"{node_names(names)} run {runtimes}, whose registry configuration (registries.conf: "
            "short names, mirrors, blocked registries) pullguard does not model"
        )
        return _unknown(finding, image, note, nodes=names)
    return finding


def _candidates(image: ContainerImage, facts: Facts) -> tuple[NodeFacts, ...]:
    return tuple(candidate_nodes(image.pod, facts.cluster.nodes))


def _count(nodes: Sequence[NodeFacts]) -> str:
    return f"{len(nodes)} node" + ("s" if len(nodes) != 1 else "")


def _advisory(finding: Finding, image: ContainerImage, note: str, nodes: Sequence[str]) -> Finding:
    message = f"{image.label}: {note}; registry: {render.problem(finding, container=False)}"
    return replace(finding, message=message, advisory=True, nodes=tuple(nodes))


def _unknown(
    finding: Finding, image: ContainerImage, note: str, hint: str | None = None, nodes: Sequence[str] = ()
) -> Finding:
    message = f"{image.label}: could not verify: {note}; registry: {render.problem(finding, container=False)}"
    return replace(
        finding, reason=Reason.UNVERIFIED, message=message, hint=hint or finding.hint, unknown=True, nodes=tuple(nodes)
    )
