"""A policy exception end to end through `pullguard check` (the same review and fact gathering as the webhook, which
supplies today's date): in force it turns a denial into a quoted, excepted finding in every format; expired it
denies again and says so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: tool, namespace: batch, labels: {app: legacy}}
spec:
  selector: {matchLabels: {app: legacy}}
  template:
    metadata: {labels: {app: legacy}}
    spec:
      containers: [{name: tool, image: vendor/tool}]
"""


def check(tmp_path: Path, expires: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "deployment.yaml").write_text(DEPLOYMENT)
    exception = (
        "{name: legacy-batch, namespace: batch, selector: {matchLabels: {app: legacy}}, checks: [latestTag], "
        f'expires: {expires}, reason: "vendor image, ticket OPS-123"}}'
    )
    (tmp_path / "policy.yaml").write_text(f"mode: enforce\nexceptions:\n  - {exception}\n")
    command = ["check", "--offline", "--progress", "off", "--config", str(tmp_path / "policy.yaml")]
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", *command, "-f", str(tmp_path / "deployment.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_exception_in_force_is_quoted_and_does_not_fail_the_run(tmp_path: Path) -> None:
    result = check(tmp_path, "2099-12-31", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    (finding,) = json.loads(result.stdout)["findings"]
    assert finding["excepted"] and not finding["denies"]
    assert (
        "(excepted until 2099-12-31 by policy exception legacy-batch: vendor image, ticket OPS-123)"
        in finding["message"]
    )
    table = check(tmp_path, "2099-12-31").stdout
    assert table.splitlines()[1].startswith("excepted  latestTag")
    sarif = json.loads(check(tmp_path, "2099-12-31", "--format", "sarif").stdout)
    assert [r["level"] for r in sarif["runs"][0]["results"] if r.get("kind") != "open"] == ["note"]
    assert check(tmp_path, "2099-12-31", "--fail-on", "warn").returncode == 0  # accepted by the operator


def test_an_expired_exception_denies_again_and_says_so(tmp_path: Path) -> None:
    result = check(tmp_path, "2001-01-01", "--format", "json")
    assert result.returncode == 1
    (finding,) = json.loads(result.stdout)["findings"]
    assert finding["denies"] and not finding["excepted"]
    assert "(policy exception legacy-batch expired on 2001-01-01: vendor image, ticket OPS-123)" in finding["message"]
