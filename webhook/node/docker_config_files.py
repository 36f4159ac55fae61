"""The nodes' docker config file, as the policy's `nodeCredentials.dockerConfigFiles` stands for it.

The kubelet reads one file for the whole node (pkg/credentialprovider/config.go `ReadDockerConfigFile`): the first
`config.json` on its search path (its root dir, its working dir, `$HOME/.docker`, `/.docker`) that it can read
and decode, else the first legacy `.dockercfg` (root dir, working dir, `$HOME`, `/`). Its entries join the keyring
after the pod's secrets, as node-wide credentials. The policy lists the files pullguard holds for it (mounted from
a Secret), in the same order: the first that reads and decodes is used, a `config.json` form unless the file name
ends in `.dockercfg`. Re-read when a file changes (polled by signature, like every mounted file here).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from policies.image.keyring import Keyring
from policies.image.pull_secret_parse import (
    Credential,
    CredentialSource,
    PullSecretError,
    read_docker_config_json,
    read_dockercfg,
)
from webhook.util.files import Signature, file_signature

log = logging.getLogger("pullguard.node")

MAX_CONFIG_FILE_BYTES = 1 << 20  # a docker config is a few KiB; a larger file is not one


@dataclass(frozen=True, slots=True)
class NodeFileKeyring:
    keyring: Keyring
    used: str | None  # the file the entries came from
    problem: str | None  # why none could be used (every listed file unreadable or malformed)


class NodeConfigFiles:
    """Holds the keyring of the first usable file of a list, rebuilt only when a listed file changes."""

    def __init__(self) -> None:
        self._paths: tuple[str, ...] = ()
        self._signature: tuple[Signature | None, ...] | None = None
        self._held = NodeFileKeyring(Keyring(), None, None)

    def keyring(self, paths: tuple[str, ...]) -> NodeFileKeyring:
        signature = tuple(file_signature(Path(p)) for p in paths)
        if paths != self._paths or signature != self._signature:
            self._paths, self._signature = paths, signature
            self._held = _read_first(paths)
            if self._held.problem:
                log.warning("node credentials: %s", self._held.problem)
        return self._held


def _read_first(paths: tuple[str, ...]) -> NodeFileKeyring:
    problems: list[str] = []
    for path in paths:
        try:
            raw = _read_bounded(Path(path))
            config = read_dockercfg(raw, path) if path.endswith(".dockercfg") else read_docker_config_json(raw, path)
        except (OSError, PullSecretError) as exc:  # the kubelet logs and tries the next path
            problems.append(f"{path}: {_reason(exc)}")
            continue
        keyring = Keyring()
        keyring.add(
            (key, Credential.from_entry(entry, CredentialSource.of_node(f"node file {path}", key)))
            for key, entry in config.items()
        )
        return NodeFileKeyring(keyring, path, None)
    problem = "no usable node docker config file (" + "; ".join(problems) + ")" if problems else None
    return NodeFileKeyring(Keyring(), None, problem)


def _read_bounded(path: Path) -> bytes:
    with path.open("rb") as handle:
        raw = handle.read(MAX_CONFIG_FILE_BYTES + 1)
    if len(raw) > MAX_CONFIG_FILE_BYTES:
        raise OSError(f"larger than {MAX_CONFIG_FILE_BYTES} bytes")
    return raw


def _reason(exc: Exception) -> str:
    """The cause without the path (already said) and never the content: PullSecretError texts name keys only."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)
