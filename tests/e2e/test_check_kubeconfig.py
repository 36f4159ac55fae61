"""`pullguard check --kubeconfig`: the live cluster's Secrets, ServiceAccounts and Nodes form the view."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from tests.e2e.cluster import Cluster

REPO = Path(__file__).resolve().parents[2]


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "check", "--offline", "--format", "json", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_check_uses_the_live_cluster(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    node = f"node-{uuid.uuid4().hex[:8]}"
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "notes", "namespace": namespace},
            "type": "Opaque",
            "stringData": {"text": "not a pull secret"},
        }
    )
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node, "labels": {"kubernetes.io/arch": "arm64", "kubernetes.io/os": "linux"}},
        }
    )
    status = {
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "images": [{"names": ["registry.example.com/team/cached:1.0"], "sizeBytes": 1}],
        }
    }
    cluster.kubectl("patch", "node", node, "--subresource=status", "--type=merge", "-p", json.dumps(status))
    try:
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app", "namespace": namespace},
            "spec": {
                "imagePullSecrets": [{"name": "notes"}, {"name": "nope"}],
                "containers": [
                    {"name": "cached", "image": "registry.example.com/team/cached:1.0", "imagePullPolicy": "Never"},
                    {"name": "absent", "image": "registry.example.com/team/absent:1.0", "imagePullPolicy": "Never"},
                    {"name": "pulled", "image": "registry.example.com/team/web:1.0"},  # secrets matter when pulled
                ],
            },
        }
        manifest = tmp_path / "pod.json"
        manifest.write_text(json.dumps(pod))
        result = check("-f", str(manifest), "--kubeconfig", str(cluster.kubeconfig))
        assert result.returncode == 0, result.stderr
        messages = [(f["check"], f["container"], f["message"]) for f in json.loads(result.stdout)["findings"]]
        secrets = {
            (container, m.split(" cannot be used")[0].split(" does not exist")[0])
            for c, container, m in messages
            if c == "pullSecrets"
        }
        assert secrets == {("pulled", 'imagePullSecret "nope"'), ("pulled", 'imagePullSecret "notes"')}, messages
        assert any(
            c == "pullSecrets" and 'imagePullSecret "nope" does not exist in namespace' in m for c, _, m in messages
        )
        assert any(c == "pullSecrets" and 'imagePullSecret "notes" cannot be used' in m for c, _, m in messages)
        never = [(container, m) for c, container, m in messages if c == "neverPull"]
        assert [container for container, _ in never] == ["absent"], messages

        table = check("-f", str(manifest), "--kubeconfig", str(cluster.kubeconfig), "--format", "table")
        assert "cluster view: the live cluster (--kubeconfig)\n" in table.stdout, table.stdout

        offline_view = check("-f", str(manifest))  # no kubeconfig, no cluster objects in the input: no view
        body = json.loads(offline_view.stdout)
        assert body["findings"] == []  # nothing found, and it says what it could not look at
        unchecked = {(n["container"], n["check"], n["gap"]) for n in body["notChecked"]}
        assert {("cached", "neverPull", "noCluster"), ("absent", "neverPull", "noCluster")} <= unchecked
    finally:
        cluster.kubectl("delete", "node", node, "--wait=false")


def test_input_files_form_the_view_without_kubeconfig(tmp_path: Path) -> None:
    docs = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "builder", "namespace": "shop"},
            "imagePullSecrets": [{"name": "gone"}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "template": {
                    "spec": {
                        "serviceAccountName": "builder",
                        "containers": [{"name": "web", "image": "registry.example.com/web:1"}],
                    }
                }
            },
        },
    ]
    manifest = tmp_path / "all.json"
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    result = check("--complete-input", "-f", str(manifest))
    (finding,) = json.loads(result.stdout)["findings"]
    assert finding["check"] == "pullSecrets"
    assert 'imagePullSecret "gone" (from its ServiceAccount) does not exist in namespace shop' in finding["message"]


def test_unreachable_cluster_is_an_input_error(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n")
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps({"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "a:1"}]}}))
    result = check("-f", str(manifest), "--kubeconfig", str(kubeconfig))
    assert result.returncode == 2
    assert "cannot use" in result.stderr and "Traceback" not in result.stderr
