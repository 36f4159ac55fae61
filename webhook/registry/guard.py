"""What kind of address a host is, for the outbound policy (`webhook.registry.outbound`).

Node-local registries (localhost, 127.0.0.0/8, ::1) are what each node serves itself: asking our own loopback
would check the wrong thing. Link-local and cloud metadata addresses are never contacted, so nobody can use
the webhook to reach them (SSRF), unless the policy allows it explicitly. Names are judged by what they resolve
to, so a DNS answer (or `/etc/hosts`, or a numeric form such as `2852039166`) cannot smuggle an address past.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

from policies.image.go_ports import split_host_port

# AWS's IPv6 instance metadata service (fd00:ec2::254); IPv4 metadata services are all in 169.254.0.0/16.
_METADATA = {ipaddress.ip_address("fd00:ec2::254")}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: 64:ff9b::a9fe:a9fe reaches 169.254.169.254
_CACHE_SECONDS = 30.0
_MAX_CACHED = 4096
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def split_host(host: str) -> str:
    """The host name or IP of `host[:port]`, without brackets."""
    try:
        return split_host_port(host)[0]
    except ValueError:  # lenient where Go errs (no port, unclosed or stray bracket): any host must be judged
        if host.startswith("["):
            return host[1:].partition("]")[0]
        return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_node_local(registry: str) -> bool:
    name = split_host(registry)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _ip(address: str) -> IPAddress:
    """The address as the kernel will route it: IPv4-mapped and NAT64 forms are their IPv4 address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def forbidden_address(address: str) -> bool:
    """Link-local (169.254.0.0/16, fe80::/10) or a cloud metadata address, in any of its spellings."""
    ip = _ip(address)
    return ip.is_link_local or ip in _METADATA


def loopback_address(address: str) -> bool:
    """Loopback, or the unspecified address (a connect to 0.0.0.0 or :: reaches this host's loopback)."""
    ip = _ip(address)
    return ip.is_loopback or ip.is_unspecified


def literal_addresses(name: str) -> tuple[str, ...] | None:
    """The address of an IP literal (brackets and zone allowed); None for a name."""
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    try:
        ipaddress.ip_address(bare.split("%", 1)[0])
    except ValueError:
        return None
    return (bare,)


async def resolve(name: str) -> tuple[str, ...]:
    """Every address `name` resolves to (raises OSError/UnicodeError when it does not)."""
    literal = literal_addresses(name)
    if literal is not None:
        return literal
    infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
    return tuple(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressGuard:
    """Resolves hosts (cached briefly) for the outbound policy's decisions."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, tuple[str, ...]]] = {}

    async def addresses(self, host: str) -> tuple[str, ...]:
        """The addresses of `host` (`name`, `name:port` or `[v6]:port`); () when it does not resolve (the
        request itself then fails and is classified as DNS)."""
        name = split_host(host)
        cached = self._cache.get(name)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            found = await resolve(name)
        except (OSError, UnicodeError):
            return ()
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[name] = (time.monotonic() + _CACHE_SECONDS, found)
        return found
