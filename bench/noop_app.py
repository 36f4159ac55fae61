"""The baseline: FastAPI + uvicorn over the same TLS, answering every POST with a fixed AdmissionReview of the
same size as pullguard's answer. What pullguard costs is measured against this."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

ANSWER = Path(os.environ["BENCH_ANSWER"]).read_bytes()
app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/validate")
async def validate(request: Request) -> Response:
    await request.body()  # read it, as any webhook must
    return Response(ANSWER, media_type="application/json")


if __name__ == "__main__":
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
