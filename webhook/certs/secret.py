"""Certificates that manage themselves in a cluster, as Gatekeeper and Kyverno do it, without cert-manager.

The CA and the serving certificate live in one Secret in pullguard's namespace. Whichever replica asks first
creates it; a create that loses the race gets 409 and reads the winner's. Every replica writes the Secret's files
into its cert directory, where `webhook.certs.tls.ReloadingTLS` picks them up at the next handshake, so rotation drops
no connection. The serving certificate is re-issued from the same CA at two thirds of its life by an update that
carries the resourceVersion it read: when two replicas rotate at once, one wins and the other reads its result.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.certs import bundle as certs
from webhook.certs.settings import CHECK_SECONDS

log = logging.getLogger("pullguard.certificates")

ROTATE_FRACTION = 2 / 3  # of the serving certificate's life: weeks of margin for a one-year certificate
RETRY_SECONDS = 5.0  # while no managed certificate could be had yet
MAX_ATTEMPTS = 5  # conflicts in a row before giving up until the next check
Clock = Callable[[], datetime.datetime]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def service_hosts(service: str, namespace: str) -> list[str]:
    """The names the API server uses for a webhook Service (it dials `<service>.<namespace>.svc`)."""
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]


@dataclass(frozen=True, slots=True)
class TLSBundle:
    """PEM bytes of a CA (with its key, so any replica can re-issue) and of the serving pair it signed."""

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes

    @classmethod
    def new(cls, hosts: list[str], *, days: float = certs.SERVING_DAYS, now: datetime.datetime) -> TLSBundle:
        ca_key, ca_cert = certs.new_ca("pullguard webhook CA", now=now)
        return cls._issued(ca_key, ca_cert, hosts, days, now)

    def rotated(self, hosts: list[str], *, days: float = certs.SERVING_DAYS, now: datetime.datetime) -> TLSBundle:
        ca_key = serialization.load_pem_private_key(self.ca_key, password=None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ValueError("the CA key is not an EC key")
        ca_cert = x509.load_pem_x509_certificate(self.ca_cert)
        if ca_cert.not_valid_after_utc - now < datetime.timedelta(days=days):
            return self.new(hosts, days=days, now=now)  # the CA would expire first: start over with a new one
        return self._issued(ca_key, ca_cert, hosts, days, now)

    @classmethod
    def _issued(
        cls,
        ca_key: ec.EllipticCurvePrivateKey,
        ca_cert: x509.Certificate,
        hosts: list[str],
        days: float,
        now: datetime.datetime,
    ) -> TLSBundle:
        key, cert = certs.issue_serving(ca_key, ca_cert, hosts, days=days, now=now)
        return cls(certs.pem_cert(ca_cert), certs.pem_key(ca_key), certs.pem_cert(cert), certs.pem_key(key))

    @classmethod
    def from_secret(cls, data: Mapping[str, str | bytes] | None) -> TLSBundle | None:
        """None when the Secret lacks a key, holds something that does not parse, or does not hold together (see
        `coherent`): an unusable bundle is replaced, never served or injected."""
        try:
            values = {k: base64.b64decode((data or {})[k], validate=True) for k in _SECRET_KEYS}
            bundle = cls(values["ca.crt"], values["ca.key"], values["tls.crt"], values["tls.key"])
            problem = bundle.incoherence()
        except (KeyError, ValueError):
            return None
        if problem is not None:
            log.warning("certificate Secret unusable", extra={"fields": {"problem": problem}})
            return None
        return bundle

    def incoherence(self) -> str | None:
        """Why the bundle cannot be served as it is: a key that does not match its certificate, or a CA that did
        not sign the serving certificate (the API server would trust a CA that cannot verify pullguard, and fail
        open). Raises ValueError for what does not parse."""
        ca_cert, cert = x509.load_pem_x509_certificate(self.ca_cert), self.serving()
        ca_key = serialization.load_pem_private_key(self.ca_key, password=None)
        key = serialization.load_pem_private_key(self.key, password=None)
        if ca_key.public_key().public_bytes(*_SPKI) != ca_cert.public_key().public_bytes(*_SPKI):
            return "ca.key does not match ca.crt"
        if key.public_key().public_bytes(*_SPKI) != cert.public_key().public_bytes(*_SPKI):
            return "tls.key does not match tls.crt"
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            return "tls.crt is not signed by ca.crt"
        return None

    def secret_data(self) -> dict[str, str | bytes]:
        raw = {"ca.crt": self.ca_cert, "ca.key": self.ca_key, "tls.crt": self.cert, "tls.key": self.key}
        return {k: base64.b64encode(v).decode() for k, v in raw.items()}

    def serving(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert)

    def due(self, now: datetime.datetime, hosts: list[str]) -> bool:
        """Past two thirds of its life, or not valid for every name the API server may use."""
        cert = self.serving()
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        if now >= start + (end - start) * ROTATE_FRACTION:
            return True
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return True
        names = {n.lower() for n in sans.get_values_for_type(x509.DNSName)}
        addresses = {
            a
            for a in sans.get_values_for_type(x509.IPAddress)
            if not isinstance(a, ipaddress.IPv4Network | ipaddress.IPv6Network)
        }
        return not all(_covered(host, names, addresses) for host in hosts)


_SECRET_KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key")
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _covered(host: str, names: set[str], addresses: set[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> bool:
    """A host the certificate must name: an IP address among its IP SANs, anything else among its DNS SANs."""
    try:
        return ipaddress.ip_address(host.strip("[]")) in addresses
    except ValueError:
        return host.lower() in names


class SecretCertificates:
    """Keeps Secret `namespace/secret_name` holding a valid bundle and its files in `cert_dir` current."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        secret_name: str,
        service: str,
        cert_dir: Path,
        *,
        extra_hosts: Sequence[str] = (),
        days: float = certs.SERVING_DAYS,
        check_seconds: float = CHECK_SECONDS,
        clock: Clock = _utcnow,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._core = client.CoreV1Api(api)
        self.namespace, self.secret_name = namespace, secret_name
        self.hosts = list(dict.fromkeys([*service_hosts(service, namespace), *extra_hosts]))
        self.paths = certs.CertPaths(cert_dir)
        self._days, self._check_seconds, self._clock = days, check_seconds, clock
        self.on_change = on_change  # after new files were written (the injector follows a new CA)
        self.current: TLSBundle | None = None
        self.last_error: str | None = None
        self._stopping = threading.Event()
        self._syncing = threading.RLock()  # reentrant: on_change (the injector) may ask for a sync inside one
        self._thread: threading.Thread | None = None

    def sync(self) -> TLSBundle:
        """Read, create or rotate the Secret, then write its files. Raises ApiException when the API refuses
        (and keeps its reason for `problems`). One at a time: the check thread and the injector both call it."""
        with self._syncing:
            return self._sync()

    def _sync(self) -> TLSBundle:
        try:
            for _ in range(MAX_ATTEMPTS):
                bundle = self._reconcile()
                if bundle is not None:
                    self._write(bundle)
                    self.last_error = None
                    return bundle
            raise ApiException(status=409, reason=f"secret {self.namespace}/{self.secret_name} kept changing")
        except ApiException as exc:
            self.last_error = f"HTTP {exc.status} {exc.reason}".strip()
            raise

    def problems(self) -> list[str]:
        """What keeps the certificate from being the managed one, for /readyz."""
        if self.last_error is None and self.current is not None:
            return []
        error = self.last_error or "not read yet"
        return [f"certificate: Secret {self.namespace}/{self.secret_name}: {error}"]

    def _reconcile(self) -> TLSBundle | None:
        """One round; None when another writer got there first (read again)."""
        now = self._clock()
        try:
            secret = self._core.read_namespaced_secret(self.secret_name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create(TLSBundle.new(self.hosts, days=self._days, now=now))
        bundle = TLSBundle.from_secret(secret.data)
        if bundle is not None and not bundle.due(now, self.hosts):
            return bundle
        fresh = (
            bundle.rotated(self.hosts, days=self._days, now=now)
            if bundle is not None
            else TLSBundle.new(self.hosts, days=self._days, now=now)
        )
        version = str(secret.metadata.resource_version or "") if secret.metadata is not None else ""
        return self._replace(fresh, version, "rotated" if bundle else "replaced unusable")

    def _create(self, bundle: TLSBundle) -> TLSBundle | None:
        try:
            self._core.create_namespaced_secret(self.namespace, self._body(bundle))
        except ApiException as exc:
            if exc.status == 409:  # another replica created it first: use theirs
                return None
            raise
        log.info("serving certificate created", extra={"fields": self._fields(bundle)})
        return bundle

    def _replace(self, bundle: TLSBundle, resource_version: str, what: str) -> TLSBundle | None:
        body = self._body(bundle, resource_version)  # optimistic concurrency: one rotation wins
        try:
            self._core.replace_namespaced_secret(self.secret_name, self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise
        log.info(f"serving certificate {what}", extra={"fields": self._fields(bundle)})
        return bundle

    def _body(self, bundle: TLSBundle, resource_version: str | None = None) -> client.V1Secret:
        labels = {"app.kubernetes.io/name": "pullguard", "app.kubernetes.io/managed-by": "pullguard"}
        metadata = client.V1ObjectMeta(
            name=self.secret_name, namespace=self.namespace, labels=labels, resource_version=resource_version
        )
        return client.V1Secret(
            api_version="v1", kind="Secret", type="kubernetes.io/tls", metadata=metadata, data=bundle.secret_data()
        )

    def _fields(self, bundle: TLSBundle) -> dict[str, str]:
        expires = bundle.serving().not_valid_after_utc.isoformat()
        return {"secret": f"{self.namespace}/{self.secret_name}", "notAfter": expires}

    def _write(self, bundle: TLSBundle) -> None:
        if bundle == self.current and self.paths.complete():
            return
        self.paths.directory.mkdir(parents=True, exist_ok=True)
        # The key first: the TLS layer reloads on a change of either file and refuses a mismatched pair.
        certs.write_file(self.paths.ca_cert, bundle.ca_cert, 0o644)
        certs.write_file(self.paths.key, bundle.key, 0o600)
        certs.write_file(self.paths.cert, bundle.cert, 0o644)
        self.current = bundle
        if self.on_change is not None:
            self.on_change()

    # ----------------------------------------------------------------- the background check

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="certificates", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self._check_seconds if self.current is not None else RETRY_SECONDS):
            try:
                self.sync()
            except Exception as exc:  # keep serving the files we have; the next check tries again
                log.error("certificate check failed", extra={"fields": {"error": str(exc)[:300]}})
