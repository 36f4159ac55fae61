"""Failures a registry or the network can produce, each classified, each answered before the deadline.

Real conditions where the machine can make them (a stopped port, a socket that never answers, a name that
does not resolve inside a network namespace with only loopback, a wrong CA); tiny loopback servers for what
a real registry will not do on demand (500, 429 with rate-limit headers, garbage)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from policies.registry_facts import Cause, LookupStatus
from tests.integration.registry_helpers import config, lookup, map_host
from tests.support.delaying_proxy import start_delaying_proxy
from tests.support.faults import Fault, start_blackhole, start_fault_server
from tests.support.faults import refused_endpoint as make_refused_endpoint
from tests.support.pushers import StandardImages
from tests.support.registry import RegistryServer
from webhook.registry.client import RegistryClient

pytestmark = pytest.mark.registry
REPO = Path(__file__).resolve().parents[2]


async def timed_lookup(client: RegistryClient, image: str, hosts: Path, timeout: float = 2.0):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    facts = await lookup(client, image, config(hosts, timeout=timeout))
    return facts, time.monotonic() - started


async def test_connection_refused(client: RegistryClient, tmp_path: Path) -> None:
    refused = make_refused_endpoint()
    try:
        hosts = map_host(tmp_path, "registry.example.com", f"http://{refused.host}")
        facts, elapsed = await timed_lookup(client, "registry.example.com/app:1", hosts)
    finally:
        refused.stop()
    assert facts.status is LookupStatus.REFUSED
    assert elapsed < 2


async def test_stopped_registry_is_refused(client: RegistryClient, tmp_path: Path) -> None:
    from tests.support.registry import start_plain_registry

    registry = start_plain_registry()
    hosts = map_host(tmp_path, registry.host, registry.url)
    registry.stop()
    facts, _ = await timed_lookup(client, f"{registry.host}/app:1", hosts)
    assert facts.status is LookupStatus.REFUSED


async def test_blackhole_times_out_within_the_budget(client: RegistryClient, tmp_path: Path) -> None:
    with start_blackhole(lifetime=30) as blackhole:
        hosts = map_host(tmp_path, "registry.example.com", blackhole.url)
        facts, elapsed = await timed_lookup(client, "registry.example.com/app:1", hosts, timeout=1.0)
    assert facts.status is LookupStatus.TIMEOUT
    assert 0.9 <= elapsed < 1.5


@pytest.mark.parametrize(
    ("fault", "status", "detail"),
    [
        (Fault.SERVER_ERROR, LookupStatus.SERVER_ERROR, "HTTP 500"),
        (Fault.RATE_LIMITED, LookupStatus.RATE_LIMITED, "HTTP 429"),
        (Fault.NOT_JSON, LookupStatus.MALFORMED, "not JSON"),
        (Fault.TRUNCATED, LookupStatus.MALFORMED, "incomplete or invalid HTTP response"),
        (Fault.WRONG_CONTENT_TYPE, LookupStatus.MALFORMED, "unexpected content type text/html"),
    ],
)
async def test_faulty_servers(
    client: RegistryClient, tmp_path: Path, fault: Fault, status: LookupStatus, detail: str
) -> None:
    with start_fault_server(fault, lifetime=30) as server:
        hosts = map_host(tmp_path, "registry.example.com", server.url)
        facts, elapsed = await timed_lookup(client, "registry.example.com/app:1", hosts)
    assert facts.status is status, facts
    assert detail in facts.detail
    assert elapsed < 2
    if fault is Fault.RATE_LIMITED:
        assert facts.rate_limit == "remaining 0;w=21600 of 100;w=21600"
        assert facts.retry_after_seconds == 30


async def test_unresolvable_name_is_dns(tmp_path: Path) -> None:
    """Run the lookup in a network namespace that has only loopback: the name cannot resolve, and no query
    leaves the machine."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed for a network namespace")
    script = (
        "import asyncio;"
        "from tests.integration.registry_helpers import config, lookup;"
        "from webhook.registry.client import RegistryClient;"
        "facts = asyncio.run(lookup(RegistryClient(), 'registry.pullguard.invalid/app:1', config(None, timeout=2)));"
        "print(facts.status.value, '|', facts.detail)"
    )
    result = subprocess.run(
        ["unshare", "--net", sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0 and "Operation not permitted" in result.stderr:
        result = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--net", sys.executable, "-c", script],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    status, detail = result.stdout.strip().split(" | ", 1)
    assert status == "dns"
    assert "lookup failed" in detail


async def test_a_review_with_eight_slow_images_answers_by_its_deadline(tmp_path: Path) -> None:
    """Through the gatherer: 8 distinct images behind a blackhole, 1 s budget, one answer at ~1 s."""
    from policies.config import parse_policy
    from policies.model import ContainerImage, ContainerKind, PodContext, Workload
    from webhook.review.facts import FactGatherer

    with start_blackhole(lifetime=30) as blackhole:
        hosts = map_host(tmp_path, "registry.example.com", blackhole.url)
        policy = parse_policy(f"registry: {{timeoutSeconds: 1, hostsDir: {json.dumps(str(hosts))}}}")
        images = tuple(
            ContainerImage.create(
                kind=ContainerKind.CONTAINER,
                name=f"c{i}",
                image=f"registry.example.com/app{i}:1",
                pointer=f"/spec/containers/{i}/image",
                display_path=f"spec.containers[{i}]",
                pod=PodContext("default"),
            )
            for i in range(8)
        )
        registry = RegistryClient()
        try:
            started = time.monotonic()
            facts = await FactGatherer(registry).gather(Workload("Pod", "default", "p", images), policy)
            elapsed = time.monotonic() - started
        finally:
            await registry.close()
    assert 0.9 <= elapsed < 1.6
    assert {f.status for f in facts.images.values()} == {LookupStatus.TIMEOUT}
    assert len(facts.images) == 8


@pytest.fixture
def slow_proxy(plain_registry: RegistryServer) -> Iterator[object]:
    with start_delaying_proxy(plain_registry.url, delay_ms=50, lifetime=120) as proxy:
        yield proxy


async def test_identical_concurrent_lookups_make_one_upstream_request(
    client: RegistryClient,
    slow_proxy,
    standard_images: StandardImages,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    pushed = standard_images.oci_index
    hosts = map_host(tmp_path, "registry.example.com", slow_proxy.url)
    image = f"registry.example.com/{pushed.repository}:{pushed.tag}"
    results = await asyncio.gather(*(lookup(client, image, config(hosts)) for _ in range(200)))
    assert {r.status for r in results} == {LookupStatus.EXISTS}
    assert slow_proxy.manifest_requests(pushed.repository, pushed.tag) == 1
    again = await lookup(client, image, config(hosts))  # and the next one is a cache hit
    assert again.digest == pushed.digest
    assert slow_proxy.manifest_requests(pushed.repository, pushed.tag) == 1


def _tls_server(cert_file: Path, key_file: Path):  # type: ignore[no-untyped-def]
    """A loopback HTTPS server that completes handshakes and answers 200 to anything (bounded lifetime)."""
    import http.server
    import ssl
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        do_HEAD = do_GET  # noqa: N815 - the name http.server dispatches to

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    threading.Timer(60, server.shutdown).start()
    return server


def _expired_cert(ca, directory: Path) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=30)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(past - datetime.timedelta(days=30))
        .not_valid_after(past)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca.key, hashes.SHA256())
    )
    cert_file, key_file = directory / "expired.pem", directory / "expired-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


@pytest.mark.parametrize("problem", ["hostname mismatch", "expired"])
async def test_tls_certificate_problems(client: RegistryClient, tmp_path: Path, problem: str) -> None:
    from tests.support.tlsgen import generate_ca

    ca = generate_ca(tmp_path / "ca")
    if problem == "hostname mismatch":
        issued = ca.issue_server_cert(tmp_path / "tls", ("registry.other.example",))
        cert_file, key_file = issued.cert_file, issued.key_file
    else:
        cert_file, key_file = _expired_cert(ca, tmp_path)
    server = _tls_server(cert_file, key_file)
    try:
        hosts = map_host(
            tmp_path / "certs.d", "registry.example.com", f"https://127.0.0.1:{server.server_address[1]}", ca.ca_file
        )
        facts, elapsed = await timed_lookup(client, "registry.example.com/app:1", hosts)
    finally:
        server.shutdown()
    assert facts.status is LookupStatus.TLS, facts
    assert problem in facts.detail
    # a field from OpenSSL's verify code, which the check's fix is chosen from (never the words above)
    assert facts.cause is (Cause.CERTIFICATE_NAME if problem == "hostname mismatch" else Cause.CERTIFICATE_DATES)
    assert elapsed < 2


async def test_a_registry_gets_at_most_eight_concurrent_requests(
    client: RegistryClient,
    slow_proxy,
    plain_registry: RegistryServer,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from tests.support.images import build_image
    from tests.support.pushers import ImagePusher

    with ImagePusher(plain_registry) as pusher:
        for i in range(24):
            pusher.push(f"burst/app{i}", "1", build_image(seed=f"burst-{i}"))
    hosts = map_host(tmp_path, "registry.example.com", slow_proxy.url)
    slow_proxy.reset()
    results = await asyncio.gather(
        *(lookup(client, f"registry.example.com/burst/app{i}:1", config(hosts, timeout=10)) for i in range(24))
    )
    assert {r.status for r in results} == {LookupStatus.EXISTS}
    assert slow_proxy.max_in_flight == 8  # 24 distinct images, 48 requests: the cap holds, and is used
