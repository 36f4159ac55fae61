"""Read image pull Secrets the way the kubelet does (pure: no I/O).

Ported from Kubernetes (Apache-2.0), keeping its decisions:
  pkg/credentialprovider/config.go          DockerConfigJSON, DockerConfigEntry.UnmarshalJSON,
                                            decodeDockerConfigFieldAuth, encodeDockerConfigFieldAuth
  pkg/credentialprovider/secrets/secrets.go which Secret types and data keys the kubelet reads
The kubelet decodes with Go's encoding/json and encoding/base64, so their quirks that change the
outcome are reproduced here (case-insensitive field names, `null` fields, exact base64 padding).
Credential and CredentialSource (keyring.go's TrackedAuthConfig and SecretCoordinates) live here to
keep both modules small; policies.image.keyring re-exports them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Final, NoReturn

from policies.image.k8s_decode import Obj as _Obj
from policies.image.k8s_decode import kind_of as _kind

SECRET_TYPE_DOCKERCFG: Final = "kubernetes.io/dockercfg"  # noqa: S105 - a type name, not a password
SECRET_TYPE_DOCKER_CONFIG_JSON: Final = "kubernetes.io/dockerconfigjson"  # noqa: S105
PULL_SECRET_TYPES: Final = (SECRET_TYPE_DOCKER_CONFIG_JSON, SECRET_TYPE_DOCKERCFG)  # the types the kubelet reads
DOCKERCFG_KEY: Final = ".dockercfg"
DOCKER_CONFIG_JSON_KEY: Final = ".dockerconfigjson"
# secrets.go pairs each type with exactly one data key; anything else is skipped.
_KEY_FOR_TYPE: Final = {
    SECRET_TYPE_DOCKER_CONFIG_JSON: DOCKER_CONFIG_JSON_KEY,
    SECRET_TYPE_DOCKERCFG: DOCKERCFG_KEY,
}


class PullSecretError(ValueError):
    """A pull Secret the kubelet cannot use. Messages never carry credential material."""


class WrongSecretType(PullSecretError):
    """Not a docker config Secret type: the kubelet silently ignores the Secret."""


class MissingSecretKey(PullSecretError):
    """The type's data key is absent or empty: the kubelet silently ignores the Secret."""


class UndecodableSecret(PullSecretError):
    """A data value is not base64, as the API encodes Secret data."""


class MalformedDockerConfig(PullSecretError):
    """Bad JSON, wrong shape or a bad `auth` field: the kubelet's keyring construction fails
    (MakeDockerKeyring returns the error), so the pod's pulls fail rather than go anonymous."""


def _shown(obj: object, **fields: str) -> str:
    """A repr made of fields already made safe to show (credentials redacted by the caller)."""
    return f"{type(obj).__name__}(" + ", ".join(f"{name}={text}" for name, text in fields.items()) + ")"


def _redacted(value: str) -> str:
    return "'<redacted>'" if value else "''"


@dataclass(frozen=True, repr=False)
class DockerConfigEntry:
    """One registry's credentials; `auth` is already decoded into username/password."""

    username: str = ""
    password: str = ""
    email: str = ""

    def __repr__(self) -> str:
        return _shown(
            self, username=_redacted(self.username), password=_redacted(self.password), email=_redacted(self.email)
        )


# Registry key as written in the Secret -> entry, in document order.
DockerConfig = dict[str, DockerConfigEntry]


def redact_registry_key(key: str) -> str:
    """The key minus any `user:pass@` (Go's url.Parse accepts userinfo there), for messages."""
    scheme, sep, rest = key.partition("://")
    if not sep:
        scheme, rest = "", key
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return key
    return f"{scheme}{sep}<redacted>@{authority.rpartition('@')[2]}{slash}{path}"


@dataclass(frozen=True, repr=False)
class CredentialSource:
    """Where a credential came from (the kubelet's SecretCoordinates), set by the caller;
    `registry_key` is the docker config key it was listed under, as written."""

    namespace: str
    name: str
    uid: str = ""
    registry_key: str = ""
    # "" for a pull secret; else the node's own credential source, as messages name it ("node file
    # /etc/pullguard/node/config.json", "credential provider ecr-credential-provider"): the kubelet's
    # CredentialSource nil (node-wide), whose pulls every pod on the node may reuse.
    node: str = ""

    @classmethod
    def of_node(cls, description: str, registry_key: str = "") -> CredentialSource:
        return cls("", "", registry_key=registry_key, node=description)

    def __repr__(self) -> str:
        key = redact_registry_key(self.registry_key)
        return _shown(
            self,
            namespace=repr(self.namespace),
            name=repr(self.name),
            uid=repr(self.uid),
            registry_key=repr(key),
            node=repr(self.node),
        )


@dataclass(frozen=True, repr=False)
class Credential:
    """The kubelet's TrackedAuthConfig for a pull secret: the entry's `auth` is already decoded."""

    username: str
    password: str
    email: str = ""
    source: CredentialSource | None = None

    @classmethod
    def from_entry(cls, entry: DockerConfigEntry, source: CredentialSource | None = None) -> Credential:
        return cls(entry.username, entry.password, entry.email, source)

    def basic_auth(self) -> str:
        """base64("username:password"), the docker `auth` / HTTP Basic form."""
        return encode_auth_field(self.username, self.password)

    @cached_property
    def identity(self) -> str:
        """Stable, non-reversible: keys caches without keeping the secret in the key."""
        return hashlib.sha256(f"{self.username}\0{self.password}".encode()).hexdigest()[:24]

    @property
    def origin(self) -> str:
        """Where it came from, for messages: "secret shop/regcred" ("" when not known)."""
        if self.source is None:
            return ""
        return self.source.node or f"secret {self.source.namespace}/{self.source.name}"

    def __repr__(self) -> str:
        return _shown(
            self,
            username=_redacted(self.username),
            password=_redacted(self.password),
            email=_redacted(self.email),
            source=repr(self.source),
        )


# --- Go's encoding/base64 ---------------------------------------------------------------------

_B64: Final = "A-Za-z0-9+/"
_STD_B64: Final = re.compile(f"(?:[{_B64}]{{4}})*(?:[{_B64}]{{2}}==|[{_B64}]{{3}}=)?")
_RAW_B64: Final = re.compile(f"(?:[{_B64}]{{4}})*(?:[{_B64}]{{2,3}})?")
# unicode.IsSpace, which strings.TrimSpace uses (str.strip() would also drop \x1c-\x1f).
_GO_SPACE: Final = "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))


def _go_b64decode(text: str, *, padded: bool) -> bytes:
    """base64.StdEncoding (padded) / RawStdEncoding .DecodeString: '\\r' and '\\n' are skipped
    anywhere, any other stray byte or wrong padding is an error, and (not being Strict)
    non-zero trailing bits are accepted, as binascii also does."""
    text = text.replace("\r", "").replace("\n", "")
    if not (_STD_B64 if padded else _RAW_B64).fullmatch(text):
        raise ValueError("illegal base64 data")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def decode_auth_field(field: str) -> tuple[str, str]:
    """decodeDockerConfigFieldAuth: base64("username:password") -> (username, password).

    Go decodes padded input with StdEncoding and unpadded with RawStdEncoding, choosing by a
    trailing '=' after TrimSpace.  Bytes that are not UTF-8 survive as surrogate escapes, as
    Go strings keep raw bytes; the split is on the first ':'."""
    padded = field.strip(_GO_SPACE).endswith("=")
    try:
        decoded = _go_b64decode(field, padded=padded)
    except ValueError:
        raise MalformedDockerConfig("field 'auth' is not valid base64") from None
    username, sep, password = decoded.decode("utf-8", "surrogateescape").partition(":")
    if not sep:
        raise MalformedDockerConfig("unable to parse auth field, must be formatted as base64(username:password)")
    return username, password


def encode_auth_field(username: str, password: str) -> str:
    """encodeDockerConfigFieldAuth (what DockerConfigEntry.MarshalJSON writes as `auth`)."""
    return base64.b64encode(f"{username}:{password}".encode("utf-8", "surrogateescape")).decode("ascii")


# --- Go's encoding/json, as far as these types see it ------------------------------------------


def _fail(what: str, problem: str) -> NoReturn:
    raise MalformedDockerConfig(f"{what}: {problem}")


def _go_utf8(raw: bytes) -> str:
    """Go replaces each byte of invalid UTF-8 with U+FFFD (Python's 'replace' may merge them)."""
    out: list[str] = []
    while True:
        try:
            out.append(raw.decode("utf-8"))
            return "".join(out)
        except UnicodeDecodeError as err:
            out.append(raw[: err.start].decode("utf-8") + "\ufffd" * (err.end - err.start))
            raw = raw[err.end :]


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _go_str(value: str) -> str:
    # Go turns a lone \\uD800-style escape into U+FFFD; Python's json keeps the surrogate.
    return _SURROGATE.sub("\ufffd", value)


def _fold(name: str) -> str:
    # Go matches struct fields case-insensitively (EqualFold): ASCII case plus the two
    # non-ASCII runes that fold to letters used here, U+017F (s) and U+212A (k).
    return name.replace("\u017f", "s").lower()


def _loads(raw: bytes | str, what: str) -> object:
    def no_constants(name: str) -> NoReturn:
        _fail(what, f"invalid JSON ({name} is not a JSON value)")

    text = raw if isinstance(raw, str) else _go_utf8(raw)
    try:
        return json.loads(text, object_pairs_hook=_Obj, parse_constant=no_constants)
    except json.JSONDecodeError as err:
        problem = f"invalid JSON at line {err.lineno} column {err.colno}"
    except RecursionError:
        problem = "JSON nested too deeply"
    # Raised outside the handler so that no __context__ keeps JSONDecodeError.doc, the whole document.
    _fail(what, problem)


def _entry(value: object, where: str) -> DockerConfigEntry:
    """DockerConfigEntry.UnmarshalJSON on an already-parsed value."""
    if value is None:  # Go hands UnmarshalJSON the literal null, which decodes to nothing
        return DockerConfigEntry()
    if not isinstance(value, _Obj):
        _fail(where, f"expected an object, got {_kind(value)}")
    fields: dict[str, str] = {}
    for key, item in value:
        name = _fold(key)
        if name not in ("username", "password", "email", "auth") or item is None:
            continue  # unknown fields are ignored; null leaves a string field untouched
        if not isinstance(item, str):
            _fail(where, f"field {name!r} must be a string, got {_kind(item)}")
        fields[name] = _go_str(item)
    username, password = fields.get("username", ""), fields.get("password", "")
    if fields.get("auth"):  # a non-empty auth overrides username and password
        try:
            username, password = decode_auth_field(fields["auth"])
        except MalformedDockerConfig as err:
            raise MalformedDockerConfig(f"{where}: {err}") from None
    return DockerConfigEntry(username, password, fields.get("email", ""))


def _merge_config(config: DockerConfig, value: object, what: str) -> DockerConfig:
    """Decode a JSON object into the DockerConfig map; null resets it, as Go sets a map to nil."""
    if value is None:
        return {}
    if not isinstance(value, _Obj):
        _fail(what, f"expected an object, got {_kind(value)}")
    for key, item in value:
        registry = _go_str(key)
        config[registry] = _entry(item, f"{what}: entry {redact_registry_key(registry)!r}")
    return config


def decode_docker_config_entry(raw: bytes | str) -> DockerConfigEntry:
    """json.Unmarshal of one DockerConfigEntry."""
    return _entry(_loads(raw, "entry"), "entry")


def read_dockercfg(raw: bytes | str, what: str = DOCKERCFG_KEY) -> DockerConfig:
    """The legacy `.dockercfg` format, a bare {registry: entry} map (ReadDockerConfigFileFromBytes)."""
    return _merge_config({}, _loads(raw, what), what)


def _null_or_string_map(value: object) -> bool:
    return value is None or (isinstance(value, _Obj) and all(v is None or isinstance(v, str) for _, v in value))


def read_docker_config_json(raw: bytes | str, what: str = DOCKER_CONFIG_JSON_KEY) -> DockerConfig:
    """The `config.json` format, {"auths": {registry: entry}, "HttpHeaders": {...}}: its Auths."""
    doc = _loads(raw, what)
    if doc is None:
        return {}
    if not isinstance(doc, _Obj):
        _fail(what, f"expected an object, got {_kind(doc)}")
    config: DockerConfig = {}
    for key, value in doc:
        name = _fold(key)
        if name == "auths":
            config = _merge_config(config, value, f"{what}: auths")
        elif name == "httpheaders" and not _null_or_string_map(value):
            # Unused by the kubelet, but a wrong type still fails the whole decode.
            _fail(what, "HttpHeaders must be an object of strings")
    return config


def parse_pull_secret(secret_type: str | None, data: Mapping[str, str] | None) -> DockerConfig:
    """The docker config of a pull Secret, given its `type` and `data` (base64 values, as in the API).

    Raises WrongSecretType / MissingSecretKey where the kubelet would skip the Secret,
    UndecodableSecret for non-base64 data, and MalformedDockerConfig where the kubelet fails."""
    key = _KEY_FOR_TYPE.get(secret_type or "")
    if key is None:
        raise WrongSecretType(
            f"secret type {secret_type!r} is neither {SECRET_TYPE_DOCKER_CONFIG_JSON!r} nor "
            f"{SECRET_TYPE_DOCKERCFG!r}; the kubelet ignores it"
        )
    encoded = (data or {}).get(key)
    if encoded is not None and not isinstance(encoded, str):
        raise UndecodableSecret(f"data[{key!r}] must be a base64 string, got {type(encoded).__name__}")
    try:
        raw = _go_b64decode(encoded or "", padded=True)
    except ValueError:
        raise UndecodableSecret(f"data[{key!r}] is not valid base64") from None
    if not raw:  # secrets.go requires len(bytes) > 0
        raise MissingSecretKey(f"data[{key!r}] is missing or empty; the kubelet ignores the secret")
    what = f"data[{key!r}]"
    return read_docker_config_json(raw, what) if key == DOCKER_CONFIG_JSON_KEY else read_dockercfg(raw, what)
