"""Session-scoped real registries (Debian's docker-registry) with the standard test images pushed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import fixtures
from tests.support.pushers import StandardImages
from tests.support.registry import RegistryServer


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
