"""Connect the service to a cluster: the informer-backed view for the checks, and the policy ConfigMap.

Used when `serve` runs in a pod or is given `--kubeconfig`; `check --kubeconfig` uses the view alone.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.config.config_exception import ConfigException

from webhook.kube.informers import ConfigMapWatcher, KubeClusterView, load_api_client
from webhook.kube.view import ClusterView
from webhook.node.service_account_tokens import KubeServiceAccountTokens
from webhook.sources.policy import PolicyHolder

log = logging.getLogger("pullguard.cluster")
POLICY_KEY = "policy.yaml"


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


@dataclass
class ClusterConnection:
    view: KubeClusterView
    policy_watcher: ConfigMapWatcher | None

    def synced(self) -> bool:
        return self.view.synced() and (self.policy_watcher is None or self.policy_watcher.synced())

    def problems(self) -> list[str]:
        """Each cache that has not listed yet, with its last error (e.g. 403: a verb missing from the RBAC)."""
        reflectors = [*self.view.reflectors, *([self.policy_watcher.reflector] if self.policy_watcher else [])]
        return [
            f"cache {r.name} not listed yet" + (f": {r.last_error}" if r.last_error else "")
            for r in reflectors
            if not r.synced()
        ]

    def stop(self) -> None:
        self.view.stop()
        if self.policy_watcher is not None:
            self.policy_watcher.stop()


class ClusterAccessError(Exception):
    """The cluster cannot be used as given: the kubeconfig file, the address, the credentials or the RBAC.
    The message says which, in one line, and never carries a credential."""


# What the cluster view lists, cluster-wide (webhook/kube/informers.py), as RBAC would name it.
_VIEW_LISTS: tuple[tuple[str, str], ...] = (
    ("secrets", "list_secret_for_all_namespaces"),
    ("serviceaccounts", "list_service_account_for_all_namespaces"),
    ("nodes", "list_node"),
    ("namespaces", "list_namespace"),
)
PERMISSIONS_HINT = "see README: permissions"


def open_api(kubeconfig: str | None) -> client.ApiClient:
    """The API client for `kubeconfig`; a missing or unusable file is a ClusterAccessError naming it."""
    if kubeconfig is not None and not Path(kubeconfig).is_file():
        what = "is not a file" if Path(kubeconfig).exists() else "does not exist"
        raise ClusterAccessError(f"kubeconfig {kubeconfig} {what}")
    try:
        return load_api_client(kubeconfig)
    except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
        where = f"kubeconfig {kubeconfig}" if kubeconfig is not None else "the kubeconfig"
        raise ClusterAccessError(f"cannot use {where}: {exc}") from exc


def check_access(api: client.ApiClient, timeout: float = 5.0) -> None:
    """One small LIST of each kind the cluster view caches, cluster-wide, before any cache starts: a refused
    address, rejected credentials or a missing permission fail here in seconds, saying which (a cache would
    back off and retry them forever). Raises ClusterAccessError."""
    core = client.CoreV1Api(api)
    server = str(api.configuration.host)
    for resource, method in _VIEW_LISTS:
        try:
            response: Any = getattr(core, method)(limit=1, _preload_content=False, _request_timeout=(timeout, timeout))
            response.release_conn()
        except client.ApiException as exc:
            raise ClusterAccessError(_api_error(exc, resource, server)) from None
        except Exception as exc:  # urllib3's MaxRetryError wraps the socket error
            raise ClusterAccessError(_network_error(exc, server, timeout)) from None


def _api_error(exc: client.ApiException, resource: str, server: str) -> str:
    message = _status_message(exc)
    if exc.status == 401:
        return f"unauthorized: the API server at {server} rejected the kubeconfig's credentials"
    if exc.status == 403:
        said = f" (the API server said: {message})" if message else ""
        return f"forbidden: needs list {resource} cluster-wide ({PERMISSIONS_HINT}){said}"
    return f"the API server at {server} answered HTTP {exc.status} {exc.reason} to list {resource}" + (
        f": {message}" if message else ""
    )


def _status_message(exc: client.ApiException) -> str:
    """The Status message of an API error (which user, which verb): no object data is in it."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return str(message)[:300] if message else ""


def _network_error(exc: BaseException, server: str, timeout: float) -> str:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = getattr(current, "reason", None) or current.__cause__ or current.__context__
        if not isinstance(current, BaseException):
            current = None
    text = " ".join(f"{type(e).__name__}: {e}" for e in chain)
    lowered = text.lower()
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "connection refused" in lowered:
        return f"the API server at {server} refused the connection (nothing listens there: check the address)"
    if (
        "name or service not known" in lowered
        or "nodename nor servname" in lowered
        or "temporary failure in name" in lowered
    ):
        return f"the API server host in {server} does not resolve"
    if any(isinstance(e, TimeoutError) for e in chain) or "timed out" in lowered:
        return f"the API server at {server} did not answer within {timeout:g}s"
    if "certificate" in lowered or "ssl" in lowered:
        return f"TLS to the API server at {server} failed: {str(chain[-1])[:200]}"
    return f"cannot reach the API server at {server}: {str(chain[-1])[:200]}"


def connect(
    kubeconfig: str | None,
    holder: PolicyHolder | None = None,
    namespace: str | None = None,
    configmap: str = "",
    *,
    api: client.ApiClient | None = None,
) -> ClusterConnection:
    """Start the caches (and the policy ConfigMap watch when a namespace and holder are given)."""
    api = api if api is not None else load_api_client(kubeconfig)
    view = KubeClusterView(api)
    view.start()
    watcher = None
    if holder is not None and namespace and configmap:
        watcher = ConfigMapWatcher(
            api, namespace, configmap, _policy_callback(holder, f"configmap {namespace}/{configmap}")
        )
        watcher.start()
    return ClusterConnection(view, watcher)


def _policy_callback(holder: PolicyHolder, source: str) -> Callable[[dict[str, str] | None], None]:
    seen = False

    def offer(data: dict[str, str] | None) -> None:
        # Runs on the watch thread; the holder swaps the policy in one attribute write.
        nonlocal seen
        if data is None and not seen:  # never created: a fresh install runs on its --config or embedded policy
            holder.missing(source)
            return
        seen = True
        if data is None and source in holder.unsettled:
            holder.withdraw(source)  # it never held a valid policy: nothing to keep, nothing to wait for
        elif data is None:
            holder.reject(source, "the ConfigMap is gone: keeping the last good policy")
        elif POLICY_KEY not in data:
            holder.reject(source, f"the ConfigMap has no {POLICY_KEY!r} key: keeping the last good policy")
        else:
            holder.offer(data[POLICY_KEY], source)

    return offer


def wait_synced(connection: ClusterConnection, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if connection.synced():
            return True
        time.sleep(0.1)
    return connection.synced()


def service_account_tokens(api: client.ApiClient, view: ClusterView) -> KubeServiceAccountTokens:
    """Tokens for credential provider plugins with tokenAttributes, from the TokenRequest API (needs `create` on
    `serviceaccounts/token`), with each ServiceAccount's annotations read from the view's cache."""

    def annotations_of(namespace: str, name: str) -> Mapping[str, str] | None:
        account = view.service_account(namespace, name)
        return account.annotations if account is not None else None

    return KubeServiceAccountTokens(client.CoreV1Api(api), annotations_of)
