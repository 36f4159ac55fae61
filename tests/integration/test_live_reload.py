"""Policy files and certificates change under a running server: it follows, and never loses what worked."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from tests.reviews import manifest, review
from tests.server import PullguardServer
from tests.support.polling import eventually
from webhook.certs.bundle import generate

ENFORCE = "mode: enforce\n"
WARN = "mode: warn\n"


def replace_file(path: Path, text: str) -> None:
    """Write-then-rename, as kubelet does with the ..data symlink swap of a mounted ConfigMap."""
    temporary = path.with_suffix(".new")
    temporary.write_text(text)
    os.replace(temporary, path)


def allowed(server: PullguardServer) -> bool:
    return bool(server.admit(review(manifest("deployment.yaml")))["allowed"])


def test_policy_file_changes_apply_without_restart(pullguard_factory: Callable[..., PullguardServer]) -> None:
    server = pullguard_factory(WARN)
    assert allowed(server)
    assert server.policy_path is not None
    replace_file(server.policy_path, ENFORCE)
    eventually(lambda: not allowed(server), "enforce mode to take effect", timeout=10)
    replace_file(server.policy_path, WARN)
    eventually(lambda: allowed(server), "warn mode to come back", timeout=10)


def test_invalid_policy_keeps_the_last_good_one(pullguard_factory: Callable[..., PullguardServer]) -> None:
    server = pullguard_factory(ENFORCE)
    assert not allowed(server)
    assert server.policy_path is not None
    replace_file(server.policy_path, "mode: enforce\nchecks: {latestTag: {mode: sometimes}}\n")
    metrics = lambda: server.client().get("/metrics").text  # noqa: E731
    eventually(
        lambda: 'pullguard_policy_reloads_total{result="error"} 1.0' in metrics(), "the reload error", timeout=10
    )
    assert "pullguard_policy_valid 0.0" in metrics()
    assert not allowed(server), "the last good (enforce) policy must stay in force"
    ready = server.client().get("/readyz").json()
    assert "checks.latestTag.mode" in ready["policyError"]
    assert "checks.latestTag.mode" in server.logs() and "keeping the last good one" in server.logs()
    server.policy_path.unlink()  # a vanished file also keeps the last good policy
    time.sleep(1.5)
    assert not allowed(server)
    replace_file(server.policy_path, WARN)
    eventually(lambda: allowed(server), "the fixed policy to be allowed", timeout=10)
    assert "pullguard_policy_valid 1.0" in metrics()


def serial_seen(server: PullguardServer, ca: Path) -> int:
    """The serial of the certificate a new TLS handshake presents (verified against `ca`)."""
    host, port = server.url.removeprefix("https://").rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_certificate_rotation_without_restart(
    pullguard_factory: Callable[..., PullguardServer], tmp_path: Path
) -> None:
    server = pullguard_factory()
    first = serial_seen(server, server.ca_file)
    keep_alive = server.client()  # an established connection survives the rotation
    assert keep_alive.get("/healthz").status_code == 200

    fresh = generate(tmp_path / "rotated", ["localhost"], ["127.0.0.1", "::1"])
    for name in ("ca.crt", "tls.key", "tls.crt"):  # as a Secret update lands: all files replaced
        os.replace(fresh.directory / name, server.cert_dir / name)
    second = serial_seen(server, server.ca_file)
    assert second != first
    assert x509.load_pem_x509_certificate((server.cert_dir / "tls.crt").read_bytes()).serial_number == second
    assert keep_alive.get("/healthz").status_code == 200
    assert 'pullguard_tls_reloads_total{result="ok"} 1.0' in server.client().get("/metrics").text


def test_broken_certificate_keeps_the_previous_one(pullguard_factory: Callable[..., PullguardServer]) -> None:
    server = pullguard_factory()
    first = serial_seen(server, server.ca_file)
    (server.cert_dir / "tls.crt").write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n")
    assert serial_seen(server, server.ca_file) == first
    assert 'pullguard_tls_reloads_total{result="error"} 1.0' in server.client().get("/metrics").text
