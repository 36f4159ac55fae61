"""Log lines show no control to a person (issue 20, item 7): C1 controls, line and paragraph separators and
bidirectional overrides from image strings and user names are written as JSON escapes; the values are unchanged."""

from __future__ import annotations

import io
import json
import logging

from webhook import logs
from webhook.logs import review_line, terminal_safe_json

HOSTILE = "app\u009b2J\u0085\u2028\u2029\u202egnp.exe\u2066x\u2069\ufeff\u061c\u200e:1"
RAW_CONTROLS = ("\u009b", "\u0085", "\u2028", "\u2029", "\u202e", "\u2066", "\u2069", "\ufeff", "\u061c", "\u200e")


def test_the_review_line_escapes_them(log_stream: io.StringIO) -> None:
    review_line({"image": HOSTILE, "user": HOSTILE})
    (line,) = log_stream.getvalue().splitlines()
    assert not any(c in line for c in RAW_CONTROLS), ascii(line)
    assert json.loads(line)["image"] == HOSTILE


def test_every_other_log_line_escapes_them(log_stream: io.StringIO) -> None:
    logging.getLogger("pullguard.test").warning("bad %s", HOSTILE, extra={"fields": {"name": HOSTILE}})
    (line,) = log_stream.getvalue().splitlines()
    assert not any(c in line for c in RAW_CONTROLS), ascii(line)
    entry = json.loads(line)
    assert (entry["msg"], entry["name"]) == (f"bad {HOSTILE}", HOSTILE)


def test_plain_text_is_left_as_it_is() -> None:
    text = '{"msg":"caf\u00e9 \u4e2d\u6587 ok"}'
    assert terminal_safe_json(text) is text
    assert logs.terminal_safe_json('{"a":"\u202e"}') == '{"a":"\\u202e"}'
