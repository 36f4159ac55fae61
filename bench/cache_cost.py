"""RSS of one of pullguard's caches alone: `python -m bench.cache_cost KUBECONFIG CACHE` imports what `serve`
imports, builds the cluster view (webhook/kube/informers.py), starts only the named reflector and prints as JSON
the objects cached and the process's RSS (VmRSS) before the LIST and 1 s after it synced. CACHE: `secrets` (the
`kubernetes.io/dockerconfigjson` reflector), `serviceaccounts`, `nodes`, `namespaces`, or `empty` (the
`kubernetes.io/dockercfg` one, with nothing to list in the bench: what a first LIST, its connection and thread cost
by themselves). Run by `bench/scale.py` against the largest scale point's cluster: the README's sizing per 10,000
objects of each kind is measured, not derived."""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

import webhook.serve.server  # noqa: F401 - the modules serve has loaded when its caches start
from webhook.kube.informers import KubeClusterView, load_api_client
from webhook.util.memory import keep_large_buffers_returnable, return_freed_memory

REFLECTORS = {
    "empty": "secrets[type=kubernetes.io/dockercfg]",  # none in the bench: what a first LIST costs by itself
    "secrets": "secrets[type=kubernetes.io/dockerconfigjson]",
    "serviceaccounts": "serviceaccounts",
    "nodes": "nodes",
    "namespaces": "namespaces",
}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    kubeconfig, cache = sys.argv[1], sys.argv[2]
    keep_large_buffers_returnable()  # as serve does
    view = KubeClusterView(load_api_client(kubeconfig))
    (reflector,) = [r for r in view.reflectors if r.name == REFLECTORS[cache]]
    gc.collect()
    return_freed_memory()
    before = rss_mib()
    started = time.monotonic()
    reflector.start()
    while not reflector.synced():
        if time.monotonic() - started > 120:
            raise RuntimeError(f"{cache}: not synced in 120 s ({reflector.last_error})")
        time.sleep(0.01)
    listed = time.monotonic() - started
    time.sleep(1)
    after = rss_mib()
    reflector.stop()
    print(json.dumps({"cache": cache, "objects": len(reflector), "before_mib": before, "after_mib": after,
                      "list_seconds": listed}))  # fmt: skip


if __name__ == "__main__":
    main()
