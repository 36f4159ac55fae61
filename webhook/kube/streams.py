"""Reading a watch response, cutting it short from another thread, and describing a failure for the log."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

from kubernetes.client.exceptions import ApiException


def watch_lines(response: Any) -> Iterator[bytes]:
    """The newline-delimited JSON events of a watch response, as they arrive."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=True):
        buffer += chunk
        while True:
            end = buffer.find(b"\n")
            if end < 0:
                break
            line, buffer = buffer[:end], buffer[end + 1 :]
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def abort_response(response: Any) -> None:
    """Unblock a thread reading `response`: shutting the socket down wakes a blocked recv (close() may not)."""
    connection = getattr(response, "connection", None)
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def describe_error(exc: BaseException) -> str:
    """A one-line, bounded description; an ApiException's body is a Status, but keep it out of logs anyway."""
    if isinstance(exc, ApiException):
        return f"HTTP {exc.status}: {exc.reason}"
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."
