"""Connect the service to a cluster: the informer-backed view for the checks, and the policy ConfigMap.

Used when `serve` runs in a pod or is given `--kubeconfig`; `check --kubeconfig` uses the view alone.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from webhook.kube.informers import ConfigMapWatcher, KubeClusterView, load_api_client
from webhook.policy_source import PolicyHolder

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


def connect(
    kubeconfig: str | None, holder: PolicyHolder | None = None, namespace: str | None = None, configmap: str = ""
) -> ClusterConnection:
    """Start the caches (and the policy ConfigMap watch when a namespace and holder are given)."""
    api = load_api_client(kubeconfig)
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
            log.info("no policy ConfigMap", extra={"fields": {"source": source, "policy": holder.source}})
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
