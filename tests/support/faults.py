"""Loopback servers for the failure modes a real registry will not produce on demand.

Every server here binds 127.0.0.1 on a free port, runs in daemon threads, has a bounded
lifetime (``lifetime`` seconds, after which it stops itself) and a ``stop()`` that is idempotent.
All of them are usable as context managers.

* :func:`start_fault_server` - answers every request with one :class:`Fault` (500, 429 with
  rate-limit headers, a non-JSON manifest, a truncated body, a manifest with a wrong
  content type).
* :func:`start_blackhole` - accepts TCP connections and never answers (client read timeout).
* :func:`refused_endpoint` / :func:`refused_port` - a port nobody listens on (connection refused).
* :func:`start_delaying_proxy` - forwards to a real registry, adds N ms per request and counts
  requests by path.

:class:`LoopbackHTTPServer` is the small threaded HTTP/1.1 server they are built on (the token
issuer uses it too).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from .lifecycle import StopsOnExit

__all__ = [
    "DEFAULT_LIFETIME",
    "Blackhole",
    "DelayingProxy",
    "Fault",
    "FaultServer",
    "LoopbackHTTPServer",
    "ProxiedRequest",
    "RecordedRequest",
    "RefusedEndpoint",
    "RequestHandler",
    "refused_endpoint",
    "refused_port",
    "start_blackhole",
    "start_delaying_proxy",
    "start_fault_server",
]

#: Seconds after which a helper server stops itself if nobody called ``stop()``.
DEFAULT_LIFETIME = 600.0

LOOPBACK = "127.0.0.1"

_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_MAX_BODY = 64 * 1024 * 1024


class _StoppableMixin(StopsOnExit):
    """A bounded-lifetime ``stop()`` plus the context-manager protocol."""

    _stop_lock: threading.Lock
    _stopping: bool
    _stopped_event: threading.Event
    _timer: threading.Timer | None

    def _init_lifetime(self, lifetime: float | None) -> None:
        self._stop_lock = threading.Lock()
        self._stopping = False
        self._stopped_event = threading.Event()
        self._timer = None
        if lifetime is not None:
            self._timer = threading.Timer(lifetime, self.stop)
            self._timer.daemon = True
            self._timer.start()

    @property
    def stopped(self) -> bool:
        """True once the server is fully shut down (its port refuses connections)."""
        return self._stopped_event.is_set()

    def stop(self) -> None:
        """Shut down (idempotent; a concurrent caller waits until the shutdown completed)."""
        with self._stop_lock:
            first = not self._stopping
            self._stopping = True
        if not first:
            self._stopped_event.wait(timeout=10)
            return
        if self._timer is not None and self._timer is not threading.current_thread():
            self._timer.cancel()
        try:
            self._shutdown()
        finally:
            self._stopped_event.set()

    def _shutdown(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# The threaded HTTP/1.1 server everything HTTP here is built on
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    app: Callable[[RequestHandler], None]
    ssl_context: ssl.SSLContext | None = None

    def __init__(self, address: tuple[str, int], handler: type[RequestHandler]) -> None:
        self._active: set[socket.socket] = set()
        self._active_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        # Headers and body go out in separate writes: without NODELAY, Nagle plus the client's delayed ACK
        # add ~40 ms to every keep-alive response, which would swamp the delays the tests inject.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            # Handshake lazily in the handler thread so a slow client cannot stall accept().
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._active_lock:
            self._active.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self._active_lock:
            self._active.discard(request)
        super().shutdown_request(request)

    def close_active(self) -> None:
        """Cut open (keep-alive) connections so a stopped server really stops answering."""
        with self._active_lock:
            active = list(self._active)
            self._active.clear()
        for sock in active:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class RequestHandler(BaseHTTPRequestHandler):
    """Request handler passed to a :class:`LoopbackHTTPServer` app callable."""

    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 60  # per-connection socket timeout: idle keep-alive connections do not live forever

    def _dispatch(self) -> None:
        try:
            self.server.app(self)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, TimeoutError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default stderr access log."""

    # -- helpers --------------------------------------------------------------------------

    @property
    def path_only(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.path.split("?", 1)[1] if "?" in self.path else ""

    def read_body(self) -> bytes:
        """Read the request body (Content-Length or chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self.rfile.readline(1024)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > _MAX_BODY:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else b""

    def respond(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
        *,
        content_type: str | None = "application/json",
        content_length: int | None = None,
    ) -> None:
        """Send a complete response; the body is omitted for HEAD (headers kept)."""
        self.send_response(status)
        items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        names = {k.lower() for k, _ in items}
        if content_type is not None and "content-type" not in names:
            self.send_header("Content-Type", content_type)
        for key, value in items:
            self.send_header(key, value)
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.wfile.flush()


class LoopbackHTTPServer(_StoppableMixin):
    """A threaded HTTP/1.1 server on 127.0.0.1:<free port> calling ``app(handler)`` per request."""

    def __init__(
        self,
        app: Callable[[RequestHandler], None],
        *,
        host: str = LOOPBACK,
        port: int = 0,
        lifetime: float | None = DEFAULT_LIFETIME,
        ssl_context: ssl.SSLContext | None = None,
        name: str = "loopback-http",
    ) -> None:
        if host not in (LOOPBACK, "::1", "localhost"):
            raise ValueError("test servers bind loopback only")
        server_cls: type[_Server] = _Server
        if ":" in host:

            class _Server6(_Server):
                address_family = socket.AF_INET6

            server_cls = _Server6
        self._server = server_cls((host, port), RequestHandler)
        self._server.app = app
        self._server.ssl_context = ssl_context
        self.host_ip = host
        self.port: int = self._server.server_address[1]
        self.scheme = "https" if ssl_context is not None else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
        )
        self._thread.start()
        self._init_lifetime(lifetime)

    @property
    def host(self) -> str:
        """``host:port`` as it appears in an image reference."""
        return f"[{self.host_ip}]:{self.port}" if ":" in self.host_ip else f"{self.host_ip}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def _shutdown(self) -> None:
        self._server.shutdown()
        self._server.close_active()
        self._server.server_close()
        self._thread.join(timeout=5)


# --------------------------------------------------------------------------------------------
# Fault server
# --------------------------------------------------------------------------------------------


class Fault(StrEnum):
    """What a :class:`FaultServer` answers."""

    #: 500 with a distribution-style ``{"errors": [...]}`` body.
    SERVER_ERROR = "server-error"
    #: 429 TOOMANYREQUESTS with ``ratelimit-limit: 100;w=21600``, ``ratelimit-remaining: 0;w=21600``
    #: and ``Retry-After: 30`` (what Docker Hub sends when the pull quota is exhausted).
    RATE_LIMITED = "rate-limited"
    #: 200, manifest content type and a correct Docker-Content-Digest, body is HTML not JSON.
    NOT_JSON = "not-json"
    #: 200 with Content-Length of a full manifest, half the bytes, then the connection closes.
    TRUNCATED = "truncated"
    #: 200, a valid OCI manifest body, but ``Content-Type: text/html``.
    WRONG_CONTENT_TYPE = "wrong-content-type"


#: A well-formed OCI manifest used as the body of the garbage faults.
FAULT_MANIFEST: bytes = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": _OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(),
            "size": 2,
        },
        "layers": [],
    },
    indent=2,
).encode()
NOT_JSON_BODY = b"<html><body><h1>502 Bad Gateway</h1>captive portal says hi</body></html>\n"

RATE_LIMIT_HEADERS: dict[str, str] = {
    "ratelimit-limit": "100;w=21600",
    "ratelimit-remaining": "0;w=21600",
    "Retry-After": "30",
    "docker-ratelimit-source": "127.0.0.1",
}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    at: float


class FaultServer(LoopbackHTTPServer):
    """Answers every request with ``fault`` (``/v2/`` answers 200 when ``ping_ok``)."""

    def __init__(self, fault: Fault, *, ping_ok: bool = True, lifetime: float | None = DEFAULT_LIFETIME):
        self.fault = Fault(fault)
        self.ping_ok = ping_ok
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        super().__init__(self._app, lifetime=lifetime, name=f"fault-{self.fault.value}")

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def count(self, path: str | None = None) -> int:
        """Number of requests served (optionally only those whose path equals ``path``)."""
        with self._lock:
            return sum(1 for r in self._requests if path is None or r.path == path)

    def _app(self, h: RequestHandler) -> None:
        with self._lock:
            self._requests.append(
                RecordedRequest(h.command, h.path_only, {k.lower(): v for k, v in h.headers.items()}, time.time())
            )
        with contextlib.suppress(ValueError):
            h.read_body()
        api = {"Docker-Distribution-API-Version": "registry/2.0"}
        if self.ping_ok and h.path_only in ("/v2", "/v2/"):
            h.respond(200, b"{}", api)
            return
        fault = self.fault
        if fault is Fault.SERVER_ERROR:
            body = _errors("UNKNOWN", "unknown error: injected fault")
            h.respond(500, body, api)
        elif fault is Fault.RATE_LIMITED:
            body = _errors(
                "TOOMANYREQUESTS",
                "You have reached your pull rate limit. You may increase the limit by authenticating.",
            )
            h.respond(429, body, {**api, **RATE_LIMIT_HEADERS})
        elif fault is Fault.NOT_JSON:
            digest = "sha256:" + hashlib.sha256(NOT_JSON_BODY).hexdigest()
            h.respond(200, NOT_JSON_BODY, {**api, "Docker-Content-Digest": digest}, content_type=_OCI_MANIFEST)
        elif fault is Fault.WRONG_CONTENT_TYPE:
            digest = "sha256:" + hashlib.sha256(FAULT_MANIFEST).hexdigest()
            h.respond(
                200,
                FAULT_MANIFEST,
                {**api, "Docker-Content-Digest": digest},
                content_type="text/html; charset=utf-8",
            )
        elif fault is Fault.TRUNCATED:
            digest = "sha256:" + hashlib.sha256(FAULT_MANIFEST).hexdigest()
            h.close_connection = True
            if h.command == "HEAD":
                h.respond(200, FAULT_MANIFEST, {**api, "Docker-Content-Digest": digest}, content_type=_OCI_MANIFEST)
                return
            h.send_response(200)
            h.send_header("Content-Type", _OCI_MANIFEST)
            h.send_header("Docker-Content-Digest", digest)
            h.send_header("Content-Length", str(len(FAULT_MANIFEST)))
            h.end_headers()
            h.wfile.write(FAULT_MANIFEST[: len(FAULT_MANIFEST) // 2])
            h.wfile.flush()
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
        else:  # pragma: no cover - exhaustive
            raise AssertionError(fault)


def _errors(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message, "detail": None}]}).encode()


def start_fault_server(
    fault: Fault | str, *, ping_ok: bool = True, lifetime: float | None = DEFAULT_LIFETIME
) -> FaultServer:
    """Start a :class:`FaultServer`; use it as ``with start_fault_server(Fault.RATE_LIMITED) as s:``."""
    return FaultServer(Fault(fault), ping_ok=ping_ok, lifetime=lifetime)


# --------------------------------------------------------------------------------------------
# Blackhole and refused port
# --------------------------------------------------------------------------------------------


class Blackhole(_StoppableMixin):
    """Accepts TCP connections (handshake completes) and never sends a byte."""

    def __init__(self, *, lifetime: float | None = DEFAULT_LIFETIME) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self._sock.listen(128)
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._conn_lock = threading.Lock()
        self.accepted = 0
        self._thread = threading.Thread(target=self._loop, name="blackhole", daemon=True)
        self._running = True
        self._thread.start()
        self._init_lifetime(lifetime)

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _loop(self) -> None:
        while self._running:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._conn_lock:
                self._conns.append(conn)
                self.accepted += 1

    def _shutdown(self) -> None:
        self._running = False
        self._thread.join(timeout=5)
        self._sock.close()
        with self._conn_lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.close()
            self._conns.clear()


def start_blackhole(*, lifetime: float | None = DEFAULT_LIFETIME) -> Blackhole:
    """Start a :class:`Blackhole`: requests to ``blackhole.url`` hang until the client times out."""
    return Blackhole(lifetime=lifetime)


class RefusedEndpoint(_StoppableMixin):
    """A loopback port that is bound but not listening: every connect gets ECONNREFUSED.

    Holding the bound socket guarantees no other process grabs the port while the test runs.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self.port: int = self._sock.getsockname()[1]
        self._init_lifetime(None)

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def _shutdown(self) -> None:
        self._sock.close()


def refused_endpoint() -> RefusedEndpoint:
    """A port that refuses connections for as long as the returned object is not stopped."""
    return RefusedEndpoint()


def refused_port() -> int:
    """A free loopback port nobody listens on right now (tiny reuse race; prefer :func:`refused_endpoint`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
    return port


# --------------------------------------------------------------------------------------------
# Delaying proxy
# --------------------------------------------------------------------------------------------

_MANIFEST_PATH = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")
_BLOB_PATH = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$")


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    path: str
    status: int
    at: float


class DelayingProxy(LoopbackHTTPServer):
    """Forwards every request to ``upstream`` after sleeping ``delay_ms``; counts requests by path.

    ``delay_ms`` may be changed while the proxy runs.  Location headers that point at the
    upstream are rewritten to point at the proxy, so blob uploads through the proxy work too.
    """

    def __init__(
        self,
        upstream: str,
        *,
        delay_ms: float = 0.0,
        upstream_verify: ssl.SSLContext | bool = True,
        upstream_timeout: float = 30.0,
        lifetime: float | None = DEFAULT_LIFETIME,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.delay_ms = delay_ms
        self._client = httpx.Client(verify=upstream_verify, timeout=upstream_timeout, follow_redirects=False)
        self._counter_lock = threading.Lock()
        self._log: list[ProxiedRequest] = []
        self._by_path: collections.Counter[str] = collections.Counter()
        self._in_flight = 0
        self.max_in_flight = 0  # the most requests it held at once (for per-registry concurrency caps)
        super().__init__(self._app, lifetime=lifetime, name="delaying-proxy")

    # -- counters ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[ProxiedRequest]:
        with self._counter_lock:
            return list(self._log)

    @property
    def counts(self) -> dict[str, int]:
        """Requests per path (query string stripped)."""
        with self._counter_lock:
            return dict(self._by_path)

    def count(self, path: str | None = None, *, method: str | None = None) -> int:
        with self._counter_lock:
            return sum(
                1 for r in self._log if (path is None or r.path == path) and (method is None or r.method == method)
            )

    def manifest_requests(
        self, name: str | None = None, reference: str | None = None, *, method: str | None = None
    ) -> int:
        """Upstream ``/v2/<name>/manifests/<reference>`` requests (GET and HEAD unless ``method``)."""
        return self._count_matching(_MANIFEST_PATH, name, "reference", reference, method)

    def blob_requests(self, name: str | None = None, digest: str | None = None, *, method: str | None = None) -> int:
        return self._count_matching(_BLOB_PATH, name, "digest", digest, method)

    def _count_matching(
        self, pattern: re.Pattern[str], name: str | None, key: str, value: str | None, method: str | None
    ) -> int:
        n = 0
        for r in self.requests:
            m = pattern.match(r.path)
            if not m or (method is not None and r.method != method):
                continue
            if (name is None or m["name"] == name) and (value is None or m[key] == value):
                n += 1
        return n

    def reset(self) -> None:
        with self._counter_lock:
            self._log.clear()
            self._by_path.clear()
            self.max_in_flight = self._in_flight

    # -- forwarding -------------------------------------------------------------------------

    def _app(self, h: RequestHandler) -> None:
        with self._counter_lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            self._forward(h)
        finally:
            with self._counter_lock:
                self._in_flight -= 1

    def _forward(self, h: RequestHandler) -> None:
        body = h.read_body()
        if self.delay_ms > 0:
            time.sleep(self.delay_ms / 1000.0)
        headers = [(k, v) for k, v in h.headers.items() if k.lower() not in _HOP_BY_HOP]
        try:
            request = self._client.build_request(h.command, self.upstream + h.path, headers=headers, content=body)
            response = self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            self._record(h, 502)
            h.respond(502, _errors("UNKNOWN", f"delaying proxy: upstream failed: {exc!r}"))
            return
        try:
            raw = b"" if h.command == "HEAD" else b"".join(response.iter_raw())
        finally:
            response.close()
        self._record(h, response.status_code)
        out: list[tuple[str, str]] = []
        for key, value in response.headers.multi_items():
            lower = key.lower()
            if lower in _HOP_BY_HOP and not (lower == "content-length" and h.command == "HEAD"):
                continue
            if lower == "location" and value.startswith(self.upstream):
                out.append((key, self.url + value[len(self.upstream) :]))
            else:
                out.append((key, value))
        h.respond(response.status_code, raw, out, content_type=None)

    def _record(self, h: RequestHandler, status: int) -> None:
        with self._counter_lock:
            self._log.append(ProxiedRequest(h.command, h.path_only, status, time.time()))
            self._by_path[h.path_only] += 1

    def _shutdown(self) -> None:
        super()._shutdown()
        self._client.close()


def start_delaying_proxy(
    upstream: str,
    *,
    delay_ms: float = 0.0,
    ca_file: Path | str | None = None,
    lifetime: float | None = DEFAULT_LIFETIME,
) -> DelayingProxy:
    """Start a plain-HTTP proxy in front of ``upstream`` (e.g. ``registry.url``).

    ``ca_file`` is the CA used to verify an HTTPS upstream.
    """
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    return DelayingProxy(upstream, delay_ms=delay_ms, upstream_verify=verify, lifetime=lifetime)
