"""Where credentials may go, and how challenges are read: no network needed, every refusal happens before a
request is sent."""

from __future__ import annotations

import httpx
import pytest

from policies.image.pull_secret_parse import Credential, CredentialSource
from policies.registry_facts import LookupStatus
from webhook.registry.auth import Authenticator, AuthError, may_carry_credentials
from webhook.registry.challenge import Challenge, parse_challenges

SECRET = Credential("robot", "s3cret-value", source=CredentialSource("shop", "regcred"))


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://registry.example.com/v2/", True),
        ("http://registry.example.com/v2/", False),
        ("http://127.0.0.1:5000/v2/", True),
        ("http://localhost:5000/v2/", True),
        ("http://[::1]:5000/v2/", True),
        ("http://10.0.0.1:5000/v2/", False),
    ],
)
def test_credentials_travel_over_https_or_loopback_only(url: str, allowed: bool) -> None:
    assert may_carry_credentials(httpx.URL(url)) is allowed


async def test_basic_credentials_are_withheld_from_plain_http_remote_hosts() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(AuthError) as raised:
            await Authenticator().header(
                client,
                [Challenge("basic", {"realm": "r"})],
                "team/app",
                SECRET,
                httpx.URL("http://registry.example.com/v2/team/app/manifests/1"),
            )
    # the node would send them: pullguard's own rule makes this unknown, never a definite "unauthorized"
    assert raised.value.status is LookupStatus.WITHHELD
    assert not raised.value.status.definite
    assert raised.value.credentials_sent is False
    assert "withheld from registry endpoint http://registry.example.com" in raised.value.detail


async def test_token_realm_over_plain_http_gets_no_credentials() -> None:
    challenge = Challenge("bearer", {"realm": "http://auth.example.com/token", "service": "registry"})
    async with httpx.AsyncClient() as client:
        with pytest.raises(AuthError) as raised:
            await Authenticator().header(
                client,
                [challenge],
                "team/app",
                SECRET,
                httpx.URL("https://registry.example.com/v2/team/app/manifests/1"),
            )
    assert raised.value.status is LookupStatus.WITHHELD
    assert raised.value.credentials_sent is False
    assert "withheld from token realm http://auth.example.com" in raised.value.detail


async def test_no_credentials_for_a_basic_challenge_means_no_header() -> None:
    async with httpx.AsyncClient() as client:
        header = await Authenticator().header(
            client, [Challenge("basic", {})], "team/app", None, httpx.URL("https://registry.example.com/v2/")
        )
    assert header is None


def test_secrets_stay_out_of_reprs_and_cache_keys() -> None:
    assert "s3cret" not in repr(SECRET) and "robot" not in repr(SECRET)
    assert "s3cret" not in SECRET.identity
    assert SECRET.identity == Credential("robot", "s3cret-value").identity
    assert SECRET.identity != Credential("robot", "other").identity


def test_challenge_parsing() -> None:
    (bearer,) = parse_challenges(
        [
            'Bearer realm="https://auth.example.com/token",service="registry.example.com",'
            'scope="repository:team/app:pull,push",error="insufficient_scope"'
        ]
    )
    assert bearer.scheme == "bearer" and bearer.realm == "https://auth.example.com/token"
    assert bearer.parameters["scope"] == "repository:team/app:pull,push"
    assert bearer.parameters["error"] == "insufficient_scope"
    assert [c.scheme for c in parse_challenges(['Basic realm="a, b"', "Bearer realm=x, Basic realm=y"])] == [
        "basic",
        "bearer",
        "basic",
    ]
    assert parse_challenges(['Basic realm="with \\"quotes\\""'])[0].realm == 'with "quotes"'
    assert parse_challenges([""]) == []


def test_token_responses_as_the_token_spec_allows() -> None:
    from webhook.registry.auth import DEFAULT_TOKEN_SECONDS, _read_token

    assert _read_token(b'{"access_token": "abc"}') == ("abc", DEFAULT_TOKEN_SECONDS)
    assert _read_token(b'{"token": "t", "access_token": "a", "expires_in": 300}') == ("t", 300)
    assert _read_token(b'{"token": "t", "expires_in": -5}') == ("t", 60)
    for body in (b"not json", b"[]", b'{"expires_in": 10}', b'{"token": ""}'):
        with pytest.raises(AuthError) as raised:
            _read_token(body)
        assert raised.value.status is LookupStatus.MALFORMED
