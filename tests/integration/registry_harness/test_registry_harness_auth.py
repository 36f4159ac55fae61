"""Proves the tests/support harness against the real CNCF distribution 2.8 binary: TLS + basic auth, token auth (the
token issuer, its JWTs and scopes, RegistryAuth's caching), and the pull-through proxy."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.integration.registry_harness.helpers import bearer, errors, unverified
from tests.support.image_model import ACCEPT_ALL_MANIFESTS
from tests.support.pushers import fetch_manifest, push_multiarch_index, push_single_arch
from tests.support.registry import (
    DEFAULT_TOKEN_USERS,
    RegistryServer,
    registry_available,
    skip_reason,
    start_proxy_registry,
    start_token_registry,
)
from tests.support.registry_auth import RegistryAuth
from tests.support.tlsgen import generate_ca
from tests.support.token_issuer import libtrust_key_id

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(not registry_available(), reason=skip_reason()),
]


# --------------------------------------------------------------------------------------------
# (b) TLS + basic auth
# --------------------------------------------------------------------------------------------


def test_basic_auth_challenge_and_credentials(basic: RegistryServer) -> None:
    assert basic.scheme == "https"
    assert basic.ca_file is not None
    anonymous = httpx.get(basic.url + "/v2/", verify=basic.verify)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic ")
    assert errors(anonymous) == ["UNAUTHORIZED"]
    assert basic.username is not None
    assert basic.password is not None
    ok = httpx.get(basic.url + "/v2/", verify=basic.verify, auth=(basic.username, basic.password))
    assert ok.status_code == 200
    wrong = httpx.get(basic.url + "/v2/", verify=basic.verify, auth=(basic.username, "wrong"))
    assert wrong.status_code == 401


def test_basic_push_and_pull(basic: RegistryServer) -> None:
    image = push_single_arch(basic, "basic/app", "v1", oci=True)
    with basic.client() as client:
        response = fetch_manifest(client, "basic/app", "v1")
    assert response.status_code == 200
    assert response.headers["docker-content-digest"] == image.digest


def test_basic_wrong_ca_fails_tls_verification(basic: RegistryServer, tmp_path: Path) -> None:
    other_ca = generate_ca(tmp_path / "other-ca")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(basic.url + "/v2/", verify=other_ca.ssl_context())
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(basic.url + "/v2/")  # the system trust store does not know the test CA


def test_basic_certificate_names(basic: RegistryServer) -> None:
    leaf = x509.load_pem_x509_certificates((basic.workdir / "tls" / "registry.pem").read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost"}
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}


# --------------------------------------------------------------------------------------------
# (c) token auth
# --------------------------------------------------------------------------------------------


def test_token_dance_by_hand(token: RegistryServer) -> None:
    issuer = token.token_issuer
    assert issuer is not None
    push_single_arch(token, "team/app", "v1")
    ping = httpx.get(token.url + "/v2/")
    assert ping.status_code == 401
    assert bearer(ping) == {"realm": issuer.realm, "service": issuer.service}

    anonymous = httpx.get(token.url + "/v2/team/app/manifests/v1", headers={"Accept": ACCEPT_ALL_MANIFESTS})
    challenge = bearer(anonymous)
    assert challenge["scope"] == "repository:team/app:pull"

    before = issuer.request_count
    token_response = httpx.get(
        challenge["realm"],
        params={"service": challenge["service"], "scope": challenge["scope"]},
        auth=("reader", DEFAULT_TOKEN_USERS["reader"].password),
    )
    assert token_response.status_code == 200
    body = token_response.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"]
    assert issuer.request_count == before + 1

    header, claims = unverified(body["token"])
    assert header["alg"] == "ES256"
    assert header["kid"] == libtrust_key_id(issuer.signing.key.public_key())
    assert len(header["kid"].split(":")) == 12
    assert claims["iss"] == issuer.issuer
    assert claims["aud"] == issuer.service
    assert claims["sub"] == "reader"
    assert claims["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull"]}]
    assert claims["nbf"] <= claims["iat"] < claims["exp"]

    authorized = httpx.get(
        token.url + "/v2/team/app/manifests/v1",
        headers={"Authorization": f"Bearer {body['token']}", "Accept": ACCEPT_ALL_MANIFESTS},
    )
    assert authorized.status_code == 200


def test_token_user_without_access_gets_insufficient_scope(token: RegistryServer) -> None:
    push_single_arch(token, "team/secret", "v1")
    with token.client(username="limited", password=DEFAULT_TOKEN_USERS["limited"].password) as client:
        response = fetch_manifest(client, "team/secret", "v1")
    # distribution 2.8: 401 UNAUTHORIZED + error="insufficient_scope" (it never answers DENIED)
    assert response.status_code == 401
    assert errors(response) == ["UNAUTHORIZED"]
    assert bearer(response)["error"] == "insufficient_scope"
    issuer = token.token_issuer
    assert issuer is not None
    last = issuer.requests[-1]
    assert (last.username, last.status, last.granted) == ("limited", 200, ())


def test_token_limited_user_can_pull_allowed_repo_but_not_push(token: RegistryServer) -> None:
    image = push_single_arch(token, "allowed/app", "v1")
    with token.client(username="limited", password=DEFAULT_TOKEN_USERS["limited"].password) as client:
        response = fetch_manifest(client, "allowed/app", "v1")
        assert response.status_code == 200
        assert response.headers["docker-content-digest"] == image.digest
        push = client.post("/v2/allowed/app/blobs/uploads/")
    assert push.status_code == 401
    assert bearer(push)["error"] == "insufficient_scope"
    resource, _, actions = bearer(push)["scope"].rpartition(":")
    assert resource == "repository:allowed/app"
    assert set(actions.split(",")) == {"pull", "push"}  # 2.8 lists the actions in Go map order


def test_token_bad_password_is_401_from_issuer(token: RegistryServer) -> None:
    issuer = token.token_issuer
    assert issuer is not None
    response = httpx.get(
        issuer.realm,
        params={"service": issuer.service, "scope": "repository:team/app:pull"},
        auth=("reader", "not-the-password"),
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert issuer.count(username="reader", status=401) >= 1


def test_token_forged_audience_is_invalid_token(token: RegistryServer) -> None:
    issuer = token.token_issuer
    assert issuer is not None
    forged = issuer.issue_token(
        "admin", [{"type": "repository", "name": "team/app", "actions": ["pull"]}], audience="someone-else"
    )
    response = httpx.get(token.url + "/v2/team/app/tags/list", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert bearer(response)["error"] == "invalid_token"


def test_token_is_cached_by_client_auth(token: RegistryServer) -> None:
    issuer = token.token_issuer
    assert issuer is not None
    push_single_arch(token, "team/cached", "v1")
    auth = RegistryAuth("reader", DEFAULT_TOKEN_USERS["reader"].password)
    before = issuer.count(username="reader")
    with httpx.Client(base_url=token.url, auth=auth) as client:
        for _ in range(5):
            assert fetch_manifest(client, "team/cached", "v1").status_code == 200
    assert issuer.count(username="reader") == before + 1
    assert auth.token_fetches == 1


@pytest.mark.parametrize(("algorithm", "key_id_mode"), [("RS256", "kid"), ("ES256", "x5c")])
def test_token_signing_variants(algorithm: str, key_id_mode: str) -> None:
    with start_token_registry(algorithm=algorithm, key_id_mode=key_id_mode) as registry:
        image = push_single_arch(registry, "variant/app", "v1")
        with registry.client(username="reader", password=DEFAULT_TOKEN_USERS["reader"].password) as client:
            response = fetch_manifest(client, "variant/app", "v1")
        assert response.status_code == 200
        assert response.headers["docker-content-digest"] == image.digest
        issuer = registry.token_issuer
        assert issuer is not None
        header, _ = unverified(issuer.issue_token("x", []))
        assert header["alg"] == algorithm
        assert key_id_mode in header
        assert set(header) & {"kid", "x5c"} == {key_id_mode}


# --------------------------------------------------------------------------------------------
# (d) pull-through proxy
# --------------------------------------------------------------------------------------------


def test_proxy_serves_upstream_image(proxy: RegistryServer, plain: RegistryServer) -> None:
    image = push_multiarch_index(plain, "proxied/app", "v1")
    assert proxy.remote_url == plain.url
    with proxy.client() as client:
        by_tag = fetch_manifest(client, "proxied/app", "v1")
        assert by_tag.status_code == 200
        assert by_tag.headers["docker-content-digest"] == image.digest
        child = image.for_platform("linux/arm64/v8")
        by_digest = fetch_manifest(client, "proxied/app", child.digest)
        assert by_digest.status_code == 200
        assert by_digest.content == child.raw
        layer = child.layers[0]
        blob = client.get(f"/v2/proxied/app/blobs/{layer.digest}")
        assert blob.status_code == 200
        assert blob.content == layer.data
        push = client.post("/v2/proxied/app/blobs/uploads/")
        assert push.status_code == 405
        assert errors(push) == ["UNSUPPORTED"]


def test_proxy_with_credentials_in_front_of_token_registry(token: RegistryServer) -> None:
    image = push_single_arch(token, "private/app", "v1")
    with start_proxy_registry(token, username="reader", password=DEFAULT_TOKEN_USERS["reader"].password) as proxy:
        with proxy.client() as client:
            response = fetch_manifest(client, "private/app", "v1")
        assert response.status_code == 200
        assert response.headers["docker-content-digest"] == image.digest
