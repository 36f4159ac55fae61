"""Point pullguard's registry client at the test registries the way nodes are pointed at registries: with a
containerd hosts directory (loopback registries are node-local and are only contacted when mapped)."""

from __future__ import annotations

from pathlib import Path

from policies.image.pull_secret_parse import Credential
from policies.image.reference import parse_docker_ref
from policies.lookup import RegistryConfig
from webhook.registry.client import RegistryClient


def map_host(hosts_dir: Path, host: str, server: str, ca_file: str | Path | None = None, extra: str = "") -> Path:
    directory = hosts_dir / host
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f'server = "{server}"']
    if ca_file is not None:
        lines.append(f'ca = "{ca_file}"')
    (directory / "hosts.toml").write_text("\n".join(lines) + "\n" + extra)
    return hosts_dir


def config(hosts_dir: Path | None, timeout: float = 3.0, **kwargs: object) -> RegistryConfig:
    return RegistryConfig(hosts_dir=str(hosts_dir) if hosts_dir else None, timeout_seconds=timeout, **kwargs)  # type: ignore[arg-type]


async def lookup(
    client: RegistryClient,
    image: str,
    registry_config: RegistryConfig,
    credentials: tuple[Credential, ...] = (),
    platforms: bool = True,
):  # type: ignore[no-untyped-def]
    return await client.lookup(parse_docker_ref(image), credentials, registry_config, platforms=platforms)
