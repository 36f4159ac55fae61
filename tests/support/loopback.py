"""Loopback HTTP(S) servers for the test harness: a threading server that stops itself after its lifetime,
cuts keep-alive connections on stop, and hands each request to an app function."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .lifecycle import StopsOnExit

__all__ = ["DEFAULT_LIFETIME", "LOOPBACK", "LoopbackHTTPServer", "RequestHandler", "free_port"]


#: Seconds after which a helper server stops itself if nobody called ``stop()``.
DEFAULT_LIFETIME = 600.0


LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on `host` (127.0.0.1 or ::1) that was free a moment ago: whoever binds it next may race."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


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
