"""The listening socket, bound before anything else starts: a port in use is a clear error and exit status 3, never
a "listening" line followed by an exit (uvicorn would only find out when it binds, after the start-up work)."""

from __future__ import annotations

import errno
import socket

EXIT_CANNOT_LISTEN = 3
BACKLOG = 2048  # uvicorn's own default


class CannotListen(OSError):
    """The address cannot be bound: in use (another pullguard, an earlier `make run`) or not allowed."""


def bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait out TIME_WAIT
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        why = (
            "the address is in use (another pullguard, or an earlier `make run`?)"
            if exc.errno == errno.EADDRINUSE
            else exc.strerror
        )
        raise CannotListen(f"cannot listen on {host}:{port}: {why}; choose another with --port") from None
    return sock
