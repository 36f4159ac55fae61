"""Container image references, ported from github.com/distribution/reference.

A faithful port of v0.6.0 (Apache-2.0) -- grammar, Docker Hub normalization,
familiar forms and error strings -- because an admission decision is only
right if it reads an image string the way the kubelet and containerd will.
Digests are checked like go-digest v1.0.0 with sha256, sha384 and sha512
registered, which is what those Go programs link in.

The Go package models references as five types; here one frozen
:class:`Reference` covers them, told apart by which of ``tag`` / ``digest``
are set (a digest-only reference, from :func:`parse_any_reference`, has an
empty name). ``str()`` gives Go's ``String()`` for each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from policies.image._reference_grammar import (
    ANCHORED_NAME_RE,
    DEFAULT_TAG,
    DIGEST_HEX_LENGTH,
    DIGEST_RE,
    GO_DIGEST_RE,
    IDENTIFIER_RE,
    LOWER_HEX_RE,
    REFERENCE_RE,
    REPOSITORY_NAME_TOTAL_LENGTH_MAX,
    TAG_RE,
    familiarize_name,
)
from policies.image.go_ports import (
    DEFAULT_DOMAIN,
    LEGACY_DEFAULT_DOMAIN,
    OFFICIAL_REPO_PREFIX,
    BadPattern,
    go_lower,
    path_match,
    split_docker_domain,
)

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "LEGACY_DEFAULT_DOMAIN",
    "OFFICIAL_REPO_PREFIX",
    "REPOSITORY_NAME_TOTAL_LENGTH_MAX",
    "BadPattern",
    "EmptyName",
    "HexadecimalName",
    "InvalidDigest",
    "InvalidDigestFormat",
    "InvalidDigestLength",
    "InvalidFormat",
    "InvalidReference",
    "InvalidTagFormat",
    "NameNotCanonical",
    "NameTooLong",
    "Reference",
    "UnsupportedDigest",
    "UppercaseName",
    "familiar_match",
    "familiar_name",
    "familiar_string",
    "is_name_only",
    "parse",
    "parse_any_reference",
    "parse_digest",
    "parse_docker_ref",
    "parse_named",
    "parse_normalized",
    "tag_name_only",
    "trim_named",
    "with_name",
]


class InvalidReference(ValueError):
    """Base of every error raised here; ``str()`` is the Go error string."""

    default: ClassVar[str] = "invalid reference"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(self.default if message is None else message)


class InvalidFormat(InvalidReference):
    """Go ``ErrReferenceInvalidFormat``."""

    default = "invalid reference format"


class InvalidTagFormat(InvalidReference):
    """Go ``ErrTagInvalidFormat`` (from ``WithTag``)."""

    default = "invalid tag format"


class InvalidDigestFormat(InvalidReference):
    """Go ``reference.ErrDigestInvalidFormat`` (from ``WithDigest``)."""

    default = "invalid digest format"


class UppercaseName(InvalidReference):
    """Go ``ErrNameContainsUppercase``.

    ``parse_normalized`` raises it with Go's formatted message
    ``invalid reference format: repository name (<name>) must be lowercase``.
    """

    default = "repository name must be lowercase"


class EmptyName(InvalidReference):
    """Go ``ErrNameEmpty``."""

    default = "repository name must have at least one component"


class NameTooLong(InvalidReference):
    """Go ``ErrNameTooLong``; the limit applies to the path only."""

    default = f"repository name must not be more than {REPOSITORY_NAME_TOTAL_LENGTH_MAX} characters"


class NameNotCanonical(InvalidReference):
    """Go ``ErrNameNotCanonical`` (from ``ParseNamed``)."""

    default = "repository name must be canonical"


class HexadecimalName(InvalidReference):
    """``ParseNormalizedNamed`` refuses a bare 64-hex string: it reads as an image ID."""

    def __init__(self, name: str) -> None:
        super().__init__(f"invalid repository name ({name}), cannot specify 64-byte hexadecimal strings")


class InvalidDigest(InvalidReference):
    """go-digest ``ErrDigestInvalidFormat``."""

    default = "invalid checksum digest format"


class InvalidDigestLength(InvalidDigest):
    """go-digest ``ErrDigestInvalidLength``: wrong number of hex digits for the algorithm."""

    default = "invalid checksum digest length"


class UnsupportedDigest(InvalidReference):
    """go-digest ``ErrDigestUnsupported``: well-formed, but not sha256/sha384/sha512."""

    default = "unsupported digest algorithm"


@dataclass(frozen=True, slots=True)
class Reference:
    """An image reference; construction validates like Go's ``WithName``/``WithTag``/``WithDigest``.

    ``domain`` and ``path`` must be the split Go itself would make of
    ``name``, so ``parse(str(r)) == r`` for every reference with a name.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if self.domain or self.path:
            match = ANCHORED_NAME_RE.fullmatch(self.name)
            if match is None or (match.group(1) or "") != self.domain:
                raise InvalidFormat
            if len(self.path) > REPOSITORY_NAME_TOTAL_LENGTH_MAX:
                raise NameTooLong
        elif self.digest is None or self.tag is not None:
            # Only Go's digestReference may lack a name, and it has no tag.
            raise InvalidFormat
        if self.tag is not None and TAG_RE.fullmatch(self.tag) is None:
            raise InvalidTagFormat
        if self.digest is not None and DIGEST_RE.fullmatch(self.digest) is None:
            raise InvalidDigestFormat

    @property
    def name(self) -> str:
        """Go ``Name()``: ``domain/path``, or ``path`` when there is no domain."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def is_named(self) -> bool:
        """False only for a digest-only reference (Go ``digestReference``)."""
        return bool(self.path)

    @property
    def has_tag(self) -> bool:
        return self.tag is not None

    @property
    def has_digest(self) -> bool:
        return self.digest is not None

    @property
    def is_name_only(self) -> bool:
        """Go ``IsNameOnly``: neither tag nor digest."""
        return self.tag is None and self.digest is None

    @property
    def familiar_name(self) -> str:
        """Go ``FamiliarName``: ``docker.io/library/nginx`` -> ``nginx``."""
        domain, path = familiarize_name(self.domain, self.path)
        return f"{domain}/{path}" if domain else path

    @property
    def familiar(self) -> str:
        """Go ``FamiliarString``: ``docker.io/library/nginx:1.25`` -> ``nginx:1.25``."""
        if not self.is_named:
            return str(self)
        return _format(self.familiar_name, self.tag, self.digest)

    def __str__(self) -> str:
        if not self.is_named:
            return self.digest or ""
        return _format(self.name, self.tag, self.digest)

    def with_tag(self, tag: str) -> Reference:
        """Go ``WithTag``: set the tag, keeping any digest."""
        if TAG_RE.fullmatch(tag) is None:
            raise InvalidTagFormat
        return Reference(self.domain, self.path, tag, self.digest)

    def with_digest(self, digest: str) -> Reference:
        """Go ``WithDigest``: set the digest, keeping any tag (syntax check only)."""
        if DIGEST_RE.fullmatch(digest) is None:
            raise InvalidDigestFormat
        return Reference(self.domain, self.path, self.tag, digest)

    def with_name(self, name: str) -> Reference:
        """The same tag and digest on another repository, ``name`` read as the kubelet reads it.

        ``name`` is normalized like :func:`parse_normalized` (``nginx`` becomes
        ``docker.io/library/nginx``) and may not carry a tag or digest. Go's
        non-normalizing ``WithName`` is the module function :func:`with_name`.
        """
        named = parse_normalized(name)
        if not named.is_name_only:
            raise InvalidFormat
        return Reference(named.domain, named.path, self.tag, self.digest)

    def with_domain(self, domain: str) -> Reference:
        """Move the repository to another registry (a mirror), keeping path, tag and digest.

        Refuses a ``domain`` the kubelet would not read back as that registry:
        ``mirror`` (no dot or port: a Docker Hub namespace), ``index.docker.io``
        (read as ``docker.io``), anything malformed.
        """
        moved = self.with_name(f"{domain}/{self.path}")
        if moved.domain != domain:
            raise InvalidFormat
        return moved


def _format(name: str, tag: str | None, digest: str | None) -> str:
    out = name
    if tag is not None:
        out += ":" + tag
    if digest is not None:
        out += "@" + digest
    return out


def _split_name(name: str) -> tuple[str, str]:
    match = ANCHORED_NAME_RE.fullmatch(name)
    if match is None:
        raise InvalidFormat
    path = match.group(2)
    if len(path) > REPOSITORY_NAME_TOTAL_LENGTH_MAX:
        raise NameTooLong
    return match.group(1) or "", path


def parse_digest(s: str) -> str:
    """go-digest ``Parse``: return ``s`` if it is a valid sha256/sha384/sha512 digest."""
    i = s.find(":")
    if i <= 0 or i + 1 == len(s):
        raise InvalidDigest
    expected_length = DIGEST_HEX_LENGTH.get(s[:i])
    if expected_length is None:
        if GO_DIGEST_RE.fullmatch(s) is None:
            raise InvalidDigest
        raise UnsupportedDigest
    hex_digits = s[i + 1 :]
    # Go's len() counts UTF-8 bytes.
    if len(hex_digits.encode("utf-8", "surrogatepass")) != expected_length:
        raise InvalidDigestLength
    if LOWER_HEX_RE.fullmatch(hex_digits) is None:
        raise InvalidDigest
    return s


def parse(s: str) -> Reference:
    """Go ``Parse``: syntax only, no Docker Hub normalization (``nginx`` stays ``nginx``)."""
    match = REFERENCE_RE.fullmatch(s)
    if match is None:
        if s == "":
            raise EmptyName
        if REFERENCE_RE.fullmatch(go_lower(s)) is not None:
            raise UppercaseName
        raise InvalidFormat
    name, tag, digest = match.groups()
    # Go re-splits the name with the anchored name expression.
    domain, path = _split_name(name)
    if digest is not None:
        parse_digest(digest)
    return Reference(domain, path, tag, digest)


def parse_normalized(s: str) -> Reference:
    """Go ``ParseNormalizedNamed``: ``nginx:1.25`` -> ``docker.io/library/nginx:1.25``."""
    if IDENTIFIER_RE.fullmatch(s) is not None:
        raise HexadecimalName(s)
    domain, remainder = split_docker_domain(s)
    remote = remainder.partition(":")[0]
    if go_lower(remote) != remote:
        raise UppercaseName(f"invalid reference format: repository name ({remote}) must be lowercase")
    return parse(f"{domain}/{remainder}")


def parse_named(s: str) -> Reference:
    """Go ``ParseNamed``: like :func:`parse_normalized`, but ``s`` must already be canonical."""
    ref = parse_normalized(s)
    if str(ref) != s:
        raise NameNotCanonical
    return ref


def parse_docker_ref(s: str) -> Reference:
    """Go ``ParseDockerRef``: normalized, with exactly one of tag or digest.

    No tag and no digest gets ``:latest``; tag plus digest loses the tag,
    since the digest is what gets pulled.
    """
    ref = parse_normalized(s)
    if ref.tag is not None and ref.digest is not None:
        return with_name(ref.name).with_digest(ref.digest)
    return tag_name_only(ref)


def parse_any_reference(s: str) -> Reference:
    """Go ``ParseAnyReference``: a 64-hex image ID or a bare digest gives a digest-only reference."""
    if IDENTIFIER_RE.fullmatch(s) is not None:
        return Reference("", "", digest="sha256:" + s)
    try:
        digest = parse_digest(s)
    except InvalidReference:
        return parse_normalized(s)
    return Reference("", "", digest=digest)


def with_name(name: str) -> Reference:
    """Go ``WithName``: a name-only reference, split but not normalized."""
    domain, path = _split_name(name)
    return Reference(domain, path)


def is_name_only(ref: Reference) -> bool:
    """Go ``IsNameOnly``."""
    return ref.is_name_only


def tag_name_only(ref: Reference) -> Reference:
    """Go ``TagNameOnly``: add ``:latest`` when there is neither tag nor digest."""
    return ref.with_tag(DEFAULT_TAG) if ref.is_name_only else ref


def trim_named(ref: Reference) -> Reference:
    """Go ``TrimNamed``: drop tag and digest."""
    return Reference(ref.domain, ref.path)


def familiar_name(ref: Reference) -> str:
    """Go ``FamiliarName``."""
    return ref.familiar_name


def familiar_string(ref: Reference) -> str:
    """Go ``FamiliarString``."""
    return ref.familiar


def familiar_match(pattern: str, ref: Reference) -> bool:
    """Go ``FamiliarMatch``: ``path.Match`` against the familiar string, then the familiar name.

    Raises :class:`BadPattern` for a malformed pattern.
    """
    if path_match(pattern, ref.familiar):
        return True
    return ref.is_named and path_match(pattern, ref.familiar_name)
