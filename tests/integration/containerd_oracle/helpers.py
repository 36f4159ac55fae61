"""Shared by the containerd oracle tests (test_containerd_oracle_*.py): the registry name only ctr can resolve, the
images they pull, hosts directories, credentials, and corrupting a pushed layer."""

from __future__ import annotations

from pathlib import Path

from tests.support.containerd import write_hosts_dir
from tests.support.image_model import PushedImage
from tests.support.pushers import push_arm64_only_index, push_multiarch_index, push_single_arch
from tests.support.registry import RegistryServer

PRIV = "priv.example"  # a registry name that exists only in ctr's /etc/hosts (-> 127.0.0.1)


def oracle_images(plain_registry: RegistryServer, basic_registry: RegistryServer) -> dict[str, PushedImage]:
    """Seeds are unique to the oracle's tests, so the corrupted blobs are shared with no other test."""
    return {
        "multi": push_multiarch_index(plain_registry, "oracle/multi", "1", seed="oracle-multi"),
        "single": push_single_arch(plain_registry, "oracle/single", "1", seed="oracle-single"),
        "arm64only": push_arm64_only_index(plain_registry, "oracle/arm64-only", "1", seed="oracle-arm64"),
        "basic": push_multiarch_index(basic_registry, "oracle/basic", "1", seed="oracle-basic"),
    }


def plain_hosts(tmp_path: Path, registry: RegistryServer) -> Path:
    return write_hosts_dir(tmp_path / "certs.d", registry.host, server=registry.url)


def basic_user(registry: RegistryServer, password: str | None = None) -> str:
    return f"{registry.username}:{password or registry.password}"


def corrupt_layer(registry: RegistryServer, image: PushedImage, how: str) -> None:
    hexdigest = image.manifest.layers[0].digest.removeprefix("sha256:")
    data = registry.storage_dir / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    if how == "flip":
        blob = data.read_bytes()
        data.write_bytes(bytes([blob[0] ^ 1]) + blob[1:])
    else:
        data.unlink()
