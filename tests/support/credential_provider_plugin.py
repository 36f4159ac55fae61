"""A kubelet image credential provider plugin (``credentialprovider.kubelet.k8s.io/v1``) for the node tests.

The kubelet execs ``<bin dir>/<name>`` with the config's ``env`` added to its own environment, writes a
``CredentialProviderRequest`` to its stdin and decodes (strictly: unknown fields are errors) a
``CredentialProviderResponse`` from its stdout; a non-zero exit becomes an error carrying stderr, and a plugin
still running after one minute is killed (pkg/credentialprovider/plugin/plugin.go in k8s.io/kubernetes).

Run as a program (stdlib only), this module is the plugin. Its behaviour comes from the environment:

==================  ========================================================================================
``PLUGIN_REGISTRY``  the ``auth`` key (a registry ``host[:port]``; default: the registry part of the image)
``PLUGIN_USERNAME``  username returned (default ``""``)
``PLUGIN_PASSWORD``  password returned (default ``""``)
``PLUGIN_MODE``      ``ok`` | ``fail`` (exit 1, message on stderr) | ``hang`` (sleep ``PLUGIN_HANG_SECONDS``,
                     default 120: past the kubelet's one-minute timeout) |
                     ``garbage`` (non-JSON) | ``huge`` (50 MB) | ``wrong-kind`` | ``wrong-version`` |
                     ``empty`` (valid, no ``auth``)
``PLUGIN_CACHE_KEY_TYPE``  ``Registry`` (default), ``Image`` or ``Global``
``PLUGIN_CACHE_DURATION``  e.g. ``5m0s`` (default); ``0s`` tells the kubelet not to cache
``PLUGIN_LOG``       a file each request is appended to (one JSON line), so a test sees what was asked
==================  ========================================================================================

:func:`install_plugin` puts an executable wrapper into a bin dir; :func:`write_provider_config` writes the
kubelet's ``CredentialProviderConfig`` (``--image-credential-provider-config``).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

API_VERSION = "credentialprovider.kubelet.k8s.io/v1"
CONFIG_API_VERSION = "kubelet.config.k8s.io/v1"
MODES = ("ok", "fail", "hang", "garbage", "huge", "wrong-kind", "wrong-version", "empty")
HUGE_BYTES = 50 * 1024 * 1024

__all__ = [
    "API_VERSION",
    "MODES",
    "install_plugin",
    "response_for",
    "write_provider_config",
]


def _registry_of(image: str) -> str:
    """The kubelet's own ``parseRegistry``: everything before the first ``/``."""
    return image.split("/", 1)[0]


def response_for(request: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The ``CredentialProviderResponse`` for ``request`` in mode ``ok`` (or ``empty``)."""
    response: dict[str, Any] = {
        "kind": "CredentialProviderResponse",
        "apiVersion": API_VERSION,
        "cacheKeyType": env.get("PLUGIN_CACHE_KEY_TYPE", "Registry"),
        "cacheDuration": env.get("PLUGIN_CACHE_DURATION", "5m0s"),
    }
    if env.get("PLUGIN_MODE", "ok") != "empty":
        registry = env.get("PLUGIN_REGISTRY") or _registry_of(str(request.get("image", "")))
        response["auth"] = {
            registry: {"username": env.get("PLUGIN_USERNAME", ""), "password": env.get("PLUGIN_PASSWORD", "")}
        }
    return response


def _log_request(path: str, raw: str) -> None:
    entry = {"time": time.time(), "pid": os.getpid(), "request": raw}
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def _die_with_kubelet() -> None:
    """A kubelet that stops while the plugin runs does not kill it: have the kernel do so (PR_SET_PDEATHSIG)."""
    if sys.platform == "linux":
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent is already gone
            raise SystemExit(1)


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    raw = sys.stdin.read()
    if env.get("PLUGIN_LOG"):
        _log_request(env["PLUGIN_LOG"], raw)
    mode = env.get("PLUGIN_MODE", "ok")
    if mode == "fail":
        sys.stderr.write("pullguard test plugin: refusing on purpose (PLUGIN_MODE=fail)\n")
        return 1
    if mode == "hang":  # the kubelet kills it after its one-minute exec timeout
        time.sleep(float(env.get("PLUGIN_HANG_SECONDS", "120")))
        return 1
    if mode == "garbage":
        sys.stdout.write("this is not a CredentialProviderResponse\n")
        return 0
    if mode == "huge":
        chunk = "x" * (1024 * 1024)
        for _ in range(HUGE_BYTES // len(chunk)):
            sys.stdout.write(chunk)
        return 0
    request = json.loads(raw)
    if request.get("kind") != "CredentialProviderRequest":
        sys.stderr.write(f"pullguard test plugin: unexpected request kind {request.get('kind')!r}\n")
        return 1
    response = response_for(request, env)
    if mode == "wrong-kind":
        response["kind"] = "CredentialProviderRequest"
    elif mode == "wrong-version":
        response["apiVersion"] = "credentialprovider.kubelet.k8s.io/v1beta1"
    elif mode not in ("ok", "empty"):
        sys.stderr.write(f"pullguard test plugin: unknown PLUGIN_MODE {mode!r}\n")
        return 2
    sys.stdout.write(json.dumps(response))
    return 0


def install_plugin(bin_dir: Path, name: str = "pullguard-test-provider") -> Path:
    """Write an executable ``bin_dir/name`` that runs this module with the current interpreter; return it.

    ``-I`` keeps the plugin's Python from reading PYTHON* variables the kubelet passes through from its own
    environment."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / name
    command = shlex.join([sys.executable, "-I", str(Path(__file__).resolve())])
    target.write_text(f'#!/bin/sh\nexec {command} "$@"\n')
    target.chmod(0o755)
    return target


def write_provider_config(
    path: Path,
    *,
    name: str,
    match_images: Sequence[str],
    env: Mapping[str, str] | None = None,
    default_cache_duration: str = "5m0s",
    args: Sequence[str] = (),
) -> Path:
    """Write a one-provider ``CredentialProviderConfig`` (YAML) and return ``path``."""
    import yaml  # here, not at the top: the plugin itself runs on the standard library alone

    provider: dict[str, Any] = {
        "name": name,
        "matchImages": list(match_images),
        "defaultCacheDuration": default_cache_duration,
        "apiVersion": API_VERSION,
    }
    if args:
        provider["args"] = list(args)
    if env:
        provider["env"] = [{"name": key, "value": value} for key, value in env.items()]
    config = {"apiVersion": CONFIG_API_VERSION, "kind": "CredentialProviderConfig", "providers": [provider]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


if __name__ == "__main__":
    _die_with_kubelet()
    raise SystemExit(main())
