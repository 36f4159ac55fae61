"""One auditor at a time: a `coordination.k8s.io/v1` Lease, held by the replica that audits.

A replica takes the Lease when nobody holds it or the holder let it expire (renewTime + leaseDurationSeconds in
the past), and renews it while it audits. Writes carry the resourceVersion read, so two replicas racing for an
expired Lease cannot both win: the loser's write is refused with 409 Conflict.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client

log = logging.getLogger("pullguard.audit")
GROUP, VERSION, PLURAL = "coordination.k8s.io", "v1", "leases"


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class Lease:
    def __init__(
        self, api_client: client.ApiClient, namespace: str, name: str, identity: str, duration_seconds: int
    ) -> None:
        self._api = client.CustomObjectsApi(api_client)
        self.namespace, self.name, self.identity = namespace, name, identity
        self.duration_seconds = duration_seconds

    def _read(self) -> dict[str, Any] | None:
        try:
            response: Any = self._api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name, _preload_content=False, _request_timeout=10
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        try:
            found: dict[str, Any] = json.loads(response.data)
        finally:
            response.release_conn()
        return found

    def acquire(self, now: datetime | None = None) -> bool:
        """Take or renew the Lease; False when another live holder has it (or a racing write won)."""
        now = now or datetime.now(UTC)
        try:
            current = self._read()
            spec = {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.duration_seconds,
                "renewTime": _micro_time(now),
            }
            if current is None:
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {**spec, "acquireTime": _micro_time(now), "leaseTransitions": 0},
                }
                self._api.create_namespaced_custom_object(
                    GROUP, VERSION, self.namespace, PLURAL, body, _request_timeout=10
                )
                return True
            held = current.get("spec") or {}
            holder = held.get("holderIdentity")
            renewed = _parse(held.get("renewTime")) or _parse(held.get("acquireTime"))
            duration = int(held.get("leaseDurationSeconds") or self.duration_seconds)
            expired = renewed is None or renewed + timedelta(seconds=duration) < now
            if holder and holder != self.identity and not expired:
                return False
            if holder != self.identity:
                spec["acquireTime"] = _micro_time(now)
                spec["leaseTransitions"] = int(held.get("leaseTransitions") or 0) + 1
            current["spec"] = {**held, **spec}
            self._api.replace_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name, current, _request_timeout=10
            )
            return True
        except client.ApiException as exc:
            if exc.status != 409:
                log.warning("audit lease", extra={"fields": {"status": exc.status, "reason": exc.reason}})
            return False
        except Exception as exc:
            log.warning("audit lease", extra={"fields": {"error": str(exc)}})
            return False
