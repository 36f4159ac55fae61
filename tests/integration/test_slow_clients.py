"""The server against slow and greedy clients, and its shutdown: a request must arrive whole in time, open
connections are capped, and SIGTERM drains (not ready, still answering) before the port closes. Real `pullguard
serve` processes on loopback; every client loop is bounded in count and time."""

from __future__ import annotations

import signal
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reviews import manifest, review
from tests.server import PullguardServer, start_pullguard

REQUEST_TIMEOUT = 1.5


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[PullguardServer]:
    args = ["--request-timeout", str(REQUEST_TIMEOUT), "--max-connections", "30"]
    server = start_pullguard(tmp_path, extra_args=args)
    yield server
    server.stop()


def tls_socket(server: PullguardServer) -> ssl.SSLSocket:
    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    raw = socket.create_connection((host, int(port)), timeout=5)
    return server.ssl_context().wrap_socket(raw, server_hostname="localhost")


def closed_by_server(conn: ssl.SSLSocket, within: float) -> bool:
    """True when the server ends the connection (EOF or reset) within `within` seconds."""
    conn.settimeout(within)
    try:
        return conn.recv(1024) == b""
    except (ConnectionResetError, ssl.SSLError, ssl.SSLEOFError):
        return True
    except TimeoutError:
        return False


def test_idle_connections_and_header_trickles_are_cut(guarded: PullguardServer) -> None:
    idle = [tls_socket(guarded) for _ in range(10)]
    trickle = tls_socket(guarded)
    started = time.monotonic()
    trickle.sendall(b"POST /validate HTTP/1.1\r\nHost: x\r\n")
    for _ in range(3):  # a header every half second, never the end of the headers
        time.sleep(0.5)
        trickle.sendall(b"X-Slow: 1\r\n")
    assert closed_by_server(trickle, REQUEST_TIMEOUT + 2)
    assert all(closed_by_server(c, REQUEST_TIMEOUT + 2) for c in idle)
    assert time.monotonic() - started < REQUEST_TIMEOUT + 4
    for conn in [*idle, trickle]:
        conn.close()
    assert guarded.client().get("/healthz").status_code == 200  # the server itself is fine


def test_a_body_that_stalls_is_cut(guarded: PullguardServer) -> None:
    conn = tls_socket(guarded)
    conn.sendall(
        b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    assert closed_by_server(conn, REQUEST_TIMEOUT + 2)
    conn.close()


def test_a_prompt_client_on_a_kept_alive_connection_is_not_cut(guarded: PullguardServer) -> None:
    body = review(manifest("deployment.yaml"))
    with httpx.Client(base_url=guarded.url, verify=guarded.ssl_context(), timeout=5) as client:
        for _ in range(3):  # idle between requests longer than the request timeout: keep-alive is not a stall
            assert client.post("/validate", json=body).status_code == 200
            time.sleep(REQUEST_TIMEOUT + 0.5)
        assert client.post("/validate", json=body).status_code == 200


def test_connections_beyond_the_cap_get_503(guarded: PullguardServer) -> None:
    held = [tls_socket(guarded) for _ in range(30)]
    try:
        with httpx.Client(base_url=guarded.url, verify=guarded.ssl_context(), timeout=5) as client:
            assert client.get("/healthz").status_code == 503
    finally:
        for conn in held:
            conn.close()
    deadline = time.monotonic() + 5
    while guarded.client().get("/healthz").status_code != 200:
        assert time.monotonic() < deadline


def test_sigterm_drains_before_the_port_closes(tmp_path: Path) -> None:
    server = start_pullguard(tmp_path, extra_args=["--shutdown-delay", "2"])
    server.client().close()  # the harness's idle connection would hold the shutdown until its TLS close is read
    try:
        with httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=5) as client:
            assert client.get("/readyz").status_code == 200
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            draining = client.get("/readyz")
            assert draining.status_code == 503
            assert draining.json()["notReady"] == ["shutting down: draining before the port closes"]
            assert client.post("/validate", json=review(manifest("deployment.yaml"))).status_code == 200
            assert server.process.poll() is None
        server.process.wait(timeout=5)  # the delay, then the port closes
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/healthz", verify=server.ssl_context(), timeout=2)
    finally:
        server.stop()
