"""The node's kubelet: its KubeletConfiguration, its cgroup root and the process (in the node's mount namespace).

Choices that make it run here (cgroup v1, no CAP_SYS_RESOURCE, a loaded two-core machine) without touching the
host: ``failCgroupV1: false``; the cgroupfs driver with ``cgroupRoot`` a directory of its own under every
hierarchy (the reaper removes it); its server on the node's /32 and healthz on 127.0.0.1, free ports; no
anonymous access, ``AlwaysAllow`` (only loopback reaches it); pod logs, certificates and state under its own
root dir; eviction and image GC thresholds low enough that a full CI disk neither taints the node nor deletes
preloaded images; ``$HOME`` and the working directory are empty directories, so the only docker config it reads
is the one the caller puts into its root dir.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.control_plane import ClusterError, ManagedProcess, _http_ok, wait_until
from tests.e2e.node_ns import MountNamespace
from tests.e2e.node_reaper import CGROUP_MOUNT
from tests.support.loopback import free_port

__all__ = ["KubeletSettings", "kubelet_configuration", "make_cgroup_root", "start_kubelet"]


@dataclass(frozen=True)
class KubeletSettings:
    name: str
    node_ip: str
    root_dir: Path
    kubeconfig: Path
    runtime_endpoint: Path
    cgroup_root: str
    resolv_conf: Path
    credential_provider_config: Path | None = None
    credential_provider_bin_dir: Path | None = None
    image_pull_credentials_verification_policy: str | None = None
    extra_config: tuple[tuple[str, Any], ...] = ()
    verbosity: int = 2


def kubelet_configuration(settings: KubeletSettings, port: int, healthz_port: int) -> dict[str, Any]:
    low = "1%"
    config: dict[str, Any] = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": True,
        "cgroupRoot": f"/{settings.cgroup_root}",
        "containerRuntimeEndpoint": f"unix://{settings.runtime_endpoint}",
        "address": settings.node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}, "x509": {}},
        "authorization": {"mode": "AlwaysAllow"},
        "podLogsDir": str(settings.root_dir / "pod-logs"),
        "volumePluginDir": str(settings.root_dir / "volume-plugins"),
        "resolvConf": str(settings.resolv_conf),
        "failSwapOn": False,
        "registerNode": True,
        # report status (images, readiness) promptly; the default is 10 s
        "nodeStatusUpdateFrequency": "2s",
        "syncFrequency": "10s",
        "serializeImagePulls": False,
        # a CI disk may be fuller than the defaults allow; image GC would delete preloaded images
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": low,
            "nodefs.inodesFree": low,
            "imagefs.available": low,
            "imagefs.inodesFree": low,
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "shutdownGracePeriod": "0s",
        "logging": {"format": "text"},
    }
    if settings.image_pull_credentials_verification_policy:
        config["imagePullCredentialsVerificationPolicy"] = settings.image_pull_credentials_verification_policy
    config.update(dict(settings.extra_config))
    return config


def make_cgroup_root(name: str) -> list[Path]:
    """Create ``name`` under every cgroup hierarchy (the kubelet refuses a cgroupRoot that does not exist);
    cpuset gets its parent's CPUs and memory nodes, without which nothing can join it."""
    made: list[Path] = []
    for hierarchy in sorted(CGROUP_MOUNT.iterdir()):
        if not (hierarchy / "cgroup.procs").exists():
            continue
        directory = hierarchy / name
        directory.mkdir(exist_ok=True)
        made.append(directory)
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (directory / knob).exists() and not (directory / knob).read_text().strip():
                (directory / knob).write_text((hierarchy / knob).read_text())
    return made


def kubelet_argv(bin_dir: Path, settings: KubeletSettings, config_file: Path) -> list[str]:
    argv = [
        str(bin_dir / "kubelet"),
        f"--config={config_file}",
        f"--kubeconfig={settings.kubeconfig}",
        f"--root-dir={settings.root_dir}",
        f"--cert-dir={settings.root_dir / 'pki'}",
        f"--hostname-override={settings.name}",
        f"--node-ip={settings.node_ip}",
        f"--v={settings.verbosity}",
    ]
    if settings.credential_provider_config is not None:
        argv.append(f"--image-credential-provider-config={settings.credential_provider_config}")
    if settings.credential_provider_bin_dir is not None:
        argv.append(f"--image-credential-provider-bin-dir={settings.credential_provider_bin_dir}")
    return argv


def start_kubelet(
    namespace: MountNamespace,
    bin_dir: Path,
    settings: KubeletSettings,
    directory: Path,
    timeout: float = 60.0,
    attempts: int = 3,
) -> ManagedProcess:
    """Write the configuration, start the kubelet and wait for its ``/healthz`` (a port taken meanwhile by
    someone else: new ports, up to ``attempts`` times)."""
    settings.root_dir.mkdir(parents=True, exist_ok=True)
    home, cwd = directory / "home", directory / "cwd"
    for empty in (home, cwd):
        empty.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        port, healthz_port = free_port(), free_port()
        config_file = directory / "kubelet-config.json"
        config_file.write_text(json.dumps(kubelet_configuration(settings, port, healthz_port), indent=1))
        argv = kubelet_argv(bin_dir, settings, config_file)
        process = namespace.spawn("kubelet", argv, directory / "kubelet.log", env={"HOME": str(home)}, cwd=cwd)
        try:
            with httpx.Client() as client:
                probe = functools.partial(_http_ok, client, f"http://127.0.0.1:{healthz_port}/healthz")
                wait_until("kubelet /healthz", probe, timeout, process, 0.25)
        except ClusterError:
            process.stop()
            if "address already in use" in process.log_tail(30) and attempt + 1 < attempts:
                continue
            raise
        return process
    raise AssertionError("unreachable")


def kubelet_log_excerpt(log: Path, needles: Sequence[str], limit: int = 20) -> list[str]:
    """Lines of the kubelet log mentioning any of ``needles`` (for failure messages)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if any(n in line for n in needles)][-limit:]
