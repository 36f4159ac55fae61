"""Proves the tests/support harness against the real CNCF distribution 2.8 binary: the fault servers (500, 429,
garbage bodies, blackhole, refused), the delaying proxy, and the lifecycle of registries and loopback servers."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.registry_harness.helpers import errors
from tests.support.delaying_proxy import start_delaying_proxy
from tests.support.faults import (
    FAULT_MANIFEST,
    NOT_JSON_BODY,
    Fault,
    refused_endpoint,
    start_blackhole,
    start_fault_server,
)
from tests.support.image_model import ACCEPT_ALL_MANIFESTS, OCI_MANIFEST
from tests.support.images import build_image
from tests.support.pushers import ImagePusher, fetch_manifest, push_single_arch
from tests.support.registry import (
    DEFAULT_TOKEN_USERS,
    RegistryServer,
    registry_available,
    skip_reason,
    start_plain_registry,
    start_token_registry,
)
from tests.support.registry_auth import RegistryAuth

pytestmark = [
    pytest.mark.registry,
    pytest.mark.skipif(not registry_available(), reason=skip_reason()),
]


# --------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------


def test_fault_500() -> None:
    with start_fault_server(Fault.SERVER_ERROR) as server:
        assert httpx.get(server.url + "/v2/").status_code == 200  # ping_ok
        response = httpx.get(server.url + "/v2/x/manifests/latest")
        assert response.status_code == 500
        assert errors(response) == ["UNKNOWN"]
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
