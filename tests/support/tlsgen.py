"""Throw-away X.509 material for the test registries and the token issuer.

Everything is EC P-256 (key generation is ~1 ms, versus ~50 ms for RSA-2048) and is shaped so
that Python's ``ssl`` module accepts it even with ``VERIFY_X509_STRICT`` (Python >= 3.13 turns
that flag on in ``ssl.create_default_context``): the CA has critical basicConstraints and
keyUsage plus a subjectKeyIdentifier, the leaf has an authorityKeyIdentifier, SANs and the
serverAuth extended key usage.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from webhook.certs.bundle import issue_serving, new_ca

__all__ = [
    "DEFAULT_SERVER_NAMES",
    "CertificateAuthority",
    "IssuedCert",
    "SigningKeyPair",
    "generate_ca",
    "generate_signing_keypair",
    "ssl_context_for",
]

#: Names every test server certificate is valid for.
DEFAULT_SERVER_NAMES: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_VALIDITY = dt.timedelta(days=2)
_BACKDATE = dt.timedelta(hours=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _san_entries(names: tuple[str, ...]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


@dataclass(frozen=True)
class IssuedCert:
    """A server certificate written to disk: ``cert_file`` holds leaf + CA, ``key_file`` the key."""

    cert: x509.Certificate
    key: PrivateKey
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed test CA; ``ca_file`` is its PEM certificate (use it as a trust bundle)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    ca_file: Path

    @property
    def pem(self) -> bytes:
        return _cert_pem(self.cert)

    def issue_server_cert(
        self,
        directory: Path,
        names: tuple[str, ...] = DEFAULT_SERVER_NAMES,
        *,
        stem: str = "server",
    ) -> IssuedCert:
        """Issue a serverAuth certificate for ``names`` (IPs or DNS names) into ``directory``."""
        key, cert = issue_serving(self.key, self.cert, names, days=_VALIDITY.days)
        directory.mkdir(parents=True, exist_ok=True)
        cert_file = directory / f"{stem}.pem"
        key_file = directory / f"{stem}-key.pem"
        cert_file.write_bytes(_cert_pem(cert) + self.pem)
        key_file.write_bytes(_key_pem(key))
        key_file.chmod(0o600)
        return IssuedCert(cert=cert, key=key, cert_file=cert_file, key_file=key_file)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this CA."""
        return ssl_context_for(self.ca_file)


def generate_ca(directory: Path, *, common_name: str = "pullguard test CA", stem: str = "ca") -> CertificateAuthority:
    """Create a fresh CA and write its certificate to ``directory/<stem>.pem``."""
    key, cert = new_ca(common_name, days=_VALIDITY.days)
    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / f"{stem}.pem"
    ca_file.write_bytes(_cert_pem(cert))
    return CertificateAuthority(cert=cert, key=key, ca_file=ca_file)


@dataclass(frozen=True)
class SigningKeyPair:
    """A JWT signing key plus a self-signed certificate for it (the registry's ``rootcertbundle``)."""

    key: PrivateKey
    cert: x509.Certificate
    cert_file: Path
    algorithm: str  # "ES256" or "RS256"

    @property
    def cert_der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def private_key_pem(self) -> bytes:
        return _key_pem(self.key)


def generate_signing_keypair(
    directory: Path,
    *,
    algorithm: str = "ES256",
    common_name: str = "pullguard test token signer",
    stem: str = "token-signer",
) -> SigningKeyPair:
    """Generate an ES256 (P-256) or RS256 (RSA-2048) key and a self-signed cert for it."""
    key: PrivateKey
    if algorithm == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unsupported token signing algorithm {algorithm!r} (use ES256 or RS256)")
    now = _now()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / f"{stem}.pem"
    cert_file.write_bytes(_cert_pem(cert))
    return SigningKeyPair(key=key, cert=cert, cert_file=cert_file, algorithm=algorithm)


def ssl_context_for(ca_file: Path | str) -> ssl.SSLContext:
    """A verifying client ``SSLContext`` trusting only ``ca_file`` (pass it as httpx ``verify=``)."""
    return ssl.create_default_context(cafile=str(ca_file))
