"""The informer-backed cluster view: Secrets, ServiceAccounts and Nodes mirrored by list+watch.

Each cache is a `Reflector` (its own daemon thread); lookups are dict reads, so admission never waits on the
API server. What is held, and why:

- pull Secrets (`kubernetes.io/dockerconfigjson`, `kubernetes.io/dockercfg`) in full, one reflector per type
  because a field selector cannot OR: the checks parse their data;
- every other Secret as (namespace, name, type) only, from the server's Table rendering (`as=Table`, objects as
  PartialObjectMetadata): a pod naming an Opaque Secret gets "wrong type", not "not found", and no Secret data
  outside the pull types ever reaches this process;
- ServiceAccounts (their imagePullSecrets), Nodes (labels, taints, readiness, cached images) and Namespaces
  (their labels: mirror rules select namespaces by label, and a namespace can opt out of rewrites).

`ConfigMapWatcher` follows one ConfigMap (the policy) with the same machinery.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from kubernetes import client, config

from policies.image.pull_secret_parse import PULL_SECRET_TYPES
from policies.model import NodeFacts, SecretFacts, ServiceAccountFacts
from webhook.kube.reflector import TABLE_ACCEPT, Reflector
from webhook.kube.view import namespace_labels, node_facts, secret_facts, service_account_facts

log = logging.getLogger("pullguard.kube")

_NO_DATA: Mapping[str, str] = MappingProxyType({})
CONFIRMED_ABSENT_SECONDS = 5.0
# LIST page sizes: a page's bytes are the largest thing a reflector holds (its items are parsed one at a time).
# Secrets and ServiceAccounts are small (a 1,000-object page is under 1 MiB of JSON): larger pages mean fewer round
# trips at start. A Node with its status.images is ~7 KiB: 250 per page (1.7 MiB) keeps the start-up peak low.
SMALL_OBJECT_PAGE = 1000
NODE_PAGE = 250


def load_api_client(kubeconfig: str | None) -> client.ApiClient:
    """A `kubernetes.client.ApiClient`: in-cluster credentials when `kubeconfig` is None and we run in a pod,
    else the kubeconfig file (None: $KUBECONFIG or ~/.kube/config). No global client state is touched."""
    configuration = client.Configuration()
    # Every reflector keeps a connection open for its watch; the pool (sized when the client is built) must
    # hold them all, or urllib3 discards and reopens connections.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 16)
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        return client.ApiClient(configuration)
    # persist_config=False: a refreshed token must not be written back into the user's file.
    api_client: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig, persist_config=False, client_configuration=configuration
    )
    return api_client


def _secret_stub(item: Mapping[str, Any]) -> SecretFacts:
    """A Secret known only by name and type (a Table row: metadata plus printed columns)."""
    metadata = item.get("metadata") or {}
    secret_type = (item.get("columns") or {}).get("Type")
    return SecretFacts(
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        # Thousands of Secrets share a handful of types: keep one copy of each string.
        type=sys.intern(str(secret_type)) if secret_type else "",
        data=_NO_DATA,
    )


class KubeClusterView:
    """`ClusterView` over informer caches. `start()` begins listing; `synced()` says when all have listed once.

    `namespace_filter(namespace) -> bool` limits what is cached (Secrets, ServiceAccounts); objects it rejects
    look absent, so only reject namespaces that are never reviewed. The other keyword arguments tune every
    reflector (tests use short ones).
    """

    secrets_complete = True  # the API server is the source: a Secret it does not have does not exist

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        namespace_filter: Callable[[str], bool] | None = None,
        watch_timeout_seconds: int = 300,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        core = client.CoreV1Api(api_client)
        self._core = core
        self._absent: dict[tuple[str, str], float] = {}
        tuning: dict[str, Any] = {
            "watch_timeout_seconds": watch_timeout_seconds,
            "backoff_initial": backoff_initial,
            "backoff_max": backoff_max,
        }
        self._pull_secrets: list[Reflector[SecretFacts]] = [
            Reflector(
                f"secrets[type={secret_type}]",
                core.list_secret_for_all_namespaces,
                secret_facts,
                list_kwargs={"field_selector": f"type={secret_type}"},
                keep=namespace_filter,
                page_size=SMALL_OBJECT_PAGE,
                **tuning,
            )
            for secret_type in PULL_SECRET_TYPES
        ]
        # The rest, by name and type only. Pull types are left out: a Secret's type is immutable, so each Secret
        # lives in exactly one cache, and a pull secret the pull caches have not seen yet reads as absent rather
        # than as a pull secret without data.
        self._secret_index: Reflector[SecretFacts] = Reflector(
            "secrets[index]",
            core.list_secret_for_all_namespaces,
            _secret_stub,
            list_kwargs={"field_selector": ",".join(f"type!={t}" for t in PULL_SECRET_TYPES)},
            accept=TABLE_ACCEPT,
            keep=namespace_filter,
            page_size=SMALL_OBJECT_PAGE,
            **tuning,
        )
        self._accounts: Reflector[ServiceAccountFacts] = Reflector(
            "serviceaccounts",
            core.list_service_account_for_all_namespaces,
            service_account_facts,
            keep=namespace_filter,
            page_size=SMALL_OBJECT_PAGE,
            **tuning,
        )
        self._nodes: Reflector[NodeFacts] = Reflector(
            "nodes", core.list_node, node_facts, page_size=NODE_PAGE, **tuning
        )
        self._namespaces: Reflector[Mapping[str, str]] = Reflector(
            "namespaces", core.list_namespace, namespace_labels, page_size=SMALL_OBJECT_PAGE, **tuning
        )

    @property
    def reflectors(self) -> tuple[Reflector[Any], ...]:
        return (*self._pull_secrets, self._secret_index, self._accounts, self._nodes, self._namespaces)

    def start(self) -> None:
        for reflector in self.reflectors:
            reflector.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop every reflector (all signalled first, then joined); True if all threads ended in `timeout`."""
        for reflector in self.reflectors:
            reflector.signal_stop()
        return all([reflector.join(timeout) for reflector in self.reflectors])  # noqa: C419 - join them all

    # ----------------------------------------------------------------- ClusterView

    def synced(self) -> bool:
        return all(reflector.synced() for reflector in self.reflectors)

    def secret(self, namespace: str, name: str) -> SecretFacts | None:
        for reflector in self._pull_secrets:
            found = reflector.get(namespace, name)
            if found is not None:
                return found
        # Exists but is not a pull secret: its type, no data, so the check can say "wrong type".
        return self._secret_index.get(namespace, name)

    def service_account(self, namespace: str, name: str) -> ServiceAccountFacts | None:
        return self._accounts.get(namespace, name)

    async def confirm_secret(self, namespace: str, name: str) -> SecretFacts | None:
        """One GET for a Secret the caches miss (a bundle applies Secret and Deployment milliseconds apart).
        A confirmed absence is remembered briefly, so a storm of reviews makes one call, not one each."""
        key = (namespace, name)
        if self._absent.get(key, 0.0) > time.monotonic():
            return None
        try:
            found = await asyncio.to_thread(self._read_secret, namespace, name)
        except Exception as exc:
            log.warning("secret lookup failed", extra={"fields": {"secret": f"{namespace}/{name}", "error": str(exc)}})
            return None
        if found is None:
            self._absent[key] = time.monotonic() + CONFIRMED_ABSENT_SECONDS
            if len(self._absent) > 10_000:
                self._absent.clear()
        return found

    def _read_secret(self, namespace: str, name: str) -> SecretFacts | None:
        try:
            # _preload_content=False: the raw urllib3 response (the client's annotation names the model)
            response: Any = self._core.read_namespaced_secret(
                name, namespace, _preload_content=False, _request_timeout=2
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        try:
            obj = json.loads(response.data)
        finally:
            response.release_conn()
        if obj.get("type") in PULL_SECRET_TYPES:
            return secret_facts(obj)
        return SecretFacts(namespace, name, str(obj.get("type") or ""), _NO_DATA)  # not a pull secret: no data kept

    def nodes(self) -> tuple[NodeFacts, ...]:
        return self._nodes.values()

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self._namespaces.get("", namespace)


class ConfigMapWatcher:
    """Follows one ConfigMap; `callback(data)` runs on the watch thread with its `data` (None once it is gone).

    Called after the first LIST (whatever it found) and then whenever `data` differs from what was last passed.
    """

    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        name: str,
        callback: Callable[[dict[str, str] | None], None],
        *,
        watch_timeout_seconds: int = 300,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        self.namespace = namespace
        self.name = name
        self._callback = callback
        self._delivered = False
        self._last: dict[str, str] | None = None
        self._reflector: Reflector[dict[str, str]] = Reflector(
            f"configmap[{namespace}/{name}]",
            client.CoreV1Api(api_client).list_namespaced_config_map,
            _configmap_data,
            list_kwargs={"namespace": namespace, "field_selector": f"metadata.name={name}"},
            on_change=self._changed,
            watch_timeout_seconds=watch_timeout_seconds,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
        )

    @property
    def reflector(self) -> Reflector[dict[str, str]]:
        return self._reflector

    def start(self) -> None:
        self._reflector.start()

    def stop(self, timeout: float = 5.0) -> bool:
        return self._reflector.stop(timeout)

    def synced(self) -> bool:
        return self._reflector.synced()

    def current(self) -> dict[str, str] | None:
        found = self._reflector.get(self.namespace, self.name)
        return dict(found) if found is not None else None

    def _changed(self) -> None:
        data = self.current()
        if self._delivered and data == self._last:
            return  # e.g. a label or annotation changed: nothing for the callback
        self._delivered, self._last = True, data
        log.info(
            "configmap changed",
            extra={"fields": {"configmap": f"{self.namespace}/{self.name}", "present": data is not None}},
        )
        self._callback(data)


def _configmap_data(obj: Mapping[str, Any]) -> dict[str, str]:
    data = obj.get("data") or {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, Mapping) else {}
