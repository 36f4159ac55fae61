"""No mutating round trip while nothing can be rewritten (`serve --manage-certs`).

`/mutate` only ever rewrites images to the policy's mirrors. While the live policy has `mirrors: []`, every call
the API server makes to it is a round trip that answers "no patch". So, while there is no mirror rule, each webhook
of pullguard's MutatingWebhookConfiguration carries one more matchCondition, named `pullguard-no-mirrors` with the
CEL expression `false`: the API server then skips the webhook without calling it. When a mirror rule appears (a
ConfigMap or `--config` edit), the condition is removed again, live; a person or GitOps tool that adds or removes
it by hand is corrected by the watch, as the CA injection is.

Every patch is a JSON patch guarded by `test` ops (the webhook's name, the condition's name), so a concurrent
edit, another replica or the CA injector makes it fail (422) rather than write into the wrong entry; the watch
event that follows reconciles again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from webhook.kube.reflector import Reflector

log = logging.getLogger("pullguard.mutating")

CONDITION_NAME = "pullguard-no-mirrors"
CONDITION = {"name": CONDITION_NAME, "expression": "false"}

# Per webhook, in list order: (webhook name, index of our condition or -1, whether matchConditions exists)
Webhooks = tuple[tuple[str, int, bool], ...]


def _webhooks(obj: Mapping[str, Any]) -> Webhooks:
    found = obj.get("webhooks") or []
    out = []
    for webhook in found:
        if not isinstance(webhook, Mapping):
            continue
        conditions = webhook.get("matchConditions")
        index = -1
        if isinstance(conditions, list):
            for i, condition in enumerate(conditions):
                if isinstance(condition, Mapping) and condition.get("name") == CONDITION_NAME:
                    index = i
                    break
        out.append((str(webhook.get("name", "")), index, isinstance(conditions, list)))
    return tuple(out)


def patch_for(webhooks: Webhooks, inert: bool) -> list[dict[str, Any]]:
    """JSON patch ops that add (`inert`) or remove our condition on every webhook; empty when nothing differs."""
    ops: list[dict[str, Any]] = []
    for index, (name, condition, has_list) in enumerate(webhooks):
        base = f"/webhooks/{index}"
        if inert and condition < 0:
            ops.append({"op": "test", "path": f"{base}/name", "value": name})
            if has_list:
                ops.append({"op": "add", "path": f"{base}/matchConditions/-", "value": dict(CONDITION)})
            else:
                ops.append({"op": "add", "path": f"{base}/matchConditions", "value": [dict(CONDITION)]})
        elif not inert and condition >= 0:
            ops.append({"op": "test", "path": f"{base}/name", "value": name})
            ops.append({"op": "test", "path": f"{base}/matchConditions/{condition}/name", "value": CONDITION_NAME})
            ops.append({"op": "remove", "path": f"{base}/matchConditions/{condition}"})
    return ops


class MutatingToggle:
    """Keeps MutatingWebhookConfiguration `name` inert exactly while `has_mirrors()` is False.

    `start()` begins watching the configuration (each change reconciles); `follow()` is a background coroutine
    that reconciles when the answer of `has_mirrors()` changes (the policy is swapped on reload, never edited).
    """

    def __init__(
        self,
        api: client.ApiClient,
        name: str,
        has_mirrors: Callable[[], bool],
        *,
        poll_seconds: float = 0.5,
        watch_timeout_seconds: int = 300,
    ) -> None:
        self.name = name
        self._has_mirrors = has_mirrors
        self._poll_seconds = poll_seconds
        admission = client.AdmissionregistrationV1Api(api)
        self._patch = admission.patch_mutating_webhook_configuration
        self._reflector: Reflector[Webhooks] = Reflector(
            f"mutatingwebhookconfiguration[{name}]/mirrors",
            admission.list_mutating_webhook_configuration,
            _webhooks,
            list_kwargs={"field_selector": f"metadata.name={name}"},
            on_change=self.reconcile,
            watch_timeout_seconds=watch_timeout_seconds,
        )
        self._lock = threading.Lock()  # the watch thread and follow() both reconcile
        self.patches = 0
        self.inert: bool | None = None  # what was last made true (None: nothing yet)

    def start(self) -> None:
        self._reflector.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._reflector.stop(timeout)

    def synced(self) -> bool:
        return self._reflector.synced()

    def reconcile(self) -> None:
        """Patch the configuration if it differs from what the policy wants (any thread)."""
        with self._lock:
            inert = not self._has_mirrors()
            webhooks = self._reflector.get("", self.name)
            if webhooks is None:
                return  # not there (yet): its ADDED event reconciles
            ops = patch_for(webhooks, inert)
            if not ops:
                self.inert = inert
                return
            try:
                self._patch(self.name, ops)
            except ApiException as exc:  # a concurrent change (422 from `test`): its watch event retries
                log.warning(
                    "mutating webhook toggle failed", extra={"fields": {"name": self.name, "status": exc.status}}
                )
                return
            self.patches += 1
            self.inert = inert
            log.info(
                "mutating webhook " + ("made inert: the policy has no mirror rule" if inert else "restored: mirrors"),
                extra={"fields": {"name": self.name, "webhooks": len(webhooks)}},
            )

    async def follow(self) -> None:
        """Reconcile whenever the policy's answer changes; runs until cancelled."""
        last: bool | None = None
        while True:
            current = self._has_mirrors()
            if current != last and self._reflector.synced():
                await asyncio.to_thread(self.reconcile)
                last = current
            await asyncio.sleep(self._poll_seconds)
