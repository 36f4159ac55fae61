"""Run `pullguard serve` the way its pod would: with the manifests' ServiceAccount token (issued by the API server's
TokenRequest), the in-cluster files at /run/secrets/kubernetes.io/serviceaccount (bind-mounted in a private mount
namespace, so the machine's own /run is untouched) and the in-cluster environment. There is no kubelet here: the
process runs on loopback and the webhooks reach it by URL."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.e2e.cluster import REPO_ROOT, Cluster
from tests.support.lifecycle import end_process

SERVICE_ACCOUNT_DIR = "/run/secrets/kubernetes.io/serviceaccount"
# A tmpfs over /run inside the namespace gives the mount point without creating anything on the host.
_MOUNT = 'mount -t tmpfs -o size=1m tmpfs /run && mkdir -p "$2" && mount --bind "$1" "$2" && shift 2 && exec "$@"'


def service_account_token(cluster: Cluster, namespace: str, account: str, seconds: int = 3600) -> str:
    """A bound token from the TokenRequest API, as the kubelet projects into a pod."""
    return cluster.kubectl("create", "token", account, "-n", namespace, f"--duration={seconds}s").stdout.strip()


@dataclass
class InClusterProcess:
    url: str
    cert_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    _clients: list[httpx.Client] = field(default_factory=list, repr=False)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self) -> httpx.Client:
        """Trusts the CA pullguard wrote next to its serving certificate (the one it injects)."""
        verify = ssl.create_default_context(cafile=str(self.cert_dir / "ca.crt"))
        made = httpx.Client(base_url=self.url, verify=verify, timeout=10)
        self._clients.append(made)
        return made

    def ready(self) -> httpx.Response | None:
        try:
            with httpx.Client(base_url=self.url, verify=False, timeout=5) as unverified:  # a probe only
                return unverified.get("/readyz")
        except httpx.TransportError:
            return None

    def stop(self) -> None:
        for made in self._clients:
            made.close()
        end_process(self.process)


def start_in_cluster(
    cluster: Cluster, namespace: str, account: str, args: list[str], workdir: Path, port: int, cert_dir: Path
) -> InClusterProcess:
    files = workdir / "serviceaccount"
    files.mkdir(parents=True, exist_ok=True)
    (files / "token").write_text(service_account_token(cluster, namespace, account))
    (files / "ca.crt").write_bytes(cluster.ca_file.read_bytes())
    (files / "namespace").write_text(namespace)
    server = urlsplit(cluster.server)
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "KUBERNETES_SERVICE_HOST": server.hostname or "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(server.port or 443),
        "POD_NAMESPACE": namespace,
    }
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _MOUNT, "sh", str(files),
               SERVICE_ACCOUNT_DIR, sys.executable, "-m", "webhook.cli", *args]  # fmt: skip
    log_path = workdir / "pullguard.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    started = InClusterProcess(f"https://localhost:{port}", cert_dir, process, log_path)
    deadline = time.monotonic() + 30
    while started.ready() is None:
        if process.poll() is not None or time.monotonic() > deadline:
            started.stop()
            raise RuntimeError(f"pullguard did not start (exit {process.returncode}):\n{started.logs()}")
        time.sleep(0.1)
    return started
