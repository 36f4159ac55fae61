"""A server TLS context that follows its certificate files: mounted Secrets rotate without a restart.

Every new handshake asks (via the SNI callback, which OpenSSL runs for each ClientHello) whether the files
changed; if so, a new context is built and used from then on. Established connections keep their session.
A half-written or mismatched pair is refused and the previous context stays in service.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from cryptography import x509

from webhook.metrics import Metrics
from webhook.util.files import file_signature

log = logging.getLogger("pullguard.tls")


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    return context


class ReloadingTLS:
    def __init__(self, cert: Path, key: Path, metrics: Metrics) -> None:
        self._cert, self._key, self._metrics = cert, key, metrics
        self._signature = file_signature(cert, key)
        self._current = _context(cert, key)
        self._record_expiry()
        # The listening socket keeps this context; the callback points each handshake at the newest one.
        self.context = _context(cert, key)
        self.context.sni_callback = self._on_hello

    def refresh(self) -> None:
        signature = file_signature(self._cert, self._key)
        if signature is None or signature == self._signature:
            return
        self._signature = signature
        try:
            self._current = _context(self._cert, self._key)
        except (OSError, ssl.SSLError) as exc:
            self._metrics.tls_reloads.labels("error").inc()
            log.error(
                "new certificate rejected, serving the previous one",
                extra={"fields": {"cert": str(self._cert), "error": str(exc)}},
            )
            return
        self._metrics.tls_reloads.labels("ok").inc()
        self._record_expiry()
        log.info("serving certificate reloaded", extra={"fields": {"cert": str(self._cert)}})

    def _record_expiry(self) -> None:
        try:
            cert = x509.load_pem_x509_certificate(self._cert.read_bytes())
        except (OSError, ValueError):
            return  # the context loaded it a moment ago; a file swapped since is read at the next reload
        self._metrics.certificate_expiry.set(cert.not_valid_after_utc.timestamp())

    def _on_hello(self, connection: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        self.refresh()
        connection.context = self._current
