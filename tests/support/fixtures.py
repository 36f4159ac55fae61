"""Fixture bodies as plain functions/generators, to be wrapped in ``conftest.py``.

Example (session scope is the intended use - each registry starts in ~0.1 s)::

    import pytest
    from tests.support import fixtures as f

    @pytest.fixture(scope="session")
    def plain_registry():
        yield from f.plain_registry_fixture()

    @pytest.fixture(scope="session")
    def standard_images(plain_registry):
        return f.standard_images_fixture(plain_registry)

Every generator stops what it started; every registry function skips the test (with the
reason) when ``/usr/bin/docker-registry`` is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .delaying_proxy import DelayingProxy, start_delaying_proxy
from .faults import (
    Blackhole,
    Fault,
    FaultServer,
    RefusedEndpoint,
    refused_endpoint,
    start_blackhole,
    start_fault_server,
)
from .pushers import StandardImages, push_standard_images
from .registry import (
    RegistryServer,
    registry_available,
    skip_reason,
    start_basic_registry,
    start_plain_registry,
    start_proxy_registry,
    start_token_registry,
)
from .token_issuer import TokenIssuer, start_token_issuer

__all__ = [
    "basic_registry_fixture",
    "blackhole_fixture",
    "delaying_proxy_fixture",
    "fault_server_fixture",
    "plain_registry_fixture",
    "proxy_registry_fixture",
    "refused_endpoint_fixture",
    "require_docker_registry",
    "standard_images_fixture",
    "token_issuer_fixture",
    "token_registry_fixture",
]


def require_docker_registry() -> None:
    """``pytest.skip`` with a clear reason when docker-registry is not installed."""
    if not registry_available():
        pytest.skip(skip_reason())


def _serve(server: RegistryServer) -> Iterator[RegistryServer]:
    try:
        yield server
    finally:
        server.stop()


def plain_registry_fixture(workdir: Path | None = None, **kwargs: Any) -> Iterator[RegistryServer]:
    """(a) plain HTTP, anonymous."""
    require_docker_registry()
    yield from _serve(start_plain_registry(workdir=workdir, **kwargs))


def basic_registry_fixture(workdir: Path | None = None, **kwargs: Any) -> Iterator[RegistryServer]:
    """(b) TLS with a fresh test CA (``server.ca_file``) + htpasswd basic auth."""
    require_docker_registry()
    yield from _serve(start_basic_registry(workdir=workdir, **kwargs))


def token_registry_fixture(workdir: Path | None = None, **kwargs: Any) -> Iterator[RegistryServer]:
    """(c) token auth; ``server.token_issuer`` is the issuer (users: ``DEFAULT_TOKEN_USERS``)."""
    require_docker_registry()
    yield from _serve(start_token_registry(workdir=workdir, **kwargs))


def proxy_registry_fixture(
    upstream: RegistryServer, workdir: Path | None = None, **kwargs: Any
) -> Iterator[RegistryServer]:
    """(d) pull-through cache in front of ``upstream`` (normally the plain registry)."""
    require_docker_registry()
    yield from _serve(start_proxy_registry(upstream, workdir=workdir, **kwargs))


def token_issuer_fixture(workdir: Path, **kwargs: Any) -> Iterator[TokenIssuer]:
    """A stand-alone token issuer (pass it to ``start_token_registry(issuer=...)``)."""
    issuer = start_token_issuer(workdir, **kwargs)
    try:
        yield issuer
    finally:
        issuer.stop()


def standard_images_fixture(registry: RegistryServer, *, prefix: str = "harness", tag: str = "1.0") -> StandardImages:
    """Push one of each image kind (see :func:`push_standard_images`) and return their digests."""
    return push_standard_images(registry, prefix=prefix, tag=tag)


def delaying_proxy_fixture(upstream: RegistryServer, *, delay_ms: float = 0.0) -> Iterator[DelayingProxy]:
    proxy = start_delaying_proxy(upstream.url, delay_ms=delay_ms, ca_file=upstream.ca_file)
    try:
        yield proxy
    finally:
        proxy.stop()


def fault_server_fixture(fault: Fault | str, *, ping_ok: bool = True) -> Iterator[FaultServer]:
    server = start_fault_server(fault, ping_ok=ping_ok)
    try:
        yield server
    finally:
        server.stop()


def blackhole_fixture() -> Iterator[Blackhole]:
    server = start_blackhole()
    try:
        yield server
    finally:
        server.stop()


def refused_endpoint_fixture() -> Iterator[RefusedEndpoint]:
    endpoint = refused_endpoint()
    try:
        yield endpoint
    finally:
        endpoint.stop()
