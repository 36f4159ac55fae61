"""A Docker-registry token server (the ``realm`` of ``auth: token``) for tests.

Implements the token protocol the way CNCF distribution 2.8's ``auth.token`` access
controller verifies it (``registry/auth/token/token.go`` and ``accesscontroller.go``):

* ``GET <realm>?service=S&scope=repository:NAME:pull,push[&scope=...]`` with optional HTTP
  Basic credentials (also ``POST`` with an OAuth2 ``grant_type=password`` form) answers
  ``{"token", "access_token", "expires_in", "issued_at"}``;
* the JWT is ES256 (default) or RS256, claims ``iss``, ``sub``, ``aud`` (= service, a plain
  string: 2.8 unmarshals ``aud`` as a string), ``exp``, ``nbf``, ``iat``, ``jti``, and
  ``access=[{type, name, actions}]``;
* the signing key is identified either by ``kid`` = the *libtrust* key id of the public key
  (2.8 builds its trusted-key map from the certificates in ``rootcertbundle`` with libtrust's
  ``KeyID()``: SHA-256 of the DER SubjectPublicKeyInfo, truncated to 240 bits, base32,
  twelve ``:``-separated groups of four) or by an ``x5c`` chain that verifies against
  ``rootcertbundle`` (the self-signed signing cert itself).  Note distribution 3.x switched
  ``kid`` to the RFC 7638 JWK thumbprint; ``x5c`` works with both.

Bad credentials give 401 from the token endpoint; a known user (or anonymous) asking for a
scope it may not have gets a token with *fewer* (possibly no) actions, and the registry then
answers 401 ``error="insufficient_scope"`` - exactly like real deployments.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import ssl
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .loopback import DEFAULT_LIFETIME, LoopbackHTTPServer, RequestHandler
from .tlsgen import CertificateAuthority, SigningKeyPair, generate_signing_keypair

__all__ = [
    "ALL_ACTIONS",
    "DEFAULT_ISSUER",
    "DEFAULT_SERVICE",
    "KeyIdMode",
    "TokenIssuer",
    "TokenRequest",
    "TokenUser",
    "libtrust_key_id",
    "parse_scope",
    "start_token_issuer",
    "token_issuer",
]

DEFAULT_SERVICE = "pullguard-test-registry"
DEFAULT_ISSUER = "pullguard-test-token-issuer"

KeyIdMode = Literal["kid", "x5c"]
ALL_ACTIONS = ("pull", "push", "delete")


def libtrust_key_id(public_key: PublicKeyTypes) -> str:
    """docker/libtrust ``keyIDFromCryptoKey``: the ``kid`` distribution 2.8 looks keys up by."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass(frozen=True)
class TokenUser:
    """A user of the token issuer.

    ``access`` maps a repository-name glob (``fnmatch``: ``"*"``, ``"team/*"``) to the actions
    that user may get (``"pull"``, ``"push"``, ``"delete"``, ``"*"``).  Non-repository resources
    are matched with the key ``"<type>:<name>"`` (e.g. ``"registry:catalog"``).
    """

    password: str
    access: Mapping[str, Iterable[str]] = field(default_factory=dict)

    def allowed(self, resource_type: str, name: str) -> set[str]:
        key = name if resource_type == "repository" else f"{resource_type}:{name}"
        actions: set[str] = set()
        for pattern, allowed in self.access.items():
            if fnmatch.fnmatchcase(key, pattern):
                actions.update(allowed)
        return actions


@dataclass(frozen=True)
class TokenRequest:
    """One request the issuer answered (for asserting token caching)."""

    method: str
    username: str | None  # None: anonymous
    service: str | None
    scopes: tuple[str, ...]
    status: int
    granted: tuple[dict[str, Any], ...]
    at: float


def parse_scope(scope: str) -> tuple[str, str, list[str]]:
    """``repository:team/app:pull,push`` -> ``("repository", "team/app", ["pull", "push"])``.

    The name may itself contain ``:`` (a registry host with a port), so split on the first and
    the last colon.
    """
    first = scope.index(":")
    last = scope.rindex(":")
    if first == last:
        raise ValueError(f"malformed scope {scope!r}")
    resource_type = scope[:first].split("(", 1)[0]  # "repository(plugin)" -> "repository"
    actions = [a for a in scope[last + 1 :].split(",") if a]
    return resource_type, scope[first + 1 : last], actions


def _grant(allowed: set[str], requested: list[str]) -> list[str]:
    if "*" in allowed:
        return list(requested)
    return [a for a in requested if a in allowed]


class TokenIssuer(LoopbackHTTPServer):
    """The running token server.  ``realm`` goes into the registry config."""

    def __init__(
        self,
        signing: SigningKeyPair,
        *,
        users: Mapping[str, TokenUser] | None = None,
        anonymous_access: Mapping[str, Iterable[str]] | None = None,
        require_auth: bool = False,
        service: str = DEFAULT_SERVICE,
        issuer: str = DEFAULT_ISSUER,
        key_id_mode: KeyIdMode = "kid",
        expires_in: int = 300,
        path: str = "/token",
        ca: CertificateAuthority | None = None,
        workdir: Path | None = None,
        lifetime: float | None = DEFAULT_LIFETIME,
    ) -> None:
        self.signing = signing
        self.service = service
        self.issuer = issuer
        self.key_id_mode: KeyIdMode = key_id_mode
        self.expires_in = expires_in
        self.path = path
        self.require_auth = require_auth
        self.ca_file: Path | None = ca.ca_file if ca is not None else None
        #: When set, every token request is answered with this status (token endpoint outage).
        self.force_status: int | None = None
        self._users: dict[str, TokenUser] = dict(users or {})
        self._anonymous = TokenUser(password="", access=dict(anonymous_access or {}))
        self._lock = threading.Lock()
        self._requests: list[TokenRequest] = []
        ssl_context = None
        if ca is not None:
            if workdir is None:
                raise ValueError("a TLS token issuer needs a workdir for its certificate")
            issued = ca.issue_server_cert(workdir, stem="token-issuer")
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(issued.cert_file, issued.key_file)
        super().__init__(self._app, lifetime=lifetime, ssl_context=ssl_context, name="token-issuer")

    # -- configuration ----------------------------------------------------------------------

    @property
    def realm(self) -> str:
        return self.url + self.path

    @property
    def rootcertbundle(self) -> Path:
        """PEM file to put in the registry's ``auth.token.rootcertbundle``."""
        return self.signing.cert_file

    @property
    def key_id(self) -> str:
        return libtrust_key_id(self.signing.key.public_key())

    @property
    def users(self) -> dict[str, TokenUser]:
        with self._lock:
            return dict(self._users)

    def set_user(self, username: str, user: TokenUser) -> None:
        with self._lock:
            self._users[username] = user

    def remove_user(self, username: str) -> None:
        with self._lock:
            self._users.pop(username, None)

    # -- counters ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._requests)

    def count(self, *, username: str | None = None, scope: str | None = None, status: int | None = None) -> int:
        """Requests matching all the given filters (``username=""`` matches anonymous)."""
        n = 0
        for r in self.requests:
            if username is not None and (r.username or "") != username:
                continue
            if scope is not None and scope not in r.scopes:
                continue
            if status is not None and r.status != status:
                continue
            n += 1
        return n

    def reset_counts(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- tokens -----------------------------------------------------------------------------

    def issue_token(
        self,
        subject: str,
        access: Iterable[Mapping[str, Any]],
        *,
        audience: str | None = None,
        expires_in: int | None = None,
        issuer: str | None = None,
        now: float | None = None,
    ) -> str:
        """Sign a registry JWT directly (tests can forge wrong-audience/expired tokens with it)."""
        issued = int(now if now is not None else time.time())
        lifetime = self.expires_in if expires_in is None else expires_in
        claims: dict[str, Any] = {
            "iss": issuer or self.issuer,
            "sub": subject,
            "aud": audience or self.service,
            "exp": issued + lifetime,
            "nbf": issued - 1,
            "iat": issued,
            "jti": uuid.uuid4().hex,
            "access": [dict(a) for a in access],
        }
        headers: dict[str, Any] = {"typ": "JWT"}
        if self.key_id_mode == "kid":
            headers["kid"] = self.key_id
        else:
            headers["x5c"] = [base64.b64encode(self.signing.cert_der).decode()]
        return jwt.encode(claims, self.signing.private_key_pem, algorithm=self.signing.algorithm, headers=headers)

    def _authenticate(self, username: str | None, password: str | None) -> TokenUser | None:
        with self._lock:
            if username is None:
                return None if self.require_auth else self._anonymous
            user = self._users.get(username)
        if user is None or password is None or user.password != password:
            return None
        return user

    def _app(self, h: RequestHandler) -> None:
        if h.path_only != self.path or h.command not in ("GET", "POST"):
            h.respond(404, b'{"details":"not found"}')
            return
        params: list[tuple[str, str]] = parse_qsl(h.query, keep_blank_values=True)
        username: str | None = None
        password: str | None = None
        if h.command == "POST":
            form = parse_qsl(h.read_body().decode("utf-8", "replace"), keep_blank_values=True)
            params += form
            fields = dict(form)
            if fields.get("grant_type") not in (None, "password"):
                self._reply(h, 400, {"error": "unsupported_grant_type"}, None, None, ())
                return
            username, password = fields.get("username"), fields.get("password")
        header = h.headers.get("Authorization", "")
        if username is None and header[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
                username, _, password = decoded.partition(":")
            except (ValueError, UnicodeDecodeError):
                self._reply(h, 400, {"details": "malformed basic auth"}, None, None, ())
                return
        service = next((v for k, v in params if k == "service"), None)
        scopes = tuple(s for k, v in params if k == "scope" for s in v.split(" ") if s)
        if self.force_status is not None:
            self._reply(
                h,
                self.force_status,
                {"details": "injected token endpoint failure"},
                username,
                service,
                scopes,
            )
            return
        user = self._authenticate(username, password)
        if user is None:
            self._reply(
                h,
                401,
                {"details": "incorrect username or password"},
                username,
                service,
                scopes,
                headers={"WWW-Authenticate": 'Basic realm="pullguard-test-token-issuer"'},
            )
            return
        access: list[dict[str, Any]] = []
        for scope in scopes:
            try:
                resource_type, name, actions = parse_scope(scope)
            except ValueError:
                self._reply(h, 400, {"details": f"invalid scope {scope!r}"}, username, service, scopes)
                return
            granted = _grant(user.allowed(resource_type, name), actions)
            if granted:
                access.append({"type": resource_type, "name": name, "actions": granted})
        token = self.issue_token(username or "", access)
        body = {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        self._reply(h, 200, body, username, service, scopes, granted=tuple(access))

    def _reply(
        self,
        h: RequestHandler,
        status: int,
        body: Mapping[str, Any],
        username: str | None,
        service: str | None,
        scopes: tuple[str, ...],
        *,
        granted: tuple[dict[str, Any], ...] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._requests.append(TokenRequest(h.command, username, service, scopes, status, granted, time.time()))
        h.respond(status, json.dumps(body).encode(), headers)


def start_token_issuer(
    workdir: Path,
    *,
    users: Mapping[str, TokenUser] | None = None,
    anonymous_access: Mapping[str, Iterable[str]] | None = None,
    require_auth: bool = False,
    service: str = DEFAULT_SERVICE,
    issuer: str = DEFAULT_ISSUER,
    algorithm: Literal["ES256", "RS256"] = "ES256",
    key_id_mode: KeyIdMode = "kid",
    expires_in: int = 300,
    ca: CertificateAuthority | None = None,
    lifetime: float | None = DEFAULT_LIFETIME,
) -> TokenIssuer:
    """Generate a signing key + cert in ``workdir`` and start a :class:`TokenIssuer`.

    ``ca``: serve the realm over HTTPS with a certificate from that CA (default: plain HTTP).
    """
    signing = generate_signing_keypair(workdir, algorithm=algorithm)
    return TokenIssuer(
        signing,
        users=users,
        anonymous_access=anonymous_access,
        require_auth=require_auth,
        service=service,
        issuer=issuer,
        key_id_mode=key_id_mode,
        expires_in=expires_in,
        ca=ca,
        workdir=workdir,
        lifetime=lifetime,
    )


@contextmanager
def token_issuer(workdir: Path, **kwargs: Any) -> Iterator[TokenIssuer]:
    """``with token_issuer(tmp_path, users=...) as issuer:`` - stopped on exit."""
    server = start_token_issuer(workdir, **kwargs)
    try:
        yield server
    finally:
        server.stop()
