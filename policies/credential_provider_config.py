"""The kubelet's CredentialProviderConfig (`--image-credential-provider-config`): parsed and validated as the
kubelet does, so pullguard runs exactly the plugins a node runs (pure: text in, providers out).

Ported from Kubernetes (Apache-2.0):
  pkg/credentialprovider/plugin/config.go  readCredentialProviderConfig (a file, or a directory's *.json,
                                           *.yaml, *.yml in lexical order, merged, names unique), decode,
                                           validateCredentialProviderConfig, validateServiceAccountAnnotationKeys
  pkg/credentialprovider/plugin/plugin.go  apiVersions (the plugin protocol versions), isImageAllowed
  k8s.io/kubelet config/v1, v1beta1, v1alpha1 types.go   the file's fields (tokenAttributes only in v1)
  k8s.io/apimachinery api/validate/content kube.go, dns.go   IsQualifiedName for annotation keys
The feature gate KubeletServiceAccountTokenForCredentialProviders is taken as on (beta, default on, 1.34+).
Messages are Go's field errors, with the provider's index added to the path ("providers[1].name").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from policies.go_duration import parse_duration
from policies.image.k8s_decode import DecodeError, fields, load_document, string, strings
from policies.image.keyring import _parse_schemeless_url, urls_match_str

__all__ = [
    "CONFIG_API_VERSIONS",
    "MAX_CONFIG_BYTES",
    "PROTOCOL_API_VERSIONS",
    "ExecProvider",
    "ProviderConfigError",
    "TokenAttributes",
    "TokenCacheType",
    "parse_provider_config",
    "parse_provider_configs",
]

MAX_CONFIG_BYTES: Final = 1024 * 1024  # real files are a few hundred bytes
_CONFIG_GROUP: Final = "kubelet.config.k8s.io"
CONFIG_API_VERSIONS: Final = tuple(f"{_CONFIG_GROUP}/{v}" for v in ("v1", "v1beta1", "v1alpha1"))
PROTOCOL_GROUP: Final = "credentialprovider.kubelet.k8s.io"
PROTOCOL_V1: Final = f"{PROTOCOL_GROUP}/v1"
PROTOCOL_API_VERSIONS: Final = (f"{PROTOCOL_GROUP}/v1alpha1", f"{PROTOCOL_GROUP}/v1beta1", PROTOCOL_V1)
_PROVIDER_FIELDS: Final = ("name", "matchImages", "defaultCacheDuration", "apiVersion", "args", "env")
_TOKEN_FIELDS: Final = (
    "serviceAccountTokenAudience",
    "cacheType",
    "requireServiceAccount",
    "requiredServiceAccountAnnotationKeys",
    "optionalServiceAccountAnnotationKeys",
)


class ProviderConfigError(ValueError):
    """The credential provider config does not decode or validate; the text names the file and field path."""


class TokenCacheType(StrEnum):
    TOKEN = "Token"  # noqa: S105 - a cache type; credentials cached per service account token
    SERVICE_ACCOUNT = "ServiceAccount"  # per service account (namespace, name, annotations)


@dataclass(frozen=True)
class TokenAttributes:
    """ServiceAccountTokenAttributes (KEP-4412): the plugin gets a token for the pod's ServiceAccount."""

    audience: str
    require_service_account: bool
    cache_type: TokenCacheType
    required_annotation_keys: tuple[str, ...] = ()
    optional_annotation_keys: tuple[str, ...] = ()


@dataclass(frozen=True, repr=False)
class ExecProvider:
    """One validated CredentialProvider: the plugin `name` in the bin dir, run for images it matches."""

    name: str
    match_images: tuple[str, ...]
    default_cache_duration: int  # nanoseconds, as Go's time.Duration; 0: responses without one are not cached
    api_version: str  # the protocol version of request and response
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # (name, value) in file order; the last of a name wins
    token_attributes: TokenAttributes | None = None

    def matches(self, image: str) -> bool:
        """isImageAllowed: any matchImages pattern URLsMatchStr-matches the image (errors: no match)."""
        for pattern in self.match_images:
            try:
                if urls_match_str(pattern, image):
                    return True
            except ValueError:
                continue
        return False

    def __repr__(self) -> str:
        # args and env values may carry secrets (API keys): only their shape is shown
        return (
            f"ExecProvider(name={self.name!r}, match_images={self.match_images!r}, api_version={self.api_version!r}, "
            f"default_cache_duration={self.default_cache_duration}, args=<{len(self.args)}>, "
            f"env={[name for name, _ in self.env]!r}, token_attributes={self.token_attributes!r})"
        )


@dataclass(frozen=True)
class _Raw:
    """A provider as decoded, before validation (None: the field was absent or null)."""

    where: str  # "<source>: providers[i]"
    name: str
    match_images: tuple[str, ...]
    default_cache_duration: int | None
    api_version: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    token: _RawToken | None


@dataclass(frozen=True)
class _RawToken:
    audience: str
    cache_type: str
    require: bool | None
    required: tuple[str, ...]
    optional: tuple[str, ...]


def _decode_token(value: object, where: str) -> _RawToken:
    t = fields(value, where, _TOKEN_FIELDS)
    require = t.get("requireServiceAccount")
    if require is not None and not isinstance(require, bool):
        raise DecodeError(f"{where}.requireServiceAccount: expected a boolean")
    return _RawToken(
        audience=string(t.get("serviceAccountTokenAudience"), f"{where}.serviceAccountTokenAudience"),
        cache_type=string(t.get("cacheType"), f"{where}.cacheType"),
        require=require,
        required=strings(
            t.get("requiredServiceAccountAnnotationKeys"), f"{where}.requiredServiceAccountAnnotationKeys"
        ),
        optional=strings(
            t.get("optionalServiceAccountAnnotationKeys"), f"{where}.optionalServiceAccountAnnotationKeys"
        ),
    )


def _decode_provider(value: object, where: str, source: str, token_allowed: bool) -> _Raw:
    known = (*_PROVIDER_FIELDS, "tokenAttributes") if token_allowed else _PROVIDER_FIELDS
    f = fields(value, where, known)
    duration: int | None = None
    if f.get("defaultCacheDuration") is not None:
        text = string(f["defaultCacheDuration"], f"{where}.defaultCacheDuration")
        try:
            duration = parse_duration(text)
        except ValueError as err:
            raise DecodeError(f"{where}.defaultCacheDuration: {err}") from None
    env: list[tuple[str, str]] = []
    raw_env = f.get("env")
    if raw_env is not None and not isinstance(raw_env, list):
        raise DecodeError(f"{where}.env: expected an array")
    for i, item in enumerate(raw_env or ()):
        e = fields(item, f"{where}.env[{i}]", ("name", "value"))
        env.append((string(e.get("name"), f"{where}.env[{i}].name"), string(e.get("value"), f"{where}.env[{i}].value")))
    token = None
    if f.get("tokenAttributes") is not None:
        token = _decode_token(f["tokenAttributes"], f"{where}.tokenAttributes")
    return _Raw(
        where=f"{source}: {where}",
        name=string(f.get("name"), f"{where}.name"),
        match_images=strings(f.get("matchImages"), f"{where}.matchImages"),
        default_cache_duration=duration,
        api_version=string(f.get("apiVersion"), f"{where}.apiVersion"),
        args=strings(f.get("args"), f"{where}.args"),
        env=tuple(env),
        token=token,
    )


def _decode(text: str, source: str) -> list[_Raw]:
    """decode: one file into its providers (kind and group checked, strictly)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        raise DecodeError(f"larger than {MAX_CONFIG_BYTES // 1024} KiB")
    f = fields(load_document(text, allow_yaml=True), "", ("apiVersion", "kind", "providers"))
    api_version = string(f.get("apiVersion"), "apiVersion")
    if api_version not in CONFIG_API_VERSIONS:
        raise DecodeError(f"apiVersion: must be one of {', '.join(CONFIG_API_VERSIONS)}")
    if string(f.get("kind"), "kind") != "CredentialProviderConfig":
        raise DecodeError("kind: must be CredentialProviderConfig")
    providers = f.get("providers")
    if providers is not None and not isinstance(providers, list):
        raise DecodeError("providers: expected an array")
    token_allowed = api_version.endswith("/v1")
    return [_decode_provider(p, f"providers[{i}]", source, token_allowed) for i, p in enumerate(providers or ())]


# --- validation ---------------------------------------------------------------------------------

_LABEL_KEY_NAME: Final = re.compile(r"(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN: Final = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")


def _qualified_name_problems(key: str) -> list[str]:
    """content.IsQualifiedName (= IsLabelKey): [prefix/]name, prefix a DNS subdomain, name <= 63 bytes."""
    parts = key.split("/")
    if len(parts) > 2:
        return ["must be a name with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    problems = []
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            problems.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                problems.append("prefix part must be no more than 253 bytes")
            if not _DNS_SUBDOMAIN.fullmatch(prefix):
                problems.append("prefix part must be a lowercase RFC 1123 subdomain")
    if not name:
        problems.append("name part must be non-empty")
    elif len(name.encode()) > 63:
        problems.append("name part must be no more than 63 bytes")
    if not _LABEL_KEY_NAME.fullmatch(name):
        problems.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )
    return problems


def _q(value: str) -> str:
    return '"' + (value if len(value) <= 200 else value[:200] + "...") + '"'


def _validate_token(p: _Raw, errors: list[str]) -> TokenAttributes | None:
    assert p.token is not None
    where = f"{p.where}.tokenAttributes"
    audience, cache_type, require = p.token.audience, p.token.cache_type, p.token.require
    required, optional = p.token.required, p.token.optional
    before = len(errors)
    if not audience:
        errors.append(f"{where}.serviceAccountTokenAudience: Required value")
    if require is None:
        errors.append(f"{where}.requireServiceAccount: Required value")
    if p.api_version != PROTOCOL_V1:
        errors.append(f"{where}: Forbidden: tokenAttributes is only supported for {PROTOCOL_V1} API version")
    if require is False and required:
        errors.append(
            f"{where}.requiredServiceAccountAnnotationKeys: Forbidden: "
            "requireServiceAccount cannot be false when requiredServiceAccountAnnotationKeys is set"
        )
    for field_name, keys in (
        ("requiredServiceAccountAnnotationKeys", required),
        ("optionalServiceAccountAnnotationKeys", optional),
    ):
        seen: set[str] = set()
        for key in keys:
            errors.extend(
                f"{where}.{field_name}: Invalid value: {_q(key)}: {m}" for m in _qualified_name_problems(key.lower())
            )
            if key in seen:
                errors.append(f"{where}.{field_name}: Duplicate value: {_q(key)}")
            seen.add(key)
    both = sorted(set(required) & set(optional))
    if both:
        errors.append(f"{where}: Invalid value: {both}: annotation keys cannot be both required and optional")
    supported = ", ".join(sorted(TokenCacheType))
    if not cache_type:
        errors.append(f"{where}.cacheType: Required value: cacheType is required to be set when tokenAttributes "
                      f"is specified. Supported values are: {supported}")  # fmt: skip
    elif cache_type not in set(TokenCacheType):
        errors.append(f"{where}.cacheType: Unsupported value: {_q(cache_type)}: supported values: {supported}")
    if len(errors) > before or require is None:
        return None
    return TokenAttributes(audience, require, TokenCacheType(cache_type), required, optional)


def _validate(raws: Sequence[_Raw], errors: list[str]) -> list[ExecProvider]:
    """validateCredentialProviderConfig on the merged providers (plus: a name is required, see below)."""
    providers = []
    seen: set[str] = set()
    for p in raws:
        before = len(errors)
        name = f"{p.where}.name"
        if not p.name:  # the kubelet fails to start then (its bin dir is no executable); said here at once
            errors.append(f"{name}: Required value")
        if "/" in p.name:
            errors.append(f"{name}: Invalid value: {_q(p.name)}: provider name cannot contain '/'")
        if " " in p.name:
            errors.append(f"{name}: Invalid value: {_q(p.name)}: provider name cannot contain spaces")
        if p.name in (".", ".."):
            errors.append(f"{name}: Invalid value: {_q(p.name)}: provider name cannot be '{p.name}'")
        if p.name in seen:
            errors.append(f"{name}: Duplicate value: {_q(p.name)}")
        seen.add(p.name)
        if not p.api_version:
            errors.append(f"{p.where}.apiVersion: Required value")
        elif p.api_version not in PROTOCOL_API_VERSIONS:
            supported = ", ".join(f'"{v}"' for v in sorted(PROTOCOL_API_VERSIONS))
            errors.append(
                f"{p.where}.apiVersion: Unsupported value: {_q(p.api_version)}: supported values: {supported}"
            )
        if not p.match_images:
            errors.append(f"{p.where}.matchImages: Required value: at least 1 item in matchImages is required")
        for i, pattern in enumerate(p.match_images):
            try:
                _parse_schemeless_url(pattern.encode("utf-8", "surrogatepass"))
            except ValueError as err:
                errors.append(
                    f"{p.where}.matchImages[{i}]: Invalid value: {_q(pattern)}: match image is invalid: {err}"
                )
        if p.default_cache_duration is None:
            errors.append(f"{p.where}.defaultCacheDuration: Required value")
        elif p.default_cache_duration < 0:
            errors.append(f"{p.where}.defaultCacheDuration: Invalid value: must be greater than or equal to 0")
        token = _validate_token(p, errors) if p.token is not None else None
        if len(errors) == before and p.default_cache_duration is not None:
            providers.append(
                ExecProvider(p.name, p.match_images, p.default_cache_duration, p.api_version, p.args, p.env, token)
            )
    return providers


def parse_provider_configs(files: Iterable[tuple[str, str]]) -> tuple[ExecProvider, ...]:
    """readCredentialProviderConfig + validateCredentialProviderConfig over (source, text) pairs in the
    kubelet's order (one file, or a directory's files sorted by path): providers in file order."""
    raws: list[_Raw] = []
    sources: list[str] = []
    for source, text in files:
        sources.append(source)
        try:
            decoded = _decode(text, source)
        except DecodeError as err:
            raise ProviderConfigError(f"{source}: error decoding config: {err}") from None
        names = {r.name for r in raws}
        for raw in decoded:
            if raw.name in names:
                raise ProviderConfigError(
                    f"{raw.where}.name: duplicate provider name {_q(raw.name)} found in configuration file(s)"
                )
            names.add(raw.name)
        raws.extend(decoded)
    errors: list[str] = []
    if not raws:
        errors.append(
            f"{', '.join(sources) or 'config'}: providers: Required value: at least 1 item in plugins is required"
        )
    providers = _validate(raws, errors)
    if errors:
        raise ProviderConfigError("invalid credential provider config: " + "; ".join(errors))
    return tuple(providers)


def parse_provider_config(text: str, source: str) -> tuple[ExecProvider, ...]:
    """One CredentialProviderConfig file (YAML or JSON): its validated providers, in file order.
    Raises ProviderConfigError naming `source` and the field path."""
    return parse_provider_configs([(source, text)])
