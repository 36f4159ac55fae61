"""Shared fixtures: a real `pullguard serve` for read-only tests, and a factory for tests that need their own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.server import PullguardServer, start_pullguard


@pytest.fixture(scope="session")
def pullguard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PullguardServer]:
    """One real `pullguard serve` over TLS on a loopback port, embedded default policy, for read-only tests."""
    server = start_pullguard(tmp_path_factory.mktemp("pullguard"))
    yield server
    server.stop()


@pytest.fixture
def pullguard_factory(tmp_path: Path) -> Iterator[Callable[..., PullguardServer]]:
    """Start servers of one's own (with a policy file to rewrite); all are stopped at the end of the test."""
    started: list[PullguardServer] = []

    def start(policy: str | None = None, offline: bool = True) -> PullguardServer:
        server = start_pullguard(tmp_path / f"server{len(started)}", policy=policy, offline=offline)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
