"""Noticing that a mounted file changed, by polling: `stat` follows the symlink swaps of mounted ConfigMaps and
Secrets, which inotify-style watchers miss."""

from __future__ import annotations

import os
from pathlib import Path

Signature = tuple[tuple[int, int, int], ...]


def file_signature(*paths: Path) -> Signature | None:
    """(mtime, inode, size) of each file: it changes with every write and every swap. None: one is unreadable."""
    try:
        stats = [os.stat(path) for path in paths]
    except OSError:
        return None
    return tuple((st.st_mtime_ns, st.st_ino, st.st_size) for st in stats)
