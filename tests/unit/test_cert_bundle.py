"""The certificate bundle pullguard keeps in its Secret: when it is due, what a rotation keeps, what is unusable;
and the caBundle patch for its webhook configurations."""

from __future__ import annotations

import base64
import datetime

from cryptography import x509

from webhook.certs.ca_injection import patch_for
from webhook.certs.secret import TLSBundle, service_hosts

NOW = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC)
HOSTS = service_hosts("pullguard", "pullguard")


def test_the_names_the_api_server_dials() -> None:
    assert "pullguard.pullguard.svc" in HOSTS
    bundle = TLSBundle.new(HOSTS, now=NOW)
    names = bundle.serving().extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == set(HOSTS)


def test_rotation_is_due_at_two_thirds_of_the_life() -> None:
    bundle = TLSBundle.new(HOSTS, days=90, now=NOW)
    assert not bundle.due(NOW, HOSTS)
    assert not bundle.due(NOW + datetime.timedelta(days=59), HOSTS)
    assert bundle.due(NOW + datetime.timedelta(days=61), HOSTS)
    # a Service renamed or a namespace moved: the API server would dial a name the certificate lacks
    assert bundle.due(NOW, service_hosts("pullguard", "other"))


def test_a_rotation_keeps_the_ca_so_the_injected_caBundle_stays_valid() -> None:
    bundle = TLSBundle.new(HOSTS, days=90, now=NOW)
    later = NOW + datetime.timedelta(days=61)
    rotated = bundle.rotated(HOSTS, days=90, now=later)
    assert rotated.ca_cert == bundle.ca_cert and rotated.ca_key == bundle.ca_key
    assert rotated.cert != bundle.cert and not rotated.due(later, HOSTS)
    ca = x509.load_pem_x509_certificate(rotated.ca_cert)
    rotated.serving().verify_directly_issued_by(ca)


def test_a_ca_about_to_expire_is_replaced_with_the_serving_certificate() -> None:
    bundle = TLSBundle.new(HOSTS, now=NOW)
    near_ca_end = NOW + datetime.timedelta(days=3650 - 100)
    rotated = bundle.rotated(HOSTS, days=365, now=near_ca_end)
    assert rotated.ca_cert != bundle.ca_cert


def test_secret_data_round_trip_and_unusable_secrets() -> None:
    bundle = TLSBundle.new(HOSTS, now=NOW)
    assert TLSBundle.from_secret(bundle.secret_data()) == bundle
    assert TLSBundle.from_secret(None) is None
    missing_key = {k: v for k, v in bundle.secret_data().items() if k != "ca.key"}
    assert TLSBundle.from_secret(missing_key) is None
    garbage = {**bundle.secret_data(), "tls.crt": base64.b64encode(b"not a certificate").decode()}
    assert TLSBundle.from_secret(garbage) is None
    assert TLSBundle.from_secret({**bundle.secret_data(), "tls.key": "%%% not base64"}) is None


def test_the_patch_sets_only_what_differs_and_tests_each_name() -> None:
    webhooks = (("validate.pullguard.io", "PLACEHOLDER"), ("other.pullguard.io", "Q0E="))
    assert patch_for(webhooks, "Q0E=") == [
        {"op": "test", "path": "/webhooks/0/name", "value": "validate.pullguard.io"},
        {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Q0E="},
    ]
    assert patch_for((("a", "Q0E="),), "Q0E=") == []


def test_ip_sans_count_as_names() -> None:
    """The default `--ip 127.0.0.1 --ip ::1`: a certificate naming them is not due (it was re-issued every check)."""
    hosts = [*HOSTS, "127.0.0.1", "::1"]
    bundle = TLSBundle.new(hosts, days=90, now=NOW)
    assert not bundle.due(NOW, hosts)
    assert not bundle.due(NOW, [*HOSTS, "0:0:0:0:0:0:0:1", "PULLGUARD.pullguard.svc"])  # the same addresses, any case
    assert bundle.due(NOW, [*hosts, "127.0.0.2"])


def test_a_bundle_that_does_not_hold_together_is_unusable() -> None:
    """A foreign CA (the API server would trust a CA that cannot verify pullguard), a garbage or mismatched CA key,
    a serving key of another certificate: each is replaced, never served or injected."""
    bundle, other = TLSBundle.new(HOSTS, now=NOW), TLSBundle.new(HOSTS, now=NOW)
    data, foreign = bundle.secret_data(), other.secret_data()
    for key, value in (
        ("ca.crt", foreign["ca.crt"]),
        ("ca.key", foreign["ca.key"]),
        ("ca.key", base64.b64encode(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n").decode()),
        ("tls.key", foreign["tls.key"]),
    ):
        assert TLSBundle.from_secret({**data, key: value}) is None, key
    assert bundle.incoherence() is None
