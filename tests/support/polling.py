"""Waiting for something to become true, bounded: every wait in the tests ends, and says what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")
WAIT = 15.0  # seconds: every wait is bounded by this unless it says otherwise


def eventually(probe: Callable[[], T], what: str, timeout: float = WAIT, interval: float = 0.25) -> T:
    """Poll ``probe`` until it returns something truthy, and return that; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {value!r})")
        time.sleep(interval)
