"""Grammar, Docker Hub normalization rules and Go-runtime shims behind :mod:`policies.reference`.

The expressions are built exactly like ``regexp.go`` in
github.com/distribution/reference v0.6.0 (Apache-2.0), so the two stay easy to
diff; the normalization helpers are ``normalize.go``'s. The expressions are
compiled with ``re.ASCII`` (Go's ``\\w`` is ASCII-only) and must only be used
with ``fullmatch``: Go's ``^...$`` never matches before a trailing newline,
Python's ``$`` does.
"""

from __future__ import annotations

import re
from typing import Final


def _optional(*res: str) -> str:
    return "(?:" + "".join(res) + ")?"


def _any_times(*res: str) -> str:
    return "(?:" + "".join(res) + ")*"


def _capture(*res: str) -> str:
    return "(" + "".join(res) + ")"


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


ALPHANUMERIC: Final = r"[a-z0-9]+"
SEPARATOR: Final = r"(?:[._]|__|[-]+)"
LOCALHOST: Final = "localhost"
DOMAIN_NAME_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
OPTIONAL_PORT: Final = r"(?::[0-9]+)?"
TAG: Final = r"[\w][\w.-]{0,127}"
# Go's [[:xdigit:]] spelled out; Python has no POSIX classes.
DIGEST: Final = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}"
IDENTIFIER: Final = r"([a-f0-9]{64})"
IPV6_ADDRESS: Final = r"\[(?:[a-fA-F0-9:]+)\]"
DOMAIN_NAME: Final = DOMAIN_NAME_COMPONENT + _any_times(r"\.", DOMAIN_NAME_COMPONENT)
HOST: Final = "(?:" + DOMAIN_NAME + "|" + IPV6_ADDRESS + ")"
DOMAIN_AND_PORT: Final = HOST + OPTIONAL_PORT
PATH_COMPONENT: Final = ALPHANUMERIC + _any_times(SEPARATOR, ALPHANUMERIC)
REMOTE_NAME: Final = PATH_COMPONENT + _any_times("/", PATH_COMPONENT)
NAME: Final = _optional(DOMAIN_AND_PORT, "/") + REMOTE_NAME

# Go: ReferenceRegexp (groups: name, tag, digest).
REFERENCE_RE: Final = _compile(_capture(NAME) + _optional(":", _capture(TAG)) + _optional("@", _capture(DIGEST)))
# Go: anchoredNameRegexp (groups: domain, remote name).
ANCHORED_NAME_RE: Final = _compile(_optional(_capture(DOMAIN_AND_PORT), "/") + _capture(REMOTE_NAME))
DOMAIN_RE: Final = _compile(DOMAIN_AND_PORT)
TAG_RE: Final = _compile(TAG)
DIGEST_RE: Final = _compile(DIGEST)
IDENTIFIER_RE: Final = _compile(IDENTIFIER)

# github.com/opencontainers/go-digest v1.0.0: DigestRegexp, and the algorithms a
# Go program normally registers (crypto/sha256, crypto/sha512) with the number
# of lowercase hex digits each must have.
GO_DIGEST_RE: Final = _compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
DIGEST_HEX_LENGTH: Final = {"sha256": 64, "sha384": 96, "sha512": 128}
LOWER_HEX_RE: Final = _compile(r"[a-f0-9]+")


def go_lower(s: str) -> str:
    """Go's ``strings.ToLower``: simple 1:1 case mapping.

    Python's full mapping differs only for U+0130, which Go lowers to an
    ASCII ``i`` -- and that decides whether a reference is "uppercase" or
    "invalid". (Final-sigma context cannot change an inequality test.)
    """
    if s.isascii():
        return s.lower()
    return s.replace("\u0130", "i").lower()


# Docker Hub normalization (normalize.go).
REPOSITORY_NAME_TOTAL_LENGTH_MAX: Final = 255
DEFAULT_DOMAIN: Final = "docker.io"
LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
OFFICIAL_REPO_PREFIX: Final = "library/"
DEFAULT_TAG: Final = "latest"


def split_docker_domain(name: str) -> tuple[str, str]:
    # Go splitDockerDomain: is the first component a registry host?
    maybe_domain, sep, maybe_remote = name.partition("/")
    if not sep:
        # A single element ("ubuntu", "ubuntu:latest") is never a host.
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == LOCALHOST:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain or go_lower(maybe_domain) != maybe_domain:
        # A dot, a port or IPv6 colon, or uppercase (never valid in a path).
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def familiarize_name(domain: str, path: str) -> tuple[str, str]:
    # Go familiarizeName: only Docker Hub has a familiar form, and "library/"
    # is dropped only for a single-component official image.
    if domain != DEFAULT_DOMAIN:
        return domain, path
    if path.startswith(OFFICIAL_REPO_PREFIX):
        remainder = path[len(OFFICIAL_REPO_PREFIX) :]
        if "/" not in remainder:
            return "", remainder
    return "", path


class BadPattern(ValueError):
    """Go's ``path.ErrBadPattern``."""

    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


def go_path_match(pattern: str, name: str) -> bool:
    """Port of Go's ``path.Match`` (Go >= 1.16: malformed patterns always error).

    Unlike ``fnmatch``, ``*`` and ``?`` never match ``/``. Go walks bytes;
    walking code points is the same for the ASCII names references produce.
    """
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            # Trailing * matches the rest unless it has a /.
            return "/" not in name
        rest, ok = _match_chunk(chunk, name)
        if ok and (not rest or pattern):
            name = rest
            continue
        if star:
            skipped = _skip_star(chunk, pattern, name)
            if skipped is not None:
                name = skipped
                continue
        # No match: still report a malformed remainder, as Go does.
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def _skip_star(chunk: str, pattern: str, name: str) -> str | None:
    i = 0
    while i < len(name) and name[i] != "/":
        rest, ok = _match_chunk(chunk, name[i + 1 :])
        # The last chunk must exhaust the name.
        if ok and not (not pattern and rest):
            return rest
        i += 1
    return None


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    stripped = pattern.lstrip("*")
    star, pattern = len(stripped) != len(pattern), stripped
    in_range = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif c == "[":
            in_range = True
        elif c == "]":
            in_range = False
        elif c == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    # After a mismatch keep walking the chunk, only to validate its syntax.
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        c = chunk[0]
        if c == "[":
            r = 0
            if not failed:
                r, s = ord(s[0]), s[1:]
            chunk = chunk[1:]
            negated = bool(chunk) and chunk[0] == "^"
            if negated:
                chunk = chunk[1:]
            matched = False
            n_range = 0
            while not (chunk and chunk[0] == "]" and n_range > 0):
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == "-":
                    hi, chunk = _get_esc(chunk[1:])
                matched = matched or ord(lo) <= r <= ord(hi)
                n_range += 1
            chunk = chunk[1:]
            if matched == negated:
                failed = True
        elif c == "?":
            if not failed:
                failed = s[0] == "/"
                s = s[1:]
            chunk = chunk[1:]
        else:
            if c == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise BadPattern
            if not failed:
                failed = chunk[0] != s[0]
                s = s[1:]
            chunk = chunk[1:]
    return ("", False) if failed else (s, True)


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise BadPattern
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise BadPattern
    if len(chunk) == 1:
        raise BadPattern
    return chunk[0], chunk[1:]
