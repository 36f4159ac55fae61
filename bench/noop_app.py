"""The baseline: FastAPI + uvicorn over the same TLS, answering every POST with a fixed AdmissionReview of the
same size as pullguard's answer. What pullguard costs is measured against this."""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response

ANSWER = Path(os.environ["BENCH_ANSWER"]).read_bytes()
app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/validate")
async def validate(request: Request) -> Response:
    await request.body()  # read it, as any webhook must
    return Response(ANSWER, media_type="application/json")


if __name__ == "__main__":
    from noop_serve import serve  # a sibling script module: these files run as scripts

    serve(app)
