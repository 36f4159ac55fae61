"""An adversarial registry for the outbound-policy tests: crafted challenges, redirects, headers and bodies,
scripted per test, on loopback (or, inside a private network namespace, on any address `lo` carries).

* :class:`HostileRegistry` - answers each path with the handler a test put in ``routes`` (exact path, query
  ignored), ``/v2/`` with 200, anything else 404; records every request (method, path, query, headers).
* handler makers: :func:`challenge`, :func:`redirect`, :func:`document`, :func:`flood`, :func:`token`,
  :func:`requires_bearer`, :func:`requires_basic`.
* :class:`ConnectionRecorder` - a TCP listener that only counts the connections it accepts (and closes them):
  the "was it ever dialed?" probe for addresses the client must never contact.
* :func:`oci_image` - a tiny image (config, manifest and, for several platforms, an index) as bytes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .loopback import LOOPBACK, LoopbackHTTPServer, RequestHandler, _Server, _StoppableMixin

__all__ = [
    "IN_NETNS",
    "ConnectionRecorder",
    "HostileRegistry",
    "Image",
    "Seen",
    "challenge",
    "digest",
    "document",
    "flood",
    "oci_image",
    "redirect",
    "requires_basic",
    "requires_bearer",
    "token",
]

Handler = Callable[[RequestHandler], None]
IN_NETNS = "PULLGUARD_TEST_NETNS"  # set by support.netns: addresses other than loopback are private there
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_LIFETIME = 120.0
_FLOOD_SECONDS = 20.0  # a flood stops by itself: no test leaves a server writing forever


def digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Seen:
    """One request the registry received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]


class HostileRegistry(LoopbackHTTPServer):
    """A registry whose every answer a test scripts through ``routes``."""

    def __init__(self, *, host: str = LOOPBACK, ssl_context: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Handler] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        if host in (LOOPBACK, "::1"):
            super().__init__(self._app, host=host, lifetime=_LIFETIME, ssl_context=ssl_context, name="hostile")
            return
        if os.environ.get(IN_NETNS) != "1":
            raise ValueError("test servers bind other addresses than loopback only inside support.netns")
        self._server = _Server((host, 0), RequestHandler)  # inside a private namespace: still only `lo`
        self._server.app = self._app
        self._server.ssl_context = ssl_context
        self.host_ip, self.port = host, self._server.server_address[1]
        self.scheme = "https" if ssl_context is not None else "http"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="hostile", daemon=True
        )
        self._thread.start()
        self._init_lifetime(_LIFETIME)

    def requests(self, path_prefix: str = "") -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path.startswith(path_prefix)]

    def _app(self, h: RequestHandler) -> None:
        with self._lock:
            self.seen.append(Seen(h.command, h.path_only, h.query, {k.lower(): v for k, v in h.headers.items()}))
        with contextlib.suppress(ValueError):
            h.read_body()
        handler = self.routes.get(h.path_only)
        if handler is not None:
            handler(h)
        elif h.path_only in ("/v2", "/v2/"):
            h.respond(200, b"{}")
        else:
            h.respond(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}')


def challenge(realm: str, *, scheme: str = "Bearer", service: str = "hostile") -> Handler:
    """401 with ``WWW-Authenticate: <scheme> realm="<realm>",service="<service>"``."""
    header = f'{scheme} realm="{realm}",service="{service}"' if scheme == "Bearer" else f'{scheme} realm="{realm}"'

    def handle(h: RequestHandler) -> None:
        h.respond(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": header})

    return handle


def redirect(location: str, status: int = 302) -> Handler:
    def handle(h: RequestHandler) -> None:
        h.respond(status, b"", {"Location": location})

    return handle


def document(body: bytes, content_type: str = OCI_MANIFEST, *, claimed: str | None = "auto") -> Handler:
    """200 with ``body``; ``Docker-Content-Digest`` is its digest ("auto"), the given claim, or absent (None)."""
    headers = {} if claimed is None else {"Docker-Content-Digest": digest(body) if claimed == "auto" else claimed}

    def handle(h: RequestHandler) -> None:
        h.respond(200, body, headers, content_type=content_type)

    return handle


def token(value: str = "hostile-token") -> Handler:
    body = json.dumps({"token": value, "expires_in": 300}).encode()
    return document(body, "application/json", claimed=None)


def requires_bearer(inner: Handler, realm: str, value: str = "hostile-token") -> Handler:
    """``inner`` for requests carrying ``Bearer <value>``, else the challenge naming ``realm``."""
    ask = challenge(realm)

    def handle(h: RequestHandler) -> None:
        (inner if h.headers.get("Authorization") == f"Bearer {value}" else ask)(h)

    return handle


def requires_basic(inner: Handler, username: str, password: str) -> Handler:
    expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    ask = challenge("hostile", scheme="Basic")

    def handle(h: RequestHandler) -> None:
        (inner if h.headers.get("Authorization") == expected else ask)(h)

    return handle


def flood(total: int | None, *, status: int = 200, content_type: str = "application/json") -> Handler:
    """A body of ``total`` zero bytes with its Content-Length, or (None) a chunked body that never ends; either
    stops when the client goes away or after a bounded time."""

    def handle(h: RequestHandler) -> None:
        h.close_connection = True
        h.send_response(status)
        h.send_header("Content-Type", content_type)
        if total is None:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(total))
        h.end_headers()
        chunk = b"0" * 65536
        sent, deadline = 0, time.monotonic() + _FLOOD_SECONDS
        with contextlib.suppress(OSError):
            while (total is None or sent < total) and time.monotonic() < deadline:
                part = chunk if total is None else chunk[: total - sent]
                h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if total is None else part)
                sent += len(part)

    return handle


@dataclass
class Image:
    """A tiny OCI image: ``blobs`` by digest; ``manifest`` is the index when there are several platforms."""

    manifest: bytes
    media_type: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return digest(self.manifest)

    def serve(self, registry: HostileRegistry, repository: str, tag: str) -> None:
        """Route the tag, every manifest by digest and every blob of this image on ``registry``."""
        base = f"/v2/{repository}"
        registry.routes[f"{base}/manifests/{tag}"] = document(self.manifest, self.media_type)
        registry.routes[f"{base}/manifests/{self.digest}"] = document(self.manifest, self.media_type)
        for key, body in self.manifests.items():
            registry.routes[f"{base}/manifests/{key}"] = document(body, OCI_MANIFEST)
        for key, body in self.blobs.items():
            registry.routes[f"{base}/blobs/{key}"] = document(body, "application/octet-stream", claimed=None)


def oci_image(*platforms: tuple[str, str], salt: str = "") -> Image:
    """One manifest per platform (with its config); an index over them when more than one."""
    blobs: dict[str, bytes] = {}
    manifests: dict[str, bytes] = {}
    entries = []
    for os_name, architecture in platforms:
        config = json.dumps({"os": os_name, "architecture": architecture, "rootfs": {}, "salt": salt}).encode()
        blobs[digest(config)] = config
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": digest(config), "size": len(config)},
                "layers": [],
            }
        ).encode()
        manifests[digest(manifest)] = manifest
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest(manifest),
                "size": len(manifest),
                "platform": {"os": os_name, "architecture": architecture},
            }
        )
    if len(entries) == 1:
        (only,) = manifests.values()
        return Image(only, OCI_MANIFEST, blobs, manifests)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    return Image(index, OCI_INDEX, blobs, manifests)


class ConnectionRecorder(_StoppableMixin):
    """Accepts TCP connections on ``(host, port)``, counts them and closes them at once."""

    def __init__(self, host: str, port: int = 0) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(64)
        self._sock.settimeout(0.05)
        self.host, self.port = host, self._sock.getsockname()[1]
        self.accepted = 0
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="recorder", daemon=True)
        self._thread.start()
        self._init_lifetime(_LIFETIME)

    def _loop(self) -> None:
        while self._running:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with contextlib.suppress(OSError):
                conn.close()

    def _shutdown(self) -> None:
        self._running = False
        self._thread.join(timeout=5)
        self._sock.close()
