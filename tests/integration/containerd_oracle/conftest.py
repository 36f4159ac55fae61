"""The containerd oracle tests' shared daemon and images: one private containerd (which alone resolves the
helpers' PRIV name, to 127.0.0.1) and the oracle's images, pushed once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.containerd_oracle.helpers import PRIV, oracle_images
from tests.support.containerd import ContainerdDaemon, containerd_fixture
from tests.support.image_model import PushedImage
from tests.support.registry import RegistryServer


@pytest.fixture(scope="session")
def containerd() -> Iterator[ContainerdDaemon]:
    yield from containerd_fixture(hosts={PRIV: "127.0.0.1"})


@pytest.fixture(scope="session")
def images(plain_registry: RegistryServer, basic_registry: RegistryServer) -> dict[str, PushedImage]:
    """Seeds unique to the oracle: the layers its tests corrupt are shared with no other test."""
    return oracle_images(plain_registry, basic_registry)
