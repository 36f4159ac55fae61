"""Proves the tests/support harness against the real CNCF distribution 2.8 binary."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509

from tests.support import fixtures as f
from tests.support.delaying_proxy import start_delaying_proxy
from tests.support.faults import (
    FAULT_MANIFEST,
    NOT_JSON_BODY,
    Fault,
    refused_endpoint,
    start_blackhole,
    start_fault_server,
)
from tests.support.images import (
    ACCEPT_ALL_MANIFESTS,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    PushedImage,
    build_image,
)
from tests.support.pushers import ImagePusher, StandardImages, fetch_manifest, push_multiarch_index, push_single_arch
from tests.support.registry import (
    DEFAULT_TOKEN_USERS,
    RegistryServer,
    registry_available,
    skip_reason,
    start_plain_registry,
    start_proxy_registry,
    start_token_registry,
)
from tests.support.registry_auth import RegistryAuth, parse_www_authenticate
from tests.support.tlsgen import generate_ca
from tests.support.token_issuer import libtrust_key_id

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(not registry_available(), reason=skip_reason()),
]


# --------------------------------------------------------------------------------------------
# local fixtures (module scope: one registry of each kind for the whole file)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain() -> Iterator[RegistryServer]:
    yield from f.plain_registry_fixture()


@pytest.fixture(scope="module")
def basic() -> Iterator[RegistryServer]:
    yield from f.basic_registry_fixture()


@pytest.fixture(scope="module")
def token() -> Iterator[RegistryServer]:
    yield from f.token_registry_fixture()


@pytest.fixture(scope="module")
def proxy(plain: RegistryServer) -> Iterator[RegistryServer]:
    yield from f.proxy_registry_fixture(plain)


@pytest.fixture(scope="module")
def images(plain: RegistryServer) -> StandardImages:
    return f.standard_images_fixture(plain)


@pytest.fixture
def plain_client(plain: RegistryServer) -> Iterator[httpx.Client]:
    with plain.client() as client:
        yield client


def _errors(response: httpx.Response) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def _bearer(response: httpx.Response) -> dict[str, str]:
    challenges = parse_www_authenticate(response.headers.get_list("www-authenticate"))
    assert [c.scheme for c in challenges] == ["bearer"], response.headers
    return challenges[0].params


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


# --------------------------------------------------------------------------------------------
# (a) plain registry: every image kind round-trips
# --------------------------------------------------------------------------------------------

KINDS = ["docker_v2", "oci_single", "oci_index", "docker_list", "arm64_only"]
EXPECTED_TYPES = {
    "docker_v2": DOCKER_MANIFEST,
    "oci_single": OCI_MANIFEST,
    "oci_index": OCI_INDEX,
    "docker_list": DOCKER_MANIFEST_LIST,
    "arm64_only": OCI_INDEX,
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_round_trips(images: StandardImages, plain_client: httpx.Client, kind: str) -> None:
    image: PushedImage = getattr(images, kind)
    assert image.media_type == EXPECTED_TYPES[kind]
    for reference in (image.tag, image.digest):
        assert reference is not None
        response = fetch_manifest(plain_client, image.repository, reference, accept=image.media_type)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == image.media_type
        assert response.headers["docker-content-digest"] == image.digest
        assert "sha256:" + hashlib.sha256(response.content).hexdigest() == image.digest
        assert response.content == image.raw
    head = fetch_manifest(plain_client, image.repository, image.tag or "", method="HEAD")
    assert head.status_code == 200
    assert head.headers["docker-content-digest"] == image.digest
    assert int(head.headers["content-length"]) == len(image.raw)


@pytest.mark.parametrize("kind", ["oci_index", "docker_list", "arm64_only"])
def test_index_children_and_configs(images: StandardImages, plain_client: httpx.Client, kind: str) -> None:
    image: PushedImage = getattr(images, kind)
    index = json.loads(fetch_manifest(plain_client, image.repository, image.digest).content)
    entries = index["manifests"]
    assert [e["digest"] for e in entries] == [c.digest for c in image.manifest.children]
    for child in image.manifest.images:
        response = fetch_manifest(plain_client, image.repository, child.digest, accept=child.media_type)
        assert response.status_code == 200
        assert response.headers["docker-content-digest"] == child.digest
        config_desc = response.json()["config"]
        blob = plain_client.get(f"/v2/{image.repository}/blobs/{config_desc['digest']}")
        assert blob.status_code == 200
        config = blob.json()
        assert child.platform is not None
        assert (config["os"], config["architecture"], config.get("variant")) == (
            child.platform.os,
            child.platform.architecture,
            child.platform.variant,
        )
        for layer in child.layers:
            got = plain_client.get(f"/v2/{image.repository}/blobs/{layer.digest}")
            assert got.status_code == 200
            assert got.content == layer.data


def test_multiarch_index_shape(images: StandardImages) -> None:
    entries = images.oci_index.manifest.json["manifests"]
    platforms = [
        "/".join(filter(None, (e["platform"]["os"], e["platform"]["architecture"], e["platform"].get("variant"))))
        for e in entries
    ]
    assert platforms == ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", *(["unknown/unknown"] * 3)]
    image_digests = [e["digest"] for e in entries[:3]]
    for entry, subject in zip(entries[3:], image_digests, strict=True):
        assert entry["annotations"] == {
            "vnd.docker.reference.digest": subject,
            "vnd.docker.reference.type": "attestation-manifest",
        }
    assert set(images.arm64_only.platform_digests) == {"linux/arm64/v8"}
    assert set(images.docker_list.platform_digests) == {"linux/amd64", "linux/arm64/v8", "linux/arm/v7"}


def test_digests_are_deterministic() -> None:
    assert build_image(seed="same").digest == build_image(seed="same").digest
    assert build_image(seed="same").digest != build_image(seed="other").digest


def test_missing_tag_is_manifest_unknown(images: StandardImages, plain_client: httpx.Client) -> None:
    head = fetch_manifest(plain_client, images.oci_index.repository, "no-such-tag", method="HEAD")
    assert head.status_code == 404
    assert head.content == b""  # HEAD carries no body: only GET shows the error code
    get = fetch_manifest(plain_client, images.oci_index.repository, "no-such-tag")
    assert get.status_code == 404
    assert _errors(get) == ["MANIFEST_UNKNOWN"]
    unknown_repo = plain_client.get("/v2/no/such-repo/tags/list")
    assert unknown_repo.status_code == 404
    assert _errors(unknown_repo) == ["NAME_UNKNOWN"]


def test_distribution_28_accept_quirks(images: StandardImages, plain_client: httpx.Client) -> None:
    """Real 2.8 behaviour clients must cope with (documented in tests/support/README.md)."""
    # An OCI index (or manifest) is 404 MANIFEST_UNKNOWN unless its media type is accepted.
    oci = fetch_manifest(plain_client, images.oci_index.repository, "1.0", accept=DOCKER_MANIFEST)
    assert oci.status_code == 404
    assert _errors(oci) == ["MANIFEST_UNKNOWN"]
    # A Docker manifest list asked for with only schema2 accepted is rewritten to linux/amd64.
    amd64 = fetch_manifest(plain_client, images.docker_list.repository, "1.0", accept=DOCKER_MANIFEST)
    assert amd64.status_code == 200
    assert amd64.headers["docker-content-digest"] == images.docker_list.platform_digests["linux/amd64"]


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
def test_skopeo_copies_every_platform(images: StandardImages, plain: RegistryServer, tmp_path: Path) -> None:
    """An independent client validates layers, configs and digests of the pushed index."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    result = subprocess.run(
        [
            "skopeo",
            "--policy",
            str(policy),
            "copy",
            "--all",
            "--src-tls-verify=false",
            f"docker://{images.oci_index.reference}",
            f"oci:{tmp_path / 'layout'}:copied",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == images.oci_index.digest


# --------------------------------------------------------------------------------------------
# (b) TLS + basic auth
# --------------------------------------------------------------------------------------------


def test_basic_auth_challenge_and_credentials(basic: RegistryServer) -> None:
    assert basic.scheme == "https"
    assert basic.ca_file is not None
    anonymous = httpx.get(basic.url + "/v2/", verify=basic.verify)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic ")
    assert _errors(anonymous) == ["UNAUTHORIZED"]
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
    assert _bearer(ping) == {"realm": issuer.realm, "service": issuer.service}

    anonymous = httpx.get(token.url + "/v2/team/app/manifests/v1", headers={"Accept": ACCEPT_ALL_MANIFESTS})
    challenge = _bearer(anonymous)
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

    header, claims = _unverified(body["token"])
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
    assert _errors(response) == ["UNAUTHORIZED"]
    assert _bearer(response)["error"] == "insufficient_scope"
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
    assert _bearer(push)["error"] == "insufficient_scope"
    resource, _, actions = _bearer(push)["scope"].rpartition(":")
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
    assert _bearer(response)["error"] == "invalid_token"


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
        header, _ = _unverified(issuer.issue_token("x", []))
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
        assert _errors(push) == ["UNSUPPORTED"]


def test_proxy_with_credentials_in_front_of_token_registry(token: RegistryServer) -> None:
    image = push_single_arch(token, "private/app", "v1")
    with start_proxy_registry(token, username="reader", password=DEFAULT_TOKEN_USERS["reader"].password) as proxy:
        with proxy.client() as client:
            response = fetch_manifest(client, "private/app", "v1")
        assert response.status_code == 200
        assert response.headers["docker-content-digest"] == image.digest


# --------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------


def test_fault_500() -> None:
    with start_fault_server(Fault.SERVER_ERROR) as server:
        assert httpx.get(server.url + "/v2/").status_code == 200  # ping_ok
        response = httpx.get(server.url + "/v2/x/manifests/latest")
        assert response.status_code == 500
        assert _errors(response) == ["UNKNOWN"]
        assert server.count("/v2/x/manifests/latest") == 1


def test_fault_429_rate_limited() -> None:
    with start_fault_server(Fault.RATE_LIMITED, ping_ok=False) as server:
        for method in ("GET", "HEAD"):
            response = httpx.request(method, server.url + "/v2/library/alpine/manifests/3")
            assert response.status_code == 429
            assert response.headers["ratelimit-limit"] == "100;w=21600"
            assert response.headers["ratelimit-remaining"] == "0;w=21600"
            assert response.headers["retry-after"] == "30"
        assert httpx.get(server.url + "/v2/").status_code == 429


def test_fault_garbage_bodies() -> None:
    with start_fault_server(Fault.NOT_JSON) as server:
        response = httpx.get(server.url + "/v2/x/manifests/latest")
        assert response.status_code == 200
        assert response.headers["content-type"] == OCI_MANIFEST
        assert response.content == NOT_JSON_BODY
        with pytest.raises(json.JSONDecodeError):
            response.json()
    with start_fault_server(Fault.WRONG_CONTENT_TYPE) as server:
        response = httpx.get(server.url + "/v2/x/manifests/latest")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.content == FAULT_MANIFEST
    with start_fault_server(Fault.TRUNCATED) as server:
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(server.url + "/v2/x/manifests/latest")
        assert server.count() == 1


def test_blackhole_times_out() -> None:
    with start_blackhole() as hole:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(hole.url + "/v2/", timeout=httpx.Timeout(0.3))
        assert 0.25 < time.monotonic() - started < 5
        assert hole.accepted == 1


def test_refused_endpoint() -> None:
    with refused_endpoint() as endpoint, pytest.raises(httpx.ConnectError):
        httpx.get(endpoint.url + "/v2/", timeout=2)


def test_fault_server_lifetime_is_bounded() -> None:
    server = start_fault_server(Fault.SERVER_ERROR, lifetime=0.2)
    deadline = time.monotonic() + 5
    while not server.stopped and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.stopped
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/v2/", timeout=1)


def test_delaying_proxy_delays_counts_and_forwards_uploads(plain: RegistryServer) -> None:
    with start_delaying_proxy(plain.url) as delayed:
        image = build_image(seed="through-the-delaying-proxy")
        # blob uploads work through the proxy (Location rewritten to the proxy)
        with ImagePusher(_Endpoint(delayed.url, delayed.host)) as pusher:
            pushed = pusher.push("delayed/app", "v1", image)
        assert delayed.count(method="PUT") == 3  # two blobs + the manifest
        delayed.reset()
        delayed.delay_ms = 150
        with httpx.Client(base_url=delayed.url) as client:
            started = time.monotonic()
            response = fetch_manifest(client, "delayed/app", "v1")
            elapsed = time.monotonic() - started
        assert response.status_code == 200
        assert response.headers["docker-content-digest"] == pushed.digest
        assert elapsed >= 0.15
        assert delayed.manifest_requests("delayed/app") == 1
        assert delayed.manifest_requests("delayed/app", "v1", method="GET") == 1
        assert delayed.counts == {"/v2/delayed/app/manifests/v1": 1}


class _Endpoint:
    """A RegistryEndpoint for something that is not a RegistryServer."""

    def __init__(self, url: str, host: str) -> None:
        self.url = url
        self.host = host
        self.ca_file: Path | None = None
        self.username: str | None = None
        self.password: str | None = None


# --------------------------------------------------------------------------------------------
# lifecycle
# --------------------------------------------------------------------------------------------


def _listening_ports(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink()
        except OSError:
            continue
        if str(target).startswith("socket:["):
            inodes.add(str(target)[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_registry_has_one_port_and_stops_cleanly() -> None:
    registry = start_plain_registry()
    try:
        assert _listening_ports(registry.pid) == {registry.port}  # no debug listener
        config = registry.config_file.read_text()
        assert "debug" not in config
        assert "level: warn" in config
        assert registry.is_running()
    finally:
        registry.stop()
    assert registry.process.returncode is not None
    assert not registry.workdir.exists()  # throw-away workdir removed
    with pytest.raises(httpx.ConnectError):
        httpx.get(registry.url + "/v2/", timeout=1)
    registry.stop()  # idempotent


def test_basic_auth_header_helper_roundtrip() -> None:
    # keeps RegistryAuth's Basic encoding honest without a server
    auth = RegistryAuth("u", "p:w")
    request = httpx.Request("GET", "http://127.0.0.1:1/v2/")
    flow = auth.sync_auth_flow(request)
    sent = next(flow)
    assert "authorization" not in sent.headers
    challenge = httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'}, request=request)
    retried = flow.send(challenge)
    assert retried.headers["authorization"] == "Basic " + base64.b64encode(b"u:p:w").decode()


async def test_async_client_tls_token_registry_and_tls_issuer() -> None:
    """RegistryAuth works with httpx.AsyncClient; one CA covers registry and realm."""
    with start_token_registry(tls=True, issuer_tls=True) as registry:
        issuer = registry.token_issuer
        assert issuer is not None
        assert registry.scheme == "https"
        assert issuer.realm.startswith("https://")
        image = push_single_arch(registry, "tls/app", "v1")
        auth = RegistryAuth("reader", DEFAULT_TOKEN_USERS["reader"].password)
        async with httpx.AsyncClient(base_url=registry.url, verify=registry.verify, auth=auth) as client:
            response = await client.get("/v2/tls/app/manifests/v1", headers={"Accept": ACCEPT_ALL_MANIFESTS})
        assert response.status_code == 200
        assert response.headers["docker-content-digest"] == image.digest
        assert auth.token_fetches == 1


def test_stopped_server_cuts_keepalive_connections() -> None:
    server = start_fault_server(Fault.SERVER_ERROR)
    with httpx.Client(base_url=server.url, timeout=2) as client:
        assert client.get("/v2/").status_code == 200  # connection now pooled
        server.stop()
        with pytest.raises(httpx.TransportError):
            client.get("/v2/")
