"""The do-nothing admission webhook for `bench/apiserver.py`: FastAPI + uvicorn over TLS (uvloop, httptools), like
pullguard's stack, answering `/validate` and `/mutate` with `allowed: true` for the request's own uid (the API server
rejects an answer whose uid differs). A Pod whose name starts with `probe-` gets a warning naming the endpoint, so
the benchmark can see that the API server calls it.

In the namespace `bench-noop-patch` its `/mutate` also rewrites the first container's image from
`registry.bench.example/` to `mirror.bench.example/` with the patch pullguard's mirror rule makes (`test`, `replace`,
`add` of the `pullguard.io/original-images` annotation), decided without any lookup: what the API server's side of
a rewrite costs, with nothing of pullguard in it."""

from __future__ import annotations

import base64
import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

SOURCE, MIRROR = "registry.bench.example/", "mirror.bench.example/"

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


def rewrite_patch(pod: dict[str, Any]) -> list[dict[str, Any]]:
    image = (pod.get("spec") or {}).get("containers", [{}])[0].get("image", "")
    if not image.startswith(SOURCE):
        return []
    path = "/spec/containers/0/image"
    original = json.dumps({"spec.containers[0]": image})
    annotations = (pod.get("metadata") or {}).get("annotations")
    add: dict[str, Any] = (
        {"op": "add", "path": "/metadata/annotations/pullguard.io~1original-images", "value": original}
        if annotations
        else {"op": "add", "path": "/metadata/annotations", "value": {"pullguard.io/original-images": original}}
    )
    return [
        {"op": "test", "path": path, "value": image},
        {"op": "replace", "path": path, "value": MIRROR + image[len(SOURCE) :]},
        add,
    ]


def answer(body: bytes, endpoint: str) -> Response:
    request = json.loads(body)["request"]
    response: dict[str, object] = {"uid": request["uid"], "allowed": True}
    name = ((request.get("object") or {}).get("metadata") or {}).get("name") or ""
    if name.startswith("probe-"):
        response["warnings"] = [f"bench-noop {endpoint}"]
    if endpoint == "mutate" and request.get("namespace") == "bench-noop-patch":
        patch = rewrite_patch(request.get("object") or {})
        if patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
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
    from noop_serve import serve  # a sibling script module: these files run as scripts

    serve(app)
