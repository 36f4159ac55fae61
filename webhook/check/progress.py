"""Progress of a long `pullguard check` run, on stderr only (stdout is the report).

On a terminal: one line redrawn in place (a bar), cleared when the run ends. Elsewhere (a CI log): a plain line
every `every` seconds. Short runs print nothing: the first output comes only after `after` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TextIO

BAR_WIDTH = 24
LINE_SECONDS = 10.0  # a CI log gets a line this often
BAR_SECONDS = 0.2  # a terminal's bar is redrawn this often
QUIET_SECONDS = 2.0  # nothing is printed for runs shorter than this


class Progress:
    """Counts judged workloads and finished registry lookups; `run()` reports them until cancelled."""

    def __init__(
        self,
        stream: TextIO,
        *,
        workloads: int,
        budget: float | None,
        tty: bool | None = None,
        every: float | None = None,
        after: float = QUIET_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.workloads = workloads
        self.budget = budget
        self.tty = _is_tty(stream) if tty is None else tty
        self.every = every if every is not None else (BAR_SECONDS if self.tty else LINE_SECONDS)
        self.after = after
        self.clock = clock
        self.started = clock()
        self.judged = 0
        self.lookups = 0
        self.lookups_done = 0
        self._drawn = False  # a bar is on the terminal's current line

    def lookup_started(self, count: int = 1) -> None:
        self.lookups += count

    def lookup_done(self, count: int = 1) -> None:
        self.lookups_done += count

    def workload_done(self) -> None:
        self.judged += 1

    def text(self) -> str:
        elapsed = self.clock() - self.started
        budget = f" of {self.budget:g}s" if self.budget is not None else ""
        lookups = f", registry lookups {self.lookups_done}/{self.lookups}" if self.lookups else ""
        return f"workloads {self.judged}/{self.workloads}{lookups}, {elapsed:.0f}s{budget}"

    def tick(self) -> None:
        """Print the current state (if the run has lasted long enough to deserve it)."""
        if self.clock() - self.started < self.after:
            return
        if self.tty:
            done = self.judged / self.workloads if self.workloads else 1.0
            filled = int(done * BAR_WIDTH)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self.stream.write(f"\r\x1b[Kpullguard check [{bar}] {self.text()}")
            self._drawn = True
        else:
            self.stream.write(f"pullguard check: {self.text()}\n")
        self.stream.flush()

    def finish(self) -> None:
        """Clear the bar (the report follows on stdout; the terminal line must not keep a half-drawn bar)."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    async def run(self) -> None:
        """Report every `every` seconds until cancelled; then clear the bar."""
        try:
            while True:
                await asyncio.sleep(self.every)
                self.tick()
        finally:
            self.finish()


def _is_tty(stream: TextIO) -> bool:
    with contextlib.suppress(AttributeError, ValueError, OSError):
        return stream.isatty()
    return False
