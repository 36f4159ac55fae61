"""The installed package's version, for `pullguard --version` and SARIF's `tool.driver.version`."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed


def version() -> str:
    try:
        return _installed("pullguard")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"
