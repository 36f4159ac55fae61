"""The Go behaviour the core reproduces exactly, ported once (pure: no I/O).

- :func:`path_match_bytes` / :func:`path_match`: Go's ``path.Match`` (``src/path/match.go``), which is also
  ``path/filepath.Match`` on Unix. Used by ``FamiliarMatch`` (:mod:`policies.image.reference`) and by the kubelet
  keyring's host-label globs (:mod:`policies.image.keyring`). Go >= 1.16: a malformed pattern always errors.
- :func:`split_host_port`: Go's ``net.SplitHostPort`` (``src/net/ipsock.go``), with Go's error texts.
- :func:`split_docker_domain`: ``splitDockerDomain`` of github.com/distribution/reference v0.6.0
  ``normalize.go`` (Apache-2.0), with the Docker Hub names it knows, and :func:`go_lower` (``strings.ToLower``)
  that it relies on.

The Go standard library parts are ported from the Go distribution, Copyright The Go Authors, under the
BSD-3-Clause license (its ``LICENSE``). Go strings are bytes: the matcher walks UTF-8 bytes and decodes runes
where Go does, so it also answers for invalid UTF-8 as Go does.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "DEFAULT_DOMAIN",
    "LEGACY_DEFAULT_DOMAIN",
    "MISSING_PORT",
    "OFFICIAL_REPO_PREFIX",
    "BadPattern",
    "go_lower",
    "path_match",
    "path_match_bytes",
    "split_docker_domain",
    "split_host_port",
]


# --- path.Match -----------------------------------------------------------------------------------


class BadPattern(ValueError):
    """Go's ``path.ErrBadPattern`` (``filepath.ErrBadPattern`` is the same error)."""

    def __init__(self) -> None:
        super().__init__("syntax error in pattern")


def path_match(pattern: str, name: str) -> bool:
    """``path.Match`` of two strings, as Go sees them: their UTF-8 bytes (a lone surrogate, which no Go
    string holds, is encoded as is and so reads as invalid UTF-8). Raises :class:`BadPattern`."""
    return path_match_bytes(_utf8(pattern), _utf8(name))


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def path_match_bytes(pattern: bytes, name: bytes) -> bool:
    """``path.Match``: does all of ``name`` match the shell pattern? Unlike ``fnmatch``, ``*`` and ``?``
    never match ``/``. Raises :class:`BadPattern` for a malformed pattern, even when the answer is no."""
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return b"/" not in name  # a trailing '*' takes the rest unless it has a '/'
        rest = _match_chunk(chunk, name)
        if rest is not None and (not rest or pattern):  # the last chunk must exhaust the name
            name = rest
            continue
        if star:
            found = False
            for i in range(len(name)):  # let the star swallow i+1 bytes, never a '/'
                if name[i] == 0x2F:
                    break
                rest = _match_chunk(chunk, name[i + 1 :])
                if rest is not None and (pattern or not rest):
                    name, found = rest, True
                    break
            if found:
                continue
        while pattern:  # report a malformed remainder before answering no
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, b"")
        return False
    return not name


def _decode_rune(s: bytes) -> tuple[int, int]:
    """utf8.DecodeRune: invalid input is (U+FFFD, 1)."""
    for n in range(1, min(4, len(s)) + 1):
        try:
            return ord(s[:n].decode("utf-8")), n
        except UnicodeDecodeError:
            continue
    return 0xFFFD, 1


def _scan_chunk(pattern: bytes) -> tuple[bool, bytes, bytes]:
    """The next segment of the pattern: a non-star string, possibly preceded by stars."""
    star = pattern[:1] == b"*"
    pattern = pattern.lstrip(b"*")
    in_range, i = False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == 0x5C and i + 1 < len(pattern):  # '\\' escapes the next byte
            i += 1
        elif c == 0x5B:
            in_range = True
        elif c == 0x5D:
            in_range = False
        elif c == 0x2A and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _get_esc(chunk: bytes) -> tuple[int, bytes]:
    """A possibly escaped character of a character class, and the rest of the chunk."""
    if not chunk or chunk[0] in (0x2D, 0x5D):
        raise BadPattern
    if chunk[0] == 0x5C:
        chunk = chunk[1:]
        if not chunk:
            raise BadPattern
    rune, n = _decode_rune(chunk)
    if (rune == 0xFFFD and n == 1) or not chunk[n:]:
        raise BadPattern
    return rune, chunk[n:]


def _match_chunk(chunk: bytes, s: bytes) -> bytes | None:
    """The rest of s after chunk matched its start, else None; after a mismatch the chunk is
    still scanned so that a malformed pattern raises, as Go does."""
    failed = False
    while chunk:
        failed = failed or not s
        if chunk[0] == 0x5B:  # '[' character class
            rune = 0
            if not failed:
                rune, n = _decode_rune(s)
                s = s[n:]
            chunk = chunk[1:]
            negated = chunk[:1] == b"^"
            chunk = chunk[1:] if negated else chunk
            matched, ranges = False, 0
            while not (chunk[:1] == b"]" and ranges > 0):
                lo, chunk = _get_esc(chunk)
                hi = lo
                if chunk[0] == 0x2D:  # '-'
                    hi, chunk = _get_esc(chunk[1:])
                matched = matched or lo <= rune <= hi
                ranges += 1
            chunk = chunk[1:]
            failed = failed or matched == negated
        elif chunk[0] == 0x3F:  # '?' is any one rune but '/'
            if not failed:
                failed = s[0] == 0x2F
                s = s[_decode_rune(s)[1] :]
            chunk = chunk[1:]
        else:
            if chunk[0] == 0x5C:
                chunk = chunk[1:]
                if not chunk:
                    raise BadPattern
            if not failed:
                failed = chunk[0] != s[0]
                s = s[1:]
            chunk = chunk[1:]
    return None if failed else s


# --- net.SplitHostPort ----------------------------------------------------------------------------

MISSING_PORT: Final = "missing port in address"
_TOO_MANY_COLONS: Final = "too many colons in address"


def split_host_port(hostport: str) -> tuple[str, str]:
    """``net.SplitHostPort``: ``"[::1]:80"`` -> ``("::1", "80")``. Raises ValueError with Go's
    ``AddrError.Err`` text (e.g. :data:`MISSING_PORT`) where Go returns an error."""
    i, j, k = hostport.rfind(":"), 0, 0  # the port starts after the last colon
    if i < 0:
        raise ValueError(MISSING_PORT)
    if hostport.startswith("["):
        end = hostport.find("]")  # expected just before the last ':'
        if end < 0:
            raise ValueError("missing ']' in address")
        if end + 1 != i:
            colon = end + 1 < len(hostport) and hostport[end + 1] == ":"
            raise ValueError(_TOO_MANY_COLONS if colon else MISSING_PORT)
        host, j, k = hostport[1:end], 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            raise ValueError(_TOO_MANY_COLONS)
    if "[" in hostport[j:]:
        raise ValueError("unexpected '[' in address")
    if "]" in hostport[k:]:
        raise ValueError("unexpected ']' in address")
    return host, hostport[i + 1 :]


# --- distribution/reference splitDockerDomain -----------------------------------------------------

DEFAULT_DOMAIN: Final = "docker.io"
LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
OFFICIAL_REPO_PREFIX: Final = "library/"
_LOCALHOST: Final = "localhost"


def go_lower(s: str) -> str:
    """Go's ``strings.ToLower``: simple 1:1 case mapping.

    Python's full mapping differs only for U+0130, which Go lowers to an
    ASCII ``i`` -- and that decides whether a reference is "uppercase" or
    "invalid". (Final-sigma context cannot change an inequality test.)
    """
    if s.isascii():
        return s.lower()
    return s.replace("\u0130", "i").lower()


def split_docker_domain(name: str) -> tuple[str, str]:
    """``splitDockerDomain``: the registry of a name as Docker reads it, and the rest with Docker Hub's
    ``library/`` completed: ``"nginx:1"`` -> ``("docker.io", "library/nginx:1")``,
    ``"index.docker.io/team/app"`` -> ``("docker.io", "team/app")``. Any tag or digest stays in the rest."""
    maybe_domain, sep, maybe_remote = name.partition("/")
    if not sep:
        # A single element ("ubuntu", "ubuntu:latest") is never a host.
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == _LOCALHOST:
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
