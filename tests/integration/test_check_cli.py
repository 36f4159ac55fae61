"""`pullguard check` as CI runs it: a real subprocess, files, directories and stdin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.reviews import DATA

MANIFESTS = DATA / "manifests"


def check(*args: str, stdin: str | None = None, offline: bool = True) -> subprocess.CompletedProcess[str]:
    """Offline unless asked: tests reach registries on loopback only (see tests/integration/test_registry_*)."""
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "check", *args, *(["--offline"] if offline else [])],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def findings(result: subprocess.CompletedProcess[str]) -> list[dict]:
    return json.loads(result.stdout)["findings"]


def test_json_output_shape_and_clean_exit() -> None:
    result = check("-f", str(MANIFESTS / "deployment.yaml"), "--format", "json")
    assert result.returncode == 0, result.stderr
    first = findings(result)[0]
    assert {k: first[k] for k in ("check", "mode", "kind", "namespace", "name", "container", "image", "reason")} == {
        "check": "latestTag",
        "mode": "warn",
        "kind": "Deployment",
        "namespace": "shop",
        "name": "web",
        "container": "web",
        "image": "nginx",
        "reason": "NotReproducible",
    }
    assert first["message"] == 'container "web" image "nginx" has no tag (resolves to latest)'
    assert first["hint"] == "pin a version tag or digest"
    assert first["file"].endswith("deployment.yaml")
    assert (first["line"], first["column"]) == (16, 9)  # the `image:` of container "web", not the document


def test_multi_document_file_and_line_numbers() -> None:
    result = check("-f", str(MANIFESTS / "workloads.yaml"), "--format", "json")
    assert result.returncode == 0
    got = [(f["kind"], f["image"], f["line"]) for f in findings(result)]
    assert ("DaemonSet", "fluent/fluent-bit", 23) in got
    assert ("CronJob", "alpine", 70) in got
    assert [k for k, _, _ in got] == ["DaemonSet", "ReplicationController", "CronJob", "PodTemplate"]


def test_directory_list_json_and_non_workloads() -> None:
    result = check("-f", str(MANIFESTS), "--format", "json")
    assert result.returncode == 1  # invalid-image.yaml has an enforced finding
    images = {f["image"] for f in findings(result)}
    assert {"redis", "busybox", "nginx", "Registry.Example.com/Team/App:1.0"} <= images
    assert "redis:7.2.4" not in images
    assert not any(f["kind"] in ("ConfigMap", "Service") for f in findings(result))


def test_enforced_finding_exits_1_and_table_says_deny() -> None:
    result = check("-f", str(MANIFESTS / "invalid-image.yaml"))
    assert result.returncode == 1
    assert result.stdout.startswith("MODE")
    assert "DENY" in result.stdout and "InvalidImageName" in result.stdout
    assert "\n1 finding, 1 enforced\n" in result.stdout


def test_stdin_and_config(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("mode: enforce\n")
    text = (MANIFESTS / "pod.yaml").read_text()
    assert check("-f", "-", stdin=text).returncode == 0
    result = check("-f", "-", "--config", str(policy), "--format", "json", stdin=text)
    assert result.returncode == 1
    assert [(f["mode"], f["denies"], f["file"]) for f in findings(result)] == [("enforce", True, "<stdin>")]


def test_no_findings() -> None:
    clean = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: a, image: 'redis:7.2.4'}]}\n"
    result = check("-f", "-", stdin=clean)
    # offline and without a cluster view: no finding, but never a bare "no findings"
    assert result.returncode == 0 and result.stdout.startswith("no findings; 3 checks could not run (see below)\n")
    assert "checked 1 file: 1 object, 1 workload, 1 image\n" in result.stdout
    assert findings(check("-f", "-", "--format", "json", stdin=clean)) == []


def test_sarif() -> None:
    result = check("-f", str(MANIFESTS / "invalid-image.yaml"), "--format", "sarif")
    sarif = json.loads(result.stdout)
    assert sarif["version"] == "2.1.0"
    (run,) = sarif["runs"]
    assert run["tool"]["driver"]["name"] == "pullguard"
    (item,) = run["results"]
    assert item["ruleId"] == "reference" and item["level"] == "error"
    assert item["locations"][0]["physicalLocation"]["region"] == {"startLine": 6, "startColumn": 17}


def test_input_errors_exit_2_with_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: a\n")
    result = check("-f", str(broken))
    assert result.returncode == 2
    assert f"{broken}:4" in result.stderr or f"{broken}:3" in result.stderr
    assert "Traceback" not in result.stderr

    assert check("-f", str(tmp_path / "missing.yaml")).returncode == 2
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    assert "must be an object" in check("-f", str(scalar)).stderr
    shape = tmp_path / "shape.yaml"
    shape.write_text("kind: Pod\nspec: {containers: nginx}\n")
    result = check("-f", str(shape))
    assert result.returncode == 2 and "spec.containers: expected a list" in result.stderr

    bad_policy = tmp_path / "bad-policy.yaml"
    bad_policy.write_text("mode: sometimes\n")
    result = check("-f", str(MANIFESTS / "pod.yaml"), "--config", str(bad_policy))
    assert result.returncode == 2 and "bad-policy.yaml: mode:" in result.stderr


def test_usage_error_exits_2() -> None:
    result = check("--format", "xml", "-f", "x")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_certs_command(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "webhook.cli",
            "certs",
            "--out",
            str(tmp_path),
            "--dns",
            "pullguard.svc",
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tls.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ca.key").stat().st_mode & 0o777 == 0o600
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["pullguard.svc", "localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    bad = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "certs", "--out", str(tmp_path), "--ip", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_table_has_a_file_line_column_and_does_not_repeat_the_image() -> None:
    result = check("-f", str(MANIFESTS / "deployment.yaml"))
    header, first = result.stdout.splitlines()[:2]
    assert header.split() == ["MODE", "CHECK", "REASON", "FILE:LINE", "OBJECT", "CONTAINER", "IMAGE", "PROBLEM"]
    assert f"{MANIFESTS / 'deployment.yaml'}:16 " in first
    problem = first[header.index("PROBLEM") :]
    assert problem == "has no tag (resolves to latest); fix: pin a version tag or digest"
    assert 'image "nginx"' not in first


def test_sarif_rules_version_and_relative_paths() -> None:
    from importlib.metadata import version

    repo = MANIFESTS.parents[2]
    command = [sys.executable, "-m", "webhook.cli", "check", "--offline", "--format", "sarif"]
    files = ["-f", "tests/data/manifests/deployment.yaml", "-f", str(MANIFESTS / "invalid-image.yaml")]
    result = subprocess.run(
        [*command, *files],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    (run,) = json.loads(result.stdout)["runs"]
    driver = run["tool"]["driver"]
    assert driver["version"] == version("pullguard")
    rules = {rule["id"]: rule for rule in driver["rules"]}
    assert set(rules) == {"reference", "latestTag", "imageExists", "pullSecrets", "architecture", "neverPull"}
    for rule in rules.values():
        assert all(rule[key]["text"] for key in ("shortDescription", "fullDescription", "help")), rule
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == repo.as_uri() + "/"
    located = {
        (r["ruleId"], r["level"], r["properties"]["container"]): r["locations"][0]["physicalLocation"]
        for r in run["results"]
    }
    assert located[("latestTag", "warning", "web")] == {
        "artifactLocation": {"uri": "tests/data/manifests/deployment.yaml", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 16, "startColumn": 9},
    }
    # given as an absolute path inside the working directory: still relative
    assert located[("reference", "error", "app")]["artifactLocation"] == {
        "uri": "tests/data/manifests/invalid-image.yaml",
        "uriBaseId": "%SRCROOT%",
    }
    assert [r["ruleIndex"] for r in run["results"]] == [list(rules).index(r["ruleId"]) for r in run["results"]]
    assert run["invocations"][0]["executionSuccessful"] is True
