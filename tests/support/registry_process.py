"""The machinery under the test registries: a `docker-registry` process with a generated config, started on a
free loopback port, waited for, stopped for sure (see `support.registry` for the four variants)."""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
import yaml

from .lifecycle import StopsOnExit
from .loopback import free_port
from .registry_auth import RegistryAuth
from .tlsgen import CertificateAuthority
from .token_issuer import TokenIssuer

REGISTRY_BINARY = "/usr/bin/docker-registry"


_STARTUP_TIMEOUT = 20.0


_STOP_TIMEOUT = 5.0


_PORT_ATTEMPTS = 6


class RegistryKind(StrEnum):
    PLAIN = "plain"
    BASIC = "basic"
    TOKEN = "token"
    PROXY = "proxy"


class RegistryStartError(RuntimeError):
    """docker-registry did not come up; the message carries the tail of its log."""


class _AddressInUseError(RegistryStartError):
    pass


def registry_binary() -> str | None:
    """Path of the docker-registry binary (``$PULLGUARD_DOCKER_REGISTRY`` overrides), or None."""
    override = os.environ.get("PULLGUARD_DOCKER_REGISTRY")
    for candidate in (override, REGISTRY_BINARY, shutil.which("docker-registry")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def registry_available() -> bool:
    return registry_binary() is not None


def skip_reason() -> str:
    return f"{REGISTRY_BINARY} (Debian package docker-registry, CNCF distribution 2.8) is not installed"


_LIVE: set[RegistryServer] = set()


_LIVE_LOCK = threading.Lock()


def _stop_all_live() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(_stop_all_live)


@dataclass(eq=False)
class RegistryServer(StopsOnExit):
    """A running docker-registry.  ``url`` is ``scheme://host``; ``host`` is ``127.0.0.1:PORT``."""

    kind: RegistryKind
    url: str
    host: str
    scheme: str
    port: int
    workdir: Path
    config_file: Path
    log_file: Path
    storage_dir: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    ca_file: Path | None = None
    #: Credentials with push rights (basic: htpasswd user; token: the issuer's admin user).
    username: str | None = None
    password: str | None = None
    #: All users known to the auth backend (username -> password).
    users: dict[str, str] = field(default_factory=dict)
    token_issuer: TokenIssuer | None = None
    #: For proxies: the upstream ``proxy.remoteurl``.
    remote_url: str | None = None
    _owned_issuer: bool = field(default=False, repr=False)
    _remove_workdir: bool = field(default=False, repr=False)
    _stopped: bool = field(default=False, repr=False)

    # -- conveniences -----------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """httpx ``verify=`` value trusting this registry (True for plain HTTP)."""
        if self.ca_file is None:
            return True
        return ssl.create_default_context(cafile=str(self.ca_file))

    def is_running(self) -> bool:
        return not self._stopped and self.process.poll() is None

    def reference(self, repository: str, tag: str = "latest") -> str:
        """``127.0.0.1:PORT/repository:tag``."""
        return f"{self.host}/{repository}:{tag}"

    def digest_reference(self, repository: str, digest: str) -> str:
        return f"{self.host}/{repository}@{digest}"

    def client(
        self,
        *,
        authenticate: bool = True,
        username: str | None = None,
        password: str | None = None,
        actions: Sequence[str] | None = None,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> httpx.Client:
        """An ``httpx.Client`` with ``base_url=self.url`` that trusts the test CA.

        With ``authenticate`` (default) it answers Basic and Bearer challenges with ``username``/
        ``password`` (default: this registry's pusher credentials).  ``actions`` widens every
        requested repository scope (e.g. ``("pull", "push")``).
        """
        auth: RegistryAuth | None = None
        if authenticate:
            auth = RegistryAuth(
                username if username is not None else self.username,
                password if password is not None else self.password,
                actions=actions,
            )
        return httpx.Client(base_url=self.url, verify=self.verify, auth=auth, timeout=timeout, **kwargs)

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    # -- lifecycle --------------------------------------------------------------------------

    def stop(self) -> None:
        """Terminate (then kill) the process, stop an owned token issuer, remove a temp workdir."""
        if self._stopped:
            return
        self._stopped = True
        with _LIVE_LOCK:
            _LIVE.discard(self)
        _terminate(self.process)
        if self._owned_issuer and self.token_issuer is not None:
            self.token_issuer.stop()
        if self._remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait(timeout=_STOP_TIMEOUT)
    else:
        process.wait()


def _base_config(storage_dir: Path, *, access_log: bool) -> dict[str, Any]:
    return {
        "version": "0.1",
        "log": {"level": "warn", "formatter": "text", "accesslog": {"disabled": not access_log}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {
            "addr": "127.0.0.1:0",  # replaced with the chosen port
            "secret": secrets.token_hex(16),
            "headers": {"X-Content-Type-Options": ["nosniff"]},
            # no "debug" section: no debug/metrics listener, hence no second port
        },
        "health": {"storagedriver": {"enabled": False}},
    }


def _child_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/nonexistent"}
    for key in ("TMPDIR", "LANG", "LC_ALL"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra or {})
    return env


def _command(binary: str, config_file: Path) -> list[str]:
    cmd = [binary, "serve", str(config_file)]
    setpriv = shutil.which("setpriv")
    # PDEATHSIG fires when the *thread* that forked exits, so only use it from the main thread.
    if setpriv and threading.current_thread() is threading.main_thread():
        cmd = [setpriv, "--pdeathsig", "KILL", "--", *cmd]
    return cmd


def _log_tail(log_file: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


def _wait_ready(
    process: subprocess.Popen[bytes], url: str, verify: ssl.SSLContext | bool, log_file: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(verify=verify, timeout=1.0) as client:
        while True:
            if process.poll() is not None:
                tail = _log_tail(log_file)
                if "address already in use" in tail:
                    raise _AddressInUseError(tail)
                raise RegistryStartError(f"docker-registry exited with {process.returncode}:\n{tail}")
            try:
                response = client.get(url + "/v2/")
            except httpx.TransportError:
                pass
            else:
                if response.status_code in (200, 401):
                    return
            if time.monotonic() > deadline:
                raise RegistryStartError(f"docker-registry not ready after {timeout}s:\n{_log_tail(log_file)}")
            time.sleep(0.02)


def start_registry(
    kind: RegistryKind,
    config: dict[str, Any],
    *,
    workdir: Path | None = None,
    ca: CertificateAuthority | None = None,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = _STARTUP_TIMEOUT,
    **server_fields: Any,
) -> RegistryServer:
    """Low-level launcher: write ``config`` (``http.addr`` is filled in) and start the process.

    ``ca`` must be given when ``config['http']['tls']`` is set; ``server_fields`` go into the
    returned :class:`RegistryServer` (``username``, ``token_issuer`` ...).
    """
    binary = registry_binary()
    if binary is None:
        raise RegistryStartError(skip_reason())
    root, remove_workdir = _prepare_workdir(workdir, kind)
    storage_dir = Path(config["storage"]["filesystem"]["rootdirectory"])
    storage_dir.mkdir(parents=True, exist_ok=True)
    config_file = root / "config.yml"
    log_file = root / "registry.log"
    scheme = "https" if "tls" in config["http"] else "http"
    verify: ssl.SSLContext | bool = True
    if scheme == "https":
        if ca is None:
            raise ValueError("a TLS registry needs the CA that issued its certificate")
        verify = ssl.create_default_context(cafile=str(ca.ca_file))

    last_error: RegistryStartError | None = None
    for _ in range(_PORT_ATTEMPTS):
        port = free_port()
        config["http"]["addr"] = f"127.0.0.1:{port}"
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        url = f"{scheme}://127.0.0.1:{port}"
        with log_file.open("ab") as log:
            process = subprocess.Popen(
                _command(binary, config_file),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_child_env(env),
                cwd=root,
                start_new_session=True,
            )
        try:
            _wait_ready(process, url, verify, log_file, startup_timeout)
        except _AddressInUseError as exc:
            _terminate(process)
            last_error = exc
            continue
        except BaseException:
            _terminate(process)
            if remove_workdir:
                shutil.rmtree(root, ignore_errors=True)
            raise
        server = RegistryServer(
            kind=kind,
            url=url,
            host=f"127.0.0.1:{port}",
            scheme=scheme,
            port=port,
            workdir=root,
            config_file=config_file,
            log_file=log_file,
            storage_dir=storage_dir,
            process=process,
            ca_file=ca.ca_file if ca is not None else None,
            _remove_workdir=remove_workdir,
            **server_fields,
        )
        with _LIVE_LOCK:
            _LIVE.add(server)
        return server
    if remove_workdir:
        shutil.rmtree(root, ignore_errors=True)
    raise RegistryStartError(f"no free port after {_PORT_ATTEMPTS} attempts: {last_error}")


def _scratch_root() -> str | None:
    """Where throw-away work directories go: ``$PULLGUARD_REGISTRY_TMP``, else /dev/shm when
    writable (registry storage on tmpfs makes pushes ~3x faster), else the default temp dir."""
    override = os.environ.get("PULLGUARD_REGISTRY_TMP")
    if override:
        return override
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        return "/dev/shm"
    return None


def _prepare_workdir(workdir: Path | None, kind: RegistryKind) -> tuple[Path, bool]:
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix=f"pullguard-registry-{kind.value}-", dir=_scratch_root())), True
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir, False


def _finish(
    kind: RegistryKind,
    config: dict[str, Any],
    root: Path,
    remove: bool,
    *,
    ca: CertificateAuthority | None = None,
    env: Mapping[str, str] | None = None,
    **fields: Any,
) -> RegistryServer:
    try:
        server = start_registry(kind, config, workdir=root, ca=ca, env=env, **fields)
    except BaseException:
        if remove:
            shutil.rmtree(root, ignore_errors=True)
        raise
    server._remove_workdir = remove
    return server
