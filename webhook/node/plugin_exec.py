"""Running one credential provider plugin, bounded in time, output and processes.

The kubelet's execPlugin.ExecPlugin (Kubernetes, Apache-2.0, pkg/credentialprovider/plugin/plugin.go) runs
`<bin dir>/<name> args...` with the request on stdin and the environment merged (mergeEnvVars: the provider's
variables win), and gives it one minute. pullguard answers admission reviews, so it is stricter: a ceiling of
`timeout` seconds (then the plugin's whole process group is killed, so a hanging plugin never accumulates), at
most `max_stdout` bytes of answer (more: killed, a failure), stderr kept to `max_stderr` bytes (the rest is
read and dropped, so the plugin never blocks on it). Never a shell; each run in its own session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from policies.credential_providers import describe_stderr

__all__ = ["EXEC_TIMEOUT_SECONDS", "MAX_STDERR_BYTES", "MAX_STDOUT_BYTES", "ExecFailure", "run_plugin"]

EXEC_TIMEOUT_SECONDS: Final = 10.0
MAX_STDOUT_BYTES: Final = 1024 * 1024
MAX_STDERR_BYTES: Final = 64 * 1024
_CHUNK: Final = 64 * 1024
_REAP_SECONDS: Final = 5.0  # after SIGKILL the pipes close at once; this only guards against an escaped child


class ExecFailure(Exception):
    """The plugin gave no usable output; `detail` is a short sentence safe to show (no stdout, redacted stderr)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _TooMuchOutput(Exception):
    pass


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 else f"{n // 1024} KiB"


async def _feed(stream: asyncio.StreamWriter | None, data: bytes) -> None:
    if stream is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a plugin may exit without reading
        stream.write(data)
        await stream.drain()
        stream.close()
        await stream.wait_closed()


async def _read(stream: asyncio.StreamReader | None, cap: int, *, overflow_fails: bool) -> bytes:
    """Up to `cap` bytes until EOF; past it, _TooMuchOutput or (stderr) the rest read and dropped."""
    if stream is None:
        return b""
    kept = bytearray()
    while chunk := await stream.read(_CHUNK):
        if len(kept) + len(chunk) > cap:
            if overflow_fails:
                raise _TooMuchOutput
            kept += chunk[: max(0, cap - len(kept))]
        else:
            kept += chunk
    return bytes(kept)


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # start_new_session made the plugin a group leader: its group id is its pid. The group outlives a leader
    # that has exited while any child lives, and its id is not reused meanwhile.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def _reap(process: asyncio.subprocess.Process) -> None:
    """Kill the group, drain what is left in the pipes (so their transports close) and collect the exit."""
    _kill_group(process)
    try:
        async with asyncio.timeout(_REAP_SECONDS):
            for stream in (process.stdout, process.stderr):
                while stream is not None and await stream.read(_CHUNK):
                    pass
            await process.wait()
    except TimeoutError:  # a descendant left the group and holds a pipe: let the transport go
        transport = getattr(process, "_transport", None)
        if transport is not None:
            transport.close()


async def _communicate(
    process: asyncio.subprocess.Process, request: bytes, max_stdout: int, max_stderr: int
) -> tuple[bytes, bytes]:
    """stdout and stderr once the plugin has exited and closed both."""
    feeder = asyncio.ensure_future(_feed(process.stdin, request))
    errors = asyncio.ensure_future(_read(process.stderr, max_stderr, overflow_fails=False))
    try:
        stdout = await _read(process.stdout, max_stdout, overflow_fails=True)
        await feeder
        stderr = await errors
        await process.wait()
    finally:
        feeder.cancel()
        errors.cancel()
        await asyncio.gather(feeder, errors, return_exceptions=True)
    return stdout, stderr


async def run_plugin(
    executable: Path,
    args: Sequence[str],
    request: bytes,
    env: Mapping[str, str],
    *,
    timeout: float = EXEC_TIMEOUT_SECONDS,
    max_stdout: int = MAX_STDOUT_BYTES,
    max_stderr: int = MAX_STDERR_BYTES,
    secrets: Sequence[str] = (),
) -> bytes:
    """What the plugin printed on stdout, if it exited 0 in time; else ExecFailure. `secrets` (the service
    account token sent) are redacted from the stderr line a failure quotes."""
    try:
        process = await asyncio.create_subprocess_exec(
            str(executable),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(env),
            start_new_session=True,  # its own process group, killed as one
        )
    except FileNotFoundError:
        raise ExecFailure(f"its binary {executable} does not exist") from None
    except PermissionError:
        raise ExecFailure(f"its binary {executable} is not executable") from None
    except (OSError, ValueError) as err:  # ENOEXEC, a NUL in an argument or variable, ...
        reason = err.strerror if isinstance(err, OSError) and err.strerror else type(err).__name__
        raise ExecFailure(f"could not start {executable}: {reason}") from None
    finished = False
    try:
        async with asyncio.timeout(timeout):
            stdout, stderr = await _communicate(process, request, max_stdout, max_stderr)
        finished = True
    except TimeoutError:
        raise ExecFailure(f"did not finish within {timeout:g} s and was killed") from None
    except _TooMuchOutput:
        raise ExecFailure(f"printed more than {_size(max_stdout)} and was killed") from None
    finally:
        if not finished:  # timed out, printed too much or cancelled: nothing of it may outlive this call
            await asyncio.shield(_reap(process))
    code = process.returncode or 0
    if code:
        status = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        line = describe_stderr(stderr, secrets)
        raise ExecFailure(f"{status}: {line}" if line else status)
    return stdout
