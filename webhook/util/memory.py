"""The two glibc allocator calls pullguard makes, one libc handle for both; elsewhere (musl, macOS) they do
nothing. Python frees memory to the allocator, and glibc keeps some of it for reuse unless told otherwise."""

from __future__ import annotations

import ctypes
import functools

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters
M_MMAP_THRESHOLD = -3
# uvloop reads TLS records with SSLObject.read(256 KiB): CPython allocates that much for every read, then shrinks
# it. Below the threshold, that buffer is an mmap and a munmap (and fresh zeroed pages) per read: 60 us of a
# review's CPU through the API server (issue 23). Above it, it is reused heap.
TLS_READ_BYTES = 256 * 1024
MMAP_THRESHOLD_BYTES = 2 * TLS_READ_BYTES
# Freed heap at the top beyond this goes back to the OS; it must hold a TLS read buffer or every read would
# shrink the heap (sbrk) and the next grow it again.
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES


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
    threshold keeps them (and LIST pages) mmapped and returned when freed, and TLS read buffers on the heap."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
