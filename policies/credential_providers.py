"""The kubelet's credential provider plugins (KEP-2133), the pure part: the config (re-exported from
policies.credential_provider_config), the exec protocol's request and response, and the cache keys.

Ported from Kubernetes (Apache-2.0):
  pkg/credentialprovider/plugin/plugin.go  execPlugin.ExecPlugin and encodeRequest (the request, apiVersion
      check), decodeResponse (strict; kind and group), pluginProvider.provide (the token-echo rule,
      cacheKeyType, cacheDuration vs defaultCacheDuration), getCachedCredentials (lookup order), parseRegistry,
      globalCacheKey, generateServiceAccountCacheKey
  k8s.io/kubelet pkg/apis/credentialprovider/v1/types.go (and v1beta1, v1alpha1: no token fields)
      CredentialProviderRequest, CredentialProviderResponse, AuthConfig, PluginCacheKeyType
  k8s.io/apimachinery runtime/serializer/json/meta.go  SimpleMetaFactory.Interpret (encoding/json, so field
      names match case-insensitively there), schema.ParseGroupVersion
A plugin's stdout may hold credentials: as the kubelet takes care to, no error here carries any of it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from policies.credential_provider_config import (
    CONFIG_API_VERSIONS,
    MAX_CONFIG_BYTES,
    PROTOCOL_API_VERSIONS,
    PROTOCOL_V1,
    ExecProvider,
    ProviderConfigError,
    TokenAttributes,
    TokenCacheType,
    parse_provider_config,
    parse_provider_configs,
)
from policies.go_duration import NANOSECONDS_PER_SECOND, parse_duration
from policies.image.k8s_decode import DecodeError, Obj, fields, go_json_string, kind_of, load_document, string
from policies.image.pull_secret_parse import DockerConfigEntry

__all__ = [
    "CONFIG_API_VERSIONS",
    "GLOBAL_CACHE_KEY",
    "MAX_CONFIG_BYTES",
    "MAX_RESPONSE_BYTES",
    "PROTOCOL_API_VERSIONS",
    "CacheKeyType",
    "ExecProvider",
    "ProviderConfigError",
    "ProviderResponse",
    "ProviderResponseError",
    "ServiceAccountKey",
    "TokenAttributes",
    "TokenCacheType",
    "cache_key",
    "cache_key_candidates",
    "cache_seconds",
    "describe_stderr",
    "parse_provider_config",
    "parse_provider_configs",
    "parse_registry",
    "parse_response",
    "request_body",
    "service_account_key",
    "token_hash",
]

MAX_RESPONSE_BYTES: Final = 1024 * 1024  # a response holds a few credentials; the kubelet sets no limit
GLOBAL_CACHE_KEY: Final = "<global>"  # angle brackets: never an image or registry name


class ProviderResponseError(ValueError):
    """The plugin's answer is unusable. The text never includes the answer (it may hold credentials)."""


class CacheKeyType(StrEnum):
    IMAGE = "Image"  # cached for the image as asked (registry, port and path; no tag)
    REGISTRY = "Registry"  # for every image of the registry (host and port)
    GLOBAL = "Global"  # for every image the plugin matches


@dataclass(frozen=True, repr=False)
class ProviderResponse:
    """A decoded CredentialProviderResponse."""

    cache_key_type: CacheKeyType
    cache_duration: int | None  # nanoseconds; None: the provider's defaultCacheDuration; 0: not cached
    auth: Mapping[str, DockerConfigEntry] = field(default_factory=dict)  # match pattern -> credentials

    def __repr__(self) -> str:
        return (
            f"ProviderResponse(cache_key_type={self.cache_key_type.value!r}, cache_duration={self.cache_duration}, "
            f"auth_keys={sorted(self.auth)!r})"
        )


# --- the request --------------------------------------------------------------------------------


def request_body(
    provider: ExecProvider,
    image: str,
    service_account_token: str = "",
    service_account_annotations: Mapping[str, str] | None = None,
) -> bytes:
    """The CredentialProviderRequest on the plugin's stdin, byte for byte as the kubelet's JSON encoder writes
    it: kind and apiVersion first, empty optional fields omitted, map keys sorted, HTML-safe escaping, a final
    newline. The token fields exist only in v1 (the kubelet allows tokenAttributes only there)."""
    parts = [
        '"kind":"CredentialProviderRequest"',
        f'"apiVersion":{go_json_string(provider.api_version)}',
        f'"image":{go_json_string(image)}',
    ]
    if provider.api_version == PROTOCOL_V1:
        if service_account_token:
            parts.append(f'"serviceAccountToken":{go_json_string(service_account_token)}')
        if service_account_annotations:
            pairs = (f"{go_json_string(k)}:{go_json_string(v)}" for k, v in sorted(service_account_annotations.items()))
            parts.append(f'"serviceAccountAnnotations":{{{",".join(pairs)}}}')
    return ("{" + ",".join(parts) + "}\n").encode("utf-8")


# --- the response -------------------------------------------------------------------------------

_ECHO_REFUSED: Final = (
    "credential provider plugin returned the service account token as the password which is not allowed when "
    "service account cache type is not set to 'Token'"
)


def _fold(name: str) -> str:
    # encoding/json matches a field case-insensitively (EqualFold; U+017F folds to 's', U+212A to 'k')
    return name.replace("\u017f", "s").lower()


def _interpret(doc: object) -> str:
    """SimpleMetaFactory.Interpret: the answer's group/version as GroupVersion.String() gives it."""
    if doc is None:
        return ""
    if not isinstance(doc, Obj):
        raise DecodeError(f"expected an object, got {kind_of(doc)}")
    api_version = ""
    for key, value in doc:
        if _fold(key) == "apiversion" and value is not None:
            if not isinstance(value, str):
                raise DecodeError(f"apiVersion: expected a string, got {kind_of(value)}")
            api_version = value
        elif _fold(key) == "kind" and value is not None and not isinstance(value, str):
            raise DecodeError(f"kind: expected a string, got {kind_of(value)}")
    if api_version in ("", "/"):
        return ""
    if api_version.count("/") > 1:
        raise DecodeError("apiVersion: not a group/version")
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}" if group else version


def _decode_response(doc: object) -> tuple[str, int | None, dict[str, DockerConfigEntry]]:
    """decodeResponse: strict (exact names, nothing unknown or repeated), kind CredentialProviderResponse.
    The group was checked with the apiVersion; cacheKeyType is checked later, as provide() does."""
    top = fields(doc, "", ("kind", "apiVersion", "cacheKeyType", "cacheDuration", "auth"), echo=False)
    if string(top.get("kind"), "kind") != "CredentialProviderResponse":
        raise DecodeError("kind is not CredentialProviderResponse")
    duration = None
    if top.get("cacheDuration") is not None:
        try:
            duration = parse_duration(string(top["cacheDuration"], "cacheDuration"))
        except ValueError:
            raise DecodeError("cacheDuration: not a Go duration string") from None
    auth: dict[str, DockerConfigEntry] = {}
    raw_auth = top.get("auth")
    if raw_auth is not None and not isinstance(raw_auth, Obj):
        raise DecodeError(f"auth: expected an object, got {kind_of(raw_auth)}")
    for key, value in raw_auth or ():
        if key in auth:
            raise DecodeError("auth: duplicate key")
        entry = fields(value, "auth entry", ("username", "password"), echo=False)
        auth[key] = DockerConfigEntry(
            string(entry.get("username"), "auth entry username"), string(entry.get("password"), "auth entry password")
        )
    return string(top.get("cacheKeyType"), "cacheKeyType"), duration, auth


def parse_response(provider: ExecProvider, stdout: bytes, service_account_token: str = "") -> ProviderResponse:
    """The plugin's stdout as the kubelet reads it (ExecPlugin, then provide): apiVersion must equal the
    provider's, the document must decode strictly as a CredentialProviderResponse, a password equal to the
    service account token is refused unless the token cache type is Token, and cacheKeyType must be Image,
    Registry or Global. Raises ProviderResponseError, whose text never includes what the plugin printed."""
    if len(stdout) > MAX_RESPONSE_BYTES:
        raise ProviderResponseError(f"response is larger than {MAX_RESPONSE_BYTES // (1024 * 1024)} MiB")
    problem = ""
    try:
        doc = load_document(stdout.decode("utf-8", "replace"), allow_yaml=False)
        actual = _interpret(doc)
    except DecodeError as err:
        problem = f"error reading GVK from response: {err}"
    if problem:  # raised outside the handler: no exception context keeps any of the text
        raise ProviderResponseError(problem)
    if actual != provider.api_version:
        # the kubelet's message; a value that is no known apiVersion is not repeated (it is the plugin's output)
        shown = actual if actual in PROTOCOL_API_VERSIONS or not actual else "(unrecognized, not shown)"
        raise ProviderResponseError(
            "apiVersion from credential plugin response did not match expected "
            f"apiVersion:{provider.api_version}, actual apiVersion:{shown}"
        )
    try:
        key_type, duration, auth = _decode_response(doc)
    except DecodeError as err:
        problem = f"error decoding credential provider plugin response from stdout ({err})"
    if problem:
        raise ProviderResponseError(problem)
    attributes = provider.token_attributes
    per_token = attributes is not None and attributes.cache_type is TokenCacheType.TOKEN
    if service_account_token and not per_token and any(e.password == service_account_token for e in auth.values()):
        raise ProviderResponseError(_ECHO_REFUSED)
    if key_type not in set(CacheKeyType):
        shown = repr(key_type) if key_type.lower() in ("", "image", "registry", "global") else "(not shown)"
        raise ProviderResponseError(
            f"credential provider plugin did not return a valid cacheKeyType: {shown} (Image, Registry or Global)"
        )
    return ProviderResponse(CacheKeyType(key_type), duration, auth)


def cache_seconds(provider: ExecProvider, response: ProviderResponse) -> float | None:
    """How long provide() caches the answer: None when not at all (cacheDuration 0, or none and a
    defaultCacheDuration of 0). A negative duration is returned as is: the kubelet stores such an entry
    already expired (it still replaces the entry under its key)."""
    nanoseconds = response.cache_duration
    if nanoseconds is None:
        nanoseconds = provider.default_cache_duration
    return None if nanoseconds == 0 else nanoseconds / NANOSECONDS_PER_SECOND


# --- cache keys ---------------------------------------------------------------------------------

# (namespace, service account, annotations passed to the plugin, sha256 of the token when the cache type is Token)
ServiceAccountKey = tuple[str, str, tuple[tuple[str, str], ...], str]


def parse_registry(image: str) -> str:
    """parseRegistry: the text before the first '/' (host and port)."""
    return image.split("/", 1)[0]


def cache_key(key_type: CacheKeyType, image: str) -> str:
    """The key an answer is cached under, by its cacheKeyType."""
    if key_type is CacheKeyType.IMAGE:
        return image
    if key_type is CacheKeyType.REGISTRY:
        return parse_registry(image)
    return GLOBAL_CACHE_KEY


def cache_key_candidates(image: str) -> tuple[str, str, str]:
    """getCachedCredentials' lookup order: the image, then its registry, then the global key."""
    return image, parse_registry(image), GLOBAL_CACHE_KEY


def token_hash(token: str) -> str:
    """getHashIfNotEmpty: caches are keyed by the token's hash, never the token."""
    return "sha256:" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest() if token else ""


def service_account_key(
    namespace: str, name: str, annotations: Mapping[str, str], cache_type: TokenCacheType, token: str
) -> ServiceAccountKey:
    """generateServiceAccountCacheKey: the service account dimension of a cache key (its UID is left out:
    pullguard asks before the pod exists, and a ServiceAccount's annotations are what the plugin sees)."""
    hashed = token_hash(token) if cache_type is TokenCacheType.TOKEN else ""
    return namespace, name, tuple(sorted(annotations.items())), hashed


# --- what a failing plugin said -----------------------------------------------------------------

MAX_STDERR_LINE: Final = 200
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# key=value / key: value pairs whose value is secret-like, and HTTP authorization schemes
_SECRET_PAIR: Final = re.compile(
    r"(?i)\b((?:pass(?:word|wd)?|pwd|secret|token|api[-_]?key|access[-_]?key|credentials?|auth(?:orization)?)"
    r"[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|(?:(?:bearer|basic)\s+)?\S+)"
)
_AUTH_SCHEME: Final = re.compile(r"(?i)\b(bearer|basic)\s+\S+")
# opaque tokens: long runs of base64/hex-like characters mixing letters and digits, and JWTs
_OPAQUE: Final = re.compile(r"[A-Za-z0-9+/_=-]{24,}|\beyJ[\w-]*\.[\w-]*\.[\w-]*")


def _redact_opaque(match: re.Match[str]) -> str:
    text = match[0]
    mixed = any(c.isdigit() for c in text) and any(c.isalpha() for c in text)
    return "<redacted>" if mixed or text.startswith("eyJ") else text


def describe_stderr(stderr: bytes, secrets: Iterable[str] = ()) -> str:
    """The first non-empty line of a plugin's stderr, safe to repeat: control characters dropped, each
    of `secrets` and anything that looks like a credential replaced by "<redacted>", at most 200 characters."""
    line = next((ln for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()), "")
    line = _CONTROL.sub("", line[:4096]).strip()
    for secret in secrets:
        if secret:
            line = line.replace(secret, "<redacted>")
    line = _SECRET_PAIR.sub(lambda m: m[1] + "<redacted>", line)
    line = _AUTH_SCHEME.sub(lambda m: m[1] + " <redacted>", line)
    line = _OPAQUE.sub(_redact_opaque, line)
    return line if len(line) <= MAX_STDERR_LINE else line[: MAX_STDERR_LINE - 3] + "..."
