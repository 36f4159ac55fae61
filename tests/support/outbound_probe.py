"""Run inside `support.netns` (``python -m support.outbound_probe``): hostile registries send pullguard's
registry client toward addresses it must never contact, and listeners on those addresses count every
connection. Prints one JSON object: scenario name -> what the lookup said and what each listener saw.

Addresses on the namespace's `lo`: 169.254.169.254 and fd00:ec2::254 (metadata: listeners on 80 and 443),
10.99.0.1 (a "remote" registry: not loopback), 10.99.0.2 (a "remote" token service), 127.0.0.1 (a trap that
records requests: a realm or redirect target on loopback that a remote registry must not reach). Lookups are
anonymous (no credentials are needed to abuse a client) unless the scenario's name ends in -with-credentials.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from policies.image.pull_secret_parse import Credential, CredentialSource
from policies.image.reference import parse_docker_ref
from policies.lookup import RegistryConfig
from webhook.registry.client import RegistryClient

from .hostile_registry import ConnectionRecorder, HostileRegistry, challenge, redirect, token

METADATA_V4, METADATA_V6, REMOTE, REMOTE_REALM = "169.254.169.254", "fd00:ec2::254", "10.99.0.1", "10.99.0.2"
ADDRESSES = (METADATA_V4, METADATA_V6, REMOTE, REMOTE_REALM)
HOSTS = {  # the DNS answers of the namespace
    "meta.example": METADATA_V4,
    "meta6.example": METADATA_V6,
    "loopname.example": "127.0.0.1",
    "remote.example": REMOTE,
}
SECRET = Credential("robot", "probe-s3cret", source=CredentialSource("shop", "regcred"))


class _World:
    def __init__(self) -> None:
        self.metadata = [ConnectionRecorder(METADATA_V4, 80), ConnectionRecorder(METADATA_V4, 443)]
        self.metadata.append(ConnectionRecorder(METADATA_V6, 80))
        self.loop_listener = ConnectionRecorder("127.0.0.1")
        self.trap = HostileRegistry()  # on loopback
        self.remote = HostileRegistry(host=REMOTE)
        self.realm = HostileRegistry(host=REMOTE_REALM)
        self.hosts_dir = Path(tempfile.mkdtemp(prefix="probe-hosts-"))
        directory = self.hosts_dir / "remote.example"
        directory.mkdir()
        (directory / "hosts.toml").write_text(f'server = "{self.remote.url}"\n')

    def counts(self) -> dict[str, Any]:
        return {
            "metadata_connections": sum(r.accepted for r in self.metadata),
            "loopback_connections": self.loop_listener.accepted,
            "trap_requests": len(self.trap.requests()),
            "trap_authorization": sum("authorization" in s.headers for s in self.trap.requests()),
            "realm_requests": len(self.realm.requests()),
            "realm_authorization": sum("authorization" in s.headers for s in self.realm.requests()),
        }

    def stop(self) -> None:
        for server in (*self.metadata, self.loop_listener, self.trap, self.remote, self.realm):
            server.stop()


Setup = Callable[[_World, str], str]  # (world, manifest path) -> the image to look up


def _realm(url: str) -> Setup:
    def setup(world: _World, path: str) -> str:
        world.remote.routes[path] = challenge(url.format(trap=world.trap.url, realm=world.realm.url))
        return "remote.example"

    return setup


def _redirect(url: str) -> Setup:
    def setup(world: _World, path: str) -> str:
        world.remote.routes[path] = redirect(url.format(trap=world.trap.url))
        return "remote.example"

    return setup


def _token_redirect(world: _World, path: str) -> str:
    world.remote.routes[path] = challenge(f"{world.realm.url}/token")
    world.realm.routes["/token"] = redirect("http://169.254.169.254/latest/meta-data/iam/", 307)
    return "remote.example"


def _registry(name: str) -> Setup:
    def setup(world: _World, path: str) -> str:
        return name.format(loop_port=world.loop_listener.port)

    return setup


def _trap_realm_answers(world: _World, path: str) -> str:
    world.remote.routes[path] = challenge(f"{world.realm.url}/token")
    world.realm.routes["/token"] = token()
    return "remote.example"


# name -> (setup, allowLinkLocal)
SCENARIOS: dict[str, tuple[Setup, bool]] = {
    "realm-metadata-http": (_realm("http://169.254.169.254/latest/meta-data/iam/security-credentials/"), False),
    "realm-metadata-http-with-credentials": (_realm("http://169.254.169.254/latest/meta-data/"), False),
    "realm-metadata-https-with-credentials": (_realm("https://169.254.169.254/latest/meta-data/"), False),
    "realm-metadata-https": (_realm("https://169.254.169.254/latest/meta-data/"), False),
    "realm-metadata-userinfo": (_realm("http://user@169.254.169.254/latest/meta-data/"), False),
    "realm-metadata-dns": (_realm("http://meta.example/token"), False),
    "realm-metadata-ipv6": (_realm("http://[fd00:ec2::254]/token"), False),
    "realm-metadata-ipv6-dns": (_realm("http://meta6.example/token"), False),
    "realm-metadata-ipv4-mapped": (_realm("http://[::ffff:169.254.169.254]/token"), False),
    "realm-metadata-decimal": (_realm("http://2852039166/token"), False),
    "redirect-metadata": (_redirect("http://169.254.169.254/latest/meta-data/"), False),
    "redirect-metadata-dns": (_redirect("http://meta.example/latest/meta-data/"), False),
    "token-redirect-metadata": (_token_redirect, False),
    "realm-loopback-of-remote-registry-with-credentials": (_realm("{trap}/token"), False),
    "realm-loopback-of-remote-registry": (_realm("{trap}/token"), False),
    "realm-loopback-https-of-remote-registry": (_realm("https://127.0.0.1:1/token"), False),
    "redirect-loopback-of-remote-registry": (_redirect("{trap}/v2/stolen"), False),
    "registry-resolving-to-metadata": (_registry("meta.example"), False),
    "registry-resolving-to-loopback": (_registry("loopname.example:{loop_port}"), False),
    "realm-plain-http-remote-with-credentials": (_realm("{realm}/token"), False),
    "remote-realm-over-plain-http": (_trap_realm_answers, False),
    "control-metadata-allowed": (_realm("http://169.254.169.254/latest/meta-data/"), True),
}


async def _run() -> dict[str, Any]:
    world = _World()
    client = RegistryClient()
    results: dict[str, Any] = {}
    try:
        for number, (name, (setup, allow)) in enumerate(SCENARIOS.items()):
            repository = f"s{number}/app"
            registry = setup(world, f"/v2/{repository}/manifests/1")
            before = world.counts()
            config = RegistryConfig(hosts_dir=str(world.hosts_dir), timeout_seconds=3, allow_link_local=allow)  # type: ignore[call-arg]
            credentials = (SECRET,) if name.endswith("-with-credentials") else ()
            facts = await client.lookup(parse_docker_ref(f"{registry}/{repository}:1"), credentials, config)
            after = world.counts()
            results[name] = {
                "status": str(facts.status),
                "detail": facts.detail,
                **{key: after[key] - before[key] for key in after},
            }
    finally:
        await client.close()
        world.stop()
    return results


def main() -> None:
    json.dump(asyncio.run(_run()), sys.stdout)


if __name__ == "__main__":
    main()
