"""Registry authentication: Basic, and the Bearer token flow of the distribution token spec.

Where credentials go (Docker's rule): to the registry host that challenged, and to the token realm that
host names, whatever the realm's host. Never over plain HTTP unless the peer is on loopback (and a realm is on
loopback only for an endpoint on loopback: the outbound policy refuses it otherwise): where a node would send
them anyway, the lookup ends `WITHHELD` ("could not verify"), never as a definite failure. The realm is
contacted through the outbound policy (`webhook.registry.outbound`) like every other host, and failures there
are reported against the realm, not the registry.
"""

from __future__ import annotations

import time

import httpx
import orjson

from policies.image.pull_secret_parse import Credential
from policies.registry_facts import LookupStatus
from webhook.registry.bodies import MAX_TOKEN_BYTES, BodyTooLarge
from webhook.registry.challenge import Challenge, parse_challenges
from webhook.registry.classify import classify_exception, classify_status
from webhook.registry.guard import is_node_local
from webhook.registry.outbound import STRICT, Outbound, OutboundPolicy, Refused, Role, origin
from webhook.registry.scrub import note_sent

DEFAULT_TOKEN_SECONDS = 60.0  # the token spec's default when expires_in is absent


class AuthError(Exception):
    """Authentication could not be completed; carries the lookup status it amounts to."""

    def __init__(
        self, status: LookupStatus, detail: str, credentials_sent: bool, role: Role | None = None, host: str = ""
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.credentials_sent = status, detail, credentials_sent
        self.role, self.host = role, host  # set when the failure is at that host (a token realm), not the registry

    @classmethod
    def refused(cls, exc: Refused) -> AuthError:
        return cls(LookupStatus.BLOCKED, exc.detail, False, exc.role, exc.host)


def may_carry_credentials(url: httpx.URL) -> bool:
    return url.scheme == "https" or is_node_local(url.netloc.decode())


class Authenticator:
    """Remembers each host's challenge and caches tokens per (realm, service, scope, identity)."""

    def __init__(self, outbound: Outbound | None = None) -> None:
        self._outbound = outbound or Outbound()
        self._challenges: dict[str, list[Challenge]] = {}
        self._tokens: dict[tuple[str, str, str, str], tuple[float, str]] = {}
        self.token_requests = 0

    def remember(self, host: str, response: httpx.Response) -> list[Challenge]:
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        if challenges:
            self._challenges[host] = challenges
        return challenges

    def cached_header(self, host: str, repository: str, credential: Credential | None, url: httpx.URL) -> str | None:
        """The header to send up front, when this host's challenge is already known (saves a round trip)."""
        for challenge in self._challenges.get(host, []):
            if challenge.scheme == "bearer":
                entry = self._tokens.get(self._token_key(challenge, repository, credential))
                if entry is not None and entry[0] > time.monotonic():
                    note_sent(entry[1])
                    return f"Bearer {entry[1]}"
            if challenge.scheme == "basic" and credential is not None and may_carry_credentials(url):
                return _basic(credential)
        return None

    async def header(
        self,
        client: httpx.AsyncClient,
        challenges: list[Challenge],
        repository: str,
        credential: Credential | None,
        url: httpx.URL,
        *,
        policy: OutboundPolicy = STRICT,
    ) -> str | None:
        """Answer a 401's challenges: a Bearer token (fetched or cached), or Basic credentials. None: nothing
        to offer (no credentials for a Basic challenge). `policy` is the lookup's outbound policy at `url`."""
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.realm:
                token = await self._token(client, challenge, repository, credential, url=url, policy=policy)
                note_sent(token)
                return "Bearer " + token
        for challenge in challenges:
            if challenge.scheme == "basic" and credential is not None:
                if not may_carry_credentials(url):
                    raise AuthError(LookupStatus.WITHHELD, _withheld(credential, url, "registry endpoint"), False)
                return _basic(credential)
        return None

    def _token_key(
        self, challenge: Challenge, repository: str, credential: Credential | None
    ) -> tuple[str, str, str, str]:
        scope = f"repository:{repository}:pull"
        return (
            challenge.realm,
            challenge.parameters.get("service", ""),
            scope,
            credential.identity if credential else "",
        )

    async def _token(
        self,
        client: httpx.AsyncClient,
        challenge: Challenge,
        repository: str,
        credential: Credential | None,
        *,
        url: httpx.URL,
        policy: OutboundPolicy,
    ) -> str:
        key = self._token_key(challenge, repository, credential)
        cached = self._tokens.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            realm = httpx.URL(challenge.realm)
        except httpx.InvalidURL:
            realm = httpx.URL()
        if realm.scheme not in ("http", "https") or not realm.host:
            detail = f"{Role.REALM} is not an http(s) URL: {challenge.realm}"
            raise AuthError(LookupStatus.MALFORMED, detail, False, Role.REALM, challenge.realm)
        named_by = origin(url)
        try:
            await self._outbound.check(realm, Role.REALM, policy, named_by)
        except Refused as exc:
            raise AuthError.refused(exc) from None
        params = {"scope": key[2]}
        if key[1]:
            params["service"] = key[1]
        headers = {}
        sent = False
        if credential is not None:
            if not may_carry_credentials(realm):
                raise AuthError(LookupStatus.WITHHELD, _withheld(credential, realm, "token realm"), False)
            headers["Authorization"], sent = _basic(credential), True
        self.token_requests += 1
        host = origin(realm)
        where = f"{Role.REALM} {host}"
        try:
            response = await self._outbound.send(
                client,
                "GET",
                realm.copy_merge_params(params),
                headers,
                role=Role.REALM,
                policy=policy,
                cap=MAX_TOKEN_BYTES,
                what="token response",
                named_by=named_by,
            )
        except Refused as exc:
            raise AuthError.refused(exc) from None
        except BodyTooLarge as exc:
            raise AuthError(LookupStatus.MALFORMED, f"{where}: {exc}", sent, Role.REALM, host) from None
        except httpx.HTTPError as exc:
            status, detail = classify_exception(exc)
            raise AuthError(status, f"{where}: {detail}", sent, Role.REALM, host) from None
        if response.status_code in (401, 403):
            raise AuthError(
                LookupStatus.UNAUTHORIZED, f"{where} refused: HTTP {response.status_code}", sent, Role.REALM, host
            )
        if response.status_code != 200:
            status, detail = classify_status(response)
            raise AuthError(status, f"{where}: {detail}", sent, Role.REALM, host)
        try:
            token, seconds = _read_token(response.content, where)
        except AuthError as exc:
            raise AuthError(exc.status, exc.detail, exc.credentials_sent, Role.REALM, host) from None
        self._tokens[key] = (time.monotonic() + max(seconds - 5, 1), token)
        return token


def _withheld(credential: Credential, url: httpx.URL, role: str) -> str:
    """Why pullguard did not send what the node would send: the rule, the host, the credential's source."""
    source = f" of {credential.origin}" if credential.origin else ""
    return (
        f"credentials{source} withheld from {role} {url.scheme}://{url.netloc.decode()}: "
        "pullguard sends credentials over plain HTTP only to loopback"
    )


def _read_token(body: bytes, where: str = "token realm") -> tuple[str, float]:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise AuthError(LookupStatus.MALFORMED, f"{where}: token response is not JSON", True) from None
    token = document.get("token") or document.get("access_token") if isinstance(document, dict) else None
    if not isinstance(token, str) or not token:
        raise AuthError(LookupStatus.MALFORMED, f"{where}: token response without token or access_token", True)
    expires = document.get("expires_in")
    seconds = float(expires) if isinstance(expires, int | float) and expires > 0 else DEFAULT_TOKEN_SECONDS
    return token, seconds


def scope_error(response: httpx.Response) -> bool:
    """A 401 whose Bearer challenge says the token lacked the scope: access denied, not bad credentials."""
    return any(
        c.parameters.get("error") == "insufficient_scope"
        for c in parse_challenges(response.headers.get_list("www-authenticate"))
    )


def _basic(credential: Credential) -> str:
    return "Basic " + credential.basic_auth()
