"""The outbound policy: one rule set for every connection the registry client makes.

Each request names its role: the registry endpoint (hosts.toml mirror or server), the token realm a
registry's challenge names, or a redirect target (any hop after the first). Before each request the host is
resolved and judged, and the same judgement runs again at the socket, on the addresses actually dialed
(`GuardedBackend`), so a DNS answer that changes between the two cannot smuggle a connection past it:

* link-local and metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254, and their IPv4-mapped and
  NAT64 forms, by name or by DNS answer) are refused unless `registry.allowLinkLocal`;
* loopback is contacted only for a registry endpoint that `registry.hostsDir` maps there; a realm or a
  redirect target on loopback only when the endpoint contacted is itself on loopback;
* redirects are followed by hand (at most `MAX_REDIRECTS` hops), each hop judged as a redirect target, and
  `Authorization` is dropped as soon as a hop leaves the origin it was meant for;
* every body is read through `bodies.read_capped`.

A refusal raises `Refused`, which the client turns into a `blocked` fact naming the refused host and its role.

A substituted transport (`new_client(endpoint, transport)`, for tests with `httpx.MockTransport`) has no socket:
the dial-time re-check and the endpoint's TLS settings do not apply to it, and hosts are judged by name only
(`NameGuard`: IP literals and `localhost` names, no DNS). Every other rule above still runs before each request.
"""

from __future__ import annotations

import contextvars
import ssl
import typing
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import NamedTuple

import httpcore
import httpx

from policies.registry_facts import Cause, ImageFacts, LookupStatus, OutboundRole
from webhook.registry.bodies import MAX_ERROR_BYTES, read_capped
from webhook.registry.endpoint import RegistryEndpoint
from webhook.registry.guard import (
    AddressGuard,
    forbidden_address,
    literal_addresses,
    loopback_address,
    resolve,
    split_host,
)

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


Role = OutboundRole  # the role a request's host has in the lookup; a failed lookup's facts carry it (failed_role)


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """What one lookup at one endpoint may contact. `loopback`: the endpoint is on loopback because
    `hostsDir` maps the registry there, so its realms and redirects may be on loopback too."""

    allow_link_local: bool = False
    loopback: bool = False


STRICT = OutboundPolicy()


@dataclass(frozen=True, slots=True)
class Peer:
    """A registry endpoint and the outbound policy its lookup runs under."""

    endpoint: RegistryEndpoint
    policy: OutboundPolicy


class Refused(Exception):
    """The outbound policy refused a host; `detail` names the host, its role and the rule. `role` and `host` say
    the same as fields, for the facts (a failure there is that host's, not the registry's)."""

    def __init__(self, role: Role, host: str, rest: str, cause: Cause | None = None) -> None:
        self.detail = f"{role} {host}{rest}"
        super().__init__(self.detail)
        self.role, self.host, self.cause = role, host, cause

    def blocked(self, facts: ImageFacts) -> ImageFacts:
        """The lookup's facts: blocked, with the refused host and its role as fields (the detail words them)."""
        return replace(
            facts,
            status=LookupStatus.BLOCKED,
            detail=self.detail,
            failed_role=self.role,
            failed_host=self.host,
            cause=self.cause,
        )


def origin(url: httpx.URL) -> str:
    """`scheme://host[:port]`, never userinfo, path or query (realm URLs may carry tokens in the query)."""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}" + (f":{url.port}" if url.port is not None else "")


class Refusal(NamedTuple):
    reason: str  # in words, after the host: "is on loopback (127.0.0.1) ..."
    cause: Cause | None  # LINK_LOCAL: an address registry.allowLinkLocal would allow


def judge(addresses: Iterable[str], policy: OutboundPolicy, role: Role) -> Refusal | None:
    """Why these addresses may not be contacted in this role under this policy; None when they may."""
    for address in addresses:
        if forbidden_address(address) and not policy.allow_link_local:
            return Refusal(f"is a link-local or metadata address ({address})", Cause.LINK_LOCAL)
        if loopback_address(address) and not policy.loopback:
            if role is Role.ENDPOINT:
                return Refusal(
                    f"is on loopback ({address}): the webhook asks its own loopback only where "
                    "registry.hostsDir maps the registry there",
                    None,
                )
            return Refusal(f"is on loopback ({address}) and the registry endpoint is not", None)
    return None


@dataclass(slots=True)
class Progress:
    """What a lookup is waiting for when it is not its registry endpoint (a realm, a redirect target): a
    deadline that strikes then is reported against that host."""

    role: Role | None = None  # None: the registry endpoint, or nothing
    host: str = ""

    @property
    def waiting_for(self) -> str:
        return f"{self.role} {self.host}" if self.role is not None else ""


_PROGRESS: contextvars.ContextVar[Progress | None] = contextvars.ContextVar("pullguard_progress", default=None)


def track() -> Progress:
    """Start tracking, for the current task, which host a lookup is waiting for."""
    progress = Progress()
    _PROGRESS.set(progress)
    return progress


# The policy of the request being sent, seen by `GuardedBackend` at the socket (same task, so a contextvar).
_CURRENT: contextvars.ContextVar[OutboundPolicy] = contextvars.ContextVar("pullguard_outbound", default=STRICT)


class DialRefused(httpcore.ConnectError):
    """Raised at the socket: an address the policy refuses was about to be dialed."""

    def __init__(self, refusal: Refusal, text: str | None = None) -> None:
        super().__init__(text or f"{refusal.reason}: not dialed")
        self.refusal = refusal


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, dialing only addresses the current request's policy allows: the host is
    resolved here, every address judged, and an allowed address (not the name) handed to the real backend."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner
        self.dials = 0  # how many sockets were opened (for tests)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve(host)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        why = judge(addresses, _CURRENT.get(), Role.REDIRECT)
        if why is not None:
            raise DialRefused(why)
        error: Exception | None = None
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            self.dials += 1
            return stream
        raise error or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - the registry client never uses unix sockets
        raise DialRefused(Refusal("is a unix socket", None), "unix sockets are not registry endpoints")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def new_client(endpoint: RegistryEndpoint, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """An httpx client for the endpoint's TLS settings whose every dial goes through `GuardedBackend`.

    `transport` (tests: `httpx.MockTransport`) replaces the network: the endpoint's TLS settings and the
    socket-level re-check (`GuardedBackend`) are then not used, since nothing is dialed. What `Outbound.send`
    judges before each request and each redirect hop still applies."""
    if transport is None:
        transport = _guarded_transport(endpoint)
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,  # `Outbound.send` follows them, judging each hop
        timeout=httpx.Timeout(30.0),  # the lookup's own deadline is the real bound
        trust_env=False,
    )


def _guarded_transport(endpoint: RegistryEndpoint) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(
        verify=_tls_context(endpoint),
        cert=endpoint.client_pairs[0] if endpoint.client_pairs else None,
        limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
        trust_env=False,  # proxies from the environment would not be the nodes' path
    )
    pool = transport._pool  # httpx has no public hook for the network backend (tests/unit pins this one)
    if not isinstance(getattr(pool, "_network_backend", None), httpcore.AsyncNetworkBackend):
        raise RuntimeError("httpcore's connection pool has no _network_backend: the dial guard cannot be installed")
    pool._network_backend = GuardedBackend(pool._network_backend)
    return transport


def _tls_context(endpoint: RegistryEndpoint) -> ssl.SSLContext | bool:
    if endpoint.skip_verify:
        return False
    context = ssl.create_default_context()  # the system roots, plus the hosts.toml CAs, as containerd does
    for ca_file in endpoint.ca_files:
        context.load_verify_locations(cafile=ca_file)
    return context


class NameGuard(AddressGuard):
    """The addresses a host names by itself, without asking DNS: an IP literal is its address, `localhost` and
    `*.localhost` are loopback, any other name has none (judged as a name that does not resolve).

    For a client whose transport is not the network (tests): what a name resolves to says nothing about
    where such a transport sends the request, and resolving it would send traffic off the host."""

    async def addresses(self, host: str) -> tuple[str, ...]:
        name = split_host(host)
        literal = literal_addresses(name)
        if literal is not None:
            return literal
        lowered = name.lower()
        if lowered == "localhost" or lowered.endswith(".localhost"):
            return ("127.0.0.1", "::1")
        return ()


class Outbound:
    """Sends the registry client's requests under the outbound policy."""

    def __init__(self, guard: AddressGuard | None = None) -> None:
        self.guard = guard or AddressGuard()

    async def endpoint_policy(self, host: str, *, mapped: bool, allow_link_local: bool) -> OutboundPolicy:
        """The policy for a lookup at endpoint `host` (`Refused` when the endpoint itself may not be asked).
        `mapped`: `hostsDir` has a directory for the registry."""
        addresses = await self.guard.addresses(host)
        why = judge(addresses, OutboundPolicy(allow_link_local, loopback=mapped), Role.ENDPOINT)
        if why is not None:
            raise Refused(Role.ENDPOINT, host, f" {why.reason}", why.cause)
        on_loopback = mapped and bool(addresses) and all(loopback_address(a) for a in addresses)
        return OutboundPolicy(allow_link_local, loopback=on_loopback)

    async def check(self, url: httpx.URL, role: Role, policy: OutboundPolicy, named_by: str = "") -> None:
        """`Refused` unless `url`'s host may be contacted in `role`."""
        why = judge(await self.guard.addresses(url.host), policy, role)
        if why is not None:
            raise Refused(role, origin(url), f"{_by(named_by)} {why.reason}: not contacted", why.cause)

    async def send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: httpx.URL,
        headers: dict[str, str],
        *,
        role: Role,
        policy: OutboundPolicy,
        cap: int,
        what: str,
        named_by: str = "",
    ) -> httpx.Response:
        """One request and its redirects, each hop judged; the final response with its body read (up to `cap`
        for a 200, `MAX_ERROR_BYTES` of anything else). Raises `Refused`, `BodyTooLarge`, `httpx.HTTPError`."""
        headers = {**headers, "Accept-Encoding": "identity"}
        progress = _PROGRESS.get() or Progress()
        for hop in range(MAX_REDIRECTS + 1):
            await self.check(url, role, policy, named_by)
            token = _CURRENT.set(policy)
            progress.role, progress.host = (None, "") if role is Role.ENDPOINT else (role, origin(url))
            try:
                async with client.stream(method, url, headers=headers) as streamed:
                    location = streamed.headers.get("location")
                    if streamed.status_code not in _REDIRECTS or not location or hop == MAX_REDIRECTS:
                        body = await _read(streamed, cap, what)
                        progress.role, progress.host = None, ""
                        return httpx.Response(
                            streamed.status_code, headers=streamed.headers, content=body, request=streamed.request
                        )
            except httpx.HTTPError as exc:
                refused = _dial_refusal(exc)
                if refused is None:
                    raise
                raise Refused(role, origin(url), f"{_by(named_by)} {refused}", refused.refusal.cause) from None
            finally:
                _CURRENT.reset(token)
            target = url.join(location)
            if target.scheme not in ("http", "https"):
                raise httpx.UnsupportedProtocol(f"redirect to a {target.scheme or 'relative'} URL")
            if origin(target) != origin(url):
                # Authorization never follows a redirect to another host (nor a scheme change)
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            if streamed.status_code == 303 and method != "HEAD":
                method = "GET"
            named_by, role, url = origin(url), Role.REDIRECT, target
        raise AssertionError("unreachable")  # pragma: no cover - the last hop returns


async def _read(streamed: httpx.Response, cap: int, what: str) -> bytes:
    if streamed.request.method == "HEAD":
        return b""
    if streamed.status_code == 200:
        return await read_capped(streamed, cap, what)
    return await read_capped(streamed, MAX_ERROR_BYTES, f"{what} error", truncate=True)


def _by(named_by: str) -> str:
    return f" (named by {named_by})" if named_by else ""


def _dial_refusal(error: BaseException) -> DialRefused | None:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, DialRefused):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
