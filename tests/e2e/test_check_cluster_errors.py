"""`pullguard check --kubeconfig` fails fast and says which: the file is missing, the address refused the
connection, or the user lacks a permission (against the real kube-apiserver's RBAC)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.e2e.cluster import REPO_ROOT, Cluster

POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p"},
    "spec": {"containers": [{"name": "a", "image": "a:1"}]},
}


def check(kubeconfig: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    manifest = tmp_path / "pod.json"
    manifest.write_text(json.dumps(POD))
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook.cli",
            "check",
            "--offline",
            "-f",
            str(manifest),
            "--kubeconfig",
            str(kubeconfig),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, time.monotonic() - started


def kubeconfig(path: Path, server: str, token: str, ca_file: Path | None) -> Path:
    cluster_entry: dict[str, str] = {"server": server}
    if ca_file is not None:
        cluster_entry["certificate-authority"] = str(ca_file)
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster_entry}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


def test_a_user_without_rbac_is_told_the_permission_it_needs(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = cluster.kubectl("create", "token", "nobody", "-n", namespace, "--duration=600s").stdout.strip()
    config = kubeconfig(tmp_path / "kubeconfig", cluster.server, token, cluster.ca_file)
    result, elapsed = check(config, tmp_path)
    assert result.returncode == 2, result.stdout
    assert "forbidden: needs list secrets cluster-wide (see README: permissions)" in result.stderr, result.stderr
    assert f"system:serviceaccount:{namespace}:nobody" in result.stderr  # the API server's words: who was refused
    assert "backing off" not in result.stderr and "Traceback" not in result.stderr
    assert token not in result.stderr
    assert elapsed < 10

    # Granted secrets only: the next missing permission is named.
    cluster.apply(
        [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": f"{namespace}-secrets"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch", "get"]}],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{namespace}-secrets"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": f"{namespace}-secrets",
                },
                "subjects": [{"kind": "ServiceAccount", "name": "nobody", "namespace": namespace}],
            },
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while True:  # RBAC changes reach the authorizer's cache within a moment
            result, _ = check(config, tmp_path)
            if "needs list secrets" not in result.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert result.returncode == 2
        assert "forbidden: needs list serviceaccounts cluster-wide" in result.stderr, result.stderr
    finally:
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", f"{namespace}-secrets", "--ignore-not-found")


def test_an_unknown_token_is_unauthorized(cluster: Cluster, tmp_path: Path) -> None:
    config = kubeconfig(tmp_path / "kubeconfig", cluster.server, "not-a-token", cluster.ca_file)
    result, elapsed = check(config, tmp_path)
    assert result.returncode == 2
    assert "unauthorized" in result.stderr and "not-a-token" not in result.stderr, result.stderr
    assert elapsed < 10


def test_a_closed_port_names_the_refused_address(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on (bound, never listening: refused)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        config = kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{port}", "t", None)
        result, elapsed = check(config, tmp_path)
    assert result.returncode == 2
    assert f"the API server at https://127.0.0.1:{port} refused the connection" in result.stderr, result.stderr
    assert "backing off" not in result.stderr and "Traceback" not in result.stderr
    assert elapsed < 10


def test_a_missing_kubeconfig_file_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "kubeconfig"
    result, elapsed = check(missing, tmp_path)
    assert result.returncode == 2
    assert f"kubeconfig {missing} does not exist" in result.stderr, result.stderr
    assert elapsed < 10
