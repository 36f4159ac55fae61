"""Issue 22's table and CLI polish: a long image wraps inside a capped column (FILE:LINE never wraps), rows are
sorted by file and line in every format, and `--exclude GLOB` skips a chart's unrendered templates, counted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DIGEST = "sha256:" + "0123456789abcdef" * 4
POD = """\
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: shop}}
spec:
  containers: [{{name: app, image: "{image}"}}]
"""


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "check", "--offline", "--progress", "off", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_digest_wraps_in_its_column_instead_of_widening_every_row(tmp_path: Path) -> None:
    long_image = f"registry.example.test/platform/some/deep/path/Web@{DIGEST}"  # invalid: a reference finding
    (tmp_path / "pods.yaml").write_text(
        POD.format(name="short", image="nginx") + "---\n" + POD.format(name="long", image=long_image)
    )
    table = check("-f", str(tmp_path / "pods.yaml")).stdout
    rows = [line for line in table.splitlines() if line and not line.startswith(("no findings", "checked", "not "))]
    header = rows[0]
    image_at = header.index("IMAGE")
    problem_at = header.index("PROBLEM")
    assert problem_at - image_at <= 42  # the IMAGE column is at most 40 wide: the digest no longer widens every row
    pieces = [line[image_at:problem_at].strip() for line in rows[1:]]
    assert "".join(p for p in pieces if p != "nginx") == long_image  # wrapped, nothing lost
    assert f"{tmp_path / 'pods.yaml'}:5" in table and f"{tmp_path / 'pods.yaml'}:11" in table  # never wrapped


def test_rows_are_sorted_by_file_and_line_in_every_format(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(POD.format(name="b", image="nginx"))
    (tmp_path / "a.yaml").write_text(
        POD.format(name="a1", image="redis") + "---\n" + POD.format(name="a2", image="busybox")
    )
    args = ("-f", str(tmp_path / "b.yaml"), "-f", str(tmp_path / "a.yaml"))
    body = json.loads(check(*args, "--format", "json").stdout)
    assert [(Path(f["file"]).name, f["line"]) for f in body["findings"]] == [
        ("a.yaml", 5),
        ("a.yaml", 11),
        ("b.yaml", 5),
    ]
    sarif = json.loads(check(*args, "--format", "sarif").stdout)
    located = [
        (r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].rsplit("/", 1)[-1],
         r["locations"][0]["physicalLocation"]["region"]["startLine"])
        for r in sarif["runs"][0]["results"]
        if r.get("kind") != "open"
    ]  # fmt: skip
    assert located == [("a.yaml", 5), ("a.yaml", 11), ("b.yaml", 5)]


def test_exclude_skips_a_charts_templates_and_says_how_many(tmp_path: Path) -> None:
    deploy = tmp_path / "deploy"
    (deploy / "chart" / "templates").mkdir(parents=True)
    (deploy / "app.yaml").write_text(POD.format(name="app", image="nginx:1.27"))
    (deploy / "chart" / "templates" / "pod.yaml").write_text("{{ .Values.unrendered }}\n")
    unrendered = check("-f", str(deploy))
    assert unrendered.returncode == 2  # the template is not YAML: without --exclude every run fails
    excluded = check("-f", str(deploy), "--exclude", "templates", "--format", "json")
    assert excluded.returncode == 0, excluded.stderr
    body = json.loads(excluded.stdout)
    assert body["summary"]["excludedFiles"] == 1 and body["summary"]["workloads"] == 1
    assert "1 file in the directories given excluded by --exclude" in body["summary"]["notes"]
    named = check("-f", str(deploy / "chart" / "templates" / "pod.yaml"), "--exclude", "templates")
    assert named.returncode == 2  # a file named on the command line is read whatever --exclude says
