"""The registry client's endpoint logic against MockTransport registries: the seam itself, which endpoints are asked
and in what order (hosts.toml mirrors, then the registry), and HEAD then GET as containerd resolves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from policies.lookup import RegistryConfig
from policies.registry_facts import LookupStatus
from tests.unit.registry_mock import (
    AMD64,
    IMAGE,
    MIRROR_A,
    MIRROR_B,
    REGISTRY,
    REPOSITORY,
    Handler,
    SyncHandler,
    Wire,
    answer,
    lookup,
    no_dns,  # noqa: F401 - the autouse fixture: nothing is resolved
    refused,
    serve,
)
from webhook.registry.client import RegistryClient
from webhook.registry.endpoint import RegistryEndpoint
from webhook.registry.guard import AddressGuard
from webhook.registry.manifests import OCI_MANIFEST
from webhook.registry.outbound import GuardedBackend, NameGuard, new_client

# --- the seam itself ------------------------------------------------------------------------------------------------


async def test_the_seam_is_off_by_default_and_replaces_only_the_transport() -> None:
    endpoint = RegistryEndpoint("https", REGISTRY)
    real = new_client(endpoint)
    mock = httpx.MockTransport(lambda request: httpx.Response(200))
    substituted = new_client(endpoint, mock)
    try:
        # production: every dial goes through the socket-level guard; the seam: the given transport, as is
        assert isinstance(real._transport._pool._network_backend, GuardedBackend)  # type: ignore[attr-defined]
        assert substituted._transport is mock
        for client in (real, substituted):  # the same client settings either way
            assert client.follow_redirects is False and client.trust_env is False
    finally:
        await real.aclose()
        await substituted.aclose()
    assert type(RegistryClient()._outbound.guard) is AddressGuard
    assert type(RegistryClient(transport=mock)._outbound.guard) is NameGuard


async def test_name_guard_judges_names_as_written() -> None:
    names = NameGuard()
    assert await names.addresses("registry.test:5000") == ()
    assert await names.addresses("169.254.169.254:80") == ("169.254.169.254",)
    assert await names.addresses("[fe80::1%lo]:5000") == ("fe80::1%lo",)
    assert await names.addresses("localhost:5000") == ("127.0.0.1", "::1")
    assert await names.addresses("Registry.LOCALHOST") == ("127.0.0.1", "::1")


async def test_a_plain_lookup_reads_the_manifest_and_the_platform_from_the_config() -> None:
    wire = Wire({REGISTRY: serve()})
    facts = await lookup(wire)
    assert facts.status is LookupStatus.EXISTS, facts
    assert (facts.digest, facts.media_type, facts.platforms) == (IMAGE.digest, OCI_MANIFEST, (AMD64,))
    assert facts.endpoint == f"https://{REGISTRY}/v2"
    assert wire.asked() == [("GET", REGISTRY)] and wire.asked("blobs") == [("GET", REGISTRY)]
    (manifest_request, _) = wire.seen
    assert manifest_request.headers["accept"].startswith("application/vnd.docker.distribution.manifest.v2+json")
    assert "ns" not in manifest_request.url.params  # the registry itself is not a proxy


# --- endpoint fall-through (hosts.toml) -----------------------------------------------------------------------------

MIRRORS = f"""
[host."https://{MIRROR_A}"]
  capabilities = ["pull", "resolve"]

[host."https://{MIRROR_B}"]
  capabilities = ["pull", "resolve"]
"""  # no `server`: containerd adds the registry itself as the last endpoint


def hosts_dir(tmp_path: Path, hosts_toml: str = MIRRORS) -> RegistryConfig:
    directory = tmp_path / "certs.d" / REGISTRY
    directory.mkdir(parents=True)
    (directory / "hosts.toml").write_text(hosts_toml)
    return RegistryConfig(hosts_dir=str(tmp_path / "certs.d"), timeout_seconds=5)


FAILURES: dict[str, Handler] = {
    "404": answer(404, "MANIFEST_UNKNOWN"),
    "404 without body": answer(404),
    "500": answer(500),
    "503": answer(503, "UNAVAILABLE"),
    "refused": refused,
    "401 without credentials to offer": answer(401, headers={"www-authenticate": 'Basic realm="mirror"'}),
}


@pytest.mark.parametrize("first", FAILURES.values(), ids=FAILURES.keys())
@pytest.mark.parametrize(
    "second", [FAILURES["404"], FAILURES["503"], FAILURES["refused"]], ids=["404", "503", "refused"]
)
async def test_failing_mirrors_fall_through_in_order_to_the_registry(
    tmp_path: Path, first: Handler, second: Handler
) -> None:
    wire = Wire({MIRROR_A: first, MIRROR_B: second, REGISTRY: serve()})
    facts = await lookup(wire, config=hosts_dir(tmp_path))
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.endpoint == f"https://{REGISTRY}/v2"
    assert [host for _, host in wire.asked()] == [MIRROR_A, MIRROR_B, REGISTRY]
    mirror_requests = [r for r in wire.seen if r.url.host in (MIRROR_A, MIRROR_B)]
    assert mirror_requests and all(r.url.params["ns"] == REGISTRY for r in mirror_requests)  # containerd's ?ns=


async def test_the_first_endpoint_that_has_the_image_answers(tmp_path: Path) -> None:
    wire = Wire({MIRROR_A: answer(404), MIRROR_B: serve(), REGISTRY: refused})
    facts = await lookup(wire, config=hosts_dir(tmp_path))
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.endpoint == f"https://{MIRROR_B}/v2"
    assert REGISTRY not in {r.url.host for r in wire.seen}


@pytest.mark.parametrize(
    ("answers", "status", "endpoint"),
    [
        # containerd's resolver: a 404 moves on silently, any other failure is kept as firstErr and moves on too;
        # when no host has the image, the first error wins over "not found"
        ((answer(404), answer(503), answer(404)), LookupStatus.SERVER_ERROR, MIRROR_B),
        ((refused, answer(500), answer(404)), LookupStatus.REFUSED, MIRROR_A),
        ((answer(404), answer(404), answer(429)), LookupStatus.RATE_LIMITED, REGISTRY),
        ((answer(404), answer(404, "MANIFEST_UNKNOWN"), answer(404)), LookupStatus.NOT_FOUND, MIRROR_A),
    ],
    ids=["5xx-wins-over-404", "first-error-wins", "error-at-the-registry", "all-404"],
)
async def test_when_no_endpoint_has_the_image_the_first_error_wins_over_not_found(
    tmp_path: Path, answers: tuple[Handler, Handler, Handler], status: LookupStatus, endpoint: str
) -> None:
    wire = Wire(dict(zip((MIRROR_A, MIRROR_B, REGISTRY), answers, strict=True)))
    facts = await lookup(wire, config=hosts_dir(tmp_path))
    assert facts.status is status, facts
    assert facts.endpoint == f"https://{endpoint}/v2"
    assert [host for _, host in wire.asked()] == [MIRROR_A, MIRROR_B, REGISTRY]


async def test_a_pull_only_mirror_is_asked_for_digests_but_never_what_a_tag_points_to(tmp_path: Path) -> None:
    config = hosts_dir(tmp_path, f'[host."https://{MIRROR_A}"]\n  capabilities = ["pull"]\n')
    wire = Wire({MIRROR_A: serve(), REGISTRY: serve()})
    by_tag = await lookup(wire, config=config)
    assert by_tag.status is LookupStatus.EXISTS and by_tag.endpoint == f"https://{REGISTRY}/v2"
    assert MIRROR_A not in {r.url.host for r in wire.seen}
    by_digest = await lookup(wire, f"{REGISTRY}/{REPOSITORY}@{IMAGE.digest}", config=config)
    assert by_digest.status is LookupStatus.EXISTS and by_digest.endpoint == f"https://{MIRROR_A}/v2"


async def test_an_endpoint_the_outbound_policy_refuses_is_never_handed_to_the_transport(tmp_path: Path) -> None:
    config = hosts_dir(tmp_path, '[host."https://169.254.169.254"]\n')
    wire = Wire({"169.254.169.254": serve(), REGISTRY: serve()})
    facts = await lookup(wire, config=config)
    assert facts.status is LookupStatus.EXISTS and facts.endpoint == f"https://{REGISTRY}/v2"
    assert "169.254.169.254" not in {r.url.host for r in wire.seen}
    wire = Wire({"169.254.169.254": serve(), REGISTRY: answer(404)})
    facts = await lookup(wire, config=config)
    assert facts.status is LookupStatus.BLOCKED, facts  # an error, so it wins over the registry's 404
    assert "registry endpoint 169.254.169.254 is a link-local or metadata address" in facts.detail
    assert "169.254.169.254" not in {r.url.host for r in wire.seen}


# --- HEAD, then GET when HEAD cannot tell -------------------------------------------------------------------------


def head_answers(response: Callable[[], httpx.Response]) -> SyncHandler:
    """A registry whose HEAD on a manifest gives `response()`, and whose GETs are `serve()`'s."""
    served = serve()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD" and "/manifests/" in request.url.path:
            return response()
        return served(request)

    return handler


async def test_head_with_digest_and_type_is_enough() -> None:
    wire = Wire({REGISTRY: serve()})
    facts = await lookup(wire, platforms=False)
    assert facts.status is LookupStatus.EXISTS and facts.digest == IMAGE.digest and facts.media_type == OCI_MANIFEST
    assert wire.asked() == [("HEAD", REGISTRY)]


async def test_head_405_is_asked_again_with_get() -> None:
    # containerd's request.retryRequest: 405 to a HEAD on /manifests/ is retried as a GET
    wire = Wire({REGISTRY: head_answers(lambda: httpx.Response(405))})
    facts = await lookup(wire, platforms=False)
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.digest == IMAGE.digest and facts.media_type == OCI_MANIFEST
    assert wire.asked() == [("HEAD", REGISTRY), ("GET", REGISTRY)]


@pytest.mark.parametrize(("code", "status"), [(400, LookupStatus.MALFORMED), (501, LookupStatus.SERVER_ERROR)])
async def test_other_head_failures_are_not_asked_again(code: int, status: LookupStatus) -> None:
    """containerd retries only a 405 as GET; a 400 or 501 to the HEAD fails the pull there, so pullguard does not
    find the image by a GET the node would never make (it says it could not verify)."""
    wire = Wire({REGISTRY: head_answers(lambda: httpx.Response(code))})
    facts = await lookup(wire, platforms=False)
    assert facts.status is status and not facts.status.definite, facts
    assert wire.asked() == [("HEAD", REGISTRY)]


async def test_head_without_docker_content_digest_gets_the_manifest_and_hashes_it() -> None:
    wire = Wire({REGISTRY: serve(digest_header=False)})
    facts = await lookup(wire, platforms=False)
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.digest == IMAGE.digest  # computed from the GET body, as containerd does
    assert wire.asked() == [("HEAD", REGISTRY), ("GET", REGISTRY)]


async def test_head_with_a_generic_content_type_gets_the_manifest_for_its_type() -> None:
    def generic() -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "application/octet-stream", "docker-content-digest": IMAGE.digest}
        )

    wire = Wire({REGISTRY: head_answers(generic)})
    facts = await lookup(wire, platforms=False)
    assert facts.status is LookupStatus.EXISTS and facts.media_type == OCI_MANIFEST, facts
    assert wire.asked() == [("HEAD", REGISTRY), ("GET", REGISTRY)]


async def test_head_404_without_body_is_not_found_and_the_manifest_is_not_fetched() -> None:
    """containerd retries a HEAD as GET on 405 only: a 404 to the HEAD is "not found" at that host even when a
    GET would have served the manifest, so the pull fails there and pullguard must say so."""
    wire = Wire({REGISTRY: head_answers(lambda: httpx.Response(404))})
    facts = await lookup(wire, platforms=False)
    assert facts.status is LookupStatus.NOT_FOUND, facts
    assert facts.detail == "manifest unknown"
    assert wire.asked() == [("HEAD", REGISTRY)]
    assert facts.similar_tags == ("1.0",)  # the tag list was read to suggest tags


async def test_a_docker_content_digest_the_body_contradicts_is_a_digest_mismatch() -> None:
    """containerd fetches what the header names and fails the pull when the content hashes otherwise."""

    def lying(request: httpx.Request) -> httpx.Response:
        response = serve()(request)
        if "/manifests/" in request.url.path:
            response.headers["docker-content-digest"] = "sha256:" + "0" * 64
        return response

    facts = await lookup(Wire({REGISTRY: lying}))
    assert facts.status is LookupStatus.DIGEST_MISMATCH, facts
    assert f"expected sha256:{'0' * 64}, got {IMAGE.digest}" in facts.detail
