"""Issue 22, "no silent pass": `pullguard check` says in every format which checks could not run, for which image
and why (offline, no cluster view, no Node), and `--fail-on unverified` fails on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

NEVER_PULL_CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
            - name: job
              image: registry.example.test/shop/report:1.4
              imagePullPolicy: Never
"""
A_SECRET = """\
---
apiVersion: v1
kind: Secret
metadata: {name: unrelated, namespace: shop}
type: Opaque
data: {}
"""
A_NODE_WITH_THE_IMAGE = """\
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {kubernetes.io/arch: amd64, kubernetes.io/os: linux}}
status:
  conditions: [{type: Ready, status: "True"}]
  nodeInfo: {containerRuntimeVersion: "containerd://1.7.2"}
  images: [{names: [registry.example.test/shop/report:1.4], sizeBytes: 1000}]
"""
PULLED_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers: [{name: web, image: registry.example.test/shop/web:2.0}]
"""


def check(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "input.yaml"
    path.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "check", "--offline", "--progress", "off", "-f", str(path), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def json_report(tmp_path: Path, text: str, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    result = check(tmp_path, text, "--format", "json", *args)
    return result.returncode, json.loads(result.stdout)


def test_never_pull_with_no_node_in_the_input_is_not_a_silent_pass(tmp_path: Path) -> None:
    table = check(tmp_path, NEVER_PULL_CRONJOB + A_SECRET)
    assert table.returncode == 0, table.stderr
    assert "no findings; 1 check could not run (see below)" in table.stdout
    assert (
        "not checked, no Node in the view it may run on: neverPull (1 image); use --kubeconfig, or put the Nodes "
        "in the input (kubectl get nodes -o yaml)"
    ) in table.stdout

    code, body = json_report(tmp_path, NEVER_PULL_CRONJOB + A_SECRET)
    assert code == 0 and body["findings"] == []
    assert body["summary"]["notChecked"] == 1
    assert any(note.startswith("not checked, no Node in the view") for note in body["summary"]["notes"])
    (record,) = body["notChecked"]
    assert {k: record[k] for k in ("check", "gap", "kind", "name", "container", "line")} == {
        "check": "neverPull",
        "gap": "noNodes",
        "kind": "CronJob",
        "name": "nightly",
        "container": "job",
        "line": 13,
    }


def test_with_no_cluster_objects_at_all_the_view_is_missing(tmp_path: Path) -> None:
    code, body = json_report(tmp_path, NEVER_PULL_CRONJOB)
    assert code == 0
    assert [(r["check"], r["gap"]) for r in body["notChecked"]] == [("neverPull", "noCluster")]
    assert any("no cluster view" in note and "--kubeconfig" in note for note in body["summary"]["notes"])


def test_a_node_holding_the_image_leaves_nothing_unchecked(tmp_path: Path) -> None:
    code, body = json_report(tmp_path, NEVER_PULL_CRONJOB + A_NODE_WITH_THE_IMAGE)
    assert code == 0 and body["notChecked"] == [] and body["summary"]["notes"] == []


def test_offline_says_the_registry_checks_did_not_run(tmp_path: Path) -> None:
    code, body = json_report(tmp_path, PULLED_POD + A_NODE_WITH_THE_IMAGE)
    assert code == 0
    assert sorted((r["check"], r["gap"]) for r in body["notChecked"]) == [
        ("architecture", "noLookup"),
        ("imageExists", "noLookup"),
    ]
    (note,) = body["summary"]["notes"]
    assert note == (
        "not checked, no registry lookup (offline): imageExists (1 image), architecture (1 image); "
        "run without --offline to look the images up"
    )


def test_sarif_has_an_open_result_per_check_that_could_not_run(tmp_path: Path) -> None:
    result = check(tmp_path, NEVER_PULL_CRONJOB + A_SECRET, "--format", "sarif")
    run = json.loads(result.stdout)["runs"][0]
    (opened,) = [r for r in run["results"] if r.get("kind") == "open"]
    assert (opened["ruleId"], opened["level"], opened["properties"]["gap"]) == ("neverPull", "none", "noNodes")
    assert opened["locations"][0]["physicalLocation"]["region"]["startLine"] == 13
    notes = [n["message"]["text"] for n in run["invocations"][0]["toolExecutionNotifications"]]
    assert any(text.startswith("not checked, no Node in the view") for text in notes)


@pytest.mark.parametrize(("level", "code"), [("enforce", 0), ("warn", 0), ("unverified", 1)])
def test_fail_on_unverified_fails_on_a_check_that_could_not_run(tmp_path: Path, level: str, code: int) -> None:
    result = check(tmp_path, NEVER_PULL_CRONJOB + A_SECRET, "--fail-on", level)
    assert result.returncode == code, result.stdout + result.stderr
    if code:
        assert "1 failing at level unverified or above (--fail-on unverified)" in result.stderr


def test_every_finding_says_whether_it_is_unknown_and_whether_it_is_advisory(tmp_path: Path) -> None:
    _, body = json_report(tmp_path, PULLED_POD.replace(":2.0", ""))  # untagged: a latestTag finding
    (finding,) = body["findings"]
    assert (finding["check"], finding["unknown"], finding["advisory"]) == ("latestTag", False, False)
