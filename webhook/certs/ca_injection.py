"""pullguard's own webhook configurations trust its CA: `caBundle` is injected, and injected again whenever an
apply, a GitOps sync or a person overwrites it (both configurations are watched). The manifests leave `caBundle`
out, so re-applying them never takes it away; this covers whoever puts one back in.

Until both configurations carry the serving CA, the API server cannot verify pullguard, so `/readyz` says not
ready and names what is missing.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.kube.reflector import Reflector

log = logging.getLogger("pullguard.certificates")

Webhooks = tuple[tuple[str, str], ...]  # (webhook name, caBundle) in list order


def _webhooks(obj: Mapping[str, Any]) -> Webhooks:
    found = obj.get("webhooks") or []
    return tuple(
        (str(w.get("name", "")), str((w.get("clientConfig") or {}).get("caBundle") or ""))
        for w in found
        if isinstance(w, Mapping)
    )


def patch_for(webhooks: Webhooks, ca_bundle: str) -> list[dict[str, str]]:
    """JSON patch ops that set every webhook's caBundle; each guarded by a `test` of the webhook's name, so a
    concurrent reorder fails the patch instead of writing into the wrong entry."""
    ops: list[dict[str, str]] = []
    for index, (name, current) in enumerate(webhooks):
        if current != ca_bundle:
            ops.append({"op": "test", "path": f"/webhooks/{index}/name", "value": name})
            ops.append({"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle", "value": ca_bundle})
    return ops


class WebhookCAInjector:
    """Keeps the caBundle of ValidatingWebhookConfiguration and MutatingWebhookConfiguration `name` equal to the
    PEM CA that `ca_pem()` returns (None: not known yet)."""

    def __init__(
        self,
        api: client.ApiClient,
        name: str,
        ca_pem: Callable[[], bytes | None],
        refresh: Callable[[], object] | None = None,
    ) -> None:
        """`refresh` re-reads the shared Secret: called before overwriting a caBundle that is not ours, since it
        may be another replica's newer CA, which this replica then adopts instead of fighting it."""
        self.name = name
        self._ca_pem = ca_pem
        self._refresh = refresh
        self._refreshing = threading.RLock()
        admission = client.AdmissionregistrationV1Api(api)
        selector = {"field_selector": f"metadata.name={name}"}
        self._kinds: dict[str, tuple[Reflector[Webhooks], Callable[..., Any]]] = {
            "ValidatingWebhookConfiguration": (
                Reflector(f"validatingwebhookconfiguration[{name}]", admission.list_validating_webhook_configuration,
                          _webhooks, list_kwargs=selector, on_change=self.reconcile),
                admission.patch_validating_webhook_configuration,
            ),
            "MutatingWebhookConfiguration": (
                Reflector(f"mutatingwebhookconfiguration[{name}]", admission.list_mutating_webhook_configuration,
                          _webhooks, list_kwargs=selector, on_change=self.reconcile),
                admission.patch_mutating_webhook_configuration,
            ),
        }  # fmt: skip
        self.injections = 0
        self._announced: dict[str, str] = {}  # kind -> the CA last logged as injected

    def start(self) -> None:
        for reflector, _ in self._kinds.values():
            reflector.start()

    def stop(self, timeout: float = 5.0) -> None:
        for reflector, _ in self._kinds.values():
            reflector.stop(timeout)

    def _bundle(self) -> str | None:
        pem = self._ca_pem()
        return base64.b64encode(pem).decode() if pem else None

    def reconcile(self) -> None:
        """Patch what differs (runs on a watch thread after every change, and when the CA changes)."""
        bundle = self._bundle()
        if bundle is not None and self._foreign(bundle):
            self._adopt()
            bundle = self._bundle()
        if bundle is None:
            return
        for kind, (reflector, patch) in self._kinds.items():
            webhooks = reflector.get("", self.name)
            ops = patch_for(webhooks or (), bundle)
            if not ops:
                continue
            try:
                patch(self.name, ops)
            except ApiException as exc:  # a concurrent change (422 from `test`): its watch event retries
                log.warning("caBundle injection failed", extra={"fields": {"kind": kind, "status": exc.status}})
                continue
            self.injections += 1
            # The watch cache may not show our own patch yet, so the next event can patch again (a no-op at the
            # API server): said once per configuration and CA, the repeats only at debug level.
            fields = {"kind": kind, "name": self.name, "webhooks": len(ops) // 2}
            first = self._announced.get(kind) != bundle
            log.log(logging.INFO if first else logging.DEBUG, "caBundle injected", extra={"fields": fields})
            self._announced[kind] = bundle

    def _foreign(self, bundle: str) -> bool:
        """A configuration carries a CA, and not ours: another replica's, or one an apply put back."""
        return any(
            current and current != bundle
            for reflector, _ in self._kinds.values()
            for _, current in reflector.get("", self.name) or ()
        )

    def _adopt(self) -> None:
        """Re-read the Secret (one re-read at a time): if another replica rotated the CA, this one serves and
        injects the same CA rather than writing its older one back."""
        # Reentrant, and waited for: the other configuration's watch thread must not inject the old CA while
        # this one re-reads (nested calls come from the keeper's on_change, on this thread).
        if self._refresh is None or not self._refreshing.acquire(timeout=10):
            return
        try:
            self._refresh()  # one GET of the Secret, only when a caBundle is not ours: no fight outlives it
        except Exception as exc:  # the keeper logs and reports it; inject what we have
            log.warning("certificate Secret re-read failed", extra={"fields": {"error": str(exc)[:300]}})
        finally:
            self._refreshing.release()

    def missing(self) -> list[str]:
        """What keeps the API server from trusting pullguard, for /readyz; empty when nothing does."""
        bundle = self._bundle()
        problems = []
        for kind, (reflector, _) in self._kinds.items():
            webhooks = reflector.get("", self.name)
            if not reflector.synced():
                problems.append(f"{kind} {self.name}: not listed yet")
            elif webhooks is None:
                problems.append(f"{kind} {self.name} does not exist")
            elif bundle is None or any(current != bundle for _, current in webhooks):
                problems.append(f"{kind} {self.name}: caBundle is not the serving CA yet")
        return problems
