"""Output formats: the check's table, JSON and SARIF, and the audit's PolicyReports.

Formats only format: every word of a finding (problem, fix) comes from policies/render.py. `CHECK_FORMATS` is the
one list of what `pullguard check --format` offers; the audit's PolicyReports (policyreport.py) are documents per
namespace, not a rendering of a check Report, so they are not in it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from webhook.formats.report import Report, render_json, render_table
from webhook.formats.sarif import render_sarif

DEFAULT_CHECK_FORMAT = "table"
# Insertion order is the order `--help` lists them in. Read-only: a format is added here, not at run time.
CHECK_FORMATS: Mapping[str, Callable[[Report], str]] = MappingProxyType(
    {DEFAULT_CHECK_FORMAT: render_table, "json": render_json, "sarif": render_sarif}
)

__all__ = ["CHECK_FORMATS", "DEFAULT_CHECK_FORMAT"]
