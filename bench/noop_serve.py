"""How the do-nothing baselines (noop_app.py, noop_webhook.py) serve: uvicorn with uvloop and httptools over TLS on
127.0.0.1, no access log, the same stack as pullguard's. Run as scripts: `noop_*.py PORT CERT_DIR`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn


def serve(app: Any) -> None:
    cert_dir = Path(sys.argv[2])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        access_log=False,
        loop="uvloop",
        http="httptools",
        ssl_certfile=cert_dir / "tls.crt",
        ssl_keyfile=cert_dir / "tls.key",
    )
