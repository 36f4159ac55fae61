"""`pullguard check` accounts for every object: what it checked, what it skipped and why, and what it could not
read. Nothing checked is never a silent pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.reviews import DATA

MANIFESTS = DATA / "manifests"


def check(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "check", "--offline", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def report(*args: str, stdin: str | None = None) -> tuple[int, dict, str]:
    result = check(*args, "--format", "json", stdin=stdin)
    return result.returncode, json.loads(result.stdout), result.stderr


def test_skipped_objects_are_listed_with_their_reason() -> None:
    code, body, _ = report("-f", str(MANIFESTS / "skipped.yaml"), "-f", str(MANIFESTS / "not-workloads.yaml"))
    assert code == 0 and body["findings"] == []
    skipped = [(s["line"], s["kind"], s["namespace"], s["name"], s["reason"], s["error"]) for s in body["skipped"]]
    assert skipped == [
        (
            2,
            "Deployment",
            "kube-system",
            "dns",
            "namespace kube-system is excluded by the policy (excludeNamespaces)",
            False,
        ),
        (
            11,
            "Rollout",
            "shop",
            "canary",
            "kind Rollout is not a kind pullguard knows how to read pods from (argoproj.io/v1alpha1)",
            False,
        ),
        (
            20,
            "Service",
            "shop",
            "hello",
            "kind Service is not a kind pullguard knows how to read pods from (serving.knative.dev/v1)",
            False,
        ),
        (1, "ConfigMap", "default", "settings", "kind ConfigMap makes no pods", False),
        (6, "Service", "shop", "web", "kind Service makes no pods", False),
    ]
    assert {s["file"] for s in body["skipped"]} == {
        str(MANIFESTS / "skipped.yaml"),
        str(MANIFESTS / "not-workloads.yaml"),
    }
    summary = body["summary"]
    assert {k: summary[k] for k in ("files", "objects", "workloads", "images", "skipped", "errors", "findings")} == {
        "files": 2,
        "objects": 5,
        "workloads": 0,
        "images": 0,
        "skipped": 5,
        "errors": 0,
        "findings": 0,
    }
    assert summary["notes"] == [
        f"nothing to check: no workload to check in {MANIFESTS / 'skipped.yaml'}, "
        f"{MANIFESTS / 'not-workloads.yaml'} (5 objects skipped)"
    ]


def test_a_kube_system_workload_is_skipped_not_clean(tmp_path: Path) -> None:
    result = check("-f", str(MANIFESTS / "skipped.yaml"))
    assert result.returncode == 0
    assert "no findings" in result.stdout
    assert "Deployment/kube-system/dns" in result.stdout and "excluded by the policy" in result.stdout
    assert "nothing to check" in result.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_text("excludeNamespaces: []\n")
    code, body, _ = report("-f", str(MANIFESTS / "skipped.yaml"), "--config", str(policy))
    assert code == 1 and body["findings"][0]["image"] == "UPPER/Case:latest"  # what the exclusion hid


def test_summary_counts_files_objects_images_and_the_cluster_view(tmp_path: Path) -> None:
    account = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: builder, namespace: shop}\n"
    (tmp_path / "account.yaml").write_text(account)
    code, body, _ = report("-f", str(MANIFESTS), "-f", str(tmp_path))
    assert code == 1  # invalid-image.yaml
    summary = body["summary"]
    assert summary["files"] == len(list(MANIFESTS.glob("*.y*ml"))) + len(list(MANIFESTS.glob("*.json"))) + 1
    assert (summary["objects"], summary["workloads"], summary["images"], summary["clusterView"]) == (18, 12, 17, 1)
    assert summary["clusterSource"] == "input"
    assert summary["objects"] == summary["workloads"] + summary["clusterView"] + summary["skipped"]
    assert (summary["findings"], summary["enforced"]) == (len(body["findings"]), 1)
    table = check("-f", str(MANIFESTS), "-f", str(tmp_path)).stdout
    assert "checked 8 files: 18 objects, 12 workloads, 17 images\n" in table
    assert "cluster view: 1 object from the input (Secrets, ServiceAccounts, Nodes)\n" in table
    assert "skipped 5 objects:\n" in table


def test_unparseable_files_are_reported_the_rest_is_checked_and_exit_is_2(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    (tmp_path / "chart.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-web\n"
    )
    (tmp_path / "evil.yaml").write_text(f"kind: Pod\nmetadata: !!python/object/apply:os.system ['touch {marker}']\n")
    (tmp_path / "name.yaml").write_text("kind: Pod\nmetadata: !!python/name:os.system\n")
    (tmp_path / "pod.yaml").write_text((MANIFESTS / "invalid-image.yaml").read_text())
    code, body, stderr = report("-f", str(tmp_path))
    assert code == 2  # unreadable input outranks the enforced finding below
    assert not marker.exists()
    assert [(f["check"], f["denies"]) for f in body["findings"]] == [("reference", True)]
    errors = {(Path(s["file"]).name, s["line"]): s["reason"] for s in body["skipped"] if s["error"]}
    assert set(errors) == {("chart.yaml", 4), ("evil.yaml", 2), ("name.yaml", 2)}
    assert "unrendered template" in errors[("chart.yaml", 4)]
    assert "python/name:os.system" in errors[("name.yaml", 2)]
    assert f"{tmp_path / 'chart.yaml'}:4: not valid YAML or JSON" in stderr
    assert body["summary"]["errors"] == 3 and body["summary"]["exitCode"] == 2
    table = check("-f", str(tmp_path))
    assert table.returncode == 2 and "unreadable (3, exit status 2):" in table.stdout and "DENY" in table.stdout


def test_nothing_to_check_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = check("-f", str(empty))
    assert result.returncode == 0
    line = f"nothing to check: no Kubernetes objects in {empty}"
    assert line in result.stdout and line in result.stderr
    text = tmp_path / "text"
    text.mkdir()
    (text / "README.txt").write_text("kind: Pod\n")
    result = check("-f", str(text))
    assert result.returncode == 0
    assert f"nothing to check: no Kubernetes objects in {text}" in result.stderr
    assert "1 file in the directories given not read" in result.stdout
    code, body, _ = report("-f", str(text))
    assert (code, body["summary"]["files"], body["summary"]["ignoredFiles"]) == (0, 0, 1)
    assert (
        check("-f", "-", stdin="").stderr.strip() == "pullguard check: nothing to check: no Kubernetes objects in stdin"
    )


def test_a_path_that_does_not_exist_is_exit_2_and_the_rest_is_checked(tmp_path: Path) -> None:
    code, body, stderr = report("-f", str(tmp_path / "missing.yaml"), "-f", str(MANIFESTS / "pod.yaml"))
    assert code == 2
    assert f"{tmp_path / 'missing.yaml'}: no such file or directory" in stderr
    assert body["summary"]["workloads"] == 1
    assert body["skipped"][0] == {
        "file": str(tmp_path / "missing.yaml"),
        "line": None,
        "kind": None,
        "namespace": None,
        "name": None,
        "reason": "no such file or directory",
        "error": True,
    }


def test_a_malformed_workload_is_an_error_but_not_the_end(tmp_path: Path) -> None:
    (tmp_path / "shape.yaml").write_text(
        "kind: Pod\nmetadata: {name: bad}\nspec: {containers: nginx}\n---\n"
        "kind: Pod\nmetadata: {name: good}\nspec: {containers: [{name: a, image: 'redis:7.2.4'}]}\n"
        "---\nmetadata: {name: values}\nreplicas: 2\n"
    )
    code, body, stderr = report("-f", str(tmp_path / "shape.yaml"))
    assert code == 2 and "spec.containers: expected a list" in stderr
    assert [(s["name"], s["error"]) for s in body["skipped"]] == [("bad", True), ("values", False)]
    assert body["skipped"][1]["reason"] == "no kind: not a Kubernetes object"
    assert body["summary"]["workloads"] == 1
