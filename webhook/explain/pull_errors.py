"""Classify what a node's runtime said when a pull failed: the text of the kubelet's `Failed to pull image "…": …`
event, of a container's waiting message, or of its last termination.

Pure: text in, `PullError` out. The texts are containerd's (via CRI: `failed to pull and unpack image "X": failed to
resolve reference "X": ...`), CRI-O's (containers/image: `initializing source docker://X: reading manifest T in R:
...`) and Docker's (`Error response from daemon: ...`), as the kubelet wraps them (`rpc error: code = NotFound desc
= ...`). The patterns are checked in order and the first match wins: a more specific cause (a DNS lookup that timed
out, a TLS handshake timeout) is tested before the general one it contains. Each pattern is tested against real
texts collected from public issues (tests/data/pull_errors/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from policies.registry_facts import LookupStatus


class PullErrorClass(StrEnum):
    NOT_FOUND = "notFound"
    UNAUTHORIZED = "unauthorized"
    DENIED = "denied"
    DNS = "dns"
    TIMEOUT = "timeout"
    REFUSED = "refused"
    TLS_UNKNOWN_AUTHORITY = "tlsUnknownAuthority"
    TLS_EXPIRED = "tlsExpired"
    TLS_NAME_MISMATCH = "tlsNameMismatch"
    TLS = "tls"  # any other TLS failure: plain HTTP answered on an HTTPS request, a client certificate required
    RATE_LIMITED = "rateLimited"
    SERVER_ERROR = "serverError"
    NO_MATCHING_PLATFORM = "noMatchingPlatform"
    EXEC_FORMAT = "execFormatError"  # pulled, but built for another architecture (CrashLoopBackOff)
    NO_SPACE = "noSpaceLeft"
    INVALID_NAME = "invalidImageName"
    NEVER_PULL = "neverPull"
    UNKNOWN = "unknown"


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# First match wins. Each line quotes the kind of text it is for.
_PATTERNS: tuple[tuple[PullErrorClass, re.Pattern[str]], ...] = tuple(
    (klass, _compile(pattern))
    for klass, pattern in (
        # `exec /app/server: exec format error`; runc: `exec user process caused: exec format error`
        (PullErrorClass.EXEC_FORMAT, r"exec format error"),
        # kubelet: `Container image "x:1" is not present with pull policy of Never`
        (PullErrorClass.NEVER_PULL, r"is not present with pull policy of Never|ErrImageNeverPull"),
        # kubelet: `Failed to apply default image tag "X": couldn't parse image reference "X": invalid reference format`
        (PullErrorClass.INVALID_NAME, r"invalid reference format|couldn't parse image (?:reference|name)"),
        # containerd: `no match for platform in manifest: not found`; Docker: `no matching manifest for linux/arm64/v8
        # in the manifest list entries`; CRI-O: `no image found in manifest list for architecture arm64`
        (
            PullErrorClass.NO_MATCHING_PLATFORM,
            r"no match for (?:current )?platform|no matching manifest for|"
            r"no image found in (?:manifest list|image index)",
        ),
        # `failed to extract layer ...: write /var/lib/...: no space left on device: unknown`
        (PullErrorClass.NO_SPACE, r"no space left on device"),
        # `429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit`
        (PullErrorClass.RATE_LIMITED, r"toomanyrequests|429 Too Many Requests|pull rate limit"),
        # `net/http: TLS handshake timeout` is a network timeout, not a certificate problem
        (PullErrorClass.TIMEOUT, r"TLS handshake timeout"),
        (
            PullErrorClass.TLS_UNKNOWN_AUTHORITY,
            r"certificate signed by unknown authority|unknown certificate authority",
        ),
        (PullErrorClass.TLS_EXPIRED, r"certificate has expired|is not yet valid"),
        # `x509: certificate is valid for *.example.com, not registry-1.docker.io`;
        # `x509: certificate is not valid for any names, but wanted to match X`
        (
            PullErrorClass.TLS_NAME_MISMATCH,
            r"certificate is (?:valid for .*?, not |not valid for any names)|certificate is not valid for",
        ),
        (PullErrorClass.TLS, r"x509: |tls: |server gave HTTP response to HTTPS client"),
        # `dial tcp: lookup registry.example.com on 10.96.0.10:53: no such host` (also when the lookup timed out)
        (
            PullErrorClass.DNS,
            r"no such host|dial tcp: lookup |Temporary failure in name resolution|server misbehaving|"
            r"Name or service not known",
        ),
        # `dial tcp 103.252.115.53:443: connect: connection refused`
        (PullErrorClass.REFUSED, r"connection refused"),
        # `dial tcp 74.125.203.82:443: i/o timeout`; `connect: connection timed out`; `context deadline exceeded`
        (
            PullErrorClass.TIMEOUT,
            r"i/o timeout|connection timed out|context deadline exceeded|DeadlineExceeded|Client\.Timeout|"
            r"request canceled|network is unreachable|no route to host",
        ),
        # containerd: `pull access denied, repository does not exist or may require authorization: server message:
        # insufficient_scope: authorization failed`; Docker: `denied: requested access to the resource is denied`;
        # any HTTP 403
        (
            PullErrorClass.DENIED,
            r"pull access denied|insufficient_scope|requested access to the resource is denied|403 Forbidden|"
            r"\bdenied: ",
        ),
        # containerd: `failed to fetch anonymous token: unexpected status: 401 Unauthorized`; `... [manifests 1]: 401
        # Unauthorized`; CRI-O/quay: `unauthorized: access to the requested resource is not authorized`
        (
            PullErrorClass.UNAUTHORIZED,
            r"401 Unauthorized|unexpected status: 401|\bunauthorized: |authentication required|"
            r"not authorized|incorrect username or password",
        ),
        (
            PullErrorClass.SERVER_ERROR,
            r"(?:status code \[[^\]]*\]|unexpected status(?: code)?[^:]*|unexpected status from \w+ request to \S+)"
            r": 5\d\d\b|\b50[0234] (?:Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout)",
        ),
        # containerd: `docker.io/library/nginx:nope: not found`; CRI-O: `reading manifest nope in
        # docker.io/library/nginx: manifest unknown`; Docker: `manifest for x:1 not found`
        (
            PullErrorClass.NOT_FOUND,
            r": not found\b|manifest unknown|name unknown|404 Not Found|code = NotFound|manifest for \S+ not found",
        ),
    )
)

# The registry lookup outcomes (LookupStatus) that reproduce each class from where pullguard runs.
REPRODUCED_BY: dict[PullErrorClass, frozenset[LookupStatus]] = {
    PullErrorClass.NOT_FOUND: frozenset({LookupStatus.NOT_FOUND}),
    PullErrorClass.UNAUTHORIZED: frozenset({LookupStatus.UNAUTHORIZED, LookupStatus.DENIED}),
    PullErrorClass.DENIED: frozenset({LookupStatus.DENIED, LookupStatus.UNAUTHORIZED, LookupStatus.NOT_FOUND}),
    PullErrorClass.DNS: frozenset({LookupStatus.DNS}),
    PullErrorClass.TIMEOUT: frozenset({LookupStatus.TIMEOUT}),
    PullErrorClass.REFUSED: frozenset({LookupStatus.REFUSED}),
    PullErrorClass.TLS_UNKNOWN_AUTHORITY: frozenset({LookupStatus.TLS}),
    PullErrorClass.TLS_EXPIRED: frozenset({LookupStatus.TLS}),
    PullErrorClass.TLS_NAME_MISMATCH: frozenset({LookupStatus.TLS}),
    PullErrorClass.TLS: frozenset({LookupStatus.TLS}),
    PullErrorClass.RATE_LIMITED: frozenset({LookupStatus.RATE_LIMITED}),
    PullErrorClass.SERVER_ERROR: frozenset({LookupStatus.SERVER_ERROR}),
}

# What each class means, in a few words, and the usual fix. `{image}`, `{host}` and `{node}` are filled in when known.
_MEANING: dict[PullErrorClass, tuple[str, str]] = {
    PullErrorClass.NOT_FOUND: (
        "the registry has no such repository, tag or digest",
        "correct the image reference, or push {image}",
    ),
    PullErrorClass.UNAUTHORIZED: (
        "the registry wants credentials the node did not send, or rejected the ones it sent",
        "create a docker-registry pull secret for {host} and name it in imagePullSecrets (or the ServiceAccount)",
    ),
    PullErrorClass.DENIED: (
        "the registry refused the pull: the repository does not exist, or the account may not pull it",
        "check the repository name; if it is private, use a pull secret for {host} whose account may pull it",
    ),
    PullErrorClass.DNS: (
        "the node could not resolve the registry's host name",
        "fix the name, or the node's DNS (/etc/resolv.conf, CoreDNS upstreams) so that {host} resolves",
    ),
    PullErrorClass.TIMEOUT: (
        "the node's connection to the registry timed out",
        "open the network path (firewall, proxy, egress) from the node to {host}, or serve the image from a "
        "mirror the nodes reach (hosts.toml)",
    ),
    PullErrorClass.REFUSED: (
        "nothing listens at the registry address the node dialed",
        "check that the registry at {host} is running and the host and port are right",
    ),
    PullErrorClass.TLS_UNKNOWN_AUTHORITY: (
        "the node does not trust the CA that signed the registry's certificate",
        "install the registry's CA on every node: /etc/containerd/certs.d/{host}/ca.crt referenced by `ca` in "
        "its hosts.toml",
    ),
    PullErrorClass.TLS_EXPIRED: (
        "the registry's certificate has expired (or the node's clock is wrong)",
        "renew the certificate of {host}, and check the node's clock (NTP)",
    ),
    PullErrorClass.TLS_NAME_MISMATCH: (
        "the registry's certificate is not issued for the name the node used (often a proxy in the way)",
        "reissue the certificate of {host} to include that name, or pull through the name it is issued for",
    ),
    PullErrorClass.TLS: (
        "the TLS connection to the registry failed",
        "if {host} serves plain HTTP, say so in /etc/containerd/certs.d/{host}/hosts.toml "
        '(server = "http://..."); else fix its TLS setup',
    ),
    PullErrorClass.RATE_LIMITED: (
        "the registry is rate limiting the node's pulls (toomanyrequests)",
        "authenticate pulls with an imagePullSecret, or configure a pull-through mirror for {host} in hosts.toml",
    ),
    PullErrorClass.SERVER_ERROR: (
        "the registry failed with a server error",
        "retry later, or serve the image from a mirror",
    ),
    PullErrorClass.NO_MATCHING_PLATFORM: (
        "the image has no build for the node's OS/architecture",
        "build and push {image} for the node's platform (a multi-arch index), or pin the pod to nodes of a "
        "platform it has (nodeSelector kubernetes.io/arch)",
    ),
    PullErrorClass.EXEC_FORMAT: (
        "the image was pulled but its binaries are for another architecture than the node's",
        "build {image} for the node's architecture (a multi-arch index), or pin the pod to nodes of the "
        "architecture it was built for (nodeSelector kubernetes.io/arch)",
    ),
    PullErrorClass.NO_SPACE: (
        "the node ran out of disk space while unpacking the image",
        "free disk space on node {node} (image garbage collection: the kubelet's --image-gc-high-threshold), or "
        "give it a larger disk",
    ),
    PullErrorClass.INVALID_NAME: (
        "the image reference is not valid",
        "correct the image reference (lowercase repository, host:port/path:tag, no scheme)",
    ),
    PullErrorClass.NEVER_PULL: (
        "imagePullPolicy is Never and the image is not on the node",
        "load {image} onto the nodes, or set imagePullPolicy: IfNotPresent",
    ),
    PullErrorClass.UNKNOWN: (
        "the runtime's message matches no known pull failure",
        "read the message; run `kubectl describe pod` for the events",
    ),
}

_IMAGE = re.compile(
    r"(?:Failed to pull image|failed to pull and unpack image|Back-off pulling image|failed to pull image|"
    r'Container image|Failed to apply default image tag|failed pulling image) \\?"([^"\\]+)\\?"',
    re.IGNORECASE,
)
_SANDBOX = re.compile(
    r'(?:failed to get sandbox image|sandbox image) \\?"([^"\\]+)\\?"|'
    r"(?:create|creating) pod sandbox.{0,1024}?(?:failed pulling image|failed to pull image|error pulling image) "
    r'\\?"([^"\\]+)\\?"',
    re.IGNORECASE | re.DOTALL,
)
_URL_HOST = re.compile(r'(?:Head|Get|Post) \\?"?https?://([^/"\\\s]+)', re.IGNORECASE)
_LOOKUP_HOST = re.compile(r"lookup ([^\s:]+)")
_PULLING_FROM = re.compile(r"pulling from host ([^\s]+) failed")
# Wrappers around the runtime's own cause, outermost first; the detail is what follows the last one.
_WRAPPERS = re.compile(
    r'rpc error: code = \w+ desc = |Failed to pull image "[^"]*": |failed to pull and unpack image "[^"]*": |'
    r'failed to resolve reference "[^"]*": |failed to get sandbox image "[^"]*": |failed to pull image "[^"]*": |'
    r"initializing source docker://\S+: |Error response from daemon: |failed to do request: ",
    re.IGNORECASE,
)
MAX_DETAIL = 300


@dataclass(frozen=True, slots=True)
class PullError:
    """One runtime message, classified. `detail` is the innermost cause, without the kubelet's and CRI's wrappers."""

    klass: PullErrorClass
    text: str
    detail: str
    image: str | None = None  # the image the message names
    host: str | None = None  # the host the message names (a registry, mirror or token realm)
    sandbox_image: str | None = None  # set when the pod sandbox (pause) image could not be pulled

    @property
    def summary(self) -> str:
        meaning = _MEANING[self.klass][0]
        if self.sandbox_image is not None:
            return f'the pod sandbox image "{self.sandbox_image}" could not be pulled: {meaning}'
        return meaning

    def fix(self, *, node: str | None = None, image: str | None = None, host: str | None = None) -> str:
        """The usual fix for this class, with the names filled in (arguments override what the text named)."""
        template = _MEANING[self.klass][1]
        the_image = image or self.sandbox_image or self.image or "the image"
        the_host = host or self.host or "the registry"
        text = template.format(image=the_image, host=the_host, node=node or "(the pod's node)")
        if self.sandbox_image is not None:
            text = (
                f"the node's runtime pulls its sandbox image itself (containerd: sandbox_image in config.toml), "
                f"without the pod's pull secrets: {text}"
            )
        return text

    @property
    def registry_side(self) -> bool:
        """A class pullguard can try to reproduce by asking the registry."""
        return self.klass in REPRODUCED_BY


# A runtime's pull error is a few hundred characters; the API server takes status messages and events of a megabyte.
# Only the head is classified and kept, so the work (and what explain prints) is bounded whatever a pod says.
MAX_CLASSIFIED_CHARS = 8192


def classify(text: str, reason: str = "") -> PullError:
    """Classify a runtime message. `reason` is the kubelet's waiting reason, used when the text names no cause
    (InvalidImageName and ErrImageNeverPull say enough by themselves)."""
    if len(text) > MAX_CLASSIFIED_CHARS:
        text = text[:MAX_CLASSIFIED_CHARS] + f"...({len(text)} characters)"
    klass = next((k for k, pattern in _PATTERNS if pattern.search(text)), PullErrorClass.UNKNOWN)
    if klass is PullErrorClass.UNKNOWN:
        klass = {
            "InvalidImageName": PullErrorClass.INVALID_NAME,
            "ErrImageNeverPull": PullErrorClass.NEVER_PULL,
        }.get(reason, PullErrorClass.UNKNOWN)
    image = _first(_IMAGE, text)
    sandbox = _first(_SANDBOX, text)
    return PullError(
        klass=klass,
        text=text,
        detail=_detail(text),
        image=sandbox or image,
        host=_host(text, sandbox or image),
        sandbox_image=sandbox,
    )


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    match = pattern.search(text)
    if match is None:
        return None
    return next((group for group in match.groups() if group), None)


def _host(text: str, image: str | None) -> str | None:
    for pattern in (_URL_HOST, _PULLING_FROM, _LOOKUP_HOST):
        found = _first(pattern, text)
        if found:
            return found.rstrip(".:")
    if image:
        return _image_registry(image)
    return None


def _image_registry(image: str) -> str:
    """The registry host of an image reference, as the familiar-name rules put it (docker.io when none)."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _detail(text: str) -> str:
    cut = 0
    for match in _WRAPPERS.finditer(text):
        cut = match.end()
    detail = " ".join(text[cut:].split()) or " ".join(text.split())
    return detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 3] + "..."
