"""Structured JSON logs: one object per line, fields passed as `extra={"fields": {...}}`.

The per-review line is the one on the hot path: `review_line()` writes it without building a LogRecord (which
costs more than judging the review), in the same format and through the same handler lock and stream.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

REVIEW_LOGGER = "pullguard.review"


def _timestamp(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created * 1000) % 1000:03d}Z"


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
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure(level: str = "info") -> None:
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
        _review_log.info("review", extra={"fields": fields})  # someone configured logging differently
        return
    entry = {"ts": _timestamp(time.time()), "level": "info", "logger": REVIEW_LOGGER, "msg": "review", **fields}
    line = orjson.dumps(entry, default=str).decode() + "\n"
    with handler.lock or _NO_LOCK:
        handler.stream.write(line)
        handler.stream.flush()


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *args: object) -> None:
        return None


_NO_LOCK = _NoLock()
