"""A policy file read once, for `check --config` and for `serve --config` at start (where a missing or invalid
file must stop the process rather than leave the embedded default in force)."""

from __future__ import annotations

from pathlib import Path

from policies.config import Policy, PolicyError, parse_policy


def read_policy_file(path: Path) -> Policy:
    """Raises PolicyError naming the file (and the key path, for an invalid policy)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read: {exc}") from None
    return parse_policy(text, str(path))
