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
import re
import tomllib
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

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


def _split_host_port(hostport: str) -> tuple[str, str]:
    """Go's net.SplitHostPort; raises ValueError with Go's message."""
    i, j, k = hostport.rfind(":"), 0, 0
    if i < 0:
        raise ValueError("missing port in address")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("missing ']' in address")
        if end + 1 != i:
            colons = end + 1 < len(hostport) and hostport[end + 1] == ":"
            raise ValueError("too many colons in address" if colons else "missing port in address")
        host, j, k = hostport[1:end], 1, end + 1
    else:
        host = hostport[:i]
        if ":" in host:
            raise ValueError("too many colons in address")
    if "[" in hostport[j:] or "]" in hostport[k:]:
        raise ValueError("unexpected bracket in address")
    return host, hostport[i + 1 :]


def _port(hostport: str) -> str:
    try:
        return _split_host_port(hostport)[1]
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
        host = _split_host_port(host)[0]
    return host == "localhost" or _is_loopback_ip(host)


def match_localhost(host: str) -> bool:
    """containerd's ``docker.MatchLocalhost`` (the legacy plain-http rule); an error is False."""
    if host in ("::1", "[::1]"):
        return True
    try:
        h, port = _split_host_port(host)
    except ValueError as e:
        if str(e) != "missing port in address":
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


def parse_hosts_toml(base_dir: str, data: bytes | str, source: str = "hosts.toml") -> list[RegistryEndpoint]:
    """``[host."..."]`` entries in file order, then the ``server`` entry (host "" when absent)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        doc = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise HostsConfigError(f"{source}: not valid TOML: {e}") from e
    tables: dict[str, Any] = {}
    for key, value in _fields(doc, "host"):
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise HostsConfigError(f"{source}: key {key!r}: must be a table of tables")
        tables.update(value)
    out = [_host_config(h, base_dir, tables.get(h, {}), source, f'host."{h}".') for h in _ordered_hosts(text)]
    server = _scalar(doc, "server", str, source, "") or ""
    return [*out, _host_config(server, base_dir, doc, source, "")]


def _fields(table: Mapping[str, Any], name: str) -> list[tuple[str, Any]]:
    # go-toml v2 matches struct fields case-insensitively; of several such keys the last wins.
    return [(k, v) for k, v in table.items() if k.lower() == name]


def _scalar(table: Mapping[str, Any], name: str, typ: type, source: str, where: str) -> Any:
    value = None
    for key, value in _fields(table, name):
        if not isinstance(value, typ):
            raise HostsConfigError(f"{source}: key {where + key!r}: must be a {typ.__name__}")
    return value


def _strings(value: Any, source: str, key: str) -> list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise HostsConfigError(f"{source}: key {key!r}: must be a string or a list of strings")


def _client_pairs(value: Any, base: str, source: str, key: str) -> list[tuple[str, str]] | None:
    if isinstance(value, str):
        return [(_abs(value, base), "")]
    if not isinstance(value, list):
        raise HostsConfigError(f"{source}: key {key!r}: must be a string or a list")
    pairs = None  # as in Go, `client = []` leaves the pairs nil
    for item in value:
        if isinstance(item, str):
            pair = (_abs(item, base), "")
        elif isinstance(item, list) and len(_strings(item, source, key)) == 2:
            pair = (_abs(item[0], base), _abs(item[1], base))  # "" becomes base, as in Go
        else:
            raise HostsConfigError(f"{source}: key {key!r}: invalid client entry {item!r}")
        pairs = [*(pairs or []), pair]
    return pairs


def _host_config(server: str, base: str, cfg: Mapping[str, Any], source: str, where: str) -> RegistryEndpoint:
    override = bool(_scalar(cfg, "override_path", bool, source, where))
    scheme, host, path = _server_url(server, override, source, where or "server") if server else ("", "", "")
    caps: list[str] = []
    for key, value in _fields(cfg, "capabilities"):
        caps = [c.lower() for c in _strings(value, source, where + key)]
        if unknown := [c for c in caps if c not in _KNOWN_CAPABILITIES]:
            raise HostsConfigError(f"{source}: key {where + key!r}: unknown capability {unknown[0]!r}")
    cas: list[str] | None = None
    for key, value in _fields(cfg, "ca"):
        paths = [value] if isinstance(value, str) else _strings(value, source, where + key)
        cas = [_abs(p, base) for p in paths]
    pairs: list[tuple[str, str]] | None = None
    for key, value in _fields(cfg, "client"):
        pairs = _client_pairs(value, base, source, where + key)
    headers: dict[str, tuple[str, ...]] = {}
    for key, value in _fields(cfg, "header"):
        if not isinstance(value, dict):
            raise HostsConfigError(f"{source}: key {where + key!r}: must be a table")
        for name, v in value.items():
            headers[name] = (v,) if isinstance(v, str) else tuple(_strings(v, source, f"{where}{key}.{name}"))
    skip = _scalar(cfg, "skip_verify", bool, source, where)
    timeout = _scalar(cfg, "dial_timeout", str, source, where)
    dial = _duration(timeout, source, where) if timeout else None
    explicit_tls = cas is not None or pairs is not None or skip is not None
    caps_set, ca_files, client = frozenset(caps or DEFAULT_CAPABILITIES), tuple(cas or ()), tuple(pairs or ())
    return RegistryEndpoint(
        scheme, host, path, caps_set, ca_files, client, skip, tuple(headers.items()), dial, explicit_tls
    )


_HOST_CHARS = re.compile(r"[A-Za-z0-9\-_.~!$&'()*+,;=:\[\]<>\"]*")


def _server_url(server: str, override: bool, source: str, key: str) -> tuple[str, str, str]:
    """Go's url.Parse as parseHostConfig uses it: scheme, host[:port], and the ``/v2`` rule."""
    if not server.startswith("http"):
        server = "https://" + server
    rest = server.split("#", 1)[0]
    m = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", rest)
    scheme, rest = (m[0][:-1].lower(), rest[m.end() :]) if m else ("", rest)
    rest, host = rest.split("?", 1)[0], ""
    if scheme and not rest.startswith("/"):
        rest = ""  # an opaque URL: no host, no path
    elif rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        host, rest = authority.rpartition("@")[2], slash + tail
        if host.startswith("["):
            port = host[host.find("]") + 1 :] if "]" in host else "!"
        else:
            port = host[host.rfind(":") :] if ":" in host else ""
        if not _HOST_CHARS.fullmatch(host) or not re.fullmatch(r"(:[0-9]*)?", port):
            raise HostsConfigError(f"{source}: key {key!r}: unable to parse server {server!r}")
    if re.search(r"%(?![0-9A-Fa-f]{2})", rest):
        raise HostsConfigError(f"{source}: key {key!r}: invalid escape in server {server!r}")
    path = urllib.parse.unquote(rest)
    if path:
        path = _clean(path)
        path += "/v2" if not path.endswith("/v2") and not override else ""
    elif not override:
        path = "/v2"
    return scheme, host, path


_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def _duration(text: str, source: str, where: str) -> float:
    """Go's time.ParseDuration, in seconds."""
    s = text[1:] if text.startswith(("-", "+")) else text
    total, pos = 0.0, 0
    while s != "0" and (pos < len(s) or not s):
        m = _DURATION_PART.match(s, pos)
        if m is None or m[1] in ("", "."):
            raise HostsConfigError(f"{source}: key {where + 'dial_timeout'!r}: invalid duration {text!r}")
        total, pos = total + float(m[1]) * _UNITS[m[2]], m.end()
    return -total if text.startswith("-") else total


def _ordered_hosts(text: str) -> list[str]:
    """getSortedHosts: ``[host.X...]`` table headers in file order, a header repeating the previous
    host skipped. Dotted keys, inline tables and ``[[arrays]]`` name no host, as in containerd."""
    out: list[str] = []
    for parts in _table_headers(text):
        if len(parts) >= 2 and parts[0] == "host" and parts[1] != (out[-1] if out else ""):
            out.append(parts[1])
    return out


def _table_headers(text: str) -> Iterator[list[str]]:
    """The keys of the ``[table]`` header lines of a document tomllib accepted. A line of an array
    spanning lines never parses as a header; one inside a multi-line string could (no hosts.toml has
    such a string)."""
    for line in text.splitlines():
        if not line.lstrip().startswith("[") or line.lstrip().startswith("[["):
            continue
        try:
            keys: Any = tomllib.loads(line)
        except tomllib.TOMLDecodeError:
            continue
        parts = []
        while isinstance(keys, dict) and len(keys) == 1:
            ((name, keys),) = keys.items()
            parts.append(name)
        yield parts


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
