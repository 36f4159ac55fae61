"""Which pull-secret credentials the kubelet tries for an image (pure: no I/O).

Ported from Kubernetes (Apache-2.0) pkg/credentialprovider/keyring.go: BasicDockerKeyring.Add and
Lookup, isDefaultRegistryMatch, ParseSchemelessURL, SplitURL, URLsMatch and URLsMatchStr.  Whether a
key matches hinges on Go's net/url.Parse, net.SplitHostPort and path/filepath.Match, so the parts of
them that decide acceptance are ported too, on UTF-8 bytes as Go strings are (url.Parse here, the
other two in policies.image.go_ports).  repo_to_pull follows pkg/util/parsers.ParseImageName and
distribution/reference's splitDockerDomain (Apache-2.0; also in policies.image.go_ports).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Final, NamedTuple

from policies.image.go_ports import (
    DEFAULT_DOMAIN,
    LEGACY_DEFAULT_DOMAIN,
    OFFICIAL_REPO_PREFIX,
    path_match_bytes,
    split_docker_domain,
    split_host_port,
)
from policies.image.pull_secret_parse import Credential, CredentialSource, DockerConfigEntry

__all__ = [
    "DEFAULT_REGISTRY_HOST",
    "DEFAULT_REGISTRY_KEY",
    "Credential",
    "CredentialSource",
    "Keyring",
    "is_default_registry_match",
    "repo_to_pull",
    "urls_match_str",
]

DEFAULT_REGISTRY_HOST: Final = LEGACY_DEFAULT_DOMAIN
DEFAULT_REGISTRY_KEY: Final = DEFAULT_REGISTRY_HOST + "/v1/"


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # never fails; Go strings are bytes too


# --- net/url.Parse, for the absolute http(s) URLs the keyring builds -----------------------------


class _URL(NamedTuple):
    host: bytes  # unescaped, with [brackets] and :port, as url.URL.Host
    path: bytes  # unescaped, as url.URL.Path


_ALNUM: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# ASCII a host may hold unescaped (shouldEscape(c, encodeHost) is false).
_HOST_OK: Final = frozenset(_ALNUM + b"-_.~!$&'()*+,;=:[]<>\"")
_USERINFO_OK: Final = frozenset(_ALNUM + b"-._:~!$&'()*+,;=%@")  # validUserinfo
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_PCT: Final = re.compile(rb"%([0-9A-Fa-f]{2})")


def _unescape(s: bytes, mode: str) -> bytes:
    """url.unescape for modes host, zone and the rest (path, userinfo, fragment)."""
    i = 0
    while i < len(s):
        if s[i] == 0x25:  # '%'
            if i + 2 >= len(s) or s[i + 1] not in _HEX or s[i + 2] not in _HEX:
                raise ValueError("invalid URL escape")
            byte = int(s[i + 1 : i + 3], 16)
            if mode == "host" and byte < 0x80 and s[i : i + 3] != b"%25":
                raise ValueError("invalid URL escape")  # a host may only %-encode non-ASCII
            if mode == "zone" and s[i : i + 3] != b"%25" and byte != 0x20 and byte not in _HOST_OK:
                raise ValueError("invalid URL escape")
            i += 3
        else:
            if mode in ("host", "zone") and s[i] < 0x80 and s[i] not in _HOST_OK:
                raise ValueError("invalid character in host name")
            i += 1
    return _PCT.sub(lambda m: bytes([int(m[1], 16)]), s)


def _valid_optional_port(port: bytes) -> bool:
    return not port or (port[0] == 0x3A and all(0x30 <= c <= 0x39 for c in port[1:]))


def _is_ipv6(literal: bytes) -> bool:
    """netip.ParseAddr succeeds and is not IPv4 (a zone after '%' may be any non-empty bytes)."""
    addr, pct, zone = literal.partition(b"%")
    if (pct and not zone) or not addr.isascii():
        return False
    try:
        ipaddress.IPv6Address(addr.decode("ascii"))
    except ValueError:
        return False
    return True


def _parse_host(host: bytes) -> bytes:
    """url.parseHost (Go 1.25+: brackets only for IPv6; an http(s) host's first ':' starts the port)."""
    bracket = host.rfind(b"[")
    if bracket > 0:
        raise ValueError("invalid IP-literal")
    if bracket == 0:
        close = host.rfind(b"]")
        if close < 0:
            raise ValueError("missing ']' in host")
        if not _valid_optional_port(host[close + 1 :]):
            raise ValueError("invalid port after host")
        hostname = host[1:close]
        zone = hostname.find(b"%25")
        if zone >= 0:
            unescaped = _unescape(hostname[:zone], "host") + _unescape(hostname[zone:], "zone")
        else:
            unescaped = _unescape(hostname, "host")
        if not _is_ipv6(unescaped):
            raise ValueError("invalid IP-literal")
        return b"[" + unescaped + b"]" + host[close + 1 :]
    colon = host.find(b":")
    if colon >= 0 and not _valid_optional_port(host[colon:]):
        raise ValueError("invalid port after host")
    return _unescape(host, "host")


def _parse_url(raw: bytes) -> _URL:
    """url.Parse of "http://..." or "https://..."; raises ValueError where Go returns an error."""
    u, _, fragment = raw.partition(b"#")
    if any(c < 0x20 or c == 0x7F for c in u):
        raise ValueError("invalid control character in URL")
    rest = u.partition(b":")[2].partition(b"?")[0]  # after the scheme; the query is dropped
    authority, slash, path = rest[2:].partition(b"/")
    userinfo, at, hostport = authority.rpartition(b"@")
    host = _parse_host(hostport)
    if at:
        if any(c not in _USERINFO_OK for c in userinfo):
            raise ValueError("invalid userinfo")
        for part in userinfo.split(b":", 1):
            _unescape(part, "userinfo")
    unescaped_path = _unescape(slash + path, "path")
    _unescape(fragment, "fragment")
    return _URL(host, unescaped_path)


def _parse_schemeless_url(url: bytes) -> _URL:
    """ParseSchemelessURL: url.Parse needs a scheme, so one is added (and ignored)."""
    return _parse_url(b"https://" + url)


def _split_url(url: _URL) -> tuple[list[bytes], bytes]:
    """SplitURL: the host's dot-separated labels and the port ("" when SplitHostPort fails)."""
    try:  # latin-1 maps each byte to one character and back, so Go's byte offsets are kept
        host, port = split_host_port(url.host.decode("latin-1"))
    except ValueError:
        return url.host.split(b"."), b""
    return host.encode("latin-1").split(b"."), port.encode("latin-1")


def _urls_match(glob: _URL, target: _URL) -> bool:
    """URLsMatch: same port, same number of host labels, each label glob-matching, and the
    glob's path a prefix of the target's.  Raises ValueError for a malformed glob label."""
    glob_parts, glob_port = _split_url(glob)
    target_parts, target_port = _split_url(target)
    if glob_port != target_port or len(glob_parts) != len(target_parts):
        return False
    if not target.path.startswith(glob.path):
        return False
    return all(path_match_bytes(g, t) for g, t in zip(glob_parts, target_parts, strict=True))


def urls_match_str(glob: str, target: str) -> bool:
    """URLsMatchStr, e.g. ("*.example.com:5000/team", "a.example.com:5000/team/app") -> True.
    Raises ValueError where Go returns an error (unparsable URL, malformed glob)."""
    return _urls_match(_parse_schemeless_url(_b(glob)), _parse_schemeless_url(_b(target)))


def is_default_registry_match(image: str) -> bool:
    """isDefaultRegistryMatch: does the image name pull from Docker Hub?"""
    parts = image.split("/", 1)
    if not parts[0]:
        return False
    if len(parts) == 1 or parts[0] in (DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN):
        return True
    # Docker reads a first component holding '.' or ':' as a registry host, not a user name.
    return not any(c in parts[0] for c in ".:")


def repo_to_pull(image: str) -> str:
    """What the kubelet passes to Lookup: parsers.ParseImageName's repository, i.e. the
    reference's Name() after ParseNormalizedNamed (tag and digest dropped, Docker Hub names
    completed: "nginx:1" -> "docker.io/library/nginx").  Expects a valid reference: the
    kubelet refuses invalid ones (InvalidImageName) before looking up credentials."""
    domain, remainder = split_docker_domain(image)
    remote = remainder.partition("@")[0].partition(":")[0]  # a ':' after the domain starts the tag
    if domain == DEFAULT_DOMAIN and "/" not in remote:  # only when an (invalid) tag held a '/'
        remote = OFFICIAL_REPO_PREFIX + remote
    return f"{domain}/{remote}"


class Keyring:
    """BasicDockerKeyring: credentials indexed by registry key (host plus optional path)."""

    def __init__(self) -> None:
        self._index: list[bytes] = []  # reverse-sorted keys, so "a.io/team" is tried before "a.io"
        self._creds: dict[bytes, list[Credential]] = {}

    @classmethod
    def from_entries(cls, entries: Iterable[tuple[str, Credential]]) -> Keyring:
        keyring = cls()
        keyring.add(entries)
        return keyring

    @property
    def keys(self) -> list[str]:
        """The index in lookup order (for diagnostics)."""
        return [k.decode("utf-8", "backslashreplace") for k in self._index]

    def add(self, entries: Iterable[tuple[str, Credential]]) -> list[str]:
        """Add (registry key, credential) pairs, as Add does for one docker config.
        Returns the keys the kubelet ignores because url.Parse rejects them."""
        ignored: list[str] = []
        for location, credential in entries:
            value = location if location.startswith(("https://", "http://")) else "https://" + location
            try:
                url = _parse_url(_b(value))
            except ValueError:
                ignored.append(location)
                continue
            # Like docker's ResolveAuthConfig: /v1/ and /v2/ mean the bare host.
            path = url.path[3:] if url.path.startswith((b"/v2/", b"/v1/")) else url.path
            key = url.host + path if path and path != b"/" else url.host
            self._creds.setdefault(key, []).append(credential)
        self._index = sorted(self._creds, reverse=True)
        return ignored

    def add_config(self, config: Mapping[str, DockerConfigEntry], source: CredentialSource | None = None) -> list[str]:
        """Add a parsed docker config; each credential's source gets its registry key filled in."""
        return self.add(
            (key, Credential.from_entry(entry, source and replace(source, registry_key=key)))
            for key, entry in config.items()
        )

    def lookup(self, image: str) -> list[Credential]:
        """Lookup: credentials of every matching key, most specific key first, in the order
        they were added; failing any, Docker Hub's if the image is a Docker Hub one.
        `image` is the repository as the kubelet passes it, see repo_to_pull()."""
        found = self._matching(image)
        if not found and is_default_registry_match(image):
            # "https://index.docker.io/v1/" is stored under "index.docker.io".
            return list(self._creds.get(_b(DEFAULT_REGISTRY_HOST), []))
        return found

    def _matching(self, image: str) -> list[Credential]:
        try:
            target = _parse_schemeless_url(_b(image))
        except ValueError:  # URLsMatchStr fails for every key
            return []
        found: list[Credential] = []
        for key in self._index:
            try:  # a key url.Parse or filepath.Match rejects matches nothing
                if _urls_match(_parse_schemeless_url(key), target):
                    found.extend(self._creds[key])
            except ValueError:
                continue
        return found
