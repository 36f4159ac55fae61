"""A plain-HTTP proxy in front of a real registry that delays every request and counts them: the benchmark's
slow upstream and the tests' witness for "exactly one upstream request"."""

from __future__ import annotations

import collections
import re
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from .faults import _errors
from .loopback import _HOP_BY_HOP, DEFAULT_LIFETIME, LoopbackHTTPServer, RequestHandler

__all__ = ["DelayingProxy", "ProxiedRequest", "start_delaying_proxy"]


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
