"""Registries made of small `httpx.MockTransport` handlers, for the registry client's unit tests: no socket is
opened and no name is resolved (`RegistryClient(transport=...)`); tests/integration covers the wire itself."""

from __future__ import annotations

import base64
import inspect
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field

import httpx
import pytest

from policies.image.platforms import Platform
from policies.image.pull_secret_parse import Credential, CredentialSource
from policies.lookup import RegistryConfig
from policies.registry_facts import ImageFacts
from tests.support.image_model import BuiltManifest, digest_of
from tests.support.images import build_image
from webhook.registry import guard, outbound
from webhook.registry.client import RegistryClient

REGISTRY, MIRROR_A, MIRROR_B = "registry.test", "mirror-a.test", "mirror-b.test"
REALM = "https://auth.test/token"
REPOSITORY = "team/app"
IMAGE_REF = f"{REGISTRY}/{REPOSITORY}:1.0"
IMAGE = build_image(oci=True)  # a real single-platform OCI manifest and its config blob (linux/amd64)
AMD64 = Platform("linux", "amd64")
ROBOT = Credential("robot", "s3cret-value", source=CredentialSource("shop", "regcred"))
OTHER = Credential("other", "other-value", source=CredentialSource("shop", "other"))
CONFIG = RegistryConfig(timeout_seconds=5)

SyncHandler = Callable[[httpx.Request], httpx.Response]
Handler = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


# --- the registries: small functions answering the distribution API ---------------------------------------------


def serve(image: BuiltManifest = IMAGE, tags: Sequence[str] = ("1.0",), *, digest_header: bool = True) -> SyncHandler:
    """A registry holding `image` as team/app under `tags` and by digest, its config blob, and the tag list."""

    def handler(request: httpx.Request) -> httpx.Response:
        prefix = f"/v2/{REPOSITORY}/"
        if not request.url.path.startswith(prefix):
            return error(404, "NAME_UNKNOWN")
        kind, _, target = request.url.path.removeprefix(prefix).partition("/")
        if kind == "manifests" and target in (*tags, image.digest):
            return document(request, image.raw, image.media_type, digest_header=digest_header)
        if kind == "blobs" and image.config is not None and target == image.config.digest:
            return document(request, image.config.data, image.config.media_type)
        if kind == "tags" and target == "list":
            return httpx.Response(200, json={"name": REPOSITORY, "tags": list(tags)})
        return error(404, "MANIFEST_UNKNOWN")

    return handler


def document(request: httpx.Request, body: bytes, media_type: str, *, digest_header: bool = True) -> httpx.Response:
    headers = {"content-type": media_type}
    if digest_header:
        headers["docker-content-digest"] = digest_of(body)
    return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else body)


def error(status: int, *codes: str, headers: dict[str, str] | None = None) -> httpx.Response:
    """A distribution error response (`{"errors": [{"code": ...}]}`), or an empty body without codes."""
    if not codes:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, headers=headers, json={"errors": [{"code": c, "message": c.lower()} for c in codes]})


def answer(status: int, *codes: str, headers: dict[str, str] | None = None) -> SyncHandler:
    return lambda request: error(status, *codes, headers=headers)


def refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def basic(credential: Credential) -> str:
    return "Basic " + base64.b64encode(f"{credential.username}:{credential.password}".encode()).decode()


def bearer_challenge(error_code: str = "") -> dict[str, str]:
    extra = f',error="{error_code}"' if error_code else ""
    return {
        "www-authenticate": f'Bearer realm="{REALM}",service="{REGISTRY}",scope="repository:{REPOSITORY}:pull"{extra}'
    }


def token_realm(tokens: dict[str | None, str]) -> SyncHandler:
    """A token service: the token for the Basic credentials presented (None: anonymous), else 401."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["scope"] == f"repository:{REPOSITORY}:pull"
        assert request.url.params["service"] == REGISTRY
        token = tokens.get(request.headers.get("authorization"))
        return httpx.Response(200, json={"token": token}) if token else httpx.Response(401)

    return handler


def requiring(authorization: Callable[[str | None], httpx.Response | None], inner: SyncHandler) -> SyncHandler:
    """`inner` behind an auth check: `authorization(header)` is the refusal to send, or None to let it through."""

    def handler(request: httpx.Request) -> httpx.Response:
        refusal = authorization(request.headers.get("authorization"))
        return refusal if refusal is not None else inner(request)

    return handler


@dataclass
class Wire:
    """The network as a MockTransport: each host's handler; a host without one refuses the connection. Every
    request that reaches the transport is recorded."""

    hosts: dict[str, Handler]
    seen: list[httpx.Request] = field(default_factory=list)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        result = self.hosts.get(request.url.host, refused)(request)
        return await result if inspect.isawaitable(result) else result

    def requests(self, kind: str = "manifests") -> list[httpx.Request]:
        """The requests for `kind` (manifests, blobs, tags, token), in the order they were sent."""
        return [r for r in self.seen if f"/{kind}" in r.url.path]

    def asked(self, kind: str = "manifests") -> list[tuple[str, str]]:
        """(method, host) of the requests for `kind`."""
        return [(r.method, r.url.host) for r in self.requests(kind)]


async def lookup(
    wire: Wire,
    reference: str = IMAGE_REF,
    credentials: Sequence[Credential] = (),
    config: RegistryConfig = CONFIG,
    *,
    platforms: bool = True,
    client: RegistryClient | None = None,
) -> ImageFacts:
    registry = client or RegistryClient(transport=httpx.MockTransport(wire))
    try:
        return await registry.lookup(reference, credentials, config, platforms=platforms)
    finally:
        if client is None:
            await registry.close()


@pytest.fixture(autouse=True)
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a substituted transport no name is resolved: a DNS query would leave the host."""

    async def fail(name: str) -> tuple[str, ...]:
        raise AssertionError(f"{name} was resolved although the transport is a mock")

    monkeypatch.setattr(guard, "resolve", fail)
    monkeypatch.setattr(outbound, "resolve", fail)


def bearer_registry(valid: Collection[str], *, scoped: Collection[str] = ()) -> SyncHandler:
    """A registry wanting a Bearer token from REALM: `valid` tokens pass, `scoped` ones get insufficient_scope."""

    def check(header: str | None) -> httpx.Response | None:
        token = header.removeprefix("Bearer ") if header and header.startswith("Bearer ") else None
        if token in valid:
            return None
        if token in scoped:
            return error(401, "DENIED", headers=bearer_challenge("insufficient_scope"))
        return error(401, "UNAUTHORIZED", headers=bearer_challenge())

    return requiring(check, serve())
