"""The two glibc allocator calls pullguard makes, one libc handle for both; elsewhere (musl, macOS) they do
nothing. Python frees memory to the allocator, and glibc keeps some of it for reuse unless told otherwise."""

from __future__ import annotations

import ctypes
import functools

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 128 * 1024


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def return_freed_memory() -> None:
    """Give freed heap back to the OS (malloc_trim): after a cache's first LIST, whose pages are gone for good."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def keep_large_buffers_returnable() -> None:
    """glibc raises its mmap threshold after each large free (up to 32 MiB), so after a few 3 MiB review bodies
    such buffers come from the heap and their memory is kept for good (+30% RSS after a fuzz run). A fixed
    threshold keeps them mmapped and returned when freed."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
