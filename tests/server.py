"""Run the real `pullguard serve` as a subprocess on a free loopback port, over TLS with its own CA."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
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
        if self._client is None:
            self._client = httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=10)
        return self._client

    def post(self, path: str, body: Any) -> httpx.Response:
        return self.client().post(path, json=body)

    def admit(self, body: Any, path: str = "/validate") -> dict[str, Any]:
        response = self.post(path, body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()["response"]
        return answer

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        end_process(self.process)


def start_pullguard(
    directory: Path,
    policy: str | None = None,
    host: str = "127.0.0.1",
    offline: bool = True,
    extra_args: list[str] | None = None,
) -> PullguardServer:
    """`offline` (the default) makes no registry lookups: tests only ever reach registries on loopback."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port(host)
    command = [
        sys.executable,
        "-m",
        "webhook.cli",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--cert-dir",
        str(directory / "certs"),
        "--dns",
        "localhost",
        "--ip",
        "127.0.0.1",
        "--ip",
        "::1",
    ]
    if offline:
        command.append("--offline")
    command += extra_args or []
    policy_path = None
    if policy is not None:
        policy_path = directory / "policy.yaml"
        policy_path.write_text(policy)
        command += ["--config", str(policy_path)]
    log_path = directory / "pullguard.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url_host = f"[{host}]" if ":" in host else host
    server = PullguardServer(f"https://{url_host}:{port}", directory, process, log_path, policy_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"pullguard exited with {process.returncode}:\n{server.logs()}")
        if server.ca_file.exists():
            try:
                if server.client().get("/healthz").status_code == 200:
                    return server
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"pullguard did not become healthy in 30 s:\n{server.logs()}")
