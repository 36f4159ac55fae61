"""The registry client against real registries (Debian's docker-registry): every outcome class is produced by a
real condition, and every lookup answers within its budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.image.platforms import Platform
from policies.image.pull_secret_parse import Credential, CredentialSource
from policies.registry_facts import Cause, LookupStatus
from tests.integration.registry_helpers import config, lookup, map_host
from tests.support.faults import refused_endpoint
from tests.support.pushers import StandardImages, push_single_arch
from tests.support.registry import RegistryServer
from webhook.registry.client import RegistryClient

pytestmark = pytest.mark.registry

AMD64, ARM64, ARMV7 = Platform("linux", "amd64"), Platform("linux", "arm64"), Platform("linux", "arm", "v7")


@pytest.fixture
def plain_hosts(tmp_path: Path, plain_registry: RegistryServer) -> Path:
    return map_host(tmp_path / "certs.d", plain_registry.host, plain_registry.url)


@pytest.mark.parametrize(
    ("kind", "platforms"),
    [
        ("oci_index", (AMD64, ARM64, ARMV7)),  # attestation entries (unknown/unknown) are not platforms
        ("docker_list", (AMD64, ARM64, ARMV7)),
        ("docker_v2", (AMD64,)),  # single-arch: the platform comes from the config blob
        ("oci_single", (AMD64,)),
        ("arm64_only", (ARM64,)),
    ],
)
async def test_existing_images_and_their_platforms(
    client: RegistryClient, plain_hosts: Path, standard_images: StandardImages, kind: str, platforms: tuple
) -> None:
    pushed = getattr(standard_images, kind)
    facts = await lookup(client, f"{pushed.host}/{pushed.repository}:{pushed.tag}", config(plain_hosts))
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.digest == pushed.digest
    assert facts.media_type == pushed.media_type
    assert set(facts.platforms or ()) == set(platforms)
    assert facts.endpoint.startswith("http://127.0.0.1")


async def test_lookup_by_digest(client: RegistryClient, plain_hosts: Path, standard_images: StandardImages) -> None:
    pushed = standard_images.oci_index
    facts = await lookup(client, f"{pushed.host}/{pushed.repository}@{pushed.digest}", config(plain_hosts))
    assert facts.status is LookupStatus.EXISTS
    assert facts.digest == pushed.digest


async def test_missing_tag_lists_the_closest_existing_tags(
    client: RegistryClient, plain_registry: RegistryServer, plain_hosts: Path
) -> None:
    for tag in ("1.24.0", "1.25.3", "1.25.4", "2.0.0"):
        push_single_arch(plain_registry, "shop/web", tag)
    facts = await lookup(client, f"{plain_registry.host}/shop/web:1.25.5", config(plain_hosts))
    assert facts.status is LookupStatus.NOT_FOUND
    assert facts.detail == "manifest unknown"
    assert facts.similar_tags[:2] == ("1.25.4", "1.25.3")
    assert "2.0.0" not in facts.similar_tags[:1]
    missing_repo = await lookup(client, f"{plain_registry.host}/no/such-repo:1", config(plain_hosts))
    assert missing_repo.status is LookupStatus.NOT_FOUND
    assert missing_repo.similar_tags == ()
    assert missing_repo.detail == "repository unknown" and missing_repo.cause is Cause.REPOSITORY_UNKNOWN
    assert facts.cause is None  # a missing tag in a known repository


async def test_node_local_registries_are_not_contacted_unless_mapped(
    client: RegistryClient, plain_registry: RegistryServer, standard_images: StandardImages
) -> None:
    image = f"{plain_registry.host}/harness/oci-index:1.0"
    facts = await lookup(client, image, config(None))
    assert facts.status is LookupStatus.NODE_LOCAL
    for host in ("localhost:5000", "[::1]:5000", "127.0.0.1"):
        assert (await lookup(client, f"{host}/app:1", config(None))).status is LookupStatus.NODE_LOCAL


async def test_link_local_and_metadata_addresses_are_refused_without_traffic(client: RegistryClient) -> None:
    for image in ("169.254.169.254/latest/meta-data:1", "[fe80::1]:5000/app:1", "[fd00:ec2::254]/app:1"):
        facts = await lookup(client, image, config(None, timeout=1))
        assert facts.status is LookupStatus.BLOCKED, facts
        assert "meta" not in facts.detail or facts.detail


async def test_basic_auth_over_tls(client: RegistryClient, basic_registry: RegistryServer, tmp_path: Path) -> None:
    push_single_arch(basic_registry, "team/app", "1.0")
    hosts = map_host(tmp_path, basic_registry.host, basic_registry.url, basic_registry.ca_file)
    image = f"{basic_registry.host}/team/app:1.0"
    anonymous = await lookup(client, image, config(hosts))
    assert anonymous.status is LookupStatus.UNAUTHORIZED
    assert anonymous.credentials_sent is False
    good = Credential(
        basic_registry.username or "", basic_registry.password or "", source=CredentialSource("shop", "regcred")
    )
    assert (await lookup(client, image, config(hosts), (good,))).status is LookupStatus.EXISTS
    bad = Credential("pullguard", "wrong-password", source=CredentialSource("shop", "stale"))
    rejected = await lookup(client, image, config(hosts), (bad,))
    assert rejected.status is LookupStatus.UNAUTHORIZED
    assert rejected.credentials_sent is True
    assert rejected.credential_sources == ("secret shop/stale",)
    # the kubelet tries every matching credential: a good one after a stale one still pulls
    assert (await lookup(client, image, config(hosts), (bad, good))).status is LookupStatus.EXISTS
    assert "wrong-password" not in repr(rejected) and "wrong-password" not in repr(bad)


async def test_tls_with_an_unknown_ca(client: RegistryClient, basic_registry: RegistryServer, tmp_path: Path) -> None:
    hosts = map_host(tmp_path, basic_registry.host, basic_registry.url)  # no ca: the system roots
    facts = await lookup(client, f"{basic_registry.host}/team/app:1.0", config(hosts))
    assert facts.status is LookupStatus.TLS
    assert "unknown authority" in facts.detail


async def test_token_auth(client: RegistryClient, token_registry: RegistryServer, tmp_path: Path) -> None:
    push_single_arch(token_registry, "team/app", "1.0")
    push_single_arch(token_registry, "team/app", "1.1")
    push_single_arch(token_registry, "allowed/app", "1.0")
    issuer = token_registry.token_issuer
    assert issuer is not None
    hosts = map_host(tmp_path, token_registry.host, token_registry.url)
    reader = Credential("reader", "reader-token-pass", source=CredentialSource("shop", "reader"))
    before = issuer.request_count
    assert (await lookup(client, f"{token_registry.host}/team/app:1.0", config(hosts), (reader,))).status is (
        LookupStatus.EXISTS
    )
    assert (await lookup(client, f"{token_registry.host}/team/app:1.1", config(hosts), (reader,))).status is (
        LookupStatus.EXISTS
    )
    assert issuer.request_count - before == 1, "the token for repository:team/app:pull must be cached"

    limited = Credential("limited", "limited-token-pass", source=CredentialSource("shop", "limited"))
    denied = await lookup(client, f"{token_registry.host}/team/app:1.0", config(hosts), (limited,))
    assert denied.status is LookupStatus.DENIED, denied
    assert "insufficient_scope" in denied.detail
    allowed = await lookup(client, f"{token_registry.host}/allowed/app:1.0", config(hosts), (limited,))
    assert allowed.status is LookupStatus.EXISTS

    wrong = Credential("reader", "nope", source=CredentialSource("shop", "wrong"))
    refused = await lookup(client, f"{token_registry.host}/team/app:1.0", config(hosts), (wrong,))
    assert refused.status is LookupStatus.UNAUTHORIZED
    assert refused.credentials_sent is True


async def test_proxy_registry_serves_what_only_upstream_has(
    client: RegistryClient, proxy_registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    pushed = standard_images.oci_index
    hosts = map_host(tmp_path, proxy_registry.host, proxy_registry.url)
    facts = await lookup(client, f"{proxy_registry.host}/{pushed.repository}:{pushed.tag}", config(hosts))
    assert facts.status is LookupStatus.EXISTS
    assert facts.digest == pushed.digest


async def test_hosts_toml_mirror_is_asked_first(
    client: RegistryClient, proxy_registry: RegistryServer, standard_images: StandardImages, tmp_path: Path
) -> None:
    # registry.example.com is never contacted: its mirror (the pull-through cache) answers first, as on a node
    mirror = f'[host."{proxy_registry.url}"]\n  capabilities = ["pull", "resolve"]\n'
    hosts = map_host(tmp_path, "registry.example.com", "https://registry.example.com", extra=mirror)
    pushed = standard_images.docker_list
    facts = await lookup(client, f"registry.example.com/{pushed.repository}:{pushed.tag}", config(hosts))
    assert facts.status is LookupStatus.EXISTS
    assert facts.endpoint == f"{proxy_registry.url}/v2"
    assert facts.registry == "registry.example.com"


async def test_credentials_go_to_every_hosts_toml_endpoint(
    client: RegistryClient, basic_registry: RegistryServer, plain_registry: RegistryServer, tmp_path: Path
) -> None:
    """The kubelet's credentials carry no ServerAddress, so containerd presents them to each host hosts.toml
    lists for the registry (CRI ParseAuth): a private registry known to the nodes by another name is pulled."""
    push_single_arch(basic_registry, "team/app", "1.0")
    good = Credential(
        basic_registry.username or "", basic_registry.password or "", source=CredentialSource("shop", "regcred")
    )
    as_host = tmp_path / "as-host"
    map_host(as_host, "priv.example", "https://priv.example", extra=_host_table(basic_registry))
    as_server = map_host(tmp_path / "as-server", "priv.example", basic_registry.url, basic_registry.ca_file)
    for hosts in (as_host, as_server):
        facts = await lookup(client, "priv.example/team/app:1.0", config(hosts), (good,))
        assert facts.status is LookupStatus.EXISTS, facts
        assert facts.credentials_sent is True
        assert facts.platforms == (AMD64,)
    # a mirror that lacks the image answers 404 and the pull falls through to the server, credentials and all
    mirrored = map_host(
        tmp_path / "mirrored", "priv.example", basic_registry.url, basic_registry.ca_file, _host_table(plain_registry)
    )
    facts = await lookup(client, "priv.example/team/app:1.0", config(mirrored), (good,))
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.endpoint == f"{basic_registry.url}/v2"
    missing = await lookup(client, "priv.example/team/app:9.9", config(mirrored), (good,))
    assert missing.status is LookupStatus.NOT_FOUND, missing  # not a false "unauthorized"
    # the host 404s and the server refuses: containerd reports the first non-404 error, not "not found"
    with refused_endpoint() as refused:
        failing = map_host(tmp_path / "failing", "priv.example", refused.url, extra=_host_table(basic_registry))
        unreachable = await lookup(client, "priv.example/team/app:9.9", config(failing), (good,))
    assert unreachable.status is LookupStatus.REFUSED, unreachable


def _host_table(registry: RegistryServer) -> str:
    ca = f'ca = "{registry.ca_file}"\n' if registry.ca_file else ""
    return f'\n[host."{registry.url}"]\ncapabilities = ["pull", "resolve"]\n{ca}'
