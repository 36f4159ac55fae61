"""Proves the containerd oracle (tests/support/containerd.py) against real registries: each outcome class provoked
for real (platforms, missing tags, TLS, basic and token auth, DNS, fault servers, network and protocol failures,
broken blobs), and the classifier's table of the texts containerd 1.6 really prints."""

from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

import pytest

from tests.integration.containerd_oracle.helpers import (
    PRIV,
    basic_user,
    corrupt_layer,
    plain_hosts,
)
from tests.support.containerd import (
    OUTCOME_PATTERNS,
    ContainerdDaemon,
    classify,
    write_hosts_dir,
)
from tests.support.faults import Fault, refused_port, start_blackhole, start_fault_server
from tests.support.image_model import PushedImage
from tests.support.loopback import LoopbackHTTPServer, RequestHandler
from tests.support.pushers import push_single_arch
from tests.support.registry import RegistryServer

pytestmark = [pytest.mark.registry]


# --------------------------------------------------------------------------------------------
# the outcome classes, provoked for real
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_multiarch_index_pulls(
    containerd: ContainerdDaemon,
    plain_registry: RegistryServer,
    images: dict[str, PushedImage],
    tmp_path: Path,
    platform: str,
) -> None:
    result = containerd.pull(
        images["multi"].reference, hosts_dir=plain_hosts(tmp_path, plain_registry), platform=platform
    )
    assert result.outcome == "exists", result.output
    assert result.seconds < 5


def test_missing_tag_is_not_found(
    containerd: ContainerdDaemon, plain_registry: RegistryServer, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    result = containerd.pull(
        plain_registry.reference("oracle/multi", "nope"), hosts_dir=plain_hosts(tmp_path, plain_registry)
    )
    assert result.outcome == "notFound"
    assert result.error.endswith(f"{plain_registry.host}/oracle/multi:nope: not found")


def test_arm64_only_index_has_no_match_for_amd64(
    containerd: ContainerdDaemon, plain_registry: RegistryServer, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    result = containerd.pull(images["arm64only"].reference, hosts_dir=plain_hosts(tmp_path, plain_registry))
    assert result.outcome == "noMatchingPlatform"
    assert result.error == f"no match for platform in manifest {images['arm64only'].digest}: not found"


def test_single_arch_manifest_pulls_for_any_platform(
    containerd: ContainerdDaemon, plain_registry: RegistryServer, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    """Only an index's children are matched to the platform; a lone amd64 manifest is pulled for arm64 (the
    container would then die with "exec format error"), so this is not an ErrImagePull."""
    hosts_dir = plain_hosts(tmp_path, plain_registry)
    result = containerd.pull(images["single"].reference, hosts_dir=hosts_dir, platform="linux/arm64")
    assert result.outcome == "exists", result.output


def test_tls_needs_the_ca_in_hosts_toml(
    containerd: ContainerdDaemon, basic_registry: RegistryServer, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    reference, user = images["basic"].reference, basic_user(basic_registry)
    without = write_hosts_dir(tmp_path / "without", basic_registry.host, server=basic_registry.url)
    with_ca = write_hosts_dir(
        tmp_path / "with", basic_registry.host, server=basic_registry.url, ca_file=basic_registry.ca_file
    )
    result = containerd.pull(reference, hosts_dir=without, user=user)
    assert result.outcome == "tls"
    assert "x509: certificate signed by unknown authority" in result.error
    assert containerd.pull(reference, hosts_dir=with_ca, user=user).outcome == "exists"


@pytest.mark.parametrize(("password", "outcome"), [(None, "unauthorized"), ("wrong", "unauthorized"), ("", "exists")])
def test_basic_auth(
    containerd: ContainerdDaemon,
    basic_registry: RegistryServer,
    images: dict[str, PushedImage],
    tmp_path: Path,
    password: str | None,
    outcome: str,
) -> None:
    hosts_dir = write_hosts_dir(
        tmp_path, basic_registry.host, server=basic_registry.url, ca_file=basic_registry.ca_file
    )
    user = None if password is None else basic_user(basic_registry, password)
    result = containerd.pull(images["basic"].reference, hosts_dir=hosts_dir, user=user)
    assert result.outcome == outcome, result.output
    if outcome == "unauthorized":
        assert result.error.endswith("failed with status code [manifests 1]: 401 Unauthorized")


@pytest.mark.parametrize(
    ("user", "repository", "outcome", "text"),
    [
        # insufficient_scope (HTTP 401) is reported as "pull access denied": the class is denied, not unauthorized
        ("limited", "oracle/token", "denied", "insufficient_scope: authorization failed"),
        (None, "oracle/token", "denied", "insufficient_scope: authorization failed"),
        ("limited", "allowed/oracle", "exists", ""),
        ("reader", "oracle/token", "exists", ""),
        ("reader:wrong", "oracle/token", "unauthorized", "failed to fetch oauth token: unexpected status: 401"),
    ],
)
def test_token_auth(
    containerd: ContainerdDaemon,
    token_registry: RegistryServer,
    tmp_path: Path,
    user: str | None,
    repository: str,
    outcome: str,
    text: str,
) -> None:
    push_single_arch(token_registry, repository, "1", seed="oracle-token")
    hosts_dir = write_hosts_dir(tmp_path, token_registry.host, server=token_registry.url)
    if user is not None and ":" not in user:
        user = f"{user}:{token_registry.users[user]}"
    result = containerd.pull(token_registry.reference(repository, "1"), hosts_dir=hosts_dir, user=user)
    assert result.outcome == outcome, result.output
    assert text in result.error


class _NxdomainServer:
    """Answers every DNS query on 127.0.0.1:53 with NXDOMAIN and records the names asked."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 53))
        self.sock.settimeout(0.1)
        self.names: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.running:
            try:
                query, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            end, labels = 12, []
            while query[end]:
                labels.append(query[end + 1 : end + 1 + query[end]].decode())
                end += 1 + query[end]
            self.names.append(".".join(labels))
            header = query[:2] + b"\x81\x83" + query[4:6] + b"\x00\x00\x00\x00\x00\x00"
            self.sock.sendto(header + query[12 : end + 5], peer)

    def stop(self) -> None:
        self.running = False
        self.thread.join()
        self.sock.close()


def test_unmapped_name_stays_on_loopback(containerd: ContainerdDaemon) -> None:
    """ctr's resolv.conf names only 127.0.0.1: with nothing there the lookup is refused locally; with a
    loopback resolver the query arrives there and containerd reports "no such host"."""
    result = containerd.pull("nowhere.invalid/x:1")
    assert result.outcome == "dns"
    assert re.search(r"lookup nowhere\.invalid on 127\.0\.0\.1:53: .*connection refused$", result.error), result.error
    try:
        resolver = _NxdomainServer()
    except OSError as exc:  # port 53 taken or not bindable: the first half stands alone
        pytest.skip(f"cannot bind 127.0.0.1:53 for the NXDOMAIN half: {exc}")
    try:
        result = containerd.pull("nowhere.invalid/x:1")
    finally:
        resolver.stop()
    assert result.outcome == "dns"
    assert result.error.endswith("no such host"), result.error
    assert "nowhere.invalid" in resolver.names


# --------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "outcome", "text"),
    [
        (Fault.SERVER_ERROR, "serverError", "[manifests 1]: 500 Internal Server Error"),
        (Fault.RATE_LIMITED, "rateLimited", "[manifests 1]: 429 Too Many Requests"),
        (Fault.NOT_JSON, "malformed", "invalid character '<' looking for beginning of value"),
        (Fault.TRUNCATED, "malformed", "failed to read expected number of bytes: unexpected EOF"),
        (Fault.WRONG_CONTENT_TYPE, "malformed", "unexpected media type text/html for sha256:"),
    ],
)
def test_fault_servers(containerd: ContainerdDaemon, tmp_path: Path, fault: Fault, outcome: str, text: str) -> None:
    with start_fault_server(fault) as server:
        hosts_dir = write_hosts_dir(tmp_path, server.host, server=server.url)
        result = containerd.pull(f"{server.host}/x/y:1", hosts_dir=hosts_dir)
    assert result.outcome == outcome, result.output
    assert text in result.error


def _forbidden(handler: RequestHandler) -> None:
    status = 200 if handler.path_only in ("/v2", "/v2/") else 403
    body = b'{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}'
    handler.respond(status, body, {"Docker-Distribution-API-Version": "registry/2.0"})


def test_network_and_protocol_failures(
    containerd: ContainerdDaemon, plain_registry: RegistryServer, images: dict[str, PushedImage], tmp_path: Path
) -> None:
    port = refused_port()
    refused = containerd.pull(f"{PRIV}:{port}/x:1")
    assert refused.outcome == "refused"
    assert refused.error.endswith(f"dial tcp 127.0.0.1:{port}: connect: connection refused")

    https_to_http = write_hosts_dir(tmp_path / "tls", plain_registry.host, server=f"https://{plain_registry.host}")
    result = containerd.pull(images["multi"].reference, hosts_dir=https_to_http)
    assert (result.outcome, result.error.split(": ")[-1]) == ("tls", "server gave HTTP response to HTTPS client")

    with start_blackhole() as blackhole:
        hosts_dir = write_hosts_dir(tmp_path / "bh", blackhole.host, server=blackhole.url)
        result = containerd.pull(f"{blackhole.host}/x:1", hosts_dir=hosts_dir, timeout=1.0)
    assert (result.outcome, result.timed_out) == ("timeout", False)
    assert result.error.endswith("failed to do request: context deadline exceeded")

    with LoopbackHTTPServer(_forbidden) as server:
        hosts_dir = write_hosts_dir(tmp_path / "403", server.host, server=server.url)
        result = containerd.pull(f"{server.host}/x:1", hosts_dir=hosts_dir)
    assert result.outcome == "denied"
    assert result.error.endswith("failed with status code [manifests 1]: 403 Forbidden")


@pytest.mark.parametrize(("how", "outcome", "text"), [("flip", "digestMismatch", "unexpected commit digest"),
                                                      ("delete", "notFound", "from remote: not found")])  # fmt: skip
def test_broken_blobs(
    containerd: ContainerdDaemon, plain_registry: RegistryServer, tmp_path: Path, how: str, outcome: str, text: str
) -> None:
    image = push_single_arch(plain_registry, f"oracle/broken-{how}", "1", seed=f"oracle-broken-{how}")
    corrupt_layer(plain_registry, image, how)
    result = containerd.pull(image.reference, hosts_dir=plain_hosts(tmp_path, plain_registry))
    assert result.outcome == outcome, result.output
    assert text in result.error


# --------------------------------------------------------------------------------------------
# the classifier table (no daemon): the texts quoted in OUTCOME_PATTERNS
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ('failed to resolve reference "r/x:1": r/x:1: not found', "notFound"),
        ("no match for platform in manifest sha256:df2f: not found", "noMatchingPlatform"),
        ("unexpected media type text/html for sha256:0e97: not found", "malformed"),
        (
            'failed to do request: Head "https://n/v2/x/manifests/1": dial tcp: lookup n on 127.0.0.1:53: read udp '
            "127.0.0.1:4->127.0.0.1:53: read: connection refused",
            "dns",
        ),
        ("failed to do request: Head ...: dial tcp 127.0.0.1:1: connect: connection refused", "refused"),
        ("pulling from host h failed with status code [manifests 1]: 503 Service Unavailable", "serverError"),
        ("failed to authorize: failed to fetch oauth token: unexpected status: 503 Service Unavailable", "serverError"),
        ("something nobody has seen", "other"),
    ],
)
def test_classify(error: str, outcome: str) -> None:
    output = 'time="t" level=info msg="trying next host" error="x509: certificate expired"\nctr: ' + error
    assert classify(output, 1) == outcome  # only the final ctr: line counts
    assert classify(output, 0) == "exists"
    assert classify(output, 1, timed_out=True) == "timeout"
    assert len({name for name, _ in OUTCOME_PATTERNS}) == len(OUTCOME_PATTERNS)
