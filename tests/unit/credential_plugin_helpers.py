"""Real credential provider plugins for tests: small executables written into a temporary bin dir.

Each plugin gets a work dir (its first argument): it appends every request it reads to `requests` (one line
each, so the line count is the number of execs) and prints `response.json`, which a test may rewrite.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from policies.credential_providers import PROTOCOL_API_VERSIONS, ExecProvider, parse_provider_config

V1 = PROTOCOL_API_VERSIONS[-1]
GENEROUS = 60.0  # seconds: a budget no healthy run on a loaded machine comes near

RESPONDER = """#!/bin/sh
req=$(cat)
printf '%s\\n' "$req" >> "$1/requests"
cat "$1/response.json"
"""


def responder(prefix: str) -> str:
    """The responder, running the shell lines `prefix` first."""
    return "#!/bin/sh\n" + prefix + RESPONDER.split("\n", 1)[1]


class Clock:
    """An injected monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def write_plugin(bin_dir: Path, name: str, script: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def response(
    key_type: str = "Image", duration: str | None = None, auth: Mapping[str, tuple[str, str]] | None = None
) -> str:
    doc: dict[str, object] = {"kind": "CredentialProviderResponse", "apiVersion": V1, "cacheKeyType": key_type}
    if duration is not None:
        doc["cacheDuration"] = duration
    doc["auth"] = {key: {"username": user, "password": password} for key, (user, password) in (auth or {}).items()}
    return json.dumps(doc)


class Plugin:
    """A responder plugin named `name` in `bin_dir`, with its work dir under `root`."""

    def __init__(self, root: Path, bin_dir: Path, name: str, script: str = RESPONDER) -> None:
        self.name = name
        self.dir = root / f"work-{name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        write_plugin(bin_dir, name, script)

    def answer(self, text: str) -> None:
        (self.dir / "response.json").write_text(text)

    def requests(self) -> list[dict[str, object]]:
        path = self.dir / "requests"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]

    def request_lines(self) -> list[bytes]:
        path = self.dir / "requests"
        return path.read_bytes().splitlines(keepends=True) if path.exists() else []

    @property
    def execs(self) -> int:
        return len(self.request_lines())

    def spec(
        self,
        match: Sequence[str] = ("registry.example.com",),
        *,
        default: str = "5m",
        args: Sequence[str] = (),
        env: Sequence[tuple[str, str]] = (),
        token: Mapping[str, object] | None = None,
    ) -> dict[str, object]:
        provider: dict[str, object] = {
            "name": self.name,
            "matchImages": list(match),
            "defaultCacheDuration": default,
            "apiVersion": V1,
            "args": [str(self.dir), *args],
            "env": [{"name": n, "value": v} for n, v in env],
        }
        if token is not None:
            provider["tokenAttributes"] = dict(token)
        return provider


def write_config(path: Path, *providers: Mapping[str, object]) -> Path:
    doc = {"apiVersion": "kubelet.config.k8s.io/v1", "kind": "CredentialProviderConfig", "providers": list(providers)}
    path.write_text(json.dumps(doc))
    return path


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped, or a dead process, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


async def wait_until(predicate: object, seconds: float = GENEROUS) -> None:
    """Poll `predicate()` until true; fail after a generous bound."""
    assert callable(predicate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "condition not reached within the generous bound"
        await asyncio.sleep(0.02)


async def pids_of(work: Path, *names: str) -> list[int]:
    """The pids a plugin wrote into its work dir (waiting for them to appear)."""
    await wait_until(lambda: all((work / n).exists() and (work / n).read_text().strip() for n in names))
    return [int((work / n).read_text()) for n in names]


def exec_provider(api_version: str = V1, default: str = "5m", **token: object) -> ExecProvider:
    """One validated provider "p" matching *.io, through the real parser."""
    doc: dict[str, object] = {
        "apiVersion": "kubelet.config.k8s.io/v1",
        "kind": "CredentialProviderConfig",
        "providers": [
            {"name": "p", "matchImages": ["*.io"], "defaultCacheDuration": default, "apiVersion": api_version}
        ],
    }
    if token:
        doc["providers"][0]["tokenAttributes"] = {"requireServiceAccount": True, **token}  # type: ignore[index]
    return parse_provider_config(json.dumps(doc), "test.json")[0]
