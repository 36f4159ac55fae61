"""`with server:` for every test process and server: entering returns it, leaving stops it."""

from __future__ import annotations

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
