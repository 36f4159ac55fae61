"""Loopback servers for the failure modes a real registry will not produce on demand.

Every server here binds 127.0.0.1 on a free port, runs in daemon threads, has a bounded
lifetime (``lifetime`` seconds, after which it stops itself) and a ``stop()`` that is idempotent.
All of them are usable as context managers.

* :func:`start_fault_server` - answers every request with one :class:`Fault` (500, 429 with
  rate-limit headers, a non-JSON manifest, a truncated body, a manifest with a wrong
  content type).
* :func:`start_blackhole` - accepts TCP connections and never answers (client read timeout).
* :func:`refused_endpoint` / :func:`refused_port` - a port nobody listens on (connection refused).

They are built on ``support.loopback.LoopbackHTTPServer`` (the token issuer and the delaying proxy,
``support.delaying_proxy``, use it too).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from .loopback import DEFAULT_LIFETIME, LOOPBACK, LoopbackHTTPServer, RequestHandler, _StoppableMixin

__all__ = [
    "Blackhole",
    "Fault",
    "FaultServer",
    "RecordedRequest",
    "RefusedEndpoint",
    "refused_endpoint",
    "refused_port",
    "start_blackhole",
    "start_fault_server",
]


_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


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


class _LoopbackPort(_StoppableMixin):
    """A plain-HTTP address on 127.0.0.1 that is not an HTTP server (see the two below)."""

    port: int

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


class Blackhole(_LoopbackPort):
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


class RefusedEndpoint(_LoopbackPort):
    """A loopback port that is bound but not listening: every connect gets ECONNREFUSED.

    Holding the bound socket guarantees no other process grabs the port while the test runs.
    """

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((LOOPBACK, 0))
        self.port: int = self._sock.getsockname()[1]
        self._init_lifetime(None)

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
