"""Which registry hosts the webhook may contact.

Node-local registries (localhost, 127.0.0.0/8, ::1) are what each node serves itself: asking our own loopback
would check the wrong thing. Link-local and cloud metadata addresses are never contacted, so nobody can use
the webhook to reach them (SSRF), unless the policy allows it explicitly.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

_METADATA = {ipaddress.ip_address("fd00:ec2::254")}
_CACHE_SECONDS = 30.0


def split_host(host: str) -> str:
    """The host name or IP of `host[:port]`, without brackets."""
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_node_local(registry: str) -> bool:
    name = split_host(registry)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def forbidden_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_link_local or ip in _METADATA


class AddressGuard:
    """Resolves a host once (cached briefly) and says whether any of its addresses is forbidden."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def refusal(self, host: str, allow_link_local: bool) -> str | None:
        """None when `host` may be contacted; otherwise the address that forbids it.

        Resolution failures return None: the request itself then fails and is classified as DNS.
        """
        if allow_link_local:
            return None
        name = split_host(host)
        cached = self._cache.get(name)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
            addresses = [name]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                return None
            addresses = [str(info[4][0]) for info in infos]
        refusal = next((a for a in addresses if forbidden_address(a)), None)
        self._cache[name] = (time.monotonic() + _CACHE_SECONDS, refusal)
        return refusal
