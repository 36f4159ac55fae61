"""A real, throw-away Kubernetes control plane for the end-to-end tests.

``Cluster.start()`` runs etcd and kube-apiserver (built by
``scripts/build-k8s-bins.sh``, found by k8s_binaries.py) on free loopback ports, writes a kubeconfig for
an admin token in ``system:masters`` and waits for ``/readyz``. There is no
controller-manager, scheduler or kubelet: objects are stored and admitted
(including by admission webhooks) but nothing reconciles them.

Because there is no token controller, no ``default`` ServiceAccount appears in
new namespaces, and the ServiceAccount admission plugin (kept on, so pods reach
webhooks mutated exactly as in a real cluster) rejects pods that use it. Use
``Cluster.create_namespace()``, which also creates that ServiceAccount; the
``default`` namespace gets one at start-up.

    with Cluster.start() as cluster:
        cluster.kubectl("get", "namespaces")
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.e2e.control_plane import (
    CertificateAuthority,
    ClusterError,
    IssuedCert,
    ManagedProcess,
    _http_ok,
    _pem_key,
    free_port,
    start_etcd,
    tail,
    wait_until,
)
from tests.e2e.k8s_binaries import (
    BINARIES,
    REPO_ROOT,
    BinariesMissingError,
    find_bin_dir,
    missing_binaries,
    require_binaries,
)

KEEP_WORKDIR_ENV = "PULLGUARD_E2E_KEEP"

ADMIN_USER = "pullguard-e2e-admin"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; unlike the base class, str() shows its stderr."""

    def __str__(self) -> str:
        stderr = self.stderr if isinstance(self.stderr, str) else ""
        return f"{super().__str__()}\nstderr:\n{stderr.strip()}"


# --------------------------------------------------------------------------- kube-apiserver


def _write_kubeconfig(path: Path, server: str, ca_file: Path, token: str) -> None:
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "pullguard-e2e", "cluster": {"server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [{"name": "pullguard-e2e", "context": {"cluster": "pullguard-e2e", "user": ADMIN_USER}}],
        "current-context": "pullguard-e2e",
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def _apiserver_argv(bin_dir: Path, workdir: Path, etcd_url: str, port: int, extra_args: Sequence[str]) -> list[str]:
    return [
        str(bin_dir / "kube-apiserver"),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={workdir / 'apiserver.crt'}",
        f"--tls-private-key-file={workdir / 'apiserver.key'}",
        # Only a fallback for anything the flags above do not cover; keeps
        # the apiserver from writing into its working directory.
        f"--cert-dir={workdir / 'apiserver-certs'}",
        f"--token-auth-file={workdir / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={workdir / 'sa.pub'}",
        f"--service-account-signing-key-file={workdir / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        # The endpoint reconciler publishes the advertise address as the
        # endpoint of the "kubernetes" Service and refuses to start with a
        # loopback one ("may not be in the loopback range"). Nothing in
        # these tests reaches the apiserver through that Service.
        "--endpoint-reconciler-type=none",
        # Default plugin set (which includes MutatingAdmissionWebhook and
        # ValidatingAdmissionWebhook), named explicitly so a changed default
        # cannot silently turn webhooks off.
        "--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
        "--profiling=false",
        "--v=1",
        *extra_args,
    ]


@dataclass
class Cluster:
    """A running etcd + kube-apiserver pair and an admin kubeconfig for it."""

    server: str
    """``https://127.0.0.1:<port>``."""
    kubeconfig: Path
    token: str
    """Bearer token of an admin in ``system:masters``."""
    ca_file: Path
    """CA bundle that verifies the apiserver's serving certificate."""
    bin_dir: Path
    workdir: Path
    etcd_url: str
    ca: CertificateAuthority = field(repr=False)
    processes: list[ManagedProcess] = field(default_factory=list, repr=False)
    remove_workdir: bool = field(default=True, repr=False)

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def start(
        cls,
        bin_dir: Path | None = None,
        workdir: Path | None = None,
        timeout: float = 90.0,
        apiserver_args: Sequence[str] = (),
    ) -> Cluster:
        """Start etcd and kube-apiserver and wait until ``/readyz`` is ok.

        ``bin_dir`` defaults to :func:`find_bin_dir`; ``workdir`` (certs,
        kubeconfig, logs, etcd data) to a fresh temp dir that ``stop()``
        removes unless ``$PULLGUARD_E2E_KEEP`` is set. ``apiserver_args`` are
        appended to the kube-apiserver command line. On any failure everything
        already started is stopped and ClusterError carries the log tail.
        """
        bin_dir = require_binaries(bin_dir)
        created_workdir = workdir is None
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="pullguard-e2e-"))
        else:
            workdir.mkdir(parents=True, exist_ok=True)

        ca = CertificateAuthority.create()
        ca_file = workdir / "ca.crt"
        ca_file.write_bytes(ca.cert_pem)
        ca.issue(["localhost", "127.0.0.1", "::1"], common_name="kube-apiserver").write(workdir, "apiserver")
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (workdir / "sa.key").write_bytes(_pem_key(sa_key))
        (workdir / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        token = secrets.token_urlsafe(32)
        # token,user,uid,"group1,group2"
        (workdir / "tokens.csv").write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')

        cluster = cls(
            server="",
            kubeconfig=workdir / "kubeconfig",
            token=token,
            ca_file=ca_file,
            bin_dir=bin_dir,
            workdir=workdir,
            etcd_url="",
            ca=ca,
            remove_workdir=created_workdir and not os.environ.get(KEEP_WORKDIR_ENV),
        )
        try:
            etcd, cluster.etcd_url = start_etcd(bin_dir, workdir)
            cluster.processes.append(etcd)
            cluster._start_apiserver(timeout, apiserver_args)
            _write_kubeconfig(cluster.kubeconfig, cluster.server, ca_file, token)
            cluster.ensure_default_service_account("default")
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start_apiserver(self, timeout: float, extra_args: Sequence[str], attempts: int = 3) -> None:
        for attempt in range(attempts):
            port = free_port()
            self.server = f"https://127.0.0.1:{port}"
            argv = _apiserver_argv(self.bin_dir, self.workdir, self.etcd_url, port, extra_args)
            proc = ManagedProcess.spawn("kube-apiserver", argv, self.workdir / "kube-apiserver.log")
            self.processes.append(proc)
            try:
                with self.http_client() as client:
                    wait_until(
                        "kube-apiserver /readyz",
                        functools.partial(_http_ok, client, "/readyz"),
                        timeout,
                        proc,
                        0.25,
                    )
            except ClusterError as exc:
                proc.stop()
                self.processes.remove(proc)
                port_taken = "address already in use" in proc.log_tail(10)
                if port_taken and attempt + 1 < attempts:
                    continue
                raise ClusterError(f"{exc}\n(all flags: {' '.join(argv)})") from None
            return

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the apiserver, then etcd; remove the workdir if we made it. Idempotent."""
        errors: list[BaseException] = []
        for proc in reversed(self.processes):
            try:
                proc.stop(timeout)
            except BaseException as exc:  # keep stopping the others
                errors.append(exc)
        self.processes.clear()
        if self.remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.remove_workdir = False
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def running(self) -> bool:
        return bool(self.processes) and all(p.alive() for p in self.processes)

    def apiserver_log_tail(self, lines: int = 40) -> str:
        return tail(self.workdir / "kube-apiserver.log", lines)

    # ----------------------------------------------------------------- clients

    def http_client(self, timeout: float = 10.0) -> httpx.Client:
        """An httpx client for the apiserver, authenticated as the admin, verifying its CA."""
        return httpx.Client(
            base_url=self.server,
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=timeout,
        )

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run our kubectl (by absolute path) against this cluster; text in, text out.

        With ``check`` a non-zero exit raises KubectlError, whose message includes stderr.
        """
        argv = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)
        env["KUBECACHEDIR"] = str(self.workdir / "kube-cache")  # keep ~/.kube untouched
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        if check and proc.returncode != 0:
            raise KubectlError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def kubectl_json(self, *args: str, input: str | None = None, timeout: float = 60.0) -> Any:
        """``kubectl <args> -o json``, parsed."""
        return json.loads(self.kubectl(*args, "-o", "json", input=input, timeout=timeout).stdout)

    def apply(self, manifest: str | dict[str, Any] | list[dict[str, Any]], *args: str) -> str:
        """``kubectl apply -f -`` of YAML text or object(s); extra ``args`` e.g. ``--dry-run=server``."""
        if not isinstance(manifest, str):
            docs = manifest if isinstance(manifest, list) else [manifest]
            manifest = yaml.safe_dump_all(docs, sort_keys=False)
        return self.kubectl("apply", "-f", "-", *args, input=manifest).stdout

    # ----------------------------------------------------------------- helpers

    def ensure_default_service_account(self, namespace: str, timeout: float = 30.0) -> None:
        """Create ServiceAccount ``default`` in ``namespace`` (no controller does it here)."""
        manifest = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace},
        }
        deadline = time.monotonic() + timeout
        while True:
            # Right after /readyz the namespace may still be being created.
            proc = self.kubectl("apply", "-f", "-", input=json.dumps(manifest), check=False, timeout=timeout)
            if proc.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise KubectlError(proc.returncode, proc.args, proc.stdout, proc.stderr)
            time.sleep(0.25)

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        """Create a namespace with its ``default`` ServiceAccount (so pods can be admitted)."""
        manifest: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        if labels:
            manifest["metadata"]["labels"] = labels
        self.kubectl("create", "-f", "-", input=json.dumps(manifest))
        self.ensure_default_service_account(name)

    def issue_cert(self, hosts: Sequence[str]) -> IssuedCert:
        """A serving cert from this cluster's CA (``ca_file`` verifies it)."""
        return self.ca.issue(hosts)


@contextlib.contextmanager
def running_cluster(**kwargs: Any) -> Iterator[Cluster]:
    """``Cluster.start(**kwargs)`` as a context manager that always stops it."""
    cluster = Cluster.start(**kwargs)
    try:
        yield cluster
    finally:
        cluster.stop()


def _main() -> int:
    """``python tests/e2e/cluster.py``: start a cluster, print how to reach it, wait for Ctrl-C."""
    with running_cluster() as cluster:
        print(f"server:     {cluster.server}")
        print(f"kubeconfig: {cluster.kubeconfig}")
        print(f"kubectl:    {cluster.bin_dir / 'kubectl'} --kubeconfig={cluster.kubeconfig}")
        print("Ctrl-C stops it.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while cluster.running():
                time.sleep(1)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())


__all__ = [
    "BINARIES",
    "REPO_ROOT",
    "BinariesMissingError",
    "CertificateAuthority",
    "Cluster",
    "ClusterError",
    "IssuedCert",
    "KubectlError",
    "ManagedProcess",
    "find_bin_dir",
    "free_port",
    "missing_binaries",
    "require_binaries",
    "running_cluster",
    "tail",
]
