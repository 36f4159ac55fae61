"""The policy schema: parse and validate `policy.yaml`, with errors that name the offending key path.

Pure: text in, `Policy` out. The webhook decides where the text comes from (file, ConfigMap, embedded default).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import Field, StrictBool, StrictFloat, ValidationError, create_model, model_validator
from pydantic.alias_generators import to_snake

from policies.bounded_yaml import TooMuchYAML, load_bounded
from policies.checks import ALL_CHECKS, CheckSpec
from policies.checks.spec import CheckConfig
from policies.exceptions import MAX_EXCEPTIONS, PolicyException
from policies.image.keyring import urls_match_str
from policies.image.reference import InvalidReference
from policies.image.reference import parse as parse_reference
from policies.image.text import clip
from policies.lookup import RegistryConfig
from policies.model import CheckName, Mode
from policies.schema import MAX_PATTERNS, ModeSetting
from policies.schema import Strict as _Strict
from policies.selectors import LabelSelector

DEFAULT_EXCLUDED_NAMESPACES = ("kube-system", "pullguard")  # the namespaces the webhooks skip (manifests/)

_CHECKS_YAML = "\n".join(f"  {spec.name}: {spec.default_yaml}" for spec in ALL_CHECKS)

DEFAULT_POLICY_YAML = f"""\
# pullguard's embedded default policy: warn about everything, deny only what can never be pulled.
mode: warn
failurePolicy: open
excludeNamespaces: [{", ".join(DEFAULT_EXCLUDED_NAMESPACES)}]   # the namespaces the webhooks skip (manifests/)
checks:
{_CHECKS_YAML}
mirrors: []
registry:
  timeoutSeconds: 3
  cache: {{positiveSeconds: 300, negativeSeconds: 30}}
nodeCredentials:
  # Registries whose pulls the nodes authorize themselves (the platform's node identity): an unauthorized answer
  # for these is "could not verify", never a denial. README, "Managed clusters and node credentials".
  registries:
    - "*.dkr.ecr.*.amazonaws.com"        # Amazon ECR: ecr-credential-provider's matchImages on EKS nodes
    - "*.dkr.ecr.*.amazonaws.com.cn"
    - "*.dkr.ecr-fips.*.amazonaws.com"
    - "container.cloud.google.com"       # Google: auth-provider-gcp's matchImages on GKE nodes
    - "gcr.io"
    - "*.gcr.io"
    - "*.pkg.dev"                        #   Artifact Registry (LOCATION-docker.pkg.dev)
    - "*.azurecr.io"                     # Azure: acr-credential-provider's matchImages on AKS nodes
    - "*.azurecr.cn"
    - "*.azurecr.de"
    - "*.azurecr.us"
    - "*.ocir.io"                        # Oracle OCIR: OKE nodes pull with their instance principal
  dockerConfigFiles: []                  # config.json / .dockercfg files that stand for the nodes' own
  credentialProviderConfig: null         # the kubelet's --image-credential-provider-config file
  credentialProviderBinDir: null         # its plugins (--image-credential-provider-bin-dir)
kubelet:
  imagePullCredentialsVerificationPolicy: NeverVerifyPreloadedImages   # the kubelet's default (KEP-2535)
  preloadedImagesVerificationAllowlist: []
  nodeStatusMaxImages: 50
audit: {{enabled: false, intervalSeconds: 3600, lookupsPerSecond: 2}}
namespaces: {{}}
"""


# How many entries a list of the policy may have (MAX_PATTERNS, in policies.checks.spec, too): each is matched per
# image or per review, so the work a review costs stays bounded whatever policy was accepted (README "Limits").
MAX_MIRROR_RULES = 256
MAX_NAMESPACES = 10_000


class PolicyError(ValueError):
    """The policy text is not valid YAML or does not match the schema. The message names every bad key."""


class CheckModes(_Strict):
    """The `checks:` table: one entry per record of ALL_CHECKS, under the check's name (fields made below)."""

    def options_of(self, check: CheckName) -> CheckConfig:
        config: CheckConfig = getattr(self, _ATTRIBUTE_OF_CHECK[check])
        return config

    def mode_of(self, check: CheckName) -> Mode | None:
        config: CheckConfig = getattr(self, _ATTRIBUTE_OF_CHECK[check])  # not options_of: once per check per review
        return config.mode


_ATTRIBUTE_OF_CHECK = {spec.name: to_snake(spec.name) for spec in ALL_CHECKS}
# Each check's record by name, for what reads the records without running checks (explain: commands decide only
# through the review, so they do not import policies.checks).
CHECK_RECORDS: Mapping[CheckName, CheckSpec] = {spec.name: spec for spec in ALL_CHECKS}


def _checks_model(name: str, doc: str, *, policy_wide: bool) -> type[CheckModes]:
    """Per namespace only the mode can be overridden; policy-wide each check has its options and default mode."""
    fields: dict[str, Any] = {}
    for spec in ALL_CHECKS:
        model = spec.options if policy_wide else CheckConfig
        default = model(mode=spec.default_mode) if policy_wide else model()
        fields[_ATTRIBUTE_OF_CHECK[spec.name]] = (model, Field(default=default, alias=spec.name))
    return create_model(name, __base__=CheckModes, __doc__=doc, __module__=__name__, **fields)


if TYPE_CHECKING:  # mypy sees the base (its typed accessors); pydantic validates the generated fields
    NamespaceChecks = CheckModes
    Checks = CheckModes
else:
    NamespaceChecks = _checks_model("NamespaceChecks", "Per-namespace check modes.", policy_wide=False)
    Checks = _checks_model("Checks", "The policy-wide checks: modes plus each check's own settings.", policy_wide=True)


class NamespaceOverride(_Strict):
    mode: ModeSetting | None = None
    checks: NamespaceChecks = NamespaceChecks()


class Mirror(_Strict):
    """Rewrite images of `registry` (a host) or under `prefix` (host/path) to `mirror` (host[/path])."""

    registry: str | None = None
    prefix: str | None = None
    mirror: Annotated[str, Field(min_length=1)]
    verify: StrictBool = True  # rewrite only when the mirror is known to serve the image
    # Only objects in these namespaces: names, or a label selector on the Namespace (None: every namespace).
    namespaces: tuple[str, ...] | LabelSelector | None = None
    # A source image that the pod's own credentials cannot pull (the source answers unauthorized/denied) is
    # kept (deny) or still rewritten (allow): a pull-through mirror serves whatever its own credentials reach.
    private_images: Literal["deny", "allow"] = "deny"

    @model_validator(mode="after")
    def _exactly_one_source(self) -> Mirror:
        if (self.registry is None) == (self.prefix is None):
            raise ValueError("give exactly one of 'registry' or 'prefix'")
        if self.mirror.startswith(("http://", "https://")) or self.mirror.endswith("/"):
            raise ValueError("'mirror' is host[:port][/path], without scheme or trailing slash")
        source = self.registry if self.registry is not None else self.prefix
        if not source or source.startswith(("http://", "https://")) or source.endswith("/"):
            raise ValueError("'registry' is host[:port] and 'prefix' host[:port]/path, without scheme or slash")
        if self.registry is not None and "/" in self.registry:
            raise ValueError("'registry' is a host[:port]; use 'prefix' for host/path")
        return self

    def applies_in(self, namespace: str, labels: Mapping[str, str] | None) -> bool | None:
        """Whether the rule covers `namespace`; None when that hangs on the namespace's labels and they are not
        known (no cluster view)."""
        if self.namespaces is None:
            return True
        if isinstance(self.namespaces, tuple):
            return namespace in self.namespaces
        return self.namespaces.matches(labels) if labels is not None else None


# Where each default comes from: the matchImages of the credential provider each managed platform configures on its
# nodes (EKS ecr-credential-provider, GKE auth-provider-gcp, AKS acr-credential-provider) and OKE's instance
# principal for OCIR. Keyring globs (policies.image.keyring): "*" is one DNS label, ports and paths must match.
MANAGED_REGISTRIES = (
    "*.dkr.ecr.*.amazonaws.com",
    "*.dkr.ecr.*.amazonaws.com.cn",
    "*.dkr.ecr-fips.*.amazonaws.com",
    "container.cloud.google.com",
    "gcr.io",
    "*.gcr.io",
    "*.pkg.dev",
    "*.azurecr.io",
    "*.azurecr.cn",
    "*.azurecr.de",
    "*.azurecr.us",
    "*.ocir.io",
)

VerificationPolicy = Literal[
    "NeverVerify", "NeverVerifyPreloadedImages", "NeverVerifyAllowlistedImages", "AlwaysVerify"
]


class NodeCredentialsConfig(_Strict):
    """What the nodes pull with besides the pod's secrets: the kubelet unions the pod's keyring with the node's
    (config files, then credential provider plugins; pkg/kubelet/images/image_manager.go)."""

    registries: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(max_length=MAX_PATTERNS)] = (
        MANAGED_REGISTRIES
    )
    docker_config_files: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(max_length=16)] = ()
    credential_provider_config: str | None = None
    credential_provider_bin_dir: str | None = None

    @model_validator(mode="after")
    def _providers_need_both(self) -> NodeCredentialsConfig:
        for glob in self.registries:
            try:
                urls_match_str(glob, "registry.invalid")
            except ValueError:
                raise ValueError(f"registries: {glob!r} is not a keyring pattern (host[:port][/path])") from None
        if (self.credential_provider_config is None) != (self.credential_provider_bin_dir is None):
            raise ValueError("give both credentialProviderConfig and credentialProviderBinDir, as the kubelet does")
        return self


class KubeletConfig(_Strict):
    """The kubelet settings pullguard's prediction depends on, named as in KubeletConfiguration."""

    image_pull_credentials_verification_policy: VerificationPolicy = "NeverVerifyPreloadedImages"
    # The kubelet's own rule (pullmanager.getAllowlistImagePattern): a full name, or a prefix ending in "/*".
    preloaded_images_verification_allowlist: Annotated[
        tuple[Annotated[str, Field(min_length=1)], ...], Field(max_length=MAX_PATTERNS)
    ] = ()
    node_status_max_images: Annotated[int, Field(ge=-1)] = 50  # -1: the kubelet lists every image

    @model_validator(mode="after")
    def _allowlist_patterns(self) -> KubeletConfig:
        for pattern in self.preloaded_images_verification_allowlist:
            if not _allowlist_pattern_ok(pattern):
                raise ValueError(f"{pattern!r}: an image name without tag or digest, or a prefix ending in '/*'")
        return self


def _allowlist_pattern_ok(pattern: str) -> bool:
    """pullmanager.getAllowlistImagePattern: no surrounding space; "*" only as a final "/*" after at least a host;
    otherwise a reference (distribution's Parse) with neither tag nor digest."""
    if pattern != pattern.strip():
        return False
    if pattern.endswith("/*"):
        return len(pattern) > 2 and "*" not in pattern[:-2]
    try:
        parsed = parse_reference(pattern)
    except InvalidReference:
        return False
    return parsed.tag is None and parsed.digest is None


class AuditConfig(_Strict):
    """The background audit in `serve` (needs a cluster view): re-check what runs, publish PolicyReports."""

    enabled: StrictBool = False
    interval_seconds: Annotated[StrictFloat, Field(ge=60)] = 3600
    lookups_per_second: Annotated[StrictFloat, Field(gt=0, le=100)] = 2  # registry lookups (cache misses) at most


class Policy(_Strict):
    mode: ModeSetting = Mode.WARN
    failure_policy: Literal["open", "closed"] = "open"
    exclude_namespaces: Annotated[tuple[str, ...], Field(max_length=MAX_NAMESPACES)] = DEFAULT_EXCLUDED_NAMESPACES
    checks: Checks = Checks()
    mirrors: Annotated[tuple[Mirror, ...], Field(max_length=MAX_MIRROR_RULES)] = ()
    registry: RegistryConfig = RegistryConfig()
    node_credentials: NodeCredentialsConfig = NodeCredentialsConfig()
    kubelet: KubeletConfig = KubeletConfig()
    audit: AuditConfig = AuditConfig()
    namespaces: dict[str, NamespaceOverride] = Field(default_factory=dict, max_length=MAX_NAMESPACES)
    exceptions: Annotated[tuple[PolicyException, ...], Field(max_length=MAX_EXCEPTIONS)] = ()

    @model_validator(mode="after")
    def _exception_names_are_unique(self) -> Policy:
        names = [e.name for e in self.exceptions]
        if repeated := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"exceptions: names must be unique ({', '.join(repeated)} repeated)")
        return self

    def mode_for(self, check: CheckName, namespace: str) -> Mode:
        """Most specific wins: namespace+check, namespace, check, policy."""
        override = self.namespaces.get(namespace)
        if override is not None:
            chosen = override.checks.mode_of(check) or override.mode
            if chosen is not None:
                return chosen
        return self.checks.mode_of(check) or self.mode  # check_mode, inline: this runs per check per review

    def check_mode(self, check: CheckName) -> Mode:
        """The check's mode outside any namespace override: its own, else the policy's."""
        return self.checks.mode_of(check) or self.mode

    def excludes(self, namespace: str) -> bool:
        return namespace in self.exclude_namespaces


# The work a policy may cost, bounded before it is built: a policy is a few KiB, and the ConfigMap validator must
# answer well inside the webhook's timeout whatever it is sent (aliases that expand exponentially included).
MAX_POLICY_BYTES = 256 * 1024
MAX_POLICY_NODES = 50_000  # YAML nodes once every alias is expanded
MAX_POLICY_DEPTH = 32
MAX_ERROR_CHARS = 2000  # of a PolicyError's message: it is logged, shown on /readyz and in a denial
_MAX_ERRORS = 10
_MAX_PATH_CHARS = 120


def parse_policy(text: str, source: str = "policy.yaml") -> Policy:
    """Parse policy YAML. Raises PolicyError naming `source`, the line (YAML errors) or key paths (schema); the
    message is at most MAX_ERROR_CHARS, and the work is bounded (size, expanded nodes, depth) before any is done."""
    source = clip(source, _MAX_PATH_CHARS)
    try:
        data: Any = load_bounded(
            text, max_chars=MAX_POLICY_BYTES, max_nodes=MAX_POLICY_NODES, max_depth=MAX_POLICY_DEPTH
        )
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = clip(str(getattr(exc, "problem", None) or exc), 200)
        raise PolicyError(f"{source}:{where}: not valid YAML: {problem}") from None
    except TooMuchYAML as exc:
        raise PolicyError(f"{source}: the policy {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"{source}: the policy must be a mapping, got {type(data).__name__}")
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        said = "; ".join(_describe(e) for e in errors[:_MAX_ERRORS])
        more = f"; and {len(errors) - _MAX_ERRORS} more" if len(errors) > _MAX_ERRORS else ""
        raise PolicyError(clip(f"{source}: {said}{more}", MAX_ERROR_CHARS)) from None


def _describe(error: Any) -> str:
    path = clip(".".join(str(part) for part in error["loc"]) or "(top level)", _MAX_PATH_CHARS)
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown key"
    message = clip(str(error["msg"]).removeprefix("Value error, "), 300)
    return f"{path}: {message}"


# The defaults live in the schema; DEFAULT_POLICY_YAML (the manifests' ConfigMap, `serve`'s embedded text) and the
# README's policy block are tested to parse to exactly this.
DEFAULT_POLICY = Policy()
