"""The real `pullguard` executable: `serve` never runs a policy other than the one it was given, `--version`,
and help that states every flag's default."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.reviews import manifest, review
from tests.server import PullguardServer
from tests.support.loopback import free_port

PULLGUARD = str(Path(sys.executable).parent / "pullguard")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PULLGUARD, *args], capture_output=True, text=True, timeout=30, check=False)


def serve(tmp_path: Path, config: Path) -> tuple[subprocess.CompletedProcess[str], int]:
    port = free_port()
    cert_dir = tmp_path / "certs"
    result = run("serve", "--offline", "--port", str(port), "--cert-dir", str(cert_dir), "--config", str(config))
    return result, port


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_serve_with_a_missing_config_exits_2_before_anything(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent.yaml"
    result, port = serve(tmp_path, missing)
    assert result.returncode == 2
    assert f"pullguard serve: --config {missing}: cannot read" in result.stderr
    assert "listening" not in result.stderr + result.stdout
    assert not (tmp_path / "certs").exists() and port_is_free(port)


@pytest.mark.parametrize(
    ("text", "key"),
    [("mode: enforcee\n", "mode:"), ("checks: {latestTag: {mode: sometimes}}\n", "checks.latestTag.mode:")],
)
def test_serve_with_an_invalid_config_exits_2_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    config = tmp_path / "policy.yaml"
    config.write_text(text)
    result, port = serve(tmp_path, config)
    assert result.returncode == 2
    assert f"pullguard serve: --config {config}: {key}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "certs").exists() and port_is_free(port)


def test_serve_with_a_valid_config_runs_it(pullguard_factory: Callable[..., PullguardServer]) -> None:
    server = pullguard_factory("mode: enforce\n")
    ready = server.client().get("/readyz")
    assert ready.status_code == 200 and ready.json()["policy"] == str(server.policy_path)
    assert server.admit(review(manifest("deployment.yaml")))["allowed"] is False


def test_version() -> None:
    result = run("--version")
    assert (result.returncode, result.stdout) == (0, f"pullguard {version('pullguard')}\n")


def option_entries(help_text: str) -> dict[str, str]:
    """Each option's help, continuation lines joined: `  --flag ARG   text...`."""
    body = help_text.split("options:", 1)[1]
    entries: dict[str, str] = {}
    current = ""
    for line in body.splitlines():
        match = re.match(r"^  (-[^ ].*?)(?:  +(.*))?$", line)
        if match:
            current = re.findall(r"(?:^|[ ,])(--?[\w-]+)", match.group(1))[-1]
            entries[current] = match.group(2) or ""
        elif current and line.strip():
            entries[current] += " " + line.strip()
    return {flag: " ".join(text.split()) for flag, text in entries.items()}


@pytest.mark.parametrize("command", [[], ["serve"], ["certs"], ["check"]])
def test_every_flag_states_its_default(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0
    entries = option_entries(result.stdout)
    entries.pop("--help")
    if not command:
        assert entries.pop("--version") == "show program's version number and exit"
    for flag, text in entries.items():
        assert re.search(r"\(default: [^)]+\)|\(required\)", text), f"{' '.join(command)} {flag}: {text!r}"
    if command == ["check"]:
        assert entries["--format"] == "output format (default: table)"
        assert "(required)" in entries["--filename"]


def test_certs_never_replaces_a_ca_silently(tmp_path: Path) -> None:
    first = run("certs", "--out", str(tmp_path), "--dns", "localhost")
    assert first.returncode == 0, first.stderr
    ca = (tmp_path / "ca.crt").read_bytes()
    again = run("certs", "--out", str(tmp_path), "--dns", "localhost")
    assert again.returncode == 2 and "ca.crt exists; --force replaces it" in again.stderr
    assert (tmp_path / "ca.crt").read_bytes() == ca
    forced = run("certs", "--out", str(tmp_path), "--dns", "localhost", "--force")
    assert forced.returncode == 0 and (tmp_path / "ca.crt").read_bytes() != ca


def test_manage_certs_needs_a_namespace(tmp_path: Path) -> None:
    result = run("serve", "--manage-certs", "--cert-dir", str(tmp_path))
    assert result.returncode == 2 and "--manage-certs needs --namespace" in result.stderr


def test_serve_with_a_missing_kubeconfig_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    result = run("serve", "--offline", "--port", str(free_port()), "--cert-dir", str(tmp_path / "certs"),
                 "--kubeconfig", str(missing))  # fmt: skip
    assert result.returncode == 2 and f"kubeconfig {missing} does not exist" in result.stderr
    assert "Traceback" not in result.stderr
