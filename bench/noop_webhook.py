"""The do-nothing admission webhook for `bench/apiserver.py`: FastAPI + uvicorn over TLS (uvloop, httptools), like
pullguard's stack, answering `/validate` and `/mutate` with `allowed: true` for the request's own uid (the API server
rejects an answer whose uid differs). A Pod whose name starts with `probe-` gets a warning naming the endpoint, so
the benchmark can see that the API server calls it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


def answer(body: bytes, endpoint: str) -> Response:
    request = json.loads(body)["request"]
    response: dict[str, object] = {"uid": request["uid"], "allowed": True}
    name = ((request.get("object") or {}).get("metadata") or {}).get("name") or ""
    if name.startswith("probe-"):
        response["warnings"] = [f"bench-noop {endpoint}"]
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
    return Response(json.dumps(review), media_type="application/json")


@app.post("/validate")
async def validate(request: Request) -> Response:
    return answer(await request.body(), "validate")


@app.post("/mutate")
async def mutate(request: Request) -> Response:
    return answer(await request.body(), "mutate")


@app.get("/healthz")
async def healthz() -> Response:
    return Response("ok")


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
