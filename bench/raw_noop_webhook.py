"""The floor of pullguard's stack for `bench/apiserver.py` (issue 23): a do-nothing admission webhook written as a raw
ASGI app, nothing but uvicorn (uvloop, httptools, TLS) and orjson. It answers `/validate` and `/mutate` with
`allowed: true` for the request's uid, exactly as `noop_webhook.py` (the FastAPI one, kept as a second reference)
does: a `probe-` Pod gets a warning naming the endpoint, and in namespace `bench-raw-patch` `/mutate` returns the
patch pullguard's mirror rule makes (`noop_webhook.rewrite_patch`)."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from noop_webhook import rewrite_patch  # a sibling script module: these files run as scripts

PATCH_NAMESPACE = "bench-raw-patch"
JSON_HEADERS = [(b"content-type", b"application/json")]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def answer(body: bytes, endpoint: str) -> bytes:
    request = orjson.loads(body)["request"]
    response: dict[str, object] = {"uid": request["uid"], "allowed": True}
    obj = request.get("object") or {}
    if ((obj.get("metadata") or {}).get("name") or "").startswith("probe-"):
        response["warnings"] = [f"bench-raw {endpoint}"]
    if endpoint == "mutate" and request.get("namespace") == PATCH_NAMESPACE:
        patch = rewrite_patch(obj)
        if patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(orjson.dumps(patch)).decode()
    return orjson.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":  # lifespan: nothing to start or stop
        message = await receive()
        while message["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    if path in ("/validate", "/mutate"):
        status, body = 200, answer(b"".join(chunks), path[1:])
    elif path == "/healthz":
        status, body = 200, b'"ok"'
    else:
        status, body = 404, b"{}"
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    from noop_serve import serve

    serve(app)
