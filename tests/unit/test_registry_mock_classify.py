"""How the registry client turns statuses and bodies into a LookupStatus (classify.py, the capped bodies), against
MockTransport registries."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import pytest

from policies.lookup import RegistryConfig
from policies.registry_facts import Cause, LookupStatus
from tests.support.image_model import OCI_CONFIG, Blob, BuiltManifest
from tests.unit.registry_mock import (
    REGISTRY,
    REPOSITORY,
    Handler,
    SyncHandler,
    Wire,
    answer,
    bearer_registry,
    document,
    lookup,
    no_dns,  # noqa: F401 - the autouse fixture: nothing is resolved
    serve,
    token_realm,
)
from webhook.registry.manifests import MAX_DOCUMENT_BYTES, OCI_MANIFEST

# --- classify.py: statuses and bodies -> LookupStatus ---------------------------------------------------------------


async def test_429_with_retry_after_is_rate_limited_with_its_delay() -> None:
    headers = {"retry-after": "17", "ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"}
    wire = Wire({REGISTRY: answer(429, "TOOMANYREQUESTS", headers=headers)})
    facts = await lookup(wire)
    assert facts.status is LookupStatus.RATE_LIMITED, facts
    assert facts.retry_after_seconds == 17.0
    assert facts.rate_limit == "remaining 0;w=21600 of 100;w=21600"
    assert not facts.status.definite  # "could not verify", never a definite failure


async def test_retry_after_as_an_http_date_leaves_the_delay_unknown() -> None:
    wire = Wire({REGISTRY: answer(429, headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})})
    facts = await lookup(wire)
    assert facts.status is LookupStatus.RATE_LIMITED and facts.retry_after_seconds is None and facts.rate_limit == ""


@pytest.mark.parametrize(
    ("code", "codes", "status", "detail"),
    [
        (500, (), LookupStatus.SERVER_ERROR, "HTTP 500"),
        (502, (), LookupStatus.SERVER_ERROR, "HTTP 502"),
        (503, ("UNAVAILABLE",), LookupStatus.SERVER_ERROR, "HTTP 503 UNAVAILABLE"),
        (504, (), LookupStatus.SERVER_ERROR, "HTTP 504"),
        (403, (), LookupStatus.DENIED, "HTTP 403"),
        (400, ("DENIED",), LookupStatus.DENIED, "HTTP 400 DENIED"),
        (400, ("TOOMANYREQUESTS",), LookupStatus.RATE_LIMITED, "HTTP 400 TOOMANYREQUESTS"),
        (418, (), LookupStatus.MALFORMED, "unexpected HTTP 418"),
        (404, (), LookupStatus.NOT_FOUND, "manifest unknown"),
        (404, ("NAME_UNKNOWN",), LookupStatus.NOT_FOUND, "repository unknown"),
        (400, ("MANIFEST_UNKNOWN",), LookupStatus.NOT_FOUND, "manifest unknown"),
    ],
)
async def test_statuses_and_error_codes(code: int, codes: tuple[str, ...], status: LookupStatus, detail: str) -> None:
    wire = Wire({REGISTRY: answer(code, *codes)})
    facts = await lookup(wire)  # a GET: the error body is read for its codes (a HEAD answer has none)
    assert (facts.status, facts.detail) == (status, detail), facts
    assert facts.endpoint == f"https://{REGISTRY}/v2"


async def test_a_missing_tag_lists_the_closest_tags_and_a_missing_repository_says_so() -> None:
    wire = Wire({REGISTRY: serve(tags=("1.0.0", "1.0.8", "2.0"))})
    facts = await lookup(wire, f"{REGISTRY}/{REPOSITORY}:1.0.9")
    assert facts.status is LookupStatus.NOT_FOUND and facts.detail == "manifest unknown", facts
    assert facts.similar_tags[0] == "1.0.8"
    wire = Wire({REGISTRY: answer(404, "NAME_UNKNOWN")})
    facts = await lookup(wire, f"{REGISTRY}/no/such:1")
    assert (facts.status, facts.detail, facts.similar_tags) == (LookupStatus.NOT_FOUND, "repository unknown", ())
    assert facts.cause is Cause.REPOSITORY_UNKNOWN


def manifest_with(body: bytes, content_type: str) -> SyncHandler:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/manifests/" in request.url.path:
            return document(request, body, content_type)
        return serve()(request)

    return handler


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        (b'{"schemaVersion": 2, "config": ', OCI_MANIFEST, "manifest or config unreadable: not JSON"),
        (b'{"schemaVersion": 2, "config": ', "application/json", "manifest not JSON"),
        (b"[1, 2]", "application/json", "manifest not a JSON object"),
        (b'{"schemaVersion": 2}', OCI_MANIFEST, "manifest without a config digest"),
        (b"<html>hello</html>", "text/html", "unexpected content type text/html for a manifest"),
    ],
    ids=["truncated-json", "truncated-generic-type", "not-an-object", "no-config", "html"],
)
async def test_a_malformed_manifest_is_malformed(body: bytes, content_type: str, detail: str) -> None:
    wire = Wire({REGISTRY: manifest_with(body, content_type)})
    facts = await lookup(wire)
    assert facts.status is LookupStatus.MALFORMED, facts
    assert detail in facts.detail


@pytest.mark.parametrize(
    ("config", "detail"),
    [(b"not json", "manifest or config unreadable: not JSON"), (b"{}", "image config without os/architecture")],
)
async def test_a_config_blob_that_is_not_an_image_config_is_malformed(config: bytes, detail: str) -> None:
    blob = Blob(OCI_CONFIG, config)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": blob.descriptor(), "layers": []}
    image = BuiltManifest("image", OCI_MANIFEST, orjson.dumps(manifest), blobs=(blob,))
    facts = await lookup(Wire({REGISTRY: serve(image)}))
    assert facts.status is LookupStatus.MALFORMED, facts
    assert detail in facts.detail


async def test_a_config_blob_that_is_not_its_digest_is_a_digest_mismatch() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/blobs/" in request.url.path:
            return httpx.Response(200, content=b"other content")
        return serve()(request)

    facts = await lookup(Wire({REGISTRY: handler}))
    assert facts.status is LookupStatus.DIGEST_MISMATCH, facts


class Endless:
    """A body that never ends, counting the chunks it was asked for."""

    def __init__(self) -> None:
        self.chunks = 0

    def __aiter__(self) -> Endless:
        return self

    async def __anext__(self) -> bytes:
        self.chunks += 1
        return b"x" * 65536


async def test_an_oversized_manifest_is_refused_by_its_declared_length() -> None:
    body = b" " * (MAX_DOCUMENT_BYTES + 1)
    facts = await lookup(Wire({REGISTRY: manifest_with(body, OCI_MANIFEST)}))
    assert facts.status is LookupStatus.MALFORMED, facts
    assert facts.detail == f"response of {MAX_DOCUMENT_BYTES + 1} bytes is over the 4 MiB limit"


async def test_an_endless_manifest_is_read_only_up_to_the_cap() -> None:
    endless = Endless()
    wire = Wire(
        {REGISTRY: lambda request: httpx.Response(200, headers={"content-type": OCI_MANIFEST}, content=endless)}
    )
    facts = await lookup(wire)
    assert facts.status is LookupStatus.MALFORMED and facts.detail == "response is over the 4 MiB limit", facts
    assert endless.chunks <= MAX_DOCUMENT_BYTES // 65536 + 2  # the cap, plus the chunk that crossed it


async def test_an_endless_error_body_is_truncated_and_still_classified() -> None:
    endless = Endless()
    wire = Wire({REGISTRY: lambda request: httpx.Response(503, content=endless)})
    facts = await lookup(wire)
    assert facts.status is LookupStatus.SERVER_ERROR and facts.detail == "HTTP 503", facts
    assert endless.chunks <= 3  # MAX_ERROR_BYTES is 64 KiB: one chunk, plus the one that crossed it


@pytest.mark.parametrize(("hang", "prefix"), [(REGISTRY, ""), ("auth.test", "token realm https://auth.test: ")])
async def test_a_host_that_never_answers_ends_the_lookup_at_its_deadline(hang: str, prefix: str) -> None:
    async def silent(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)
        raise AssertionError("the deadline should have struck")

    hosts: dict[str, Handler] = {REGISTRY: bearer_registry({"tok"}), "auth.test": token_realm({None: "tok"})}
    hosts[hang] = silent
    started = time.monotonic()
    facts = await lookup(Wire(hosts), config=RegistryConfig(timeout_seconds=0.2))
    assert time.monotonic() - started < 5  # the lookup's own deadline struck, not some later one
    assert facts.status is LookupStatus.TIMEOUT, facts
    assert facts.detail == f"{prefix}no answer within 0.2s"
