"""`pullguard dev`: the cluster's pullguard webhooks pointed at a `serve` running here, and put back on exit.

While it runs, the installed Deployment is scaled to 0 (its replicas would re-inject their own CA over ours and
answer half the reviews), each webhook's `clientConfig` is `url: https://HOST:PORT/<its path>` with the local CA,
and the local `serve` follows the cluster's policy ConfigMap and caches as the pod would. On exit, however it ends
(Ctrl-C, SIGTERM, an error), every `clientConfig` is written back as it was and the Deployment scaled back. Killed
with SIGKILL, nothing is lost either: the originals are kept in annotations, `failurePolicy: Ignore` lets everything
through meanwhile, and `pullguard dev --restore` puts them back.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client

log = logging.getLogger("pullguard.dev")

KINDS = ("validating", "mutating")
# Where the originals are kept, so `--restore` works after a crash too: each configuration's clientConfigs (on
# that configuration), the Deployment's replicas (on the Deployment).
SAVED_ANNOTATION = "pullguard.io/dev-saved-client-config"
REPLICAS_ANNOTATION = "pullguard.io/dev-saved-replicas"
_DEFAULT_PATH = {"validating": "/validate", "mutating": "/mutate"}

Document = dict[str, Any]


@dataclass
class Redirect:
    api: client.ApiClient
    namespace: str
    name: str  # the webhook configurations' and the Deployment's
    saved: dict[str, list[Document]] = field(default_factory=dict)  # kind -> clientConfigs in webhook order

    # ------------------------------------------------------------------ the API calls

    def _configuration(self, kind: str) -> Document:
        read = getattr(client.AdmissionregistrationV1Api(self.api), f"read_{kind}_webhook_configuration")
        return _json(read(self.name, _preload_content=False))

    def _patch_configuration(self, kind: str, operations: list[Document]) -> None:
        getattr(client.AdmissionregistrationV1Api(self.api), f"patch_{kind}_webhook_configuration")(
            self.name, operations
        )

    def _deployment(self) -> Document | None:
        try:
            read = client.AppsV1Api(self.api).read_namespaced_deployment
            return _json(read(self.name, self.namespace, _preload_content=False))
        except client.ApiException as exc:
            if exc.status == 404:
                return None  # a cluster with only the webhooks (an overlay without the Deployment)
            raise

    def _patch_deployment(self, body: Document) -> None:
        client.AppsV1Api(self.api).patch_namespaced_deployment(self.name, self.namespace, body)

    # ------------------------------------------------------------------ the two moves

    def point_at(self, url: str, ca_pem: bytes) -> None:
        """Scale the Deployment to 0, then send every webhook to `url` (plus its own path), trusting `ca_pem`."""
        deployment = self._deployment()
        if deployment is not None:
            saved = _annotations(deployment).get(REPLICAS_ANNOTATION)  # a crashed run's record wins
            replicas = saved if saved is not None else str(deployment["spec"].get("replicas", 1))
            self._patch_deployment(
                {"metadata": {"annotations": {REPLICAS_ANNOTATION: replicas}}, "spec": {"replicas": 0}}
            )
        bundle = base64.b64encode(ca_pem).decode()
        for kind in KINDS:
            document = self._configuration(kind)
            annotations = _annotations(document)
            configs = _configs(document)
            if SAVED_ANNOTATION in annotations:
                configs = json.loads(annotations[SAVED_ANNOTATION])
            self.saved[kind] = configs
            record = {**annotations, SAVED_ANNOTATION: json.dumps(configs)}
            operations: list[Document] = [{"op": "add", "path": "/metadata/annotations", "value": record}]
            for index, (webhook, original) in enumerate(zip(document["webhooks"], configs, strict=True)):
                path = (original.get("service") or {}).get("path") or _DEFAULT_PATH[kind]
                redirected = {"url": url + path, "caBundle": bundle}
                operations += _replace_client_config(index, webhook["name"], redirected)
            self._patch_configuration(kind, operations)
            log.info("webhooks redirected", extra={"fields": {"configuration": f"{kind}/{self.name}", "url": url}})

    def restore(self) -> None:
        """Every clientConfig as it was, then the Deployment's replicas; each step is tried even if one failed."""
        for kind in KINDS:
            try:
                self._restore_configuration(kind)
            except Exception as exc:
                log.error("webhooks not restored", extra={"fields": {"configuration": kind, "error": str(exc)[:300]}})
        deployment = self._deployment()
        saved = _annotations(deployment).get(REPLICAS_ANNOTATION) if deployment is not None else None
        if saved is not None:
            self._patch_deployment(
                {"metadata": {"annotations": {REPLICAS_ANNOTATION: None}}, "spec": {"replicas": int(saved)}}
            )
            log.info("deployment scaled back", extra={"fields": {"replicas": int(saved)}})

    def _restore_configuration(self, kind: str) -> None:
        document = self._configuration(kind)
        annotations = _annotations(document)
        configs = self.saved.get(kind) or json.loads(annotations.get(SAVED_ANNOTATION) or "null")
        if not configs:
            return  # never redirected
        kept = {k: v for k, v in annotations.items() if k != SAVED_ANNOTATION}
        operations: list[Document] = [{"op": "add", "path": "/metadata/annotations", "value": kept}]
        for index, (webhook, original) in enumerate(zip(document["webhooks"], configs, strict=True)):
            operations += _replace_client_config(index, webhook["name"], original)
        self._patch_configuration(kind, operations)
        log.info("webhooks restored", extra={"fields": {"configuration": f"{kind}/{self.name}"}})


def _json(response: Any) -> Document:
    document: Document = json.loads(response.data)
    return document


def _annotations(document: Document) -> dict[str, str]:
    return dict((document.get("metadata") or {}).get("annotations") or {})


def _configs(document: Document) -> list[Document]:
    return [dict(w.get("clientConfig") or {}) for w in document.get("webhooks") or []]


def _replace_client_config(index: int, name: str, value: Document) -> list[Document]:
    """Guarded by the webhook's name: a concurrent reorder fails the patch instead of swapping two entries."""
    return [
        {"op": "test", "path": f"/webhooks/{index}/name", "value": name},
        {"op": "replace", "path": f"/webhooks/{index}/clientConfig", "value": value},
    ]
