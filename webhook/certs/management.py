"""`serve --manage-certs`: the certificate kept in a Secret and the CA injected into the webhook configurations
(webhook/certs/secret.py, webhook/certs/ca_injection.py), started before the server binds its port.

If the Secret cannot be had at start (RBAC, an unreachable API server), a throw-away certificate lets the process
serve /healthz and a /readyz that names the reason; the keeper retries every few seconds and the TLS layer
switches to the managed certificate at the next handshake once it exists.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kubernetes import client

from webhook.certs import bundle as certs
from webhook.certs.ca_injection import WebhookCAInjector
from webhook.certs.secret import SecretCertificates
from webhook.certs.settings import CertSettings

log = logging.getLogger("pullguard.certificates")


class ManagedCertificates:
    def __init__(self, api: client.ApiClient, settings: CertSettings, cert_dir: Path, extra_hosts: list[str]) -> None:
        self.keeper = SecretCertificates(
            api,
            settings.namespace,
            settings.secret_name,
            settings.service,
            cert_dir,
            extra_hosts=extra_hosts,
            check_seconds=settings.check_seconds,
        )
        self.injector = WebhookCAInjector(api, settings.webhook_configuration, self._ca, refresh=self.keeper.sync)
        self.keeper.on_change = self.injector.reconcile  # a new CA (rare) is injected at once

    def _ca(self) -> bytes | None:
        current = self.keeper.current
        return current.ca_cert if current is not None else None

    def start(self) -> certs.CertPaths:
        """The files to serve: the Secret's, or a throw-away pair until the Secret can be had."""
        try:
            self.keeper.sync()
        except Exception as exc:  # serve health and a /readyz that says why; the keeper keeps trying
            log.error("certificate Secret unavailable, serving a temporary certificate", extra={"fields": {
                "error": str(exc)[:300]}})  # fmt: skip
            certs.generate(self.keeper.paths.directory, self.keeper.hosts, [])
        self.keeper.start()
        self.injector.start()
        return self.keeper.paths

    def problems(self) -> list[str]:
        return self.keeper.problems() + self.injector.missing()

    def stop(self) -> None:
        self.keeper.stop()
        self.injector.stop()
