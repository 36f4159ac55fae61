"""The processes and certificates under the e2e control plane: a managed child process that dies with the
test run, etcd, a throw-away CA, waiting helpers (see cluster.py for the kube-apiserver and the Cluster)."""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import functools
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.support.loopback import free_port
from webhook.certs.bundle import issue_serving, new_ca


class ClusterError(RuntimeError):
    """The control plane could not be started or used."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class IssuedCert:
    """A serving certificate and its key, PEM-encoded."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>.crt`` and ``<stem>.key`` into ``directory``; return both paths."""
        cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem)
        key_path.write_bytes(self.key_pem)
        key_path.chmod(0o600)
        return cert_path, key_path


@dataclass(frozen=True)
class CertificateAuthority:
    """A throw-away CA (ECDSA P-256) that issues serving certificates.

    The apiserver's serving cert comes from one; webhook tests can make their
    own and hand ``cert_pem`` to a webhook configuration as ``caBundle``.
    """

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, common_name: str = "pullguard-e2e-ca") -> CertificateAuthority:
        key, cert = new_ca(common_name, days=1)
        return cls(cert=cert, key=key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, hosts: Sequence[str], common_name: str | None = None) -> IssuedCert:
        """A serving certificate for ``hosts`` (DNS names and/or IP addresses)."""
        key, cert = issue_serving(self.key, self.cert, hosts, days=1, common_name=common_name)
        return IssuedCert(cert_pem=cert.public_bytes(serialization.Encoding.PEM), key_pem=_pem_key(key))


def _die_with_parent() -> None:  # pragma: no cover - runs in the forked child
    """Have the kernel SIGKILL the child if the test process dies without cleaning up."""
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' if it does not exist)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class ManagedProcess:
    """A child process whose stdout and stderr go to ``log_path``."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]

    @classmethod
    def spawn(cls, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> Self:
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads are forking here
            )
        return cls(name=name, argv=argv, log_path=log_path, popen=popen)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def describe_exit(self) -> str:
        return (
            f"{self.name} (pid {self.pid}) exited with {self.popen.returncode}; "
            f"last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. Idempotent."""
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.popen.terminate()
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait(timeout=timeout)


def wait_until(
    what: str,
    probe: Callable[[], bool],
    timeout: float,
    proc: ManagedProcess,
    interval: float = 0.1,
) -> None:
    """Poll ``probe`` until it is true; fail fast if ``proc`` dies, and with its log on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise ClusterError(f"{what}: {proc.describe_exit()}")
        if probe():
            return
        if time.monotonic() > deadline:
            raise ClusterError(
                f"{what}: not ready after {timeout:.0f}s; last lines of {proc.log_path}:\n{proc.log_tail()}"
            )
        time.sleep(interval)


def _http_ok(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_etcd(bin_dir: Path, workdir: Path, timeout: float = 30.0, attempts: int = 3) -> tuple[ManagedProcess, str]:
    """Run a single-member etcd on free loopback ports; return it and its client URL."""
    last_error: ClusterError | None = None
    for attempt in range(attempts):
        client_url = f"http://127.0.0.1:{free_port()}"
        peer_url = f"http://127.0.0.1:{free_port()}"
        data_dir = workdir / f"etcd-data-{attempt}"
        argv = [
            str(bin_dir / "etcd"),
            "--name=pullguard-e2e",
            f"--data-dir={data_dir}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=pullguard-e2e={peer_url}",
            "--initial-cluster-state=new",
            # Test data is thrown away: skip fsync, it dominates etcd latency.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        proc = ManagedProcess.spawn("etcd", argv, workdir / "etcd.log")
        try:
            with httpx.Client() as client:
                wait_until("etcd", functools.partial(_http_ok, client, f"{client_url}/health"), timeout, proc)
        except ClusterError as exc:
            proc.stop()
            last_error = exc
            continue  # most likely a port someone else grabbed meanwhile: try new ones
        return proc, client_url
    assert last_error is not None
    raise last_error
