"""The registry endpoints a node's containerd would try for one registry host.

A port of containerd's ``core/remotes/docker/config/hosts.go`` (ConfigureHosts, loadHostDir,
parseHostsFile, loadCertFiles), ``config_unix.go`` (hostPaths) and ``docker.IsLocalhost`` /
``MatchLocalhost`` (Apache-2.0, The containerd Authors). Files are read; TLS material is only named.

Choices: a bad ``hosts.toml`` raises :class:`HostsConfigError` unless ``strict=False`` (containerd
logs it and falls back to the certificate files); ``hosts_dir`` may be a ``:``-separated list like
CRI's ``config_path``; the newer ``referrers`` capability is accepted but is not a default.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace

from policies.image.go_ports import MISSING_PORT, split_host_port
from webhook.registry.endpoint import (
    _KNOWN_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    DOCKER_IO_ENDPOINT,
    PULL,
    PUSH,
    REFERRERS,
    RESOLVE,
    HostsConfigError,
    RegistryEndpoint,
    _clean,
    _join,
)
from webhook.registry.hosts_toml import parse_hosts_toml

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DOCKER_IO_ENDPOINT",
    "PULL",
    "PUSH",
    "REFERRERS",
    "RESOLVE",
    "_KNOWN_CAPABILITIES",
    "HostsConfigError",
    "RegistryEndpoint",
    "configure_endpoints",
    "endpoints_with",
    "find_host_dir",
    "host_directory",
    "host_paths",
    "is_localhost",
    "is_proxy",
    "load_cert_files",
    "load_host_dir",
    "lookup_endpoints",
    "match_localhost",
    "parse_hosts_toml",
    "request_url",
    "resolve_endpoints",
]


def _port(hostport: str) -> str:
    """The port, or "" where SplitHostPort errs (containerd's ``_, port, _ := net.SplitHostPort(host)``)."""
    try:
        return split_host_port(hostport)[1]
    except ValueError:
        return ""


def _is_loopback_ip(s: str) -> bool:
    """Go's net.ParseIP(s).IsLoopback(): no zones, IPv4-mapped addresses count."""
    try:
        ip = ipaddress.ip_address(s) if "%" not in s else None
    except ValueError:
        ip = None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip is not None and ip.is_loopback


def is_localhost(host: str) -> bool:
    """containerd's ``docker.IsLocalhost`` (so ``[::1]`` without a port is not local)."""
    with contextlib.suppress(ValueError):
        host = split_host_port(host)[0]
    return host == "localhost" or _is_loopback_ip(host)


def match_localhost(host: str) -> bool:
    """containerd's ``docker.MatchLocalhost`` (the legacy plain-http rule); an error is False."""
    if host in ("::1", "[::1]"):
        return True
    try:
        h, port = split_host_port(host)
    except ValueError as e:
        if str(e) != MISSING_PORT:
            return False
        h, port = host, "-"
    return bool(port) and _is_loopback_ip("127.0.0.1" if h == "localhost" else h)


def host_directory(host: str) -> str:
    """``registry.example.com:5000`` -> ``registry.example.com_5000_`` (containerd's hostDirectory)."""
    idx = host.rfind(":")
    return f"{host[:idx]}_{host[idx + 1 :]}_" if idx > 0 else host


def host_paths(root: str, host: str) -> list[str]:
    """The directories containerd tries, in order: ``host_port_``, ``host:port``, ``_default``."""
    ch = host_directory(host)
    first = [_join(root, ch)] if ch != host else []
    return [*first, _join(root, host), _join(root, "_default")]


def find_host_dir(hosts_dir: str | Sequence[str] | None, host: str) -> str | None:
    """CRI's hostDirFromRoots: the first existing path of the first root having one (so a root's
    ``_default`` wins over a later root's host directory). Empty roots are skipped."""
    roots = [] if hosts_dir is None else hosts_dir.split(":") if isinstance(hosts_dir, str) else hosts_dir
    return next((p for root in roots if root for p in host_paths(root, host) if _exists(p)), None)


def _exists(p: str) -> bool:
    """Go's os.Stat: only ENOENT means absent; any other failure is an error."""
    try:
        os.stat(p)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise HostsConfigError(f"{p}: {e.strerror}") from e
    return True


def load_cert_files(certs_dir: str) -> list[RegistryEndpoint]:
    """Docker's layout: ``*.crt`` are CAs, each ``*.cert`` a client cert with an optional ``*.key``."""
    try:
        entries = sorted(os.scandir(certs_dir), key=lambda e: e.name)
    except FileNotFoundError:
        entries = []
    except OSError as e:
        raise HostsConfigError(f"{certs_dir}: {e.strerror}") from e
    files = [e.name for e in entries if not e.is_dir(follow_symlinks=False)]
    cas = [_join(certs_dir, name) for name in files if name.endswith(".crt")]
    keys = [_join(certs_dir, name[:-5] + ".key") for name in files if name.endswith(".cert")]
    certs = [_join(certs_dir, name) for name in files if name.endswith(".cert")]
    pairs = tuple((cert, key if _exists(key) else "") for cert, key in zip(certs, keys, strict=True))
    only = RegistryEndpoint("", "", "", frozenset(), tuple(cas), pairs, tls_configured=bool(cas or pairs))
    return [only]


def load_host_dir(host_dir: str, *, strict: bool = True) -> list[RegistryEndpoint]:
    """``hosts.toml`` if present and non-empty, else the certificate files (loadHostDir)."""
    path = _join(host_dir, "hosts.toml")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        data = b""
    except OSError as e:
        raise HostsConfigError(f"{path}: {e.strerror}") from e
    if not data:
        return load_cert_files(host_dir)
    try:
        return parse_hosts_toml(host_dir, data, source=path)
    except HostsConfigError:
        if strict:
            raise
        return load_cert_files(host_dir)


def configure_endpoints(
    host: str,
    configs: Sequence[RegistryEndpoint] | None,
    *,
    default_scheme: str = "",
    default_tls: bool = False,
) -> list[RegistryEndpoint]:
    """ConfigureHosts: the default endpoint fills a last entry without a host (``configs`` None: no
    host directory), then http entries with TLS configured become https with http fallback (unless
    on port 80). ``default_scheme``/``default_tls`` are HostOptions' DefaultScheme and
    ``DefaultTLS != nil``; CRI sets neither."""
    hosts = list(configs) if configs is not None else [RegistryEndpoint(scheme="", host="", path="")]
    if hosts and not hosts[-1].host:
        last = hosts[-1]
        if host == "docker.io":
            last = replace(last, scheme="https", host=DOCKER_IO_ENDPOINT)
        elif is_localhost(host) and not default_scheme:
            port = _port(host)
            last = replace(last, host=host, scheme="https" if port in ("", "443") else "http")
            if port != "80":
                last = replace(last, skip_verify=True, tls_configured=True)
        else:
            last = replace(last, host=host, scheme=default_scheme or "https")
        hosts[-1] = replace(last, path="/v2", capabilities=DEFAULT_CAPABILITIES)
    return [
        replace(h, scheme="https", http_fallback=True)
        if h.scheme == "http" and (default_tls or h.tls_configured) and _port(h.host) != "80"
        else h
        for h in hosts
    ]


def resolve_endpoints(
    hosts_dir: str | Sequence[str] | None,
    host: str,
    *,
    strict: bool = True,
    default_scheme: str = "",
    default_tls: bool = False,
) -> list[RegistryEndpoint]:
    """The endpoints containerd uses for ``host`` (``docker.io``, ``registry.example.com:5000``).

    ``hosts_dir`` is CRI's ``config_path`` (e.g. ``/etc/containerd/certs.d``, or a ``:``-separated
    list); None gives the default endpoint only.
    """
    host_dir = find_host_dir(hosts_dir, host)
    configs = load_host_dir(host_dir, strict=strict) if host_dir is not None else None
    return configure_endpoints(host, configs, default_scheme=default_scheme, default_tls=default_tls)


def endpoints_with(endpoints: Iterable[RegistryEndpoint], *capabilities: str) -> list[RegistryEndpoint]:
    """containerd's filterHosts: the endpoints having all of ``capabilities``, in order."""
    wanted = frozenset(capabilities)
    return [e for e in endpoints if wanted <= e.capabilities]


def lookup_endpoints(endpoints: Iterable[RegistryEndpoint], *, by_digest: bool) -> list[RegistryEndpoint]:
    """The endpoints containerd's resolver asks: ``pull`` for a digest (and for blobs), ``pull`` and
    ``resolve`` for a tag, so a mirror without ``resolve`` is never asked what a tag points to."""
    return endpoints_with(endpoints, PULL) if by_digest else endpoints_with(endpoints, PULL, RESOLVE)


def request_url(endpoint: RegistryEndpoint, repository: str, *parts: str) -> str:
    """The URL containerd requests: ``path.Join("/", path, repository, parts...)``, keeping a trailing
    slash of the last part (so ``//v2`` from ``server = "https://host/"`` still gives ``/v2/...``)."""
    joined = _clean("/".join(("/", endpoint.path, repository, *parts)))
    slash = "/" if parts and parts[-1].endswith("/") else ""
    return f"{endpoint.scheme}://{endpoint.host}{joined}{slash}"


def is_proxy(endpoint: RegistryEndpoint, ref_host: str) -> bool:
    """True when containerd adds ``?ns=<ref_host>`` to requests sent to ``endpoint`` (a mirror)."""
    return endpoint.host != ref_host and not (ref_host == "docker.io" and endpoint.host == DOCKER_IO_ENDPOINT)
