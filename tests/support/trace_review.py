"""A call trace of one validating review, the house seen from the running code:
`python -m tests.support.trace_review`.

One Pod with two images (one private, with a pull secret) goes through the real ASGI app, its facts from a
registry made of `httpx.MockTransport` handlers and a static cluster view. Every call between pullguard's modules
is recorded (`sys.setprofile`); the edges are printed in the order they were first taken, then the ones that go
against the layers: the I/O clients (registry, kube, node) calling back into the policy (anything of `policies`
but the image library and the fact types they fill), or the core calling into the service.
tests/unit/test_trace_review.py asserts that there are none.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import httpx
import orjson

from policies.config import parse_policy
from tests.reviews import review
from tests.unit.registry_mock import IMAGE, REGISTRY, REPOSITORY, serve
from webhook.admission.app import Service, create_app
from webhook.kube.view import StaticClusterView
from webhook.metrics import Metrics
from webhook.registry.client import RegistryClient
from webhook.review.facts import FactGatherer
from webhook.sources.policy import PolicyHolder

OURS = ("policies", "webhook")
IO_CLIENTS = ("webhook.registry", "webhook.kube", "webhook.node")
FACT_TYPES = ("policies.image", "policies.model", "policies.registry_facts", "policies.lookup", "policies.schema")
Edge = tuple[str, str]


def pod() -> dict[str, Any]:
    auth = base64.b64encode(b"robot:s3cret-value").decode()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"namespace": "shop", "name": "regcred"},
        "data": {".dockerconfigjson": base64.b64encode(orjson.dumps({"auths": {REGISTRY: {"auth": auth}}})).decode()},
    }
    containers = [
        {"name": "app", "image": f"{REGISTRY}/{REPOSITORY}:1.0"},
        {"name": "sidecar", "image": f"{REGISTRY}/{REPOSITORY}@{IMAGE.digest}"},
    ]
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": "shop", "name": "traced"},
        "spec": {"containers": containers, "imagePullSecrets": [{"name": "regcred"}]},
    }
    return {"pod": body, "secret": secret}


async def _one_review() -> dict[str, Any]:
    objects = pod()
    registry = RegistryClient(transport=httpx.MockTransport(serve()))
    view = StaticClusterView([objects["secret"]])
    metrics = Metrics()
    holder = PolicyHolder(metrics)
    holder.policy = parse_policy("mode: enforce\nregistry: {timeoutSeconds: 5}")
    app = create_app(Service(holder=holder, metrics=metrics, gatherer=FactGatherer(registry, view)))
    body = orjson.dumps(review(objects["pod"]))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pullguard") as client:
            answer = await client.post("/validate", content=body, headers={"content-type": "application/json"})
    finally:
        await registry.close()
    result: dict[str, Any] = answer.json()
    return result


def _package(name: str) -> str | None:
    return name if name.split(".", 1)[0] in OURS else None


def trace() -> tuple[list[Edge], dict[str, Any]]:
    """The module-to-module calls of one review, in the order first taken, and the review's answer."""
    result: dict[str, Any] = {}
    edges = calls(lambda: result.update(asyncio.run(_one_review())))
    return edges, result


def calls(run: Callable[[], object]) -> list[Edge]:
    """The module-to-module calls `run` makes (a `pullguard check`, say), in the order first taken."""
    edges: dict[Edge, None] = {}

    def profile(frame: FrameType, event: str, _: object) -> None:
        if event != "call" or frame.f_back is None:
            return
        callee = _package(frame.f_globals.get("__name__", ""))
        caller = _package(frame.f_back.f_globals.get("__name__", ""))
        if callee and caller and callee != caller:
            edges.setdefault((caller, callee))

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return list(edges)


def against_the_layers(edges: list[Edge]) -> list[Edge]:
    """Calls from an I/O client back into the policy, and calls from the core into the service."""
    upward = []
    for caller, callee in edges:
        back_into_policy = (
            caller.startswith(IO_CLIENTS) and callee.startswith("policies") and not callee.startswith(FACT_TYPES)
        )
        core_into_service = caller.startswith("policies") and callee.startswith("webhook")
        if back_into_policy or core_into_service:
            upward.append((caller, callee))
    return upward


def main() -> int:
    edges, answer = trace()
    print(f"answer: allowed={answer['response']['allowed']}")
    for caller, callee in edges:
        print(f"{caller} -> {callee}")
    upward = against_the_layers(edges)
    print(f"\n{len(edges)} edges, {len(upward)} against the layers")
    for caller, callee in upward:
        print(f"  against: {caller} -> {callee}")
    return 1 if upward else 0


if __name__ == "__main__":
    sys.exit(main())
