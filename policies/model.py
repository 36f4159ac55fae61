"""The facts and findings model shared by every check.

Everything here is immutable data: the webhook builds `Workload`s and `Facts`, the policy core turns them into
`Finding`s and a `Decision`. No I/O, no clocks. The one exception is a decision's JSON patch, kept in its wire form
(`PatchOperation`, a TypedDict) because the webhook checks it and sends it as it is: nothing changes it.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal, TypedDict

from policies.image.keyring import Keyring, repo_to_pull
from policies.image.pull_secret_parse import Credential
from policies.image.reference import InvalidReference, Reference, parse_docker_ref, parse_normalized
from policies.registry_facts import ImageFacts

# Reviews repeat the same few images endlessly; a Reference is immutable, so parse each string once.
_parse = lru_cache(maxsize=8192)(parse_normalized)


@lru_cache(maxsize=8192)
def pull_form(image: str) -> str:
    """The reference as the kubelet pulls it (docker.io/library/nginx:latest). Raises InvalidReference."""
    return str(parse_docker_ref(image))


class Mode(StrEnum):
    ENFORCE = "enforce"
    WARN = "warn"
    OFF = "off"


class Reason(StrEnum):
    """The kubelet's own words for the failure a finding predicts (what `kubectl get pods` would show)."""

    INVALID_IMAGE_NAME = "InvalidImageName"
    ERR_IMAGE_PULL = "ErrImagePull"
    IMAGE_PULL_BACKOFF = "ImagePullBackOff"
    ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"  # pulled, but the container cannot start (exec format error)
    SECRET_IGNORED = "FailedToRetrieveImagePullSecret"  # noqa: S105 - the kubelet's event reason, not a secret
    NOT_REPRODUCIBLE = "NotReproducible"  # a floating tag: pulls succeed, but not always the same image
    UNVERIFIED = "Unverified"  # the outcome could not be established in time

    @property
    def stops_pods(self) -> bool:
        """The kubelet would not start the container (the others are policy: the pods would run)."""
        return self in _STOPS_PODS


_STOPS_PODS = frozenset(
    {
        Reason.INVALID_IMAGE_NAME,
        Reason.ERR_IMAGE_PULL,
        Reason.IMAGE_PULL_BACKOFF,
        Reason.ERR_IMAGE_NEVER_PULL,
        Reason.CRASH_LOOP_BACK_OFF,
    }
)


class CheckName(StrEnum):
    """The checks, as the policy's `checks:` table and the findings name them. The one list of names: each
    module in policies/checks declares its record (`CheckSpec`) under one of these, and ALL_CHECKS lists the
    records in report order (a test holds the two to the same set)."""

    REFERENCE = "reference"
    LATEST_TAG = "latestTag"
    IMAGE_EXISTS = "imageExists"
    PULL_SECRETS = "pullSecrets"
    ARCHITECTURE = "architecture"
    NEVER_PULL = "neverPull"


class MirrorCheck(StrEnum):  # names the mutating side's findings (an image kept): not a check one configures
    MIRROR = "mirror"


class ContainerKind(StrEnum):
    CONTAINER = "containers"
    INIT_CONTAINER = "initContainers"
    EPHEMERAL_CONTAINER = "ephemeralContainers"
    IMAGE_VOLUME = "volumes"


@dataclass(frozen=True, slots=True)
class PodContext:
    """What the kubelet knows about a pod when it pulls: who pulls, with which secrets, on which nodes."""

    namespace: str
    service_account: str = "default"
    image_pull_secrets: tuple[str, ...] = ()
    node_selector: tuple[tuple[str, str], ...] = ()
    affinity: Mapping[str, Any] | None = None
    node_name: str | None = None  # spec.nodeName: bound (DaemonSet pods, a failing pod explained), no scheduling


@dataclass(frozen=True, slots=True)
class ContainerImage:
    """One image reference in an object, with where it lives and the pod it belongs to."""

    kind: ContainerKind
    name: str  # container name, or volume name for image volumes
    image: str  # exactly as written in the object
    pointer: str  # RFC 6901 pointer to the image string, e.g. /spec/template/spec/containers/1/image
    display_path: str  # the same, the way kubectl users read it: spec.template.spec.containers[1]
    pod: PodContext
    pull_policy: str | None = None  # as written; None when defaulted by the API server
    reference: Reference | None = field(default=None, compare=False)  # normalized, tag as written
    reference_error: str | None = None
    # What the kubelet asks the runtime to pull: `:latest` added, a tag beside a digest dropped.
    pull_reference: str | None = None

    @classmethod
    def create(
        cls,
        *,
        kind: ContainerKind,
        name: str,
        image: str,
        pointer: str,
        display_path: str,
        pod: PodContext,
        pull_policy: str | None = None,
    ) -> ContainerImage:
        """Parse the reference once, as the kubelet does (ParseNormalizedNamed), and keep the outcome.

        The tag is kept as written (None when absent) so checks can tell `nginx` from `nginx:latest`.
        """
        try:
            reference: Reference | None = _parse(image)
            error = None
        except InvalidReference as exc:
            reference, error = None, str(exc)
        pull = pull_form(image) if reference is not None else None
        return cls(kind, name, image, pointer, display_path, pod, pull_policy, reference, error, pull)

    @property
    def effective_pull_policy(self) -> str:
        """The API server's defaulting: `:latest` or no tag means Always, anything else IfNotPresent."""
        if self.pull_policy:
            return self.pull_policy
        reference = self.reference
        if reference is not None and reference.digest is None and reference.tag in (None, "latest"):
            return "Always"
        return "IfNotPresent"

    @property
    def never_pulled(self) -> bool:
        """`imagePullPolicy: Never`: the kubelet only uses what the node has, so the registry does not matter."""
        return self.pull_policy == "Never"

    @property
    def label(self) -> str:
        noun = "image volume" if self.kind is ContainerKind.IMAGE_VOLUME else "container"
        return f'{noun} "{self.name}" image "{self.image}"'


@dataclass(frozen=True, slots=True)
class Workload:
    """An object that makes pods, reduced to the images it would pull."""

    kind: str
    namespace: str
    name: str
    images: tuple[ContainerImage, ...]
    # The object's own labels and its pod template's (a Pod: the same): what a policy exception selects by.
    labels: Mapping[str, str] = field(default_factory=dict)
    pod_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SecretFacts:
    """A pull secret as stored: type and base64 data, parsed by the checks (never logged, never printed)."""

    namespace: str
    name: str
    type: str
    data: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class ServiceAccountFacts:
    namespace: str
    name: str
    image_pull_secrets: tuple[str, ...] = ()
    # Credential provider plugins with tokenAttributes are called only with required annotations (KEP-4412).
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeFacts:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ready: bool = True
    schedulable: bool = True
    images: frozenset[str] = frozenset()  # every name in status.images (tags and digests), normalized
    images_listed: int = 0  # how many entries status.images had
    taints: tuple[tuple[str, str, str], ...] = ()  # (key, value, effect)
    runtime: str = ""  # status.nodeInfo.containerRuntimeVersion, e.g. "containerd://1.7.2" ("": not reported)

    @property
    def runs_containerd(self) -> bool:
        """pullguard models containerd's resolution (hosts.toml). A node that reports another runtime (CRI-O reads
        registries.conf: short names, mirrors, blocked registries) is not modelled; one that reports none (a Node
        written by hand for `check`) is taken to run containerd."""
        return not self.runtime or self.runtime.startswith("containerd://")


@dataclass(frozen=True, slots=True)
class ClusterFacts:
    """The cluster as the webhook's caches see it, for one workload's namespace.

    `known` is False when there is no cluster view at all (offline `check`, `serve` without a cluster): checks
    that need the cluster then say nothing, or "could not verify", rather than guess. `secrets` maps each pull
    secret name the pod refers to (directly or through its ServiceAccount) to the secret, or None when it does
    not exist.
    """

    known: bool = False
    service_account: ServiceAccountFacts | None = None
    secrets: Mapping[str, SecretFacts | None] = field(default_factory=dict)
    # False when the view may lack Secrets that exist (`check` on files without a live cluster): a secret it
    # does not hold is then unknown ("could not verify"), never "does not exist".
    secrets_complete: bool = True
    nodes: tuple[NodeFacts, ...] = ()
    namespace_labels: Mapping[str, str] | None = None  # the workload's namespace's labels (None: unknown)


NO_CLUSTER = ClusterFacts()  # immutable, so one instance serves every review without a cluster view


@dataclass(frozen=True, slots=True)
class Facts:
    """What the service learned before deciding.

    `images` is keyed by pull reference. `mirror_serves` maps a rewritten image string to whether the mirror
    has it (None: unknown). `cluster` is the cluster view for the workload's namespace.
    """

    images: Mapping[str, ImageFacts] = field(default_factory=dict)
    mirror_serves: Mapping[str, bool | None] = field(default_factory=dict)
    cluster: ClusterFacts = NO_CLUSTER
    # The pod's pull secrets as the kubelet reads them, parsed once per review by the plan (None: not parsed
    # yet, or no cluster view; see policies.credentials.credentials_for).
    credentials: PodCredentials | None = None
    # The node's own credentials as pullguard holds them (None: none configured or gathered).
    node_credentials: NodeCredentials | None = None
    # The date a policy exception's expiry is judged by (the core has no clock; None: unknown, so none is in force).
    today: datetime.date | None = None

    def image(self, container: ContainerImage) -> ImageFacts | None:
        key = container.pull_reference
        return self.images.get(key) if key is not None else None


@dataclass(frozen=True, slots=True)
class SecretProblem:
    secret: str
    problem: str  # missing | unverifiable | wrongType | missingKey | unreadable | malformed
    detail: str


@dataclass(frozen=True, slots=True)
class PodCredentials:
    """The pod's pull secrets as the kubelet reads them (policies.credentials.pod_credentials makes them)."""

    secret_names: tuple[str, ...]
    from_service_account: bool
    problems: tuple[SecretProblem, ...]
    keyring: Keyring
    registry_keys: tuple[str, ...]  # the registries the readable secrets have entries for (no credentials)

    @property
    def unverifiable(self) -> tuple[str, ...]:
        """Secrets the view does not hold and cannot call missing (see ClusterFacts.secrets_complete)."""
        return tuple(p.secret for p in self.problems if p.problem == "unverifiable")

    def for_image(self, image: ContainerImage) -> list[Credential]:
        return self.keyring.lookup(repo_to_pull(image.image)) if image.reference is not None else []


@dataclass(frozen=True, slots=True)
class NodeCredentials:
    """The node's keyring as pullguard holds it for one review: the docker config file standing for the nodes'
    (one Keyring), and what the credential provider plugins answered for each image, already matched in the
    kubelet's order and keyed by the repository the kubelet looks up (`repo_to_pull`). `failures` names, per
    repository, the providers that matched it and gave nothing ("credential provider ecr: timed out")."""

    files: Keyring = field(default_factory=Keyring)
    provided: Mapping[str, tuple[Credential, ...]] = field(default_factory=dict)
    failures: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def lookup(self, repository: str) -> tuple[Credential, ...]:
        return (*self.files.lookup(repository), *self.provided.get(repository, ()))

    def failures_for(self, image: ContainerImage) -> tuple[str, ...]:
        return self.failures.get(repo_to_pull(image.image), ()) if image.reference is not None else ()


@dataclass(frozen=True, slots=True)
class Finding:
    check: CheckName | MirrorCheck
    container: ContainerImage
    reason: Reason
    message: str  # what is wrong, naming the image (and registry, secret, platforms where relevant)
    hint: str  # how to fix it
    unknown: bool = False  # the check could not establish the outcome: follows failurePolicy
    advisory: bool = False  # worth knowing, never a reason to deny (e.g. a node-local registry)
    nodes: tuple[str, ...] = ()  # the nodes it is about (where the pull fails), when it names nodes
    secret: str | None = None  # the pull secret it is about, when it is about one


class Gap(StrEnum):
    """Why a check could not run for an image: the fact it needs was never there to read (not a failed lookup,
    which is a finding of its own)."""

    NO_LOOKUP = "noLookup"  # the registry was not asked (offline)
    NO_CLUSTER = "noCluster"  # no cluster view: no Secrets, ServiceAccounts or Nodes at all
    NO_NODES = "noNodes"  # the view holds no Node the pod may run on


@dataclass(frozen=True, slots=True)
class Unchecked:
    """An enabled check that could not run for one image, and why: never reported as a pass."""

    check: CheckName
    container: ContainerImage
    gap: Gap


@dataclass(frozen=True, slots=True)
class JudgedFinding:
    finding: Finding
    mode: Mode
    denies: bool
    excepted: bool = False  # a policy exception in force covers it: it never denies (its message quotes it)


class PatchOperation(TypedDict):
    """One RFC 6902 operation, in its wire form: the webhook checks it and sends it as it is."""

    op: Literal["test", "replace", "add"]
    path: str
    value: str | Mapping[str, Any]  # an image string, an annotation's text, or a new annotations map


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    findings: tuple[JudgedFinding, ...] = ()
    patch: tuple[PatchOperation, ...] = ()

    @property
    def denials(self) -> tuple[Finding, ...]:
        return tuple(j.finding for j in self.findings if j.denies)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(j.finding for j in self.findings if not j.denies)
