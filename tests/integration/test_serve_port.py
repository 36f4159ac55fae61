"""A port in use is a clear error and exit status 3 before anything starts: no "listening" line, no certificate
written (issue 22: `make run` twice used to log "listening", then exit)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from webhook.serve.listen import EXIT_CANNOT_LISTEN


def test_a_busy_port_is_named_and_exits_3(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "webhook.cli", "serve", "--port", str(port), "--cert-dir", str(tmp_path / "certs")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == EXIT_CANNOT_LISTEN == 3, done.stderr
    assert f"pullguard serve: cannot listen on 127.0.0.1:{port}: the address is in use" in done.stderr
    assert "--port" in done.stderr and "listening" not in done.stderr + done.stdout
    assert not (tmp_path / "certs").exists()  # nothing started before the bind
