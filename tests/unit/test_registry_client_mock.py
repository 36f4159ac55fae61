"""The registry client's logic against registries made of small `httpx.MockTransport` handlers: which endpoints
are asked and in what order (hosts.toml mirrors, then the registry), HEAD and GET, the 401 dance with Basic and
Bearer challenges, and how statuses and bodies become a `LookupStatus`. No socket is opened and no name is
resolved (`RegistryClient(transport=...)`); the real-registry tests in tests/integration cover the wire itself.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest

from policies.config import RegistryConfig
from policies.model import ImageFacts, LookupStatus
from policies.platforms import Platform
from policies.pull_secret_parse import Credential, CredentialSource
from tests.support.images import OCI_CONFIG, Blob, BuiltManifest, build_image, digest_of
from webhook.registry import guard, outbound
from webhook.registry.client import RegistryClient
from webhook.registry.endpoint import RegistryEndpoint
from webhook.registry.guard import AddressGuard
from webhook.registry.manifests import MAX_DOCUMENT_BYTES, OCI_MANIFEST
from webhook.registry.outbound import GuardedBackend, NameGuard, new_client

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


# --- the seam itself ------------------------------------------------------------------------------------------------


async def test_the_seam_is_off_by_default_and_replaces_only_the_transport() -> None:
    endpoint = RegistryEndpoint("https", REGISTRY)
    real = new_client(endpoint)
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    substituted = new_client(endpoint, mock)
    try:
        # production: every dial goes through the socket-level guard; the seam: the given transport, as is
        assert isinstance(real._transport._pool._network_backend, GuardedBackend)  # type: ignore[attr-defined]
        assert substituted._transport is mock
        for client in (real, substituted):  # the same client settings either way
            assert client.follow_redirects is False and client.trust_env is False
    finally:
        await real.aclose()
        await substituted.aclose()
    assert type(RegistryClient()._outbound.guard) is AddressGuard
    assert type(RegistryClient(transport=mock)._outbound.guard) is NameGuard


async def test_name_guard_judges_names_as_written() -> None:
    names = NameGuard()
    assert await names.addresses("registry.test:5000") == ()
    assert await names.addresses("169.254.169.254:80") == ("169.254.169.254",)
    assert await names.addresses("[fe80::1%lo]:5000") == ("fe80::1%lo",)
    assert await names.addresses("localhost:5000") == ("127.0.0.1", "::1")
    assert await names.addresses("Registry.LOCALHOST") == ("127.0.0.1", "::1")


async def test_a_plain_lookup_reads_the_manifest_and_the_platform_from_the_config() -> None:
    wire = Wire({REGISTRY: serve()})
    facts = await lookup(wire)
    assert facts.status is LookupStatus.EXISTS, facts
    assert (facts.digest, facts.media_type, facts.platforms) == (IMAGE.digest, OCI_MANIFEST, (AMD64,))
    assert facts.endpoint == f"https://{REGISTRY}/v2"
    assert wire.asked() == [("GET", REGISTRY)] and wire.asked("blobs") == [("GET", REGISTRY)]
    (manifest_request, _) = wire.seen
    assert manifest_request.headers["accept"].startswith("application/vnd.docker.distribution.manifest.v2+json")
    assert "ns" not in manifest_request.url.params  # the registry itself is not a proxy


# --- endpoint fall-through (hosts.toml) -----------------------------------------------------------------------------

MIRRORS = f"""
[host."https://{MIRROR_A}"]
  capabilities = ["pull", "resolve"]

[host."https://{MIRROR_B}"]
  capabilities = ["pull", "resolve"]
"""  # no `server`: containerd adds the registry itself as the last endpoint


def hosts_dir(tmp_path: Path, hosts_toml: str = MIRRORS) -> RegistryConfig:
    directory = tmp_path / "certs.d" / REGISTRY
    directory.mkdir(parents=True)
    (directory / "hosts.toml").write_text(hosts_toml)
    return RegistryConfig(hosts_dir=str(tmp_path / "certs.d"), timeout_seconds=5)


FAILURES: dict[str, Handler] = {
    "404": answer(404, "MANIFEST_UNKNOWN"),
    "404 without body": answer(404),
    "500": answer(500),
    "503": answer(503, "UNAVAILABLE"),
    "refused": refused,
    "401 without credentials to offer": answer(401, headers={"www-authenticate": 'Basic realm="mirror"'}),
}


@pytest.mark.parametrize("first", FAILURES.values(), ids=FAILURES.keys())
@pytest.mark.parametrize(
    "second", [FAILURES["404"], FAILURES["503"], FAILURES["refused"]], ids=["404", "503", "refused"]
)
async def test_failing_mirrors_fall_through_in_order_to_the_registry(
    tmp_path: Path, first: Handler, second: Handler
) -> None:
    wire = Wire({MIRROR_A: first, MIRROR_B: second, REGISTRY: serve()})
    facts = await lookup(wire, config=hosts_dir(tmp_path))
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.endpoint == f"https://{REGISTRY}/v2"
    assert [host for _, host in wire.asked()] == [MIRROR_A, MIRROR_B, REGISTRY]
    mirror_requests = [r for r in wire.seen if r.url.host in (MIRROR_A, MIRROR_B)]
    assert mirror_requests and all(r.url.params["ns"] == REGISTRY for r in mirror_requests)  # containerd's ?ns=


async def test_the_first_endpoint_that_has_the_image_answers(tmp_path: Path) -> None:
    wire = Wire({MIRROR_A: answer(404), MIRROR_B: serve(), REGISTRY: refused})
    facts = await lookup(wire, config=hosts_dir(tmp_path))
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.endpoint == f"https://{MIRROR_B}/v2"
    assert REGISTRY not in {r.url.host for r in wire.seen}


@pytest.mark.parametrize(
    ("answers", "status", "endpoint"),
    [
        # containerd's resolver: a 404 moves on silently, any other failure is kept as firstErr and moves on too;
        # when no host has the image, the first error wins over "not found"
        ((answer(404), answer(503), answer(404)), LookupStatus.SERVER_ERROR, MIRROR_B),
        ((refused, answer(500), answer(404)), LookupStatus.REFUSED, MIRROR_A),
        ((answer(404), answer(404), answer(429)), LookupStatus.RATE_LIMITED, REGISTRY),
        ((answer(404), answer(404, "MANIFEST_UNKNOWN"), answer(404)), LookupStatus.NOT_FOUND, MIRROR_A),
    ],
    ids=["5xx-wins-over-404", "first-error-wins", "error-at-the-registry", "all-404"],
)
async def test_when_no_endpoint_has_the_image_the_first_error_wins_over_not_found(
    tmp_path: Path, answers: tuple[Handler, Handler, Handler], status: LookupStatus, endpoint: str
) -> None:
    wire = Wire(dict(zip((MIRROR_A, MIRROR_B, REGISTRY), answers, strict=True)))
    facts = await lookup(wire, config=hosts_dir(tmp_path))
    assert facts.status is status, facts
    assert facts.endpoint == f"https://{endpoint}/v2"
    assert [host for _, host in wire.asked()] == [MIRROR_A, MIRROR_B, REGISTRY]


async def test_a_pull_only_mirror_is_asked_for_digests_but_never_what_a_tag_points_to(tmp_path: Path) -> None:
    config = hosts_dir(tmp_path, f'[host."https://{MIRROR_A}"]\n  capabilities = ["pull"]\n')
    wire = Wire({MIRROR_A: serve(), REGISTRY: serve()})
    by_tag = await lookup(wire, config=config)
    assert by_tag.status is LookupStatus.EXISTS and by_tag.endpoint == f"https://{REGISTRY}/v2"
    assert MIRROR_A not in {r.url.host for r in wire.seen}
    by_digest = await lookup(wire, f"{REGISTRY}/{REPOSITORY}@{IMAGE.digest}", config=config)
    assert by_digest.status is LookupStatus.EXISTS and by_digest.endpoint == f"https://{MIRROR_A}/v2"


async def test_an_endpoint_the_outbound_policy_refuses_is_never_handed_to_the_transport(tmp_path: Path) -> None:
    config = hosts_dir(tmp_path, '[host."https://169.254.169.254"]\n')
    wire = Wire({"169.254.169.254": serve(), REGISTRY: serve()})
    facts = await lookup(wire, config=config)
    assert facts.status is LookupStatus.EXISTS and facts.endpoint == f"https://{REGISTRY}/v2"
    assert "169.254.169.254" not in {r.url.host for r in wire.seen}
    wire = Wire({"169.254.169.254": serve(), REGISTRY: answer(404)})
    facts = await lookup(wire, config=config)
    assert facts.status is LookupStatus.BLOCKED, facts  # an error, so it wins over the registry's 404
    assert "registry endpoint 169.254.169.254 is a link-local or metadata address" in facts.detail
    assert "169.254.169.254" not in {r.url.host for r in wire.seen}


# --- HEAD, then GET when HEAD cannot tell -------------------------------------------------------------------------


def head_answers(response: Callable[[], httpx.Response]) -> SyncHandler:
    """A registry whose HEAD on a manifest gives `response()`, and whose GETs are `serve()`'s."""
    served = serve()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD" and "/manifests/" in request.url.path:
            return response()
        return served(request)

    return handler


async def test_head_with_digest_and_type_is_enough() -> None:
    wire = Wire({REGISTRY: serve()})
    facts = await lookup(wire, platforms=False)
    assert facts.status is LookupStatus.EXISTS and facts.digest == IMAGE.digest and facts.media_type == OCI_MANIFEST
    assert wire.asked() == [("HEAD", REGISTRY)]


async def test_head_405_is_asked_again_with_get() -> None:
    # containerd's request.retryRequest: 405 to a HEAD on /manifests/ is retried as a GET
    wire = Wire({REGISTRY: head_answers(lambda: httpx.Response(405))})
    facts = await lookup(wire, platforms=False)
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.digest == IMAGE.digest and facts.media_type == OCI_MANIFEST
    assert wire.asked() == [("HEAD", REGISTRY), ("GET", REGISTRY)]


@pytest.mark.parametrize(("code", "status"), [(400, LookupStatus.MALFORMED), (501, LookupStatus.SERVER_ERROR)])
async def test_other_head_failures_are_not_asked_again(code: int, status: LookupStatus) -> None:
    """containerd retries only a 405 as GET; a 400 or 501 to the HEAD fails the pull there, so pullguard does not
    find the image by a GET the node would never make (it says it could not verify)."""
    wire = Wire({REGISTRY: head_answers(lambda: httpx.Response(code))})
    facts = await lookup(wire, platforms=False)
    assert facts.status is status and not facts.status.definite, facts
    assert wire.asked() == [("HEAD", REGISTRY)]


async def test_head_without_docker_content_digest_gets_the_manifest_and_hashes_it() -> None:
    wire = Wire({REGISTRY: serve(digest_header=False)})
    facts = await lookup(wire, platforms=False)
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.digest == IMAGE.digest  # computed from the GET body, as containerd does
    assert wire.asked() == [("HEAD", REGISTRY), ("GET", REGISTRY)]


async def test_head_with_a_generic_content_type_gets_the_manifest_for_its_type() -> None:
    def generic() -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "application/octet-stream", "docker-content-digest": IMAGE.digest}
        )

    wire = Wire({REGISTRY: head_answers(generic)})
    facts = await lookup(wire, platforms=False)
    assert facts.status is LookupStatus.EXISTS and facts.media_type == OCI_MANIFEST, facts
    assert wire.asked() == [("HEAD", REGISTRY), ("GET", REGISTRY)]


async def test_head_404_without_body_is_not_found_and_the_manifest_is_not_fetched() -> None:
    """containerd retries a HEAD as GET on 405 only: a 404 to the HEAD is "not found" at that host even when a
    GET would have served the manifest, so the pull fails there and pullguard must say so."""
    wire = Wire({REGISTRY: head_answers(lambda: httpx.Response(404))})
    facts = await lookup(wire, platforms=False)
    assert facts.status is LookupStatus.NOT_FOUND, facts
    assert facts.detail == "manifest unknown"
    assert wire.asked() == [("HEAD", REGISTRY)]
    assert facts.similar_tags == ("1.0",)  # the tag list was read to suggest tags


async def test_a_docker_content_digest_the_body_contradicts_is_a_digest_mismatch() -> None:
    """containerd fetches what the header names and fails the pull when the content hashes otherwise."""

    def lying(request: httpx.Request) -> httpx.Response:
        response = serve()(request)
        if "/manifests/" in request.url.path:
            response.headers["docker-content-digest"] = "sha256:" + "0" * 64
        return response

    facts = await lookup(Wire({REGISTRY: lying}))
    assert facts.status is LookupStatus.DIGEST_MISMATCH, facts
    assert f"expected sha256:{'0' * 64}, got {IMAGE.digest}" in facts.detail


# --- 401: Basic and Bearer challenges -------------------------------------------------------------------------------

BASIC_CHALLENGE = {"www-authenticate": f'Basic realm="{REGISTRY}"'}


def basic_registry(credential: Credential) -> SyncHandler:
    return requiring(
        lambda header: None if header == basic(credential) else error(401, headers=BASIC_CHALLENGE), serve()
    )


async def test_basic_challenge_without_credentials_is_unauthorized_after_one_request() -> None:
    wire = Wire({REGISTRY: basic_registry(ROBOT)})
    facts = await lookup(wire)
    assert facts.status is LookupStatus.UNAUTHORIZED, facts
    assert facts.credentials_sent is False
    assert wire.asked() == [("GET", REGISTRY)]  # nothing to answer the challenge with: no retry
    assert all("authorization" not in r.headers for r in wire.seen)


async def test_basic_challenge_is_answered_with_the_credentials() -> None:
    wire = Wire({REGISTRY: basic_registry(ROBOT)})
    facts = await lookup(wire, credentials=(ROBOT,))
    assert facts.status is LookupStatus.EXISTS and facts.credentials_sent, facts
    first, retried, config_blob = wire.seen
    assert "authorization" not in first.headers
    assert retried.headers["authorization"] == basic(ROBOT)
    assert config_blob.headers["authorization"] == basic(ROBOT)  # known challenge: sent up front


async def test_rejected_basic_credentials_are_unauthorized_and_name_their_secret() -> None:
    wire = Wire({REGISTRY: basic_registry(ROBOT)})
    facts = await lookup(wire, credentials=(OTHER,))
    assert facts.status is LookupStatus.UNAUTHORIZED, facts
    assert facts.credentials_sent is True
    assert facts.credential_sources == ("secret shop/other",)
    assert [r.headers.get("authorization") for r in wire.seen if "/manifests/" in r.url.path] == [None, basic(OTHER)]


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


@pytest.mark.parametrize(
    ("credentials", "presented"), [((ROBOT,), basic(ROBOT)), ((), None)], ids=["credentials", "anonymous"]
)
async def test_bearer_challenge_fetches_a_token_from_the_realm_and_retries(
    credentials: tuple[Credential, ...], presented: str | None
) -> None:
    wire = Wire({REGISTRY: bearer_registry({"tok"}), "auth.test": token_realm({presented: "tok"})})
    facts = await lookup(wire, credentials=credentials)
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.credentials_sent is bool(credentials)
    first, token, retried, _blob = wire.seen
    assert "authorization" not in first.headers
    assert (token.url.host, token.headers.get("authorization")) == ("auth.test", presented)
    assert retried.headers["authorization"] == "Bearer tok"


async def test_a_token_is_sent_up_front_on_the_next_lookup() -> None:
    wire = Wire({REGISTRY: bearer_registry({"tok"}), "auth.test": token_realm({basic(ROBOT): "tok"})})
    client = RegistryClient(transport=httpx.MockTransport(wire))
    try:
        assert (await lookup(wire, credentials=(ROBOT,), client=client)).status is LookupStatus.EXISTS
        other_tag = f"{REGISTRY}/{REPOSITORY}:2.0"
        assert (await lookup(wire, other_tag, (ROBOT,), client=client)).status is LookupStatus.NOT_FOUND
    finally:
        await client.close()
    assert len(wire.asked("token")) == 1
    second_lookup = [r for r in wire.seen if r.url.path.endswith("/manifests/2.0")]
    assert [r.headers.get("authorization") for r in second_lookup] == ["Bearer tok"]  # no 401 round trip


@pytest.mark.parametrize(
    ("credentials", "presented", "detail"),
    [
        ((ROBOT,), basic(ROBOT), "insufficient_scope: the account may not pull this repository"),
        ((), None, "insufficient_scope: anonymous pulls may not read this repository, or it does not exist"),
    ],
    ids=["credentials", "anonymous"],
)
async def test_insufficient_scope_is_denied_not_unauthorized(
    credentials: tuple[Credential, ...], presented: str | None, detail: str
) -> None:
    wire = Wire({REGISTRY: bearer_registry(set(), scoped={"tok"}), "auth.test": token_realm({presented: "tok"})})
    facts = await lookup(wire, credentials=credentials)
    assert facts.status is LookupStatus.DENIED, facts
    assert facts.detail == detail
    assert facts.credentials_sent is bool(credentials)


async def test_a_token_the_registry_rejects_without_scope_error_is_unauthorized() -> None:
    wire = Wire({REGISTRY: bearer_registry(set()), "auth.test": token_realm({basic(ROBOT): "stale"})})
    facts = await lookup(wire, credentials=(ROBOT,))
    assert facts.status is LookupStatus.UNAUTHORIZED, facts
    assert facts.credentials_sent is True


async def test_a_denied_credential_gives_way_to_the_next_one() -> None:
    realm = token_realm({basic(OTHER): "weak", basic(ROBOT): "tok"})
    wire = Wire({REGISTRY: bearer_registry({"tok"}, scoped={"weak"}), "auth.test": realm})
    facts = await lookup(wire, credentials=(OTHER, ROBOT))
    assert facts.status is LookupStatus.EXISTS, facts
    assert [r.headers.get("authorization") for r in wire.requests("token")] == [basic(OTHER), basic(ROBOT)]


def _huge_token(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"token": "t" * (65 * 1024)})


TOKEN_FAILURES = [
    (answer(500), LookupStatus.SERVER_ERROR, "token realm https://auth.test: HTTP 500"),
    (answer(503, "UNAVAILABLE"), LookupStatus.SERVER_ERROR, "token realm https://auth.test: HTTP 503 UNAVAILABLE"),
    (answer(401), LookupStatus.UNAUTHORIZED, "token realm https://auth.test refused: HTTP 401"),
    (answer(403), LookupStatus.UNAUTHORIZED, "token realm https://auth.test refused: HTTP 403"),
    (lambda r: httpx.Response(200, text="<html>"), LookupStatus.MALFORMED, "token response is not JSON"),
    (lambda r: httpx.Response(200, json={}), LookupStatus.MALFORMED, "token response without token or access_token"),
    (_huge_token, LookupStatus.MALFORMED, "token response of 66"),
    (refused, LookupStatus.REFUSED, "token realm https://auth.test: connection refused"),
]


@pytest.mark.parametrize(("realm", "status", "detail"), TOKEN_FAILURES)
async def test_a_failing_token_endpoint_is_reported_against_the_realm(
    realm: Handler, status: LookupStatus, detail: str
) -> None:
    wire = Wire({REGISTRY: bearer_registry({"tok"}), "auth.test": realm})
    facts = await lookup(wire, credentials=(ROBOT,))
    assert facts.status is status, facts
    assert detail in facts.detail
    assert facts.detail.startswith("token realm https://auth.test")
    assert wire.asked() == [("GET", REGISTRY)]  # no retry without a token


@pytest.mark.parametrize(
    ("realm", "why"),
    [
        ("https://169.254.169.254/token", "is a link-local or metadata address (169.254.169.254)"),
        ("https://127.0.0.1:5001/token", "is on loopback (127.0.0.1) and the registry endpoint is not"),
        ("https://localhost:5001/token", "is on loopback (127.0.0.1) and the registry endpoint is not"),
    ],
)
async def test_a_realm_the_outbound_policy_refuses_gets_no_request(realm: str, why: str) -> None:
    challenge = {"www-authenticate": f'Bearer realm="{realm}",service="{REGISTRY}"'}
    wire = Wire({REGISTRY: answer(401, headers=challenge)})
    facts = await lookup(wire, credentials=(ROBOT,))
    assert facts.status is LookupStatus.BLOCKED, facts
    assert f"(named by https://{REGISTRY}) {why}: not contacted" in facts.detail
    assert {r.url.host for r in wire.seen} == {REGISTRY} and facts.credentials_sent is False


async def test_a_redirect_is_judged_before_it_is_followed_and_loses_authorization_off_origin() -> None:
    def redirecting(target: str) -> SyncHandler:
        def handler(request: httpx.Request) -> httpx.Response:
            if "/manifests/" in request.url.path:
                return httpx.Response(307, headers={"location": f"{target}/manifest"})
            return serve()(request)

        return handler

    def storage(request: httpx.Request) -> httpx.Response:
        return document(request, IMAGE.raw, IMAGE.media_type)

    registry = requiring(
        lambda h: None if h == basic(ROBOT) else error(401, headers=BASIC_CHALLENGE),
        redirecting("https://storage.test"),
    )
    wire = Wire({REGISTRY: registry, "storage.test": storage})
    facts = await lookup(wire, credentials=(ROBOT,))
    assert facts.status is LookupStatus.EXISTS and facts.digest == IMAGE.digest, facts
    (hop,) = [r for r in wire.seen if r.url.host == "storage.test"]
    assert "authorization" not in hop.headers

    wire = Wire({REGISTRY: redirecting("http://169.254.169.254"), "169.254.169.254": storage})
    facts = await lookup(wire)
    assert facts.status is LookupStatus.BLOCKED, facts
    assert facts.detail.startswith(f"redirect target http://169.254.169.254 (named by https://{REGISTRY})")
    assert "169.254.169.254" not in {r.url.host for r in wire.seen}


# --- classify.py: statuses and bodies -> LookupStatus ---------------------------------------------------------------


async def test_429_with_retry_after_is_rate_limited_with_its_delay() -> None:
    headers = {"retry-after": "17", "ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"}
    wire = Wire({REGISTRY: answer(429, "TOOMANYREQUESTS", headers=headers)})
    facts = await lookup(wire)
    assert facts.status is LookupStatus.RATE_LIMITED, facts
    assert facts.retry_after_seconds == 17.0
    assert facts.rate_limit == "remaining 0;w=21600 of 100;w=21600"
    assert not facts.status.definite  # "could not verify", never a definite failure


async def test_retry_after_as_an_http_date_leaves_the_delay_unknown() -> None:
    wire = Wire({REGISTRY: answer(429, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})})
    facts = await lookup(wire)
    assert facts.status is LookupStatus.RATE_LIMITED and facts.retry_after_seconds is None and facts.rate_limit == ""


@pytest.mark.parametrize(
    ("code", "codes", "status", "detail"),
    [
        (500, (), LookupStatus.SERVER_ERROR, "HTTP 500"),
        (502, (), LookupStatus.SERVER_ERROR, "HTTP 502"),
        (503, ("UNAVAILABLE",), LookupStatus.SERVER_ERROR, "HTTP 503 UNAVAILABLE"),
        (504, (), LookupStatus.SERVER_ERROR, "HTTP 504"),
        (403, (), LookupStatus.DENIED, "HTTP 403"),
        (400, ("DENIED",), LookupStatus.DENIED, "HTTP 400 DENIED"),
        (400, ("TOOMANYREQUESTS",), LookupStatus.RATE_LIMITED, "HTTP 400 TOOMANYREQUESTS"),
        (418, (), LookupStatus.MALFORMED, "unexpected HTTP 418"),
        (404, (), LookupStatus.NOT_FOUND, "manifest unknown"),
        (404, ("NAME_UNKNOWN",), LookupStatus.NOT_FOUND, "repository unknown"),
        (400, ("MANIFEST_UNKNOWN",), LookupStatus.NOT_FOUND, "manifest unknown"),
    ],
)
async def test_statuses_and_error_codes(code: int, codes: tuple[str, ...], status: LookupStatus, detail: str) -> None:
    wire = Wire({REGISTRY: answer(code, *codes)})
    facts = await lookup(wire)  # a GET: the error body is read for its codes (a HEAD answer has none)
    assert (facts.status, facts.detail) == (status, detail), facts
    assert facts.endpoint == f"https://{REGISTRY}/v2"


async def test_a_missing_tag_lists_the_closest_tags_and_a_missing_repository_says_so() -> None:
    wire = Wire({REGISTRY: serve(tags=("1.0.0", "1.0.8", "2.0"))})
    facts = await lookup(wire, f"{REGISTRY}/{REPOSITORY}:1.0.9")
    assert facts.status is LookupStatus.NOT_FOUND and facts.detail == "manifest unknown", facts
    assert facts.similar_tags[0] == "1.0.8"
    wire = Wire({REGISTRY: answer(404, "NAME_UNKNOWN")})
    facts = await lookup(wire, f"{REGISTRY}/no/such:1")
    assert (facts.status, facts.detail, facts.similar_tags) == (LookupStatus.NOT_FOUND, "repository unknown", ())


def manifest_with(body: bytes, content_type: str) -> SyncHandler:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/manifests/" in request.url.path:
            return document(request, body, content_type)
        return serve()(request)

    return handler


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        (b'{"schemaVersion": 2, "config": ', OCI_MANIFEST, "manifest or config unreadable: not JSON"),
        (b'{"schemaVersion": 2, "config": ', "application/json", "manifest not JSON"),
        (b"[1, 2]", "application/json", "manifest not a JSON object"),
        (b'{"schemaVersion": 2}', OCI_MANIFEST, "manifest without a config digest"),
        (b"<html>hello</html>", "text/html", "unexpected content type text/html for a manifest"),
    ],
    ids=["truncated-json", "truncated-generic-type", "not-an-object", "no-config", "html"],
)
async def test_a_malformed_manifest_is_malformed(body: bytes, content_type: str, detail: str) -> None:
    wire = Wire({REGISTRY: manifest_with(body, content_type)})
    facts = await lookup(wire)
    assert facts.status is LookupStatus.MALFORMED, facts
    assert detail in facts.detail


@pytest.mark.parametrize(
    ("config", "detail"),
    [(b"not json", "manifest or config unreadable: not JSON"), (b"{}", "image config without os/architecture")],
)
async def test_a_config_blob_that_is_not_an_image_config_is_malformed(config: bytes, detail: str) -> None:
    blob = Blob(OCI_CONFIG, config)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": blob.descriptor(), "layers": []}
    image = BuiltManifest("image", OCI_MANIFEST, orjson.dumps(manifest), blobs=(blob,))
    facts = await lookup(Wire({REGISTRY: serve(image)}))
    assert facts.status is LookupStatus.MALFORMED, facts
    assert detail in facts.detail


async def test_a_config_blob_that_is_not_its_digest_is_a_digest_mismatch() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/blobs/" in request.url.path:
            return httpx.Response(200, content=b"other content")
        return serve()(request)

    facts = await lookup(Wire({REGISTRY: handler}))
    assert facts.status is LookupStatus.DIGEST_MISMATCH, facts


class Endless:
    """A body that never ends, counting the chunks it was asked for."""

    def __init__(self) -> None:
        self.chunks = 0

    def __aiter__(self) -> Endless:
        return self

    async def __anext__(self) -> bytes:
        self.chunks += 1
        return b"x" * 65536


async def test_an_oversized_manifest_is_refused_by_its_declared_length() -> None:
    body = b" " * (MAX_DOCUMENT_BYTES + 1)
    facts = await lookup(Wire({REGISTRY: manifest_with(body, OCI_MANIFEST)}))
    assert facts.status is LookupStatus.MALFORMED, facts
    assert facts.detail == f"response of {MAX_DOCUMENT_BYTES + 1} bytes is over the 4 MiB limit"


async def test_an_endless_manifest_is_read_only_up_to_the_cap() -> None:
    endless = Endless()
    wire = Wire(
        {REGISTRY: lambda request: httpx.Response(200, headers={"content-type": OCI_MANIFEST}, content=endless)}
    )
    facts = await lookup(wire)
    assert facts.status is LookupStatus.MALFORMED and facts.detail == "response is over the 4 MiB limit", facts
    assert endless.chunks <= MAX_DOCUMENT_BYTES // 65536 + 2  # the cap, plus the chunk that crossed it


async def test_an_endless_error_body_is_truncated_and_still_classified() -> None:
    endless = Endless()
    wire = Wire({REGISTRY: lambda request: httpx.Response(503, content=endless)})
    facts = await lookup(wire)
    assert facts.status is LookupStatus.SERVER_ERROR and facts.detail == "HTTP 503", facts
    assert endless.chunks <= 3  # MAX_ERROR_BYTES is 64 KiB: one chunk, plus the one that crossed it


@pytest.mark.parametrize(("hang", "prefix"), [(REGISTRY, ""), ("auth.test", "token realm https://auth.test: ")])
async def test_a_host_that_never_answers_ends_the_lookup_at_its_deadline(hang: str, prefix: str) -> None:
    async def silent(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        raise AssertionError("the deadline should have struck")

    hosts: dict[str, Handler] = {REGISTRY: bearer_registry({"tok"}), "auth.test": token_realm({None: "tok"})}
    hosts[hang] = silent
    started = time.monotonic()
    facts = await lookup(Wire(hosts), config=RegistryConfig(timeout_seconds=0.2))
    assert time.monotonic() - started < 5  # the lookup's own deadline struck, not some later one
    assert facts.status is LookupStatus.TIMEOUT, facts
    assert facts.detail == f"{prefix}no answer within 0.2s"
