"""charts/pullguard/templates/ are generated from manifests/ (scripts/gen_chart.py): a stale template is a failure,
so the chart and the kustomize install cannot drift (tests/e2e/test_chart.py compares their renders)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_chart_templates_are_what_the_generator_writes() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_chart.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_a_stale_template_is_named(tmp_path: Path) -> None:
    """The check can fail: a template edited by hand (in a copy) is reported by name."""
    copy = tmp_path / "templates"
    shutil.copytree(REPO / "charts" / "pullguard" / "templates", copy)
    (copy / "service.yaml").write_text((copy / "service.yaml").read_text() + "# edited by hand\n")
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_chart.py"), "--check", "--templates", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and done.stderr.rstrip().endswith(": service.yaml"), done.stderr
