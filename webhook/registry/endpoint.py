"""A registry endpoint as containerd's ``docker.RegistryHost`` describes it, and Go's path helpers that the
hosts.toml port needs (``path.Clean``, ``filepath.Join``)."""

from __future__ import annotations

from dataclasses import dataclass

PULL, RESOLVE, PUSH, REFERRERS = "pull", "resolve", "push", "referrers"
DEFAULT_CAPABILITIES = frozenset({PULL, RESOLVE, PUSH})
_KNOWN_CAPABILITIES = DEFAULT_CAPABILITIES | {REFERRERS}
DOCKER_IO_ENDPOINT = "registry-1.docker.io"


class HostsConfigError(ValueError):
    """A hosts directory containerd could not use; the message names the file and the key."""


@dataclass(frozen=True)
class RegistryEndpoint:
    """One of containerd's ``docker.RegistryHost`` entries; they are tried in list order.

    ``skip_verify`` is None when unset. ``tls_configured``: ``ca``/``client``/``skip_verify`` set
    (containerd's explicit TLS). ``http_fallback``: https is tried first and a TLS or connection
    error retries over plain http (containerd's NewHTTPFallback). ``headers`` also go to the token
    server. ``dial_timeout`` is in seconds.
    """

    scheme: str
    host: str
    path: str = "/v2"
    capabilities: frozenset[str] = DEFAULT_CAPABILITIES
    ca_files: tuple[str, ...] = ()
    client_pairs: tuple[tuple[str, str], ...] = ()
    skip_verify: bool | None = None
    headers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    dial_timeout: float | None = None
    tls_configured: bool = False
    http_fallback: bool = False

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}{self.path}"


def _clean(p: str) -> str:
    """Go's path.Clean."""
    rooted = p.startswith("/")
    out: list[str] = []
    for seg in p.split("/"):
        if seg == ".." and out and out[-1] != "..":
            out.pop()
        elif (seg == ".." and not rooted) or seg not in ("", ".", ".."):
            out.append(seg)
    return ("/" if rooted else "") + "/".join(out) or "."


def _join(*elems: str) -> str:
    """Go's filepath.Join: empty elements are dropped, the result cleaned, "" if nothing is left."""
    parts = [e for e in elems if e]
    return _clean("/".join(parts)) if parts else ""


def _abs(p: str, base: str) -> str:
    return p if p.startswith("/") else _join(base, p)
