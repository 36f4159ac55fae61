"""The outbound policy at the socket: in a private network namespace (only `lo`, carrying the metadata
addresses and two "remote" ones), hostile registries send the registry client toward link-local, metadata and
loopback hosts through challenges, redirects, DNS answers and URL tricks. Listeners on those addresses count
every connection: a refused address must never be dialed (not judged by timing). See support/outbound_probe.py
for the scenarios."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import netns
from tests.support.outbound_probe import ADDRESSES, HOSTS

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    reason = netns.unavailable()
    if reason is not None:
        pytest.skip(f"no private network namespace: {reason}")
    done = netns.run_isolated(
        [sys.executable, "-m", "tests.support.outbound_probe"],
        hosts=HOSTS,
        addresses=ADDRESSES,
        env={"PYTHONPATH": str(TESTS.parent)},
        cwd=TESTS.parent,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results: dict[str, Any] = json.loads(done.stdout)
    return results


REFUSED_LINK_LOCAL = {
    "realm-metadata-http": "token realm http://169.254.169.254",
    "realm-metadata-https": "token realm https://169.254.169.254",
    "realm-metadata-https-with-credentials": "token realm https://169.254.169.254",
    "realm-metadata-http-with-credentials": "token realm http://169.254.169.254",
    "realm-metadata-userinfo": "token realm http://169.254.169.254",
    "realm-metadata-dns": "token realm http://meta.example",
    "realm-metadata-ipv6": "token realm http://[fd00:ec2::254]",
    "realm-metadata-ipv6-dns": "token realm http://meta6.example",
    "realm-metadata-ipv4-mapped": "token realm http://[::ffff:169.254.169.254]",
    "realm-metadata-decimal": "token realm http://",
    "redirect-metadata": "redirect target http://169.254.169.254",
    "redirect-metadata-dns": "redirect target http://meta.example",
    "token-redirect-metadata": "redirect target http://169.254.169.254",
    "registry-resolving-to-metadata": "registry endpoint meta.example",
}


@pytest.mark.parametrize(("scenario", "named"), REFUSED_LINK_LOCAL.items())
def test_link_local_and_metadata_hosts_are_never_dialed(probe: dict[str, Any], scenario: str, named: str) -> None:
    result = probe[scenario]
    assert result["metadata_connections"] == 0, result
    assert result["status"] == "blocked", result
    assert result["detail"].startswith(named), result
    assert "link-local or metadata address" in result["detail"]
    assert "user@" not in result["detail"]


@pytest.mark.parametrize(
    ("scenario", "named"),
    [
        ("realm-loopback-of-remote-registry-with-credentials", "token realm http://127.0.0.1:"),
        ("realm-loopback-of-remote-registry", "token realm http://127.0.0.1:"),
        ("realm-loopback-https-of-remote-registry", "token realm https://127.0.0.1:1"),
        ("redirect-loopback-of-remote-registry", "redirect target http://127.0.0.1:"),
    ],
)
def test_a_remote_registry_cannot_send_the_client_to_loopback(probe: dict[str, Any], scenario: str, named: str) -> None:
    result = probe[scenario]
    assert result["trap_requests"] == 0 and result["trap_authorization"] == 0, result  # no credentials, no request
    assert result["status"] == "blocked", result
    assert result["detail"].startswith(named), result
    assert "the registry endpoint is not" in result["detail"]


def test_a_name_resolving_to_loopback_is_not_asked_unless_hosts_dir_maps_it(probe: dict[str, Any]) -> None:
    result = probe["registry-resolving-to-loopback"]
    assert result["loopback_connections"] == 0, result
    assert result["status"] == "blocked", result
    assert "registry.hostsDir" in result["detail"]


def test_credentials_are_withheld_from_a_plain_http_remote_realm(probe: dict[str, Any]) -> None:
    result = probe["realm-plain-http-remote-with-credentials"]
    assert result["status"] == "credentialsWithheld", result
    assert result["realm_requests"] == 0, result
    assert "withheld from token realm http://10.99.0.2" in result["detail"]
    # anonymous, the same realm is asked (it is not loopback, not link-local): the rules refuse only what they must
    anonymous = probe["remote-realm-over-plain-http"]
    assert anonymous["realm_requests"] == 1 and anonymous["realm_authorization"] == 0, anonymous


def test_the_listener_sees_a_connection_when_link_local_is_allowed(probe: dict[str, Any]) -> None:
    """The control: with registry.allowLinkLocal the realm is dialed, so a zero above means "never dialed"."""
    result = probe["control-metadata-allowed"]
    assert result["metadata_connections"] >= 1, result
    assert result["status"] != "blocked", result
