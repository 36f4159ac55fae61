"""Reading a body that must be one JSON object (an AdmissionReview, a manifest, a config blob)."""

from __future__ import annotations

from typing import Any

import orjson


def json_object(body: bytes) -> dict[str, Any]:
    """Raises ValueError saying what the body is instead: "not JSON: <the parser's reason>" or "not a JSON object"."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document
