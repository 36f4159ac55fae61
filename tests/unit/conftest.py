"""Fixtures shared by the unit tests."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from webhook.logs import JsonFormatter


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Everything logged at info and above meanwhile, as pullguard's JSON lines (the root handler swapped)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    yield out
    root.handlers[:] = saved
    root.setLevel(level)
