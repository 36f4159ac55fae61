"""`pullguard serve --offline` with one part swapped, for `bench/decompose.py`: `decompose_serve.py VARIANT PORT
CERT_DIR`. A variant is `+`-joined words:

- `rawapp`: pullguard's server (TLS context, protocol, limits, allocator settings) around the raw do-nothing app
  (`bench/raw_noop_webhook.py`) instead of pullguard's: what the server costs;
- `plainproto`: uvicorn's plain httptools protocol instead of pullguard's request read deadline
  (`webhook/admission/http_guard.py`);
- `nolog`: logging at warning, so no per-review line;
- `mmap128k`: glibc's mmap threshold at 128 KiB and the default trim threshold (pullguard's setting before
  issue 23), to show what a TLS read buffer below the threshold costs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import raw_noop_webhook  # type: ignore[import-not-found]  # a sibling script module: these files run as scripts

from webhook import logs
from webhook.serve import server
from webhook.serve.options import ServeOptions
from webhook.util import memory


def main() -> None:
    variant, port, cert_dir = set(sys.argv[1].split("+")), int(sys.argv[2]), Path(sys.argv[3])
    logs.configure("warning" if "nolog" in variant else "info")
    if "rawapp" in variant:
        server.create_app = lambda service: raw_noop_webhook.app  # type: ignore[attr-defined]
    if "plainproto" in variant:
        server.guarded_protocol = lambda timeout: "httptools"  # type: ignore[assignment,return-value,attr-defined]
    if "mmap128k" in variant:

        def before_issue_23() -> None:
            libc = memory._libc()
            if libc is not None:
                libc.mallopt(memory.M_MMAP_THRESHOLD, 128 * 1024)

        server.keep_large_buffers_returnable = before_issue_23  # type: ignore[attr-defined]
    server.serve(ServeOptions(port=port, cert_dir=cert_dir, offline=True))


if __name__ == "__main__":
    main()
