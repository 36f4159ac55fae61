"""Session-scoped real registries (Debian's docker-registry) with the standard test images pushed; a fresh
registry client, and a scriptable hostile registry, per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import fixtures
from tests.support.hostile_registry import HostileRegistry
from tests.support.pushers import StandardImages
from tests.support.registry import RegistryServer
from webhook.registry.client import RegistryClient


@pytest.fixture(scope="session")
def plain_registry() -> Iterator[RegistryServer]:
    yield from fixtures.plain_registry_fixture()


@pytest.fixture(scope="session")
def standard_images(plain_registry: RegistryServer) -> StandardImages:
    return fixtures.standard_images_fixture(plain_registry)


@pytest.fixture(scope="session")
def basic_registry() -> Iterator[RegistryServer]:
    yield from fixtures.basic_registry_fixture()


@pytest.fixture(scope="session")
def token_registry() -> Iterator[RegistryServer]:
    yield from fixtures.token_registry_fixture()


@pytest.fixture(scope="session")
def proxy_registry(plain_registry: RegistryServer) -> Iterator[RegistryServer]:
    yield from fixtures.proxy_registry_fixture(plain_registry)


@pytest.fixture
async def client() -> AsyncIterator[RegistryClient]:
    registry_client = RegistryClient()
    yield registry_client
    await registry_client.close()


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    with HostileRegistry() as registry:
        yield registry
