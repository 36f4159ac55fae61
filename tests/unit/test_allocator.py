"""serve's glibc allocator settings: large bodies are mmapped (returned when freed), a TLS read buffer is reused heap.

Measured in a child process with glibc's mallinfo2(): the settings are process-wide.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from webhook.util import memory

PROBE = """
import ctypes, json
from webhook.util import memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
memory.keep_large_buffers_returnable()
mmapped = lambda: libc.mallinfo2().hblks

before = mmapped()
tls_read = bytearray(memory.TLS_READ_BYTES)
tls_read_mmapped = mmapped() - before
del tls_read
heap_after_tls_read = libc.mallinfo2().arena
body = bytearray(4 * 1024 * 1024)
body_mmapped = mmapped() - before
del body
print(json.dumps({"tls_read_mmapped": tls_read_mmapped, "heap_after_tls_read": heap_after_tls_read,
                  "body_mmapped": body_mmapped, "mmapped_after_body": mmapped() - before}))
"""


def _probe() -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, int] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(memory._libc() is None, reason="glibc only")
def test_a_tls_read_buffer_is_heap_and_kept_a_large_body_is_mmapped_and_returned() -> None:
    result = _probe()
    assert result["tls_read_mmapped"] == 0  # uvloop's 256 KiB SSLObject.read buffer: no mmap per read
    assert result["heap_after_tls_read"] >= memory.TLS_READ_BYTES  # nor a heap trim (sbrk) per read
    assert result["body_mmapped"] == 1  # a multi-MiB review body or LIST page: its own mapping
    assert result["mmapped_after_body"] == 0  # given back when freed


def test_the_thresholds_order() -> None:
    assert memory.TLS_READ_BYTES < memory.MMAP_THRESHOLD_BYTES < memory.TRIM_THRESHOLD_BYTES
