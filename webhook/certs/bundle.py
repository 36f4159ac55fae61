"""Development certificates: a CA and a serving certificate signed by it, written the way Secrets mount them
(`ca.crt`, `tls.crt`, `tls.key`). Production uses cert-manager (see certs/README.md)."""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVING_DAYS = 365
CLOCK_SKEW = datetime.timedelta(minutes=5)  # valid a little before "now": hosts' clocks differ


@dataclass(frozen=True, slots=True)
class CertPaths:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def cert(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key(self) -> Path:
        return self.directory / "tls.key"

    def complete(self) -> bool:
        return self.cert.is_file() and self.key.is_file()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pullguard"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=ca,
        crl_sign=ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )


def new_ca(
    common_name: str = "pullguard development CA", *, days: float = CA_DAYS, now: datetime.datetime | None = None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA shaped for strict verifiers (critical basicConstraints and keyUsage, a key identifier)."""
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_serving(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: Sequence[str],
    *,
    days: float = SERVING_DAYS,
    common_name: str | None = None,
    now: datetime.datetime | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A serverAuth certificate with a SAN for every host (DNS names and IP addresses alike)."""
    if not hosts:
        raise ValueError("a serving certificate needs at least one DNS name or IP")
    now = now or datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name or hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write next to the target and rename, so a reader never sees half a file; keys are 0600 from birth."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def generate(out: Path, dns_names: list[str], ips: list[str], now: datetime.datetime | None = None) -> CertPaths:
    """A fresh CA and a serving certificate with a SAN for every name and IP."""
    for ip in ips:
        ipaddress.ip_address(ip)  # a bad --ip is a usage error, not a DNS name
    ca_key, ca_cert = new_ca(now=now)
    key, cert = issue_serving(ca_key, ca_cert, [*dns_names, *ips], now=now)
    out.mkdir(parents=True, exist_ok=True)
    paths = CertPaths(out)
    write_file(paths.ca_key, pem_key(ca_key), 0o600)
    write_file(paths.ca_cert, pem_cert(ca_cert), 0o644)
    write_file(paths.key, pem_key(key), 0o600)
    write_file(paths.cert, pem_cert(cert), 0o644)
    return paths


def ensure(out: Path, dns_names: list[str], ips: list[str]) -> tuple[CertPaths, bool]:
    """Reuse the certificates in `out` when present; generate them otherwise. Returns (paths, generated)."""
    paths = CertPaths(out)
    if paths.complete():
        return paths, False
    if not dns_names and not ips:
        raise ValueError("a serving certificate needs at least one --dns name or --ip")
    return generate(out, dns_names, ips), True
