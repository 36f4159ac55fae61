"""The informer caches against a real apiserver: what they hold, how they follow changes, how they recover."""

from __future__ import annotations

import base64
import functools
import json
import queue
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from tests.e2e.cluster import Cluster, ManagedProcess, _apiserver_argv, _http_ok, wait_until
from tests.support.loopback import free_port
from tests.support.polling import eventually
from webhook.kube.informers import ConfigMapWatcher, KubeClusterView, load_api_client
from webhook.kube.reflector import Reflector

pytestmark = pytest.mark.timeout(150)

WAIT = 10.0  # every "eventually" is bounded by this


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _docker_config(server: str, user: str, password: str) -> str:
    auth = _b64(f"{user}:{password}")
    return json.dumps({"auths": {server: {"username": user, "password": password, "auth": auth}}})


@pytest.fixture(scope="module")
def api_client(cluster: Cluster) -> Iterator[client.ApiClient]:
    api = load_api_client(str(cluster.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def view(api_client: client.ApiClient) -> Iterator[KubeClusterView]:
    cluster_view = KubeClusterView(api_client)
    cluster_view.start()
    eventually(cluster_view.synced, "the cluster view to sync")
    yield cluster_view
    assert cluster_view.stop(timeout=5.0), "reflector threads did not end"


# --------------------------------------------------------------------------- Secrets


def test_pull_secret_is_cached_with_data_and_follows_changes(
    cluster: Cluster, namespace: str, view: KubeClusterView
) -> None:
    def manifest(password: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "regcred", "namespace": namespace},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": _b64(_docker_config("registry.example.test", "robot", password))},
        }

    assert view.secret(namespace, "regcred") is None
    cluster.apply(manifest("first"))
    secret = eventually(lambda: view.secret(namespace, "regcred"), "the pull secret")
    assert secret.type == "kubernetes.io/dockerconfigjson"
    assert (
        base64.b64decode(secret.data[".dockerconfigjson"])
        == _docker_config("registry.example.test", "robot", "first").encode()
    )

    cluster.apply(manifest("second"))
    changed = eventually(
        lambda: (s := view.secret(namespace, "regcred")) and b"second" in base64.b64decode(s.data[".dockerconfigjson"]),
        "the modified pull secret",
    )
    assert changed

    cluster.kubectl("delete", "secret", "regcred", "-n", namespace)
    eventually(lambda: view.secret(namespace, "regcred") is None, "the deleted pull secret to go")


def test_dockercfg_secret_is_cached_too(cluster: Cluster, namespace: str, view: KubeClusterView) -> None:
    dockercfg = json.dumps({"registry.example.test": {"auth": _b64("robot:pw")}})
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "legacy", "namespace": namespace},
            "type": "kubernetes.io/dockercfg",
            "data": {".dockercfg": _b64(dockercfg)},
        }
    )
    secret = eventually(lambda: view.secret(namespace, "legacy"), "the dockercfg secret")
    assert secret.type == "kubernetes.io/dockercfg"
    assert base64.b64decode(secret.data[".dockercfg"]).decode() == dockercfg


def test_other_secrets_are_known_by_name_and_type_only(cluster: Cluster, namespace: str, view: KubeClusterView) -> None:
    cluster.kubectl("create", "secret", "generic", "not-a-pull-secret", "-n", namespace, "--from-literal=token=s3cr3t")
    secret = eventually(lambda: view.secret(namespace, "not-a-pull-secret"), "the Opaque secret")
    assert secret.type in ("Opaque", "")
    assert dict(secret.data) == {}

    # Nothing of an Opaque secret's data is held: not in the index, not in the pull-secret caches.
    reflectors = {r.name: r for r in view.reflectors}
    index = reflectors["secrets[index]"]
    assert all(not stub.data for stub in index.values())
    assert index.get(namespace, "not-a-pull-secret") is not None
    # ...and pull secrets live only in their own caches (each Secret in exactly one).
    assert all(
        stub.type not in ("kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg") for stub in index.values()
    )
    for name, reflector in reflectors.items():
        if name.startswith("secrets[type="):
            assert reflector.get(namespace, "not-a-pull-secret") is None
            assert all(
                s.type in ("kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg") for s in reflector.values()
            )

    assert view.secret(namespace, "never-created") is None
    cluster.kubectl("delete", "secret", "not-a-pull-secret", "-n", namespace)
    eventually(lambda: view.secret(namespace, "not-a-pull-secret") is None, "the deleted Opaque secret to go")


# --------------------------------------------------------------------------- ServiceAccounts and Nodes


def test_service_account_pull_secrets_are_cached(cluster: Cluster, namespace: str, view: KubeClusterView) -> None:
    def manifest(*secrets: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "builder", "namespace": namespace},
            "imagePullSecrets": [{"name": s} for s in secrets],
        }

    cluster.apply(manifest("one", "two"))
    account = eventually(lambda: view.service_account(namespace, "builder"), "the ServiceAccount")
    assert account.image_pull_secrets == ("one", "two")

    cluster.apply(manifest("three"))
    eventually(
        lambda: (a := view.service_account(namespace, "builder")) and a.image_pull_secrets == ("three",),
        "the modified ServiceAccount",
    )
    # The namespace's own default ServiceAccount (created by the harness) is there too.
    assert view.service_account(namespace, "default") is not None


def test_node_labels_images_and_readiness_are_cached(cluster: Cluster, view: KubeClusterView) -> None:
    name = f"node-{uuid.uuid4().hex[:8]}"
    cluster.kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {"kubernetes.io/arch": "arm64", "pool": "gpu"}},
                "spec": {"taints": [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]},
            }
        ),
    )
    try:
        node = eventually(lambda: next((n for n in view.nodes() if n.name == name), None), "the Node")
        assert node.labels["pool"] == "gpu"
        # (admission adds node.kubernetes.io/not-ready too: no kubelet ever reported)
        assert ("gpu", "true", "NoSchedule") in node.taints
        assert not node.ready
        assert node.images_listed == 0

        status = {
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok"}],
                "images": [
                    {"names": ["docker.io/library/nginx@sha256:" + "a" * 64, "docker.io/library/nginx:1.27"]},
                    {"names": ["registry.k8s.io/pause:3.10"]},
                ],
            }
        }
        cluster.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(status))
        updated = eventually(
            lambda: next((n for n in view.nodes() if n.name == name and n.ready), None), "the Node's new status"
        )
        assert updated.images_listed == 2
        assert "docker.io/library/nginx:1.27" in updated.images
        assert "registry.k8s.io/pause:3.10" in updated.images
    finally:
        cluster.kubectl("delete", "node", name, "--ignore-not-found")
    eventually(lambda: all(n.name != name for n in view.nodes()), "the deleted Node to go")


# --------------------------------------------------------------------------- readiness, failure, stop


def test_api_client_pool_holds_every_watch(api_client: client.ApiClient) -> None:
    # One connection per open watch (5 for the view, 1 per ConfigMapWatcher) plus room for lists.
    assert api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] >= 16


def test_synced_only_after_every_cache_listed(api_client: client.ApiClient) -> None:
    cluster_view = KubeClusterView(api_client)
    assert not cluster_view.synced()
    cluster_view.start()
    try:
        eventually(cluster_view.synced, "the cluster view to sync")
        assert all(r.lists == 1 for r in cluster_view.reflectors)
    finally:
        started = time.monotonic()
        assert cluster_view.stop(timeout=5.0)
        assert time.monotonic() - started < 4.0, "stop() must cut open watches, not wait out their 300 s"


def test_dead_apiserver_keeps_view_unready_and_backs_off() -> None:
    configuration = client.Configuration(host=f"https://127.0.0.1:{free_port()}")  # nothing listens there
    configuration.retries = False
    api = client.ApiClient(configuration)
    cluster_view = KubeClusterView(api, backoff_initial=0.2, backoff_max=1.0)
    cluster_view.start()
    try:
        time.sleep(2.5)
        assert not cluster_view.synced()
        for reflector in cluster_view.reflectors:
            assert reflector.running()
            assert reflector.errors >= 2, reflector.name  # kept retrying...
            # ...but backed off: 0.2 s doubling to 1 s (jittered down to half) allows at most ~9 in 2.5 s.
            assert reflector.errors <= 10, (reflector.name, reflector.errors)
            assert reflector.last_error
    finally:
        assert cluster_view.stop(timeout=5.0)
        api.close()


def test_configmap_watcher_calls_back_on_create_update_delete(
    cluster: Cluster, namespace: str, api_client: client.ApiClient
) -> None:
    calls: queue.Queue[dict[str, str] | None] = queue.Queue()
    watcher = ConfigMapWatcher(api_client, namespace, "pullguard-policy", calls.put)
    watcher.start()
    try:
        assert calls.get(timeout=WAIT) is None  # the first list: not there yet
        assert watcher.synced()

        cluster.kubectl("create", "configmap", "pullguard-policy", "-n", namespace, "--from-literal=mode=warn")
        assert calls.get(timeout=WAIT) == {"mode": "warn"}

        # Another ConfigMap in the namespace is not ours: no call.
        cluster.kubectl("create", "configmap", "unrelated", "-n", namespace, "--from-literal=mode=enforce")
        cluster.kubectl("label", "configmap", "pullguard-policy", "-n", namespace, "touched=yes")  # data unchanged

        patch = json.dumps({"data": {"mode": "enforce"}})
        cluster.kubectl("patch", "configmap", "pullguard-policy", "-n", namespace, "--type=merge", "-p", patch)
        assert calls.get(timeout=WAIT) == {"mode": "enforce"}

        cluster.kubectl("delete", "configmap", "pullguard-policy", "-n", namespace)
        assert calls.get(timeout=WAIT) is None
        assert calls.empty()
    finally:
        assert watcher.stop(timeout=5.0)


# --------------------------------------------------------------------------- 410 Gone


@pytest.fixture(scope="module")
def uncached_kubeconfig(cluster: Cluster) -> Iterator[Path]:
    """A second kube-apiserver on the session's etcd, without the watch cache.

    The usual apiserver serves watches from its cache, which keeps history far longer than a test can wait out;
    without it a watch goes to etcd, so compacting etcd makes an old resourceVersion answer a real 410.
    """
    port = free_port()
    server = f"https://127.0.0.1:{port}"
    argv = _apiserver_argv(cluster.bin_dir, cluster.workdir, cluster.etcd_url, port, ["--watch-cache=false"])
    proc = ManagedProcess.spawn("kube-apiserver (no watch cache)", argv, cluster.workdir / "kube-apiserver-nocache.log")
    try:
        with httpx.Client(
            base_url=server,
            verify=ssl.create_default_context(cafile=str(cluster.ca_file)),
            headers={"Authorization": f"Bearer {cluster.token}"},
        ) as http:
            wait_until(
                "kube-apiserver (no watch cache) /readyz", functools.partial(_http_ok, http, "/readyz"), 90, proc, 0.25
            )
        kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
        kubeconfig["clusters"][0]["cluster"]["server"] = server
        path = cluster.workdir / "kubeconfig-nocache"
        path.write_text(yaml.safe_dump(kubeconfig))
        yield path
    finally:
        proc.stop()


def _etcd_compact_to_head(etcd_url: str) -> int:
    """Compact etcd at its current revision (its v3 JSON gateway); every older revision becomes unwatchable."""
    with httpx.Client(base_url=etcd_url, timeout=10.0) as etcd:
        head = int(etcd.post("/v3/kv/range", json={"key": _b64("\0"), "limit": 1}).json()["header"]["revision"])
        etcd.post("/v3/kv/compaction", json={"revision": str(head), "physical": True}).raise_for_status()
    return head


def test_watch_expired_by_compaction_relists(cluster: Cluster, namespace: str, uncached_kubeconfig: Path) -> None:
    api = load_api_client(str(uncached_kubeconfig))
    # Short server-side watches, so the reflector soon re-watches from the resourceVersion it holds.
    reflector: Reflector[str] = Reflector(
        "configmaps[410 test]",
        client.CoreV1Api(api).list_namespaced_config_map,
        lambda obj: str((obj.get("data") or {}).get("k", "")),
        list_kwargs={"namespace": namespace},
        watch_timeout_seconds=1,
        backoff_initial=0.1,
    )
    reflector.start()
    bumped = f"bump-{uuid.uuid4().hex[:8]}"
    try:
        eventually(reflector.synced, "the first list")
        assert (reflector.lists, reflector.expired) == (1, 0)
        cluster.kubectl("create", "configmap", "before", "-n", namespace, "--from-literal=k=1")
        eventually(lambda: reflector.get(namespace, "before") == "1", "the watch to see a ConfigMap")

        # Writes outside the watched namespace move etcd past the reflector's resourceVersion; compacting
        # then makes that version unavailable, and the next re-watch is answered 410.
        for suffix in ("a", "b"):
            cluster.kubectl("create", "configmap", f"{bumped}-{suffix}", "-n", "default")
        _etcd_compact_to_head(cluster.etcd_url)

        eventually(lambda: reflector.expired >= 1 and reflector.lists >= 2, "a 410 and the relist after it")
        assert reflector.errors == 0, reflector.last_error
        assert reflector.get(namespace, "before") == "1"  # the relisted store is whole

        cluster.kubectl("create", "configmap", "after", "-n", namespace, "--from-literal=k=2")
        eventually(lambda: reflector.get(namespace, "after") == "2", "the watch to resume after the relist")
    finally:
        assert reflector.stop(timeout=5.0)
        api.close()
        for suffix in ("a", "b"):
            cluster.kubectl("delete", "configmap", f"{bumped}-{suffix}", "-n", "default", "--ignore-not-found")


def test_stop_ends_threads_blocked_in_a_watch(api_client: client.ApiClient) -> None:
    cluster_view = KubeClusterView(api_client, watch_timeout_seconds=300)
    cluster_view.start()
    eventually(cluster_view.synced, "the cluster view to sync")
    time.sleep(0.3)  # let every reflector open its watch
    started = time.monotonic()
    assert cluster_view.stop(timeout=5.0)
    assert time.monotonic() - started < 4.0, "stop() must cut open watches, not wait out their 300 s"
    assert not any(r.running() for r in cluster_view.reflectors)
