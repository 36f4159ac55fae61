"""A private containerd 1.6 (Debian ``containerd``) and ``ctr images pull``: the oracle pullguard is compared with.

Own root, state and socket; a generated ``config.toml`` (version 2) keeps only content, metadata, the ``native``
snapshotter, the walking differ and the gRPC services ctr needs (no CRI, no tasks/runtimes, no TCP listeners).
Facts it relies on (checked by ``tests/integration/containerd_oracle/``):

* ctr itself (the client) resolves and fetches; the daemon only stores content. So ``pull`` runs ctr in a private
  mount namespace with ``/etc/resolv.conf`` = ``nameserver 127.0.0.1`` and a generated ``/etc/hosts``.
* With the default ``content_sharing_policy = "shared"`` a blob in *any* namespace is not fetched again (a fresh
  namespace only sends the manifest ``HEAD``). So the daemon runs ``"isolated"`` and each pull gets a new namespace.
* containerd 1.6 ignores a ``hosts.toml`` without a ``[host]`` table ("invalid `host` tree"; 2.x accepts it), so
  :func:`write_hosts_dir` writes an empty ``[host]`` table into server-only files.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .lifecycle import StopsOnExit

CONTAINERD_BINARY = "/usr/bin/containerd"
CTR_BINARY = "/usr/bin/ctr"

_STOP_TIMEOUT = 5.0

#: Everything the oracle does not need (ids unknown to 1.6 are ignored; ``opt`` would create /opt/containerd).
_DISABLED = """grpc.v1.cri grpc.v1.tasks service.v1.tasks-service runtime.v1.linux runtime.v2.task monitor.v1.cgroups
internal.v1.restart internal.v1.opt internal.v1.tracing tracing.processor.v1.otlp snapshotter.v1.aufs
snapshotter.v1.btrfs snapshotter.v1.devmapper snapshotter.v1.overlayfs snapshotter.v1.zfs snapshotter.v1.blockfile"""
DISABLED_PLUGINS = tuple("io.containerd." + name for name in _DISABLED.split())
REQUIRED_PLUGINS = ("io.containerd.content.v1.content", "io.containerd.snapshotter.v1.native")

# What ctr 1.6.20 prints as its final "ctr: ..." line, first match wins (order matters: "dns" before "refused",
# "noMatchingPlatform" and "malformed" before "notFound"). Each pattern quotes the text it was written for,
# provoked against real registries (tests/integration/containerd_oracle/).
OUTCOME_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (outcome, re.compile(pattern))
    for outcome, pattern in (
        # "no match for platform in manifest sha256:df2f...: not found"
        ("noMatchingPlatform", r"no match for platform in manifest"),
        # a layer whose bytes changed in the registry's storage: "failed commit on ref \"layer-sha256:fec...\":
        # commit failed: unexpected commit digest sha256:a4e..., expected sha256:fec..."
        ("digestMismatch", r"unexpected commit digest|digest mismatch"),
        # "dial tcp: lookup nowhere.invalid on 127.0.0.1:53: read udp 127.0.0.1:46131->127.0.0.1:53: read:
        # connection refused" (nothing on loopback :53); a resolver answering NXDOMAIN: "lookup x ...: no such host"
        ("dns", r"dial tcp: lookup \S+|no such host"),
        # "Head \"https://127.0.0.1:PORT/v2/...\": x509: certificate signed by unknown authority";
        # https to a plain-HTTP port: "http: server gave HTTP response to HTTPS client"
        ("tls", r"x509: |tls: |server gave HTTP response to HTTPS client"),
        # "dial tcp 127.0.0.1:1: connect: connection refused"
        ("refused", r"connect: connection refused"),
        # ctr --timeout on a server that never answers: "failed to do request: context deadline exceeded"
        ("timeout", r"context deadline exceeded|i/o timeout|Client\.Timeout"),
        # token registry, user (or anonymous) without the repository in its scope (HTTP 401
        # error="insufficient_scope"): "pull access denied, repository does not exist or may require
        # authorization: server message: insufficient_scope: authorization failed";
        # an HTTP 403: "pulling from host 127.0.0.1:PORT failed with status code [manifests 1]: 403 Forbidden"
        ("denied", r"pull access denied|insufficient_scope|: 403 Forbidden"),
        # basic registry, no or wrong --user: "pulling from host 127.0.0.1:PORT failed with status code
        # [manifests 1]: 401 Unauthorized"; the token realm refuses the password: "failed to authorize: failed to
        # fetch oauth token: unexpected status: 401 Unauthorized"
        ("unauthorized", r": 401 Unauthorized"),
        # "pulling from host 127.0.0.1:PORT failed with status code [manifests 1]: 429 Too Many Requests"
        ("rateLimited", r": 429 Too Many Requests"),
        # "pulling from host 127.0.0.1:PORT failed with status code [manifests 1]: 500 Internal Server Error"
        ("serverError", r"(status code \[[^\]]*\]|unexpected status): 5\d\d "),
        # HTML for a manifest: "children: invalid desc sha256:8f22...: invalid character '<' looking for beginning
        # of value"; Content-Type text/html: "unexpected media type text/html for sha256:0e97...: not found";
        # truncated body or blob: "failed to read expected number of bytes: unexpected EOF"
        ("malformed", r"invalid character|unexpected media type|unexpected EOF"),
        # missing tag/repository: "failed to resolve reference \"127.0.0.1:PORT/multi/img:nope\":
        # 127.0.0.1:PORT/multi/img:nope: not found"; missing blob: "failed to copy: httpReadSeeker: failed open:
        # could not fetch content descriptor sha256:7f5c... (application/vnd.docker.image.rootfs.diff.tar.gzip)
        # from remote: not found"
        ("notFound", r": not found$"),
    )
)

# progress lines ("ref:  resolved  |+++|", "elapsed: 0.1 s  total: ...") carry no verdict
_PROGRESS = re.compile(r"^\S+:\s+\S+\s+\|[+\- ]*\|\s*$|^elapsed: ")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def containerd_available() -> bool:
    return all(os.access(b, os.X_OK) for b in (CONTAINERD_BINARY, CTR_BINARY)) and shutil.which("unshare") is not None


def skip_reason() -> str:
    return f"{CONTAINERD_BINARY} / {CTR_BINARY} (Debian package containerd 1.6) or unshare is not installed"


def final_error(output: str) -> str:
    """ctr's verdict: its last ``ctr: ...`` line ("trying next host" lines before it are per-host errors)."""
    errors = [line[5:] for line in output.splitlines() if line.startswith("ctr: ")]
    return errors[-1] if errors else ""


def classify(output: str, returncode: int, *, timed_out: bool = False) -> str:
    """The outcome class of one ``ctr images pull`` ("exists" when it pulled and unpacked, else
    :data:`OUTCOME_PATTERNS` applied to the final error, "other" when none matches)."""
    if timed_out:
        return "timeout"
    if returncode == 0:
        return "exists"
    error = final_error(output) or output
    for outcome, pattern in OUTCOME_PATTERNS:
        if pattern.search(error):
            return outcome
    return "other"


@dataclass(frozen=True)
class HostEntry:
    """One ``[host."URL"]`` table of a ``hosts.toml`` (tried in order, before ``server``)."""

    url: str
    capabilities: tuple[str, ...] | None = ("pull", "resolve")
    ca_file: Path | None = None
    skip_verify: bool | None = None
    override_path: bool = False

    def toml(self) -> list[str]:
        """The table's ``key = value`` lines (JSON scalars and arrays are valid TOML)."""
        items = {"capabilities": self.capabilities, "ca": self.ca_file and str(self.ca_file),
                 "skip_verify": self.skip_verify, "override_path": self.override_path or None}  # fmt: skip
        return [f"{key} = {json.dumps(value)}" for key, value in items.items() if value is not None]


def write_hosts_dir(
    root: Path,
    registry_host: str,
    hosts: Sequence[HostEntry] = (),
    *,
    server: str | None = None,
    ca_file: Path | None = None,
    skip_verify: bool | None = None,
    override_path: bool = False,
    capabilities: Sequence[str] | None = None,
    empty_host_table: bool = True,
) -> Path:
    """Write ``root/<registry_host>/hosts.toml`` (containerd's certs.d format) and return ``root``.

    ``ca_file``/``skip_verify``/``override_path``/``capabilities`` belong to ``server``. Without ``hosts`` an empty
    ``[host]`` table is written unless ``empty_host_table=False`` (containerd 1.6 ignores a file without one).
    """
    lines = [f"server = {json.dumps(server)}"] if server is not None else []
    lines += HostEntry("", tuple(capabilities) if capabilities else None, ca_file, skip_verify, override_path).toml()
    if not hosts and empty_host_table:
        lines += ["", "[host]"]
    for entry in hosts:
        lines += ["", f"[host.{json.dumps(entry.url)}]", *entry.toml()]
    directory = root / registry_host
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.toml").write_text("\n".join(lines) + "\n")
    return root


@dataclass(frozen=True)
class PullResult:
    reference: str
    platform: str
    namespace: str
    returncode: int
    #: stdout + stderr of ctr (ANSI codes and progress lines removed)
    output: str
    outcome: str
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome == "exists"

    @property
    def error(self) -> str:
        """The final ``ctr: `` line without the prefix ("" on success)."""
        return final_error(self.output)


class ContainerdStartError(RuntimeError):
    """containerd did not come up; the message carries the tail of its log."""


_LIVE: set[ContainerdDaemon] = set()


def _stop_all_live() -> None:
    for daemon in list(_LIVE):
        daemon.stop()


atexit.register(_stop_all_live)


def _child_env() -> dict[str, str]:
    # no HTTP(S)_PROXY, SSL_CERT_*, CONTAINERD_* (namespace, snapshotter, address) from the test environment
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "HOME": "/nonexistent"}


@dataclass(eq=False)
class ContainerdDaemon(StopsOnExit):
    """A running private containerd. ``pull`` asks it (through ctr) to pull an image the way the kubelet would."""

    workdir: Path
    address: Path
    config_file: Path
    log_file: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    #: holds the socket (short path under /tmp)
    sockdir: Path
    #: extra ``/etc/hosts`` lines for every pull (name -> address); loopback names are always there
    hosts: dict[str, str] = field(default_factory=dict)
    _counter: Iterator[int] = field(repr=False, default_factory=itertools.count)
    _stopped: bool = field(default=False, repr=False)

    def ctr_command(self, *args: str, namespace: str = "default", timeout: float = 0.0) -> list[str]:
        return [CTR_BINARY, "--address", str(self.address), "--namespace", namespace, "--timeout", f"{timeout}s", *args]

    def ctr(self, *args: str, namespace: str = "default", timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """Run a local ctr command (no network: not wrapped in the loopback-only namespace)."""
        cmd = self.ctr_command(*args, namespace=namespace)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_child_env(), check=False)

    def _isolated(self, cmd: list[str], hosts: Mapping[str, str]) -> list[str]:
        n = next(self._counter)
        resolv = self.workdir / "resolv.conf"
        if not resolv.exists():
            resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        etc_hosts = self.workdir / f"hosts.{n}"
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        lines += [f"{address} {name}" for name, address in {**self.hosts, **hosts}.items()]
        etc_hosts.write_text("\n".join(lines) + "\n")
        script = 'mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(resolv),
                str(etc_hosts), *cmd]  # fmt: skip

    def pull(
        self,
        reference: str,
        *,
        hosts_dir: Path | None = None,
        user: str | None = None,
        platform: str = "linux/amd64",
        timeout: float = 20.0,
        hosts: Mapping[str, str] | None = None,
        http_dump: bool = False,
        keep: bool = False,
    ) -> PullResult:
        """``ctr images pull --hosts-dir --user --platform --snapshotter native REF`` in a fresh namespace, DNS on
        loopback only. Afterwards the image is removed (``keep=True`` leaves it, e.g. to inspect it)."""
        namespace = f"pull-{next(self._counter)}-{secrets.token_hex(3)}"
        args = ["images", "pull", "--snapshotter", "native", "--platform", platform]
        if hosts_dir is not None:
            args += ["--hosts-dir", str(hosts_dir)]
        if user is not None:
            args += ["--user", user]
        if http_dump:
            args.append("--http-dump")
        cmd = self._isolated(self.ctr_command(*args, reference, namespace=namespace, timeout=timeout), hosts or {})
        started = time.monotonic()
        timed_out = False
        try:  # ctr --timeout fires first; the subprocess timeout is the backstop
            done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout + 5.0,
                                  env=_child_env(), check=False)  # fmt: skip
            raw, returncode = done.stdout, done.returncode
        except subprocess.TimeoutExpired as exc:
            raw, returncode, timed_out = exc.output or b"", -9, True
        seconds = time.monotonic() - started
        text = _ANSI.sub("", raw.decode(errors="replace"))
        output = "\n".join(line for line in text.splitlines() if line.strip() and not _PROGRESS.match(line))
        outcome = classify(output, returncode, timed_out=timed_out)
        result = PullResult(reference, platform, namespace, returncode, output, outcome, seconds, timed_out)
        if result.ok and not keep:
            self.ctr("images", "rm", "--sync", reference, namespace=namespace)
        return result

    def blob_digests(self, namespace: str) -> list[str]:  # ctr content ls -q
        return self.ctr("content", "ls", "-q", namespace=namespace).stdout.split()

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        """Idempotent: SIGTERM, then SIGKILL after 5 s; removes the work dir and socket dir."""
        if self._stopped:
            return
        self._stopped = True
        _LIVE.discard(self)
        self.process.terminate()  # a no-op once it has exited
        try:
            self.process.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=_STOP_TIMEOUT)
        shutil.rmtree(self.workdir, ignore_errors=True)
        shutil.rmtree(self.sockdir, ignore_errors=True)


_CONFIG = """version = 2
root = {root}
state = {state}
disabled_plugins = {disabled}
required_plugins = {required}
[grpc]
  address = {address}
[ttrpc]
  address = {ttrpc}
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.metadata.v1.bolt"]
  content_sharing_policy = {policy}
"""


def start_containerd(
    *, hosts: Mapping[str, str] | None = None, startup_timeout: float = 15.0, content_sharing_policy: str = "isolated"
) -> ContainerdDaemon:
    """Start a private containerd; ``hosts`` are ``/etc/hosts`` entries (name -> address) for every pull.
    ``content_sharing_policy="shared"`` (containerd's default) lets a pull reuse blobs of other namespaces."""
    if not containerd_available():
        raise ContainerdStartError(skip_reason())
    base = os.environ.get("PULLGUARD_REGISTRY_TMP") or "/dev/shm"  # like the registries: tmpfs is fastest
    workdir = Path(tempfile.mkdtemp(prefix="pullguard-containerd-", dir=base if os.access(base, os.W_OK) else None))
    sockdir = Path(tempfile.mkdtemp(prefix="pgc-", dir="/tmp"))  # unix socket paths are limited to ~107 bytes
    address = sockdir / "c.sock"
    config_file = workdir / "config.toml"
    values = {"root": str(workdir / "root"), "state": str(workdir / "state"), "address": str(address),
              "ttrpc": f"{address}.ttrpc", "disabled": DISABLED_PLUGINS, "required": REQUIRED_PLUGINS,
              "policy": content_sharing_policy}  # fmt: skip
    config_file.write_text(_CONFIG.format(**{key: json.dumps(value) for key, value in values.items()}))
    log_file = workdir / "containerd.log"
    cmd = [CONTAINERD_BINARY, "--config", str(config_file)]
    setpriv = shutil.which("setpriv")
    # PDEATHSIG fires when the *thread* that forked exits, so only use it from the main thread.
    if setpriv and threading.current_thread() is threading.main_thread():
        cmd = [setpriv, "--pdeathsig", "KILL", "--", *cmd]
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=_child_env(),
            cwd=workdir, start_new_session=True,
        )  # fmt: skip
    daemon = ContainerdDaemon(workdir, address, config_file, log_file, process, sockdir, dict(hosts or {}))
    _LIVE.add(daemon)
    try:
        _wait_ready(daemon, startup_timeout)
        _check_loopback_namespace(daemon)
    except BaseException:
        daemon.stop()
        raise
    return daemon


def _wait_ready(daemon: ContainerdDaemon, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if daemon.process.poll() is not None:
            raise ContainerdStartError(f"containerd exited with {daemon.process.returncode}:\n{daemon.log_text()}")
        if daemon.address.exists() and daemon.ctr("version", timeout=5.0).returncode == 0:
            return
        if time.monotonic() > deadline:
            raise ContainerdStartError(f"containerd not ready after {timeout}s:\n{daemon.log_text()[-3000:]}")
        time.sleep(0.02)


def _check_loopback_namespace(daemon: ContainerdDaemon) -> None:
    """Fail loudly (never pull with the host's DNS) when the private mount namespace cannot be made."""
    probe = daemon._isolated(["cat", "/etc/resolv.conf"], {})
    done = subprocess.run(probe, capture_output=True, text=True, timeout=10, env=_child_env(), check=False)
    if done.returncode != 0 or done.stdout.split() != ["nameserver", "127.0.0.1", "options", "timeout:1", "attempts:1"]:
        raise ContainerdStartError(f"cannot confine ctr's DNS to loopback (unshare --mount): {done.stderr.strip()}")


def containerd_fixture(*, hosts: Mapping[str, str] | None = None) -> Iterator[ContainerdDaemon]:
    """Fixture body (wrap in a session-scoped ``@pytest.fixture``); skips when containerd/ctr are missing."""
    if not containerd_available():
        pytest.skip(skip_reason())
    daemon = start_containerd(hosts=hosts)
    try:
        yield daemon
    finally:
        daemon.stop()
