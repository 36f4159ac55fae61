"""``hosts.toml`` as containerd parses it (``parseHostsFile`` and its helpers in hosts.go): tables in file order,
go-toml's case-insensitive keys, relative paths resolved against the host directory."""

from __future__ import annotations

import re
import tomllib
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from webhook.registry.endpoint import (
    _KNOWN_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    HostsConfigError,
    RegistryEndpoint,
    _abs,
    _clean,
)


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
