"""What uvicorn leaves to the deployment, for a server that anyone on the pod network can reach.

- A request read deadline (slowloris): a new connection must deliver a whole request, headers and body, within
  `request_timeout` seconds, and so must every later request from its first byte on. Idle keep-alive time between
  requests stays uvicorn's `timeout_keep_alive` (longer than the API server's connection reuse).
- Draining: on SIGTERM the service first reports not ready for `shutdown_delay` seconds while it keeps answering,
  so the endpoint is removed from the Service before the port closes (as Gatekeeper does); then uvicorn stops
  accepting, finishes in-flight reviews and exits.
The connection cap is uvicorn's own `limit_concurrency` (503 beyond it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from types import FrameType

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from webhook.limits import REQUEST_TIMEOUT_SECONDS

log = logging.getLogger("pullguard.server")


class RequestDeadline:
    """Closes a connection whose request does not arrive whole within `timeout` seconds of its first byte.

    A request's start is one float stored; the timer is made only when none is pending, and when it fires while
    a later request is in progress it waits out that request's own remainder. So a kept-alive connection makes a
    timer about once per `timeout`, not a timer and a cancel per request (issue 23: ~10 us of a review's CPU).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, expire: Callable[[], None]) -> None:
        self._loop, self._timeout, self._expire = loop, timeout, expire
        self._started: float | None = None  # when the request in progress began; None between requests
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._started = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_later(self._timeout, self._check)

    def finish(self) -> None:
        self._started = None  # idle keep-alive time is uvicorn's timeout_keep_alive

    def stop(self) -> None:
        self._started = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self._started is None:
            return
        remaining = self._started + self._timeout - self._loop.time()
        if remaining > 0:
            self._timer = self._loop.call_later(remaining, self._check)
        else:
            self._expire()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request does not arrive whole in time."""

    request_timeout = REQUEST_TIMEOUT_SECONDS
    _deadline: RequestDeadline

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = RequestDeadline(self.loop, self.request_timeout, self._expired)
        self._deadline.start()  # a connection that never speaks

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._deadline.start()

    def on_message_complete(self) -> None:
        self._deadline.finish()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.stop()
        super().connection_lost(exc)

    def _expired(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(request_timeout: float) -> type[GuardedHttpToolsProtocol]:
    return type("GuardedHttpTools", (GuardedHttpToolsProtocol,), {"request_timeout": request_timeout})


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first SIGTERM/SIGINT starts `shutdown_delay` seconds of draining."""

    def __init__(self, config: uvicorn.Config, shutdown_delay: float) -> None:
        super().__init__(config)
        self.shutdown_delay = shutdown_delay
        self.draining = threading.Event()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.shutdown_delay <= 0 or self.draining.is_set():
            super().handle_exit(sig, frame)
            return
        self.draining.set()
        log.info("draining before shutdown", extra={"fields": {"delaySeconds": self.shutdown_delay}})
        stop = threading.Timer(self.shutdown_delay, super().handle_exit, args=(sig, frame))
        stop.daemon = True
        stop.start()

    def readiness(self) -> list[str]:
        return ["shutting down: draining before the port closes"] if self.draining.is_set() else []
