"""A hostile registry on loopback (mapped through hosts.toml, as the nodes would be): capped reads that keep
memory flat, content addressing that no registry can poison, Authorization that never follows a redirect to
another host, and failures at a token realm reported against the realm. The connect-attempt checks (addresses
that must never be dialed) run in a private network namespace: test_registry_never_dialed.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from policies.checks import image_exists
from policies.config import parse_policy
from policies.image.platforms import Platform
from policies.image.pull_secret_parse import Credential, CredentialSource
from policies.model import ContainerImage, ContainerKind, Facts, PodContext
from policies.registry_facts import LookupStatus
from tests.integration.registry_helpers import config, lookup, map_host
from tests.support.faults import refused_endpoint, start_blackhole
from tests.support.hostile_registry import (
    HostileRegistry,
    challenge,
    digest,
    document,
    flood,
    oci_image,
    redirect,
    requires_basic,
    requires_bearer,
    token,
)
from webhook.registry.client import RegistryClient

AMD64, ARM64, S390X = Platform("linux", "amd64"), Platform("linux", "arm64"), Platform("linux", "s390x")
SECRET = Credential("robot", "hostile-s3cret", source=CredentialSource("shop", "regcred"))
MiB = 1024 * 1024


def _hosts(tmp_path: Path, **mapping: HostileRegistry) -> Path:
    hosts = tmp_path / "certs.d"
    for name, registry in mapping.items():
        map_host(hosts, f"{name}.example", registry.url)
    return hosts


def _rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class _PeakRss:
    """The highest VmRSS of this process while the block runs, sampled every 2 ms."""

    def __enter__(self) -> _PeakRss:
        self.start = self.peak = _rss()
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, _rss())
            time.sleep(0.002)

    def __exit__(self, *exc: object) -> None:
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, _rss())

    @property
    def growth(self) -> int:
        return self.peak - self.start


# -- item 2: every body read streamed with a cap ------------------------------------------------------------


@pytest.mark.parametrize("total", [200 * MiB, None], ids=["200MB", "endless"])
async def test_a_flooding_token_endpoint_costs_no_memory(
    client: RegistryClient, hostile: HostileRegistry, tmp_path: Path, total: int | None
) -> None:
    realm = f"{hostile.url}/token"
    hostile.routes["/v2/team/app/manifests/1"] = challenge(realm)
    hostile.routes["/token"] = flood(total)
    started = time.monotonic()
    with _PeakRss() as rss:
        facts = await lookup(client, "tok.example/team/app:1", config(_hosts(tmp_path, tok=hostile)), (SECRET,))
    seconds = time.monotonic() - started
    print(f"token flood {total}: RSS +{rss.growth / MiB:.1f} MiB, {seconds:.2f}s, {facts.status}")
    assert rss.growth < 8 * MiB, rss.growth  # before the cap: +450 MiB for 200 MB, unbounded for endless
    assert seconds < 2.0
    assert facts.status is LookupStatus.MALFORMED, facts
    assert "64 KiB" in facts.detail and facts.detail.startswith(f"token realm {hostile.url}")


@pytest.mark.parametrize("status", [200, 404, 500])
async def test_endless_manifest_and_error_bodies_are_cut_at_their_caps(
    client: RegistryClient, hostile: HostileRegistry, tmp_path: Path, status: int
) -> None:
    hostile.routes["/v2/team/app/manifests/1"] = flood(None, status=status)
    with _PeakRss() as rss:
        facts = await lookup(client, "big.example/team/app:1", config(_hosts(tmp_path, big=hostile)))
    print(f"endless {status}: RSS +{rss.growth / MiB:.1f} MiB, {facts.status}")
    expected = {200: LookupStatus.MALFORMED, 404: LookupStatus.NOT_FOUND, 500: LookupStatus.SERVER_ERROR}
    assert facts.status is expected[status], facts
    assert rss.growth < 16 * MiB, rss.growth


# -- items 3 and 4: content addressing ----------------------------------------------------------------------


async def test_a_registry_cannot_poison_another_registrys_digest(client: RegistryClient, tmp_path: Path) -> None:
    honest = oci_image(("linux", "amd64"), ("linux", "arm64"))
    foreign = oci_image(("linux", "s390x"), salt="hostile")
    with HostileRegistry() as good, HostileRegistry() as evil:
        honest.serve(good, "legit/app", "1.0")
        foreign.serve(evil, "evil/app", "1.0")
        # the hostile tag claims the honest index's digest for s390x-only content
        evil.routes["/v2/evil/app/manifests/1.0"] = document(foreign.manifest, claimed=honest.digest)
        hosts = _hosts(tmp_path, good=good, evil=evil)
        poisoned = await lookup(client, "evil.example/evil/app:1.0", config(hosts))
        assert poisoned.status is LookupStatus.DIGEST_MISMATCH, poisoned
        assert poisoned.status.definite
        assert "content does not match its digest" in poisoned.detail
        assert poisoned.platforms is None
        for image in ("good.example/legit/app:1.0", f"good.example/legit/app@{honest.digest}"):
            facts = await lookup(client, image, config(hosts))
            assert facts.status is LookupStatus.EXISTS, facts
            assert facts.digest == honest.digest
            assert set(facts.platforms or ()) == {AMD64, ARM64}, (image, facts)


async def test_by_digest_content_that_is_not_that_digest_fails_as_containerd_does(
    client: RegistryClient, hostile: HostileRegistry, tmp_path: Path
) -> None:
    real = oci_image(("linux", "amd64"))
    other = oci_image(("linux", "arm64"), salt="swapped")
    real.serve(hostile, "team/app", "1")
    hostile.routes[f"/v2/team/app/manifests/{real.digest}"] = document(other.manifest, claimed=None)
    hosts = _hosts(tmp_path, cas=hostile)
    for platforms in (True, False):
        facts = await lookup(client, f"cas.example/team/app@{real.digest}", config(hosts), platforms=platforms)
        assert facts.status is LookupStatus.DIGEST_MISMATCH, (platforms, facts)
        assert f"expected {real.digest}, got {other.digest}" in facts.detail
    # a HEAD that claims another digest for a by-digest reference: the body decides
    hostile.routes[f"/v2/team/app/manifests/{real.digest}"] = document(other.manifest, claimed=other.digest)
    facts = await lookup(client, f"cas.example/team/app@{real.digest}", config(hosts), platforms=False)
    assert facts.status is LookupStatus.DIGEST_MISMATCH, facts


async def test_a_config_blob_that_is_not_its_digest_is_a_mismatch(
    client: RegistryClient, hostile: HostileRegistry, tmp_path: Path
) -> None:
    image = oci_image(("linux", "amd64"))
    image.serve(hostile, "team/app", "1")
    (config_digest,) = image.blobs
    hostile.routes[f"/v2/team/app/blobs/{config_digest}"] = document(b'{"os":"linux","architecture":"s390x"}')
    facts = await lookup(client, "cas.example/team/app:1", config(_hosts(tmp_path, cas=hostile)))
    assert facts.status is LookupStatus.DIGEST_MISMATCH, facts
    assert "blob" in facts.detail


async def test_an_honest_image_without_digest_headers_is_judged_by_its_bytes(
    client: RegistryClient, hostile: HostileRegistry, tmp_path: Path
) -> None:
    image = oci_image(("linux", "amd64"), ("linux", "arm64"))
    image.serve(hostile, "team/app", "1")
    hostile.routes["/v2/team/app/manifests/1"] = document(image.manifest, image.media_type, claimed=None)
    facts = await lookup(client, "cas.example/team/app:1", config(_hosts(tmp_path, cas=hostile)))
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.digest == image.digest
    assert set(facts.platforms or ()) == {AMD64, ARM64}


# -- item 1: redirects ---------------------------------------------------------------------------------------


async def test_authorization_never_follows_a_redirect_to_another_host(client: RegistryClient, tmp_path: Path) -> None:
    image = oci_image(("linux", "amd64"))
    with HostileRegistry() as registry, HostileRegistry() as storage:
        image.serve(storage, "team/app", "1")
        image.serve(registry, "team/app", "1")
        (config_digest,) = image.blobs
        path = f"/v2/team/app/blobs/{config_digest}"
        registry.routes[path] = requires_basic(redirect(f"{storage.url}{path}", 307), "robot", "hostile-s3cret")
        registry.routes["/v2/team/app/manifests/1"] = requires_basic(
            document(image.manifest), "robot", "hostile-s3cret"
        )
        facts = await lookup(client, "auth.example/team/app:1", config(_hosts(tmp_path, auth=registry)), (SECRET,))
        assert facts.status is LookupStatus.EXISTS, facts
        assert facts.platforms == (AMD64,)
        assert any(s.headers.get("authorization") for s in registry.requests(path))  # sent where it belongs
        assert storage.requests(path), "the redirect was followed"
        assert not any("authorization" in s.headers for s in storage.requests())


async def test_redirect_loops_end_after_five_hops(
    client: RegistryClient, hostile: HostileRegistry, tmp_path: Path
) -> None:
    hostile.routes["/v2/team/app/manifests/1"] = redirect("/v2/team/app/manifests/1")
    facts = await lookup(client, "loop.example/team/app:1", config(_hosts(tmp_path, loop=hostile)))
    assert facts.status is LookupStatus.MALFORMED, facts
    assert len(hostile.requests("/v2/team/app/manifests/1")) == 6  # the request and five redirects


# -- item 10: failures at a realm are reported against the realm --------------------------------------------


def _message(facts_found: object, reference: str) -> str:
    container = ContainerImage.create(
        kind=ContainerKind.CONTAINER,
        name="app",
        image=reference,
        pointer="/spec/containers/0/image",
        display_path="spec.containers[0]",
        pod=PodContext("shop"),
    )
    assert container.pull_reference is not None
    facts = Facts(images={container.pull_reference: facts_found})  # type: ignore[dict-item]
    (finding,) = image_exists.check(container, facts, parse_policy("mode: warn"))
    return finding.message


async def test_a_realm_that_refuses_connections_is_named_not_the_registry(
    client: RegistryClient, hostile: HostileRegistry, tmp_path: Path
) -> None:
    with refused_endpoint() as dead:
        hostile.routes["/v2/team/app/manifests/1"] = challenge(f"{dead.url}/token")
        facts = await lookup(client, "realm.example/team/app:1", config(_hosts(tmp_path, realm=hostile)))
    assert facts.status is LookupStatus.REFUSED, facts
    message = _message(facts, "realm.example/team/app:1")
    assert f"token realm {dead.url}" in message, message
    assert f"{hostile.url}/v2 refused" not in message


async def test_a_realm_with_a_server_error_is_named_not_the_registry(
    client: RegistryClient, hostile: HostileRegistry, tmp_path: Path
) -> None:
    hostile.routes["/v2/team/app/manifests/1"] = challenge(f"{hostile.url}/token")
    hostile.routes["/token"] = flood(10, status=503)
    facts = await lookup(client, "realm.example/team/app:1", config(_hosts(tmp_path, realm=hostile)))
    assert facts.status is LookupStatus.SERVER_ERROR, facts
    message = _message(facts, "realm.example/team/app:1")
    assert f"token realm {hostile.url}: HTTP 503" in message, message
    assert "registry realm.example failed" not in message


async def test_a_loopback_registry_may_use_a_loopback_realm(
    client: RegistryClient, hostile: HostileRegistry, tmp_path: Path
) -> None:
    image = oci_image(("linux", "amd64"))
    image.serve(hostile, "team/app", "1")
    realm = f"{hostile.url}/token"
    for path in list(hostile.routes):
        hostile.routes[path] = requires_bearer(hostile.routes[path], realm)
    hostile.routes["/token"] = token()
    facts = await lookup(client, "tok.example/team/app:1", config(_hosts(tmp_path, tok=hostile)), (SECRET,))
    assert facts.status is LookupStatus.EXISTS, facts
    assert facts.platforms == (AMD64,)
    (asked,) = hostile.requests("/token")
    assert asked.headers["authorization"].startswith("Basic ")  # plain HTTP: both ends are on loopback
    assert digest(image.manifest) == facts.digest


async def test_a_realm_that_never_answers_is_named_in_the_timeout(
    client: RegistryClient, hostile: HostileRegistry, tmp_path: Path
) -> None:
    with start_blackhole() as silent:
        hostile.routes["/v2/team/app/manifests/1"] = challenge(f"{silent.url}/token")
        facts = await lookup(client, "slow.example/team/app:1", config(_hosts(tmp_path, slow=hostile), timeout=1))
    assert facts.status is LookupStatus.TIMEOUT, facts
    assert facts.detail == f"token realm {silent.url}: no answer within 1s"
    message = _message(facts, "slow.example/team/app:1")
    assert f"could not verify: token realm {silent.url}: no answer within 1s (for registry slow.example)" in message
