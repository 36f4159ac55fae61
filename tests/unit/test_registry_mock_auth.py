"""The registry client's 401 handling against MockTransport registries: Basic and Bearer challenges, token realms,
insufficient_scope, and redirects judged before they are followed."""

from __future__ import annotations

import httpx
import pytest

from policies.image.pull_secret_parse import Credential
from policies.registry_facts import LookupStatus
from tests.unit.registry_mock import (
    IMAGE,
    OTHER,
    REGISTRY,
    REPOSITORY,
    ROBOT,
    Handler,
    SyncHandler,
    Wire,
    answer,
    basic,
    bearer_registry,
    document,
    error,
    lookup,
    no_dns,  # noqa: F401 - the autouse fixture: nothing is resolved
    refused,
    requiring,
    serve,
    token_realm,
)
from webhook.registry.client import RegistryClient

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
