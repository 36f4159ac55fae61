"""`pullguard serve`'s options and their defaults, in a module the CLI can load without the server's imports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from webhook.certs.settings import CertSettings
from webhook.limits import REQUEST_TIMEOUT_SECONDS


@dataclass(frozen=True)
class ServeOptions:
    """The one home of `serve`'s defaults: webhook/cli.py's flags take theirs from here."""

    host: str = "127.0.0.1"
    port: int = 8443
    cert_dir: Path = Path("certs")
    config: Path | None = None
    dns_names: list[str] = field(default_factory=lambda: ["localhost"])
    ips: list[str] = field(default_factory=lambda: ["127.0.0.1", "::1"])
    poll_seconds: float = 1.0
    offline: bool = False  # no registry lookups: image facts are "not checked"
    kubeconfig: Path | None = None  # None: in-cluster when in a pod, else no cluster view
    namespace: str | None = None  # where the policy ConfigMap lives (the webhook's own namespace)
    policy_configmap: str = "pullguard-policy"
    certificates: CertSettings | None = None  # --manage-certs: the certificate in a Secret, the CA injected
    request_timeout: float = REQUEST_TIMEOUT_SECONDS  # a request must arrive whole within this (slowloris)
    max_connections: int = 1000  # beyond: 503 (uvicorn's limit_concurrency)
    shutdown_delay: float = 0.0  # on SIGTERM: not ready but answering this long, then stop accepting
    graceful_seconds: float = 20.0  # then at most this long for in-flight reviews
    metrics_port: int = 0  # > 0: /metrics also over plain HTTP on this port (Prometheus without the webhook CA)
    metrics_host: str = "0.0.0.0"  # noqa: S104 - a pod's metrics port is scraped from other pods
    # with `certificates`: the mutating webhook is made inert (a false matchCondition) while no mirror rule exists
    mutating_toggle: bool = False
