"""The node's container runtime: Debian's containerd 1.6 with its CRI plugin, runc (runc.v2 shim) and a CNI
config of the ``loopback`` plugin alone.

Own root, state, socket and runc root under the node's directory; registry hosts from a ``certs.d`` directory
(``config_path``) the harness writes and may extend while the node runs (the CRI plugin reads it on every pull);
the sandbox (pause) image comes from a loopback registry. No TCP listener except the CRI streaming server on
127.0.0.1. The CNI network makes the kubelet report the network ready; it cannot give a pod an ``eth0`` (the
loopback plugin only brings ``lo`` up), so pods run with ``hostNetwork: true``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.control_plane import ClusterError, ManagedProcess
from tests.e2e.node_ns import MountNamespace, child_env

CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
SHIM = "/usr/bin/containerd-shim-runc-v2"
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
CRI_NAMESPACE = "k8s.io"

#: plugins a node does not need (``opt`` would create /opt/containerd; the others probe other filesystems)
_DISABLED = """internal.v1.opt internal.v1.tracing tracing.processor.v1.otlp snapshotter.v1.aufs snapshotter.v1.btrfs
snapshotter.v1.devmapper snapshotter.v1.zfs snapshotter.v1.blockfile"""
DISABLED_PLUGINS = tuple("io.containerd." + name for name in _DISABLED.split())

_CONFIG = """version = 2
root = {root}
state = {state}
disabled_plugins = {disabled}
[grpc]
  address = {address}
[ttrpc]
  address = {ttrpc}
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox_image}
  # no CAP_SYS_RESOURCE here: never ask for an oom_score_adj below containerd's own
  restrict_oom_score_adj = true
  # pod network namespaces under the state dir, not /run/netns
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = {snapshotter}
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = {runc}
        Root = {runc_root}
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = {cni_bin_dir}
    conf_dir = {cni_conf_dir}
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = {certs_d}
"""

#: a CNI network of the loopback plugin only: nothing is created outside the pod's own network namespace
CNI_CONFLIST = {"cniVersion": "1.0.0", "name": "pullguard-loopback", "plugins": [{"type": "loopback"}]}

__all__ = ["CRI_NAMESPACE", "Containerd", "cni_bin_dir", "missing_runtime", "plain_http_hosts_toml", "tls_hosts_toml"]


def cni_bin_dir() -> str | None:
    return next((d for d in CNI_BIN_DIRS if os.access(Path(d) / "loopback", os.X_OK)), None)


def missing_runtime() -> list[str]:
    """What the node's runtime needs and this machine lacks (with the Debian package to install)."""
    missing = [f"{path} (containerd)" for path in (CONTAINERD, CTR, SHIM) if not os.access(path, os.X_OK)]
    if shutil.which("runc") is None:
        missing.append("runc (runc)")
    if cni_bin_dir() is None:
        missing.append("the CNI loopback plugin (containernetworking-plugins)")
    return missing


def plain_http_hosts_toml(host: str) -> str:
    """A ``hosts.toml`` sending pulls for ``host`` over plain HTTP. containerd 1.6 ignores a file without a
    ``[host]`` table, so the server is named in one."""
    return f'server = "http://{host}"\n\n[host."http://{host}"]\n  capabilities = ["pull", "resolve"]\n'


def tls_hosts_toml(host: str, ca_file: Path) -> str:
    """A ``hosts.toml`` for an HTTPS registry whose certificate ``ca_file`` verifies."""
    ca = _toml(str(ca_file))
    return f'server = "https://{host}"\n\n[host."https://{host}"]\n  capabilities = ["pull", "resolve"]\n  ca = {ca}\n'


def _toml(value: object) -> str:
    return json.dumps(value)  # JSON strings and arrays are TOML


@dataclass
class Containerd:
    """A containerd with the CRI plugin, running in the node's mount namespace."""

    directory: Path
    address: Path
    certs_d: Path
    snapshotter: str
    process: ManagedProcess

    @classmethod
    def start(
        cls,
        namespace: MountNamespace,
        directory: Path,
        address: Path,
        *,
        sandbox_image: str,
        registry_hosts: Mapping[str, str | None],
        snapshotter: str,
        timeout: float = 30.0,
    ) -> Containerd:
        directory.mkdir(parents=True, exist_ok=True)
        certs_d, cni_conf = directory / "certs.d", directory / "cni"
        cni_conf.mkdir(exist_ok=True)
        (cni_conf / "10-pullguard-loopback.conflist").write_text(json.dumps(CNI_CONFLIST, indent=1))
        values = {"root": directory / "root", "state": directory / "state", "address": address,
                  "ttrpc": f"{address}.ttrpc", "disabled": list(DISABLED_PLUGINS), "sandbox_image": sandbox_image,
                  "snapshotter": snapshotter, "runc": shutil.which("runc") or "runc", "runc_root": directory / "runc",
                  "cni_bin_dir": cni_bin_dir() or CNI_BIN_DIRS[0], "cni_conf_dir": cni_conf,
                  "certs_d": certs_d}  # fmt: skip
        config = directory / "config.toml"
        config.write_text(_CONFIG.format(**{k: _toml(str(v) if isinstance(v, Path) else v) for k, v in values.items()}))
        process = namespace.spawn("containerd", [CONTAINERD, "--config", str(config)], directory / "containerd.log")
        daemon = cls(directory, address, certs_d, snapshotter, process)
        for host, text in registry_hosts.items():
            daemon.set_registry_host(host, text)
        try:
            daemon._wait_ready(timeout)
        except BaseException:
            process.stop()
            raise
        return daemon

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if not self.process.alive():
                raise ClusterError(f"containerd: {self.process.describe_exit()}")
            if self.address.exists() and self.ctr("plugins", "ls", timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"containerd not ready after {timeout:.0f}s:\n{self.process.log_tail()}")
            time.sleep(0.05)
        plugins = self.ctr("plugins", "ls").stdout
        cri = [line for line in plugins.splitlines() if "io.containerd.grpc.v1" in line and " cri " in f" {line} "]
        snap = [line for line in plugins.splitlines() if f" {self.snapshotter} " in f" {line} "]
        if not cri or " ok" not in cri[0] or not snap or " ok" not in snap[0]:
            raise ClusterError(
                f"containerd's CRI plugin or snapshotter is not ok:\n{plugins}\n{self.process.log_tail()}"
            )

    def set_registry_host(self, host: str, hosts_toml: str | None = None) -> None:
        """Write ``certs.d/<host>/hosts.toml`` (default: plain HTTP to ``host``); used from the next pull on."""
        target = self.certs_d / host
        target.mkdir(parents=True, exist_ok=True)
        (target / "hosts.toml").write_text(hosts_toml if hosts_toml is not None else plain_http_hosts_toml(host))

    def ctr(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """``ctr --namespace k8s.io ARGS`` against this containerd (the client runs on the host, beside it)."""
        argv = [CTR, "--address", str(self.address), "--namespace", CRI_NAMESPACE, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=child_env(), check=False)

    def pull(self, reference: str, *, plain_http: bool = True, user: str | None = None, timeout: float = 120.0) -> None:
        """``ctr images pull`` straight into the CRI namespace, unpacked for the CRI snapshotter: the image is on
        the node without the kubelet having pulled it (like ``kind load`` or an air-gapped preload)."""
        args = ["images", "pull", "--snapshotter", self.snapshotter, "--platform", "linux/amd64"]
        args += ["--hosts-dir", str(self.certs_d)]
        if plain_http:
            args.append("--plain-http")
        if user is not None:
            args += ["--user", user]
        done = self.ctr(*args, reference, timeout=timeout)
        if done.returncode != 0:
            raise ClusterError(f"ctr images pull {reference} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def import_archive(self, archive: Path, *, timeout: float = 120.0) -> None:
        """``ctr images import`` of an OCI or docker archive into the CRI namespace (unpacked)."""
        args = ["images", "import", "--snapshotter", self.snapshotter, "--platform", "linux/amd64", str(archive)]
        done = self.ctr(*args, timeout=timeout)
        if done.returncode != 0:
            raise ClusterError(f"ctr images import {archive} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")

    def image_names(self) -> list[str]:
        return self.ctr("images", "ls", "-q").stdout.split()

    def stop(self, timeout: float = 10.0) -> None:
        self.process.stop(timeout)
