"""Enforce cannot be bypassed by size, through a real API server (issue 20, item 1): the API server escapes `&` as
`\\u0026` (6 bytes) serializing the review, and an UPDATE carries object and oldObject. A pod with an invalid image
and a 600,000-byte env value of `&`, created and then updated, must be denied, not answered with an HTTP error the
webhook configuration's `failurePolicy: Ignore` turns into an admission."""

from __future__ import annotations

import json

import pytest

from tests.e2e.cluster import Cluster
from tests.e2e.webhook_harness import pullguard_webhook

pytestmark = pytest.mark.timeout(240)

AMPERSANDS = "&" * 600_000
JSON = {"content-type": "application/json"}
STRATEGIC = {"content-type": "application/strategic-merge-patch+json"}


def pod(namespace: str, image: str) -> str:
    container = {"name": "app", "image": image, "env": [{"name": "PAD", "value": AMPERSANDS}]}
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "padded", "namespace": namespace},
            "spec": {"containers": [container]},
        }
    )


def test_a_padded_invalid_image_is_denied_on_create_and_update(cluster: Cluster, namespace: str) -> None:
    """Sent as JSON with a literal `&` (600 KB; kubectl would escape it and hit the API server's 3 MiB limit
    itself), the object is 3.6 MB in the review the API server writes, and twice that on UPDATE."""
    pods = f"/api/v1/namespaces/{namespace}/pods"
    invalid = "registry.example.com/UPPER/app:1"
    with pullguard_webhook(cluster, failure_policy="Ignore") as hook, cluster.http_client(timeout=60) as client:
        created = client.post(pods, content=pod(namespace, "nginx:1.27"), headers=JSON)
        assert created.status_code == 201, created.text[:500]
        patch = json.dumps({"spec": {"containers": [{"name": "app", "image": invalid}]}})
        updated = client.patch(f"{pods}/padded", content=patch, headers=STRATEGIC)
        assert updated.status_code == 403, updated.text[:500]
        assert "denied the request" in updated.text and "must be lowercase" in updated.text, updated.text[:500]
        assert client.get(f"{pods}/padded").json()["spec"]["containers"][0]["image"] == "nginx:1.27"
        refused = client.post(pods, content=pod(namespace, invalid).replace('"padded"', '"padded-new"'), headers=JSON)
        assert refused.status_code == 403 and "must be lowercase" in refused.text, refused.text[:500]
        judged = [(r.get("endpoint"), r.get("decision")) for r in hook.reviews() if r.get("namespace") == namespace]
        assert judged.count(("validate", "denied")) == 2, judged  # read and judged, both times
