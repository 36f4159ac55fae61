"""Where `serve --manage-certs` keeps its certificate and how often it looks: the one home of those defaults, light
enough for the CLI to read."""

from __future__ import annotations

from dataclasses import dataclass

CHECK_SECONDS = 60.0  # how often the Secret is read back (another replica may have rotated it)


@dataclass(frozen=True, slots=True)
class CertSettings:
    namespace: str
    secret_name: str = "pullguard-tls"  # noqa: S105 - a Secret object's name
    service: str = "pullguard"
    webhook_configuration: str = "pullguard"
    check_seconds: float = CHECK_SECONDS
