"""Run the real `pullguard serve` as a subprocess on a free loopback port, over TLS with its own CA."""

from __future__ import annotations

import contextlib
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.lifecycle import end_process
from tests.support.loopback import free_port

REPO = Path(__file__).resolve().parent.parent


@dataclass
class PullguardServer:
    url: str
    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    policy_path: Path | None = None
    _client: httpx.Client | None = field(default=None, repr=False)

    @property
    def cert_dir(self) -> Path:
        return self.directory / "certs"

    @property
    def ca_file(self) -> Path:
        return self.cert_dir / "ca.crt"

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def client(self) -> httpx.Client:
        """One shared keep-alive client, closed by stop()."""
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=10)
        return self._client

    def new_client(self, timeout: float = 5.0) -> httpx.Client:
        """A client of one's own (a context manager: `with server.new_client() as client`)."""
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=timeout)

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.client().post(path, json=body)

    def admit(self, body: Any, path: str = "/validate") -> dict[str, Any]:
        response = self.post(path, body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()["response"]
        return answer

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        end_process(self.process)


def start_pullguard(
    directory: Path,
    policy: str | None = None,
    host: str = "127.0.0.1",
    offline: bool = True,
    extra_args: Sequence[str] = (),
    *,
    log_level: str | None = None,
    wait_for: str = "/healthz",
    timeout: float = 30.0,
    attempts: int = 3,
) -> PullguardServer:
    """The one way tests run `pullguard serve`: on a free loopback port, over TLS with its own CA, until
    `wait_for` answers 200 (verified with that CA).

    `offline` (the default) makes no registry lookups: tests only ever reach registries on loopback. `policy` text
    goes to `directory/policy.yaml` (passed as `--config`; rewrite it to change the policy); `extra_args` are
    appended (e.g. `--kubeconfig`). A port taken between choosing and binding it is retried on a new one.
    """
    directory.mkdir(parents=True, exist_ok=True)
    policy_path = None
    if policy is not None:
        policy_path = directory / "policy.yaml"
        policy_path.write_text(policy)
    env = dict(os.environ)
    env.pop("PULLGUARD_CONFIG", None)
    last_log = ""
    for attempt in range(attempts):
        port = free_port(host)
        command = [sys.executable, "-m", "webhook.cli", "serve", "--host", host, "--port", str(port)]
        command += ["--cert-dir", str(directory / "certs"), "--dns", "localhost", "--ip", "127.0.0.1", "--ip", "::1"]
        if log_level is not None:
            command += ["--log-level", log_level]
        if offline:
            command.append("--offline")
        if policy_path is not None:
            command += ["--config", str(policy_path)]
        command += list(extra_args)
        log_path = directory / (f"pullguard-{attempt}.log" if attempt else "pullguard.log")
        with log_path.open("wb") as log:
            process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        url_host = f"[{host}]" if ":" in host else host
        server = PullguardServer(f"https://{url_host}:{port}", port, directory, process, log_path, policy_path)
        if _answers(server, wait_for, timeout):
            return server
        server.stop()
        last_log = server.logs()
        if "address already in use" not in last_log.lower():
            break
    raise RuntimeError(f"pullguard serve did not answer {wait_for} within {timeout:.0f}s; log:\n{last_log}")


def _answers(server: PullguardServer, path: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            return False
        if server.ca_file.exists():
            with contextlib.suppress(OSError, ssl.SSLError, httpx.HTTPError):
                if server.client().get(path, timeout=2.0).status_code == 200:
                    return True
        time.sleep(0.1)
    return False
