"""Every log line's `ts`: UTC, ISO 8601 with milliseconds; the seconds' formatting is shared within a second."""

from __future__ import annotations

import datetime

from webhook.logs import _timestamp


def test_utc_iso_8601_with_milliseconds() -> None:
    moment = datetime.datetime(2026, 12, 7, 23, 59, 59, 987_000, tzinfo=datetime.UTC)
    assert _timestamp(moment.timestamp()) == "2026-12-07T23:59:59.987Z"


def test_the_next_second_is_not_the_cached_one() -> None:
    moment = datetime.datetime(2026, 12, 7, 23, 59, 59, tzinfo=datetime.UTC).timestamp()
    assert _timestamp(moment + 0.5) == "2026-12-07T23:59:59.500Z"
    assert _timestamp(moment + 1.25) == "2026-12-08T00:00:00.250Z"
