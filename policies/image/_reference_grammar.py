"""Grammar and Docker Hub normalization rules behind :mod:`policies.image.reference`.

The expressions are built exactly like ``regexp.go`` in
github.com/distribution/reference v0.6.0 (Apache-2.0), so the two stay easy to
diff; the normalization helpers are ``normalize.go``'s (``splitDockerDomain`` and the
Go runtime behaviour the port needs live in :mod:`policies.image.go_ports`). The expressions are
compiled with ``re.ASCII`` (Go's ``\\w`` is ASCII-only) and must only be used
with ``fullmatch``: Go's ``^...$`` never matches before a trailing newline,
Python's ``$`` does.
"""

from __future__ import annotations

import re
from typing import Final

from policies.image.go_ports import DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX


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


# Docker Hub normalization (normalize.go).
REPOSITORY_NAME_TOTAL_LENGTH_MAX: Final = 255
DEFAULT_TAG: Final = "latest"


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
