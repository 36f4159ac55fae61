"""What a registry lookup found, as the node would ask: the facts the registry client fills and the checks read.

Below the policy (the registry client needs these, never the policy): no I/O, only the image library.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from policies.image.platforms import Platform

# An index lists one manifest per platform; anything else is one image for one platform.
INDEX_MEDIA_TYPES = frozenset(
    {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
)


class LookupStatus(StrEnum):
    """How a registry lookup ended. Every lookup ends as exactly one of these; none escapes as an exception."""

    EXISTS = "exists"
    NOT_FOUND = "notFound"
    UNAUTHORIZED = "unauthorized"
    DENIED = "denied"
    RATE_LIMITED = "rateLimited"
    DNS = "dns"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    TLS = "tls"
    SERVER_ERROR = "serverError"
    MALFORMED = "malformed"
    NODE_LOCAL = "nodeLocal"  # localhost registries: only the node can see them
    BLOCKED = "blocked"  # link-local / metadata addresses: never contacted from the webhook
    WITHHELD = "credentialsWithheld"  # the node would send credentials where pullguard's rules do not
    DIGEST_MISMATCH = "digestMismatch"  # content whose hash is not its digest: containerd fails the pull
    NOT_CHECKED = "notChecked"  # offline, or no lookup was made

    @property
    def definite(self) -> bool:
        """The outcome predicts the node's pull. The rest say only that the webhook could not tell."""
        return self in _DEFINITE


_DEFINITE = frozenset(
    {
        LookupStatus.EXISTS,
        LookupStatus.NOT_FOUND,
        LookupStatus.UNAUTHORIZED,
        LookupStatus.DENIED,
        LookupStatus.TLS,
        LookupStatus.DIGEST_MISMATCH,
    }
)


class Cause(StrEnum):
    """What the registry client established beyond the status: the checks choose their words and fixes from it, and
    never read `detail` (which is for people)."""

    REPOSITORY_UNKNOWN = "repositoryUnknown"  # notFound: the registry does not know the repository at all
    LINK_LOCAL = "linkLocal"  # blocked: a link-local or metadata address (not loopback)
    CERTIFICATE_NAME = "certificateName"  # tls: the certificate is not issued for the name or address asked
    CERTIFICATE_DATES = "certificateDates"  # tls: the certificate has expired or is not yet valid
    DEADLINE = "deadline"  # timeout: the lookup's own deadline struck (not one connection's timeout)


class OutboundRole(StrEnum):  # a host the registry client contacts, by its role in the lookup
    ENDPOINT = "registry endpoint"
    REALM = "token realm"
    REDIRECT = "redirect target"


@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What the registry said about one pull reference, as the node would ask it."""

    reference: str  # the pull reference looked up (docker.io/library/nginx:latest)
    status: LookupStatus
    registry: str  # the image's registry host as written (docker.io, registry.example.com:5000)
    endpoint: str = ""  # the URL that gave the answer (a mirror from hosts.toml, or the registry itself)
    detail: str = ""  # the cause in a few words: "x509: certificate signed by unknown authority"
    digest: str | None = None
    media_type: str | None = None
    platforms: tuple[Platform, ...] | None = None  # None: not fetched; attestation entries excluded
    credentials_sent: bool = False
    credential_sources: tuple[str, ...] = ()  # e.g. "secret shop/regcred" (never the credential itself)
    similar_tags: tuple[str, ...] = ()  # for NOT_FOUND, closest first, when the registry lists tags
    retry_after_seconds: float | None = None
    rate_limit: str = ""  # "remaining 0 of 100;w=21600" from the ratelimit-* headers
    # The host the lookup failed at when the failure is that host's and not the registry's answer (a refused
    # endpoint, a token realm, a redirect target): its role, and the host as `detail` names it.
    failed_role: OutboundRole | None = None
    failed_host: str = ""
    cause: Cause | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_MEDIA_TYPES
