"""`with server:` for every test process and server: entering returns it, leaving stops it; and the one way a
test ends a child process."""

from __future__ import annotations

import subprocess
from types import TracebackType
from typing import Self


class StopsOnExit:
    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def end_process(process: subprocess.Popen[bytes], *, signal_sent: bool = False, timeout: float = 10.0) -> None:
    """SIGTERM (unless the caller already signalled it), then SIGKILL when it has not exited in `timeout` s."""
    if process.poll() is not None:
        return
    if not signal_sent:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
