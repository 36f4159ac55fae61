"""What `explain` and `check` print is safe for the terminal it lands in (issue 20, item 6): controls from pod
status messages, events and image strings are shown as escapes, and a megabyte message is classified in bounded
work and printed clipped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from webhook.explain.pull_errors import MAX_CLASSIFIED_CHARS, PullErrorClass, classify
from webhook.logs import terminal_text

ESCAPES = ("\x1b", "\x07", "\x9b", "\u202e", "\u2028", "\r")


def test_terminal_text_shows_controls_as_escapes() -> None:
    shown = terminal_text("title\x1b]0;owned\x07 clear\x1b[2J csi\x9b31m \u202eevil\rline\nnext\ttab")
    assert not any(c in shown for c in ESCAPES)
    assert shown == "title\\x1b]0;owned\\x07 clear\\x1b[2J csi\\x9b31m \\u202eevil\\x0dline\nnext\ttab"


def test_a_megabyte_sandbox_message_is_classified_from_its_head() -> None:
    message = "create pod sandbox " * 16_000 + 'failed to pull image "registry.example.com/pause:3.10": not found'
    error = classify(message, "CreateContainerError")
    assert len(error.text) <= MAX_CLASSIFIED_CHARS + 40
    assert error.sandbox_image is None  # the cause is past the head: not claimed from what was left out
    real = (
        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox image "
        '"registry.example.com/pause:3.10": failed to pull image "registry.example.com/pause:3.10": not found'
    )
    found = classify(real, "CreateContainerError")
    assert found.sandbox_image == "registry.example.com/pause:3.10" and found.klass is PullErrorClass.NOT_FOUND


def test_check_prints_no_control_from_an_image(tmp_path: Path) -> None:
    image = "registry.example.com/App\x1b]0;owned\x07:1\u202e"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {"containers": [{"name": "c\x9b2J", "image": image}]},
    }
    path = tmp_path / "pod.json"
    path.write_text(json.dumps(pod))
    for output in ("table", "json", "sarif"):
        command = [sys.executable, "-m", "webhook.cli", "check", "--offline", "--format", output, "-f", str(path)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 1, result.stderr  # the invalid reference is enforced
        assert "App" in result.stdout
        assert not any(c in result.stdout + result.stderr for c in ESCAPES), (output, ascii(result.stdout[:500]))
        if output != "table":
            json.loads(result.stdout)  # still the same JSON document
