"""The registry harness tests' registries, one of each kind per test module (module scope: each module's tests
share them, and no module sees what another pushed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import fixtures as f
from tests.support.pushers import StandardImages
from tests.support.registry import RegistryServer


@pytest.fixture(scope="module")
def plain() -> Iterator[RegistryServer]:
    yield from f.plain_registry_fixture()


@pytest.fixture(scope="module")
def images(plain: RegistryServer) -> StandardImages:
    return f.standard_images_fixture(plain)


@pytest.fixture(scope="module")
def basic() -> Iterator[RegistryServer]:
    yield from f.basic_registry_fixture()


@pytest.fixture(scope="module")
def token() -> Iterator[RegistryServer]:
    yield from f.token_registry_fixture()


@pytest.fixture(scope="module")
def proxy(plain: RegistryServer) -> Iterator[RegistryServer]:
    yield from f.proxy_registry_fixture(plain)
