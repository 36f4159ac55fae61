"""Issue 14 in small: the DNS hint for an unreachable Docker Hub, progress rendering, the readiness gauge, and a
`make run` that installs only what serving needs from a pyproject setuptools does not warn about."""

from __future__ import annotations

import io
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from policies.checks import image_exists
from policies.config import parse_policy
from policies.model import Facts
from policies.registry_facts import ImageFacts, LookupStatus
from tests.unit.policy_helpers import image
from webhook.check.progress import Progress
from webhook.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
WITHOUT_PULL_SECRETS = parse_policy("checks: {pullSecrets: {mode: off}}")


def dns_finding(reference: str, registry: str, endpoint: str):  # type: ignore[no-untyped-def]
    found = ImageFacts(reference, LookupStatus.DNS, registry, endpoint=endpoint, detail="Name or service not known")
    (finding,) = image_exists.check(image(reference), Facts(images={reference: found}), WITHOUT_PULL_SECRETS)
    return finding


def test_an_unresolvable_docker_hub_suggests_a_mirror_hosts_dir_or_offline() -> None:
    finding = dns_finding("docker.io/library/nginx:1.27", "docker.io", "https://registry-1.docker.io/v2")
    assert "registry host registry-1.docker.io does not resolve" in finding.message
    assert "mirror rule" in finding.hint and "registry.hostsDir" in finding.hint and "--offline" in finding.hint
    assert "check the host name" not in finding.hint


def test_another_unresolvable_host_still_says_check_the_name() -> None:
    finding = dns_finding("registry.exmaple.com/app:1", "registry.exmaple.com", "https://registry.exmaple.com/v2")
    assert finding.hint == "check the host name; the nodes' resolver must resolve it too"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_lines_for_a_log_and_nothing_for_a_short_run() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = Progress(stream, workloads=4, budget=60, tty=False, every=1, clock=clock)
    progress.lookup_started(3)
    progress.lookup_done()
    progress.workload_done()
    clock.now += 1
    progress.tick()
    assert stream.getvalue() == ""  # under the quiet threshold: a short run prints nothing
    clock.now += 2
    progress.tick()
    assert stream.getvalue() == "pullguard check: workloads 1/4, registry lookups 1/3, 3s of 60s\n"
    progress.finish()
    assert stream.getvalue().count("\n") == 1 and "\r" not in stream.getvalue()


def test_progress_bar_on_a_terminal_is_redrawn_in_place_and_cleared() -> None:
    clock, stream = Clock(), io.StringIO()
    progress = Progress(stream, workloads=2, budget=None, tty=True, every=0.2, clock=clock)
    clock.now += 5
    progress.workload_done()
    progress.tick()
    text = stream.getvalue()
    assert text.startswith("\r\x1b[K") and "[" + "#" * 12 + "." * 12 + "]" in text and "\n" not in text
    progress.finish()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_auto_progress_follows_the_stream() -> None:
    assert Progress(io.StringIO(), workloads=1, budget=1).tty is False


def test_readiness_gauge_is_absent_until_wired_then_follows_the_probe() -> None:
    metrics = Metrics()
    assert b"pullguard_ready" not in generate_latest(metrics.registry)
    problems: list[str] = ["cache nodes not listed yet"]
    metrics.track_readiness(lambda: problems)
    assert b"pullguard_ready 0.0" in generate_latest(metrics.registry)
    problems.clear()
    assert b"pullguard_ready 1.0" in generate_latest(metrics.registry)


def test_pyproject_license_is_an_spdx_string_for_a_setuptools_that_accepts_it() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert project["build-system"]["requires"] == ["setuptools>=77"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_installs_only_the_runtime(tmp_path: Path) -> None:
    """On a fresh clone (no venv, no stamps) `make run` installs the package without its dev extra."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    run = subprocess.run(["make", "-n", "run"], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True)
    installs = [line for line in run.stdout.splitlines() if "pip install" in line and "-e" in line]
    assert installs and all("[dev]" not in line for line in installs), run.stdout
    test = subprocess.run(["make", "-n", "lint"], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=True)
    assert any("'.[dev]'" in line for line in test.stdout.splitlines()), test.stdout
