"""Structured JSON logs: one object per line, fields passed as `extra={"fields": {...}}`.

The per-review line is the one on the hot path: `review_line()` writes it without building a LogRecord (which
costs more than judging the review), in the same format and through the same handler lock and stream. Its
fields arrive bounded (webhook/admission/app.py); should the line still exceed MAX_REVIEW_LINE_BYTES
(webhook/limits.py), its findings are counted instead of listed. A traceback is kept whole up to
MAX_TRACEBACK_CHARS, then head and tail.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
from typing import Any

import orjson

from webhook.limits import MAX_REVIEW_LINE_BYTES

REVIEW_LOGGER = "pullguard.review"
DEFAULT_LEVEL = "info"  # also `serve --log-level`'s default
MAX_TRACEBACK_CHARS = 16 * 1024


def _timestamp(created: float) -> str:
    return f"{_second(int(created))}.{int(created * 1000) % 1000:03d}Z"


@functools.lru_cache(maxsize=4)  # every line within a second shares its formatting (strftime is the slow part)
def _second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["error"] = _head_and_tail(self.formatException(record.exc_info), MAX_TRACEBACK_CHARS)
        return terminal_safe_json(orjson.dumps(entry, default=str).decode())


# JSON allows these raw inside strings, and orjson writes them so; terminals, log viewers and JavaScript-based
# tools do not take them as text: C1 controls (U+0080-U+009F: U+009B is a CSI), the line and paragraph separators
# and the bidirectional overrides and isolates (a U+202E turns what follows around). Written as \uXXXX escapes, a
# log line reads the same to a JSON parser and shows no control to a person.
_UNSAFE = re.compile("[\u0080-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def terminal_safe_json(text: str) -> str:
    """A JSON document's text with every character of `_UNSAFE` written as a \\u escape (the same JSON value)."""
    if _UNSAFE.search(text) is None:  # the common case: one scan, no copy
        return text
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# For text meant for a terminal (explain, check's table and messages): C0 controls but newline and tab, DEL, and all
# of the above. ESC and BEL are how a pod status message would set a window title or clear the screen.
_TERMINAL_UNSAFE = re.compile(_UNSAFE.pattern[:-1] + "\x00-\x08\x0b-\x1f\x7f]")


def terminal_text(text: str) -> str:
    """`text` with every control a terminal would act on shown as a visible escape (\\x1b, \\u202e)."""
    if _TERMINAL_UNSAFE.search(text) is None:
        return text
    return _TERMINAL_UNSAFE.sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _head_and_tail(text: str, limit: int) -> str:
    """A traceback's first and last lines are the ones that say what happened: keep those."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n...({len(text) - 2 * half} characters left out)...\n{text[-half:]}"


def configure(level: str = DEFAULT_LEVEL) -> None:
    # Skip what records would carry and we never print (caller lookup walks the stack; see "Optimization"
    # in the logging HOWTO).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access",):
        logging.getLogger(noisy).disabled = True


_review_log = logging.getLogger(REVIEW_LOGGER)


def review_line(fields: dict[str, Any]) -> None:
    """Log one review at info level, as `log.info("review", extra={"fields": fields})` would, only cheaper."""
    if not _review_log.isEnabledFor(logging.INFO):
        return
    handlers = logging.getLogger().handlers
    handler = handlers[0] if len(handlers) == 1 and isinstance(handlers[0], logging.StreamHandler) else None
    if handler is None or not isinstance(handler.formatter, JsonFormatter):
        if len(orjson.dumps(fields, default=str)) > MAX_REVIEW_LINE_BYTES:
            fields = _without_findings(fields)
        _review_log.info("review", extra={"fields": fields})  # someone configured logging differently
        return
    entry = {"ts": _timestamp(time.time()), "level": "info", "logger": REVIEW_LOGGER, "msg": "review", **fields}
    raw = orjson.dumps(entry, default=str)
    if len(raw) > MAX_REVIEW_LINE_BYTES:
        raw = orjson.dumps(_without_findings(entry), default=str)
    line = terminal_safe_json(raw.decode()) + "\n"
    with handler.lock or _NO_LOCK:
        handler.stream.write(line)
        handler.stream.flush()


def _without_findings(fields: dict[str, Any]) -> dict[str, Any]:
    findings = fields.get("findings")
    listed = len(findings) if isinstance(findings, list) else 0
    return {**fields, "findings": [], "findingsNotLogged": listed + int(fields.get("findingsNotLogged") or 0)}


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


_NO_LOCK = _NoLock()
