"""Go's `time.ParseDuration`, for the duration strings of the kubelet's credential provider files and
plugin responses (`metav1.Duration` decodes with it).

Ported from Go (BSD-3-Clause) src/time/format.go: ParseDuration, leadingInt, leadingFraction and unitMap.
Go works on the string's bytes, so this does too; the result is nanoseconds, as a `time.Duration`.
"""

from __future__ import annotations

from typing import Final

__all__ = ["NANOSECONDS_PER_SECOND", "parse_duration"]

NANOSECONDS_PER_SECOND: Final = 1_000_000_000
_UNITS: Final = {
    b"ns": 1,
    b"us": 1_000,
    "\u00b5s".encode(): 1_000,  # micro sign
    "\u03bcs".encode(): 1_000,  # Greek mu
    b"ms": 1_000_000,
    b"s": NANOSECONDS_PER_SECOND,
    b"m": 60 * NANOSECONDS_PER_SECOND,
    b"h": 3600 * NANOSECONDS_PER_SECOND,
}
_LIMIT: Final = 1 << 63  # uint64 arithmetic bounded as Go bounds it


def _digit(c: int) -> bool:
    return 0x30 <= c <= 0x39


def _fail(message: str, orig: str) -> ValueError:
    return ValueError(f"time: {message} {orig!r}")


def _leading_int(s: bytes) -> tuple[int, bytes] | None:
    """leadingInt: the leading [0-9]* and the rest; None on overflow."""
    x, i = 0, 0
    while i < len(s) and _digit(s[i]):
        if x > _LIMIT // 10:
            return None
        x = x * 10 + s[i] - 0x30
        if x > _LIMIT:
            return None
        i += 1
    return x, s[i:]


def _leading_fraction(s: bytes) -> tuple[int, float, bytes]:
    """leadingFraction: digits after the point; past uint64 it stops gaining precision, without error."""
    x, scale, i, overflow = 0, 1.0, 0, False
    while i < len(s) and _digit(s[i]):
        if not overflow:
            y = x * 10 + s[i] - 0x30
            if x > (_LIMIT - 1) // 10 or y > _LIMIT:
                overflow = True
            else:
                x, scale = y, scale * 10
        i += 1
    return x, scale, s[i:]


def parse_duration(text: str) -> int:
    """ParseDuration: "1h2m3.5s", "-1.5h", "300ms", "0" -> nanoseconds. ValueError where Go errs."""
    s = text.encode("utf-8", "surrogateescape")
    neg = False
    if s[:1] in (b"-", b"+"):
        neg, s = s[:1] == b"-", s[1:]
    if s == b"0":  # the only number that needs no unit
        return 0
    if not s:
        raise _fail("invalid duration", text)
    total = 0
    while s:
        if not (s[0] == 0x2E or _digit(s[0])):
            raise _fail("invalid duration", text)
        before = len(s)
        leading = _leading_int(s)
        if leading is None:
            raise _fail("invalid duration", text)
        value, s = leading
        pre = before != len(s)
        fraction, scale, post = 0, 1.0, False
        if s[:1] == b".":
            s = s[1:]
            before = len(s)
            fraction, scale, s = _leading_fraction(s)
            post = before != len(s)
        if not pre and not post:  # no digits, e.g. ".s"
            raise _fail("invalid duration", text)
        i = 0
        while i < len(s) and not (s[i] == 0x2E or _digit(s[i])):
            i += 1
        if i == 0:
            raise _fail("missing unit in duration", text)
        unit = _UNITS.get(s[:i])
        if unit is None:
            raise _fail(f"unknown unit {s[:i].decode('utf-8', 'replace')!r} in duration", text)
        s = s[i:]
        if value > _LIMIT // unit:
            raise _fail("invalid duration", text)
        value *= unit
        if fraction > 0:
            # float64, as Go: nanosecond-accurate for fractions of hours
            value += int(float(fraction) * (float(unit) / scale))
            if value > _LIMIT:
                raise _fail("invalid duration", text)
        total += value
        if total > _LIMIT:
            raise _fail("invalid duration", text)
    if neg:
        return -total
    if total > _LIMIT - 1:
        raise _fail("invalid duration", text)
    return total
