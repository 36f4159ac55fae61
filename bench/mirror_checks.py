"""The mirror target of the create benchmark (bench/creates.py): its image, and the checks that every one of its
pods really was rewritten, so the figures cannot silently measure something else."""

from __future__ import annotations

import json
import statistics
import uuid
from pathlib import Path
from typing import Any

from bench.processes import Cluster
from bench.run import HOST, MIRROR
from tests.support.registry import RegistryServer

MIRROR_TARGET = "pullguard-mirror"
IMAGE = "localhost/bench/app:1.0"  # node-local: no registry lookup
# pushed by push_bench_images (single-arch); the mirror rule moves it to MIRROR_IMAGE
SOURCE_IMAGE = f"{HOST}/shop/sidecar:1.4.2"
MIRROR_IMAGE = f"{MIRROR}/shop/sidecar:1.4.2"
ORIGINAL_IMAGES = "pullguard.io/original-images"


def pod(name: str, image: str = IMAGE) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }


def check_rewrite(cluster: Cluster, target: str) -> None:
    """A dry-run create in the target's namespace must come back rewritten to the mirror, with the original in
    the annotation and no warning (pullguard's validating webhook judged the mirror image and found it)."""
    with cluster.http_client() as client:
        response = client.post(
            f"/api/v1/namespaces/bench-{target}/pods?dryRun=All",
            json=pod(f"check-{uuid.uuid4().hex[:8]}", SOURCE_IMAGE),
        )
    if response.status_code != 201:
        raise RuntimeError(f"mirror check: HTTP {response.status_code}: {response.text[:500]}")
    stored = response.json()
    image = stored["spec"]["containers"][0]["image"]
    original = json.loads(stored["metadata"].get("annotations", {}).get(ORIGINAL_IMAGES, "{}"))
    warning = response.headers.get("warning", "")
    if image != MIRROR_IMAGE or SOURCE_IMAGE not in original.values() or warning:
        raise RuntimeError(
            f"{target} did not rewrite {SOURCE_IMAGE} to {MIRROR_IMAGE}: image {image}, {ORIGINAL_IMAGES} "
            f"{original}, warning {warning!r}"
        )


def bench_reviews(log: Path, namespace: str) -> list[dict[str, Any]]:
    """pullguard's review log lines (JSON) of the bench pods (named `p-...`) of `namespace`."""
    found: list[dict[str, Any]] = []
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(entry, dict)
            and entry.get("msg") == "review"
            and entry.get("namespace") == namespace
            and str(entry.get("name", "")).startswith("p-")
        ):
            found.append(entry)
    return found


def review_ms(log: Path, namespace: str) -> dict[str, float]:
    """Median `durationMs` (pullguard's own handling, body read to answer built) per endpoint, bench pods of
    `namespace`, warm-up included."""
    durations: dict[str, list[float]] = {}
    for entry in bench_reviews(log, namespace):
        durations.setdefault(str(entry.get("endpoint")), []).append(float(entry.get("durationMs", 0)))
    return {endpoint: statistics.median(values) for endpoint, values in sorted(durations.items())}


def check_rewritten_all(cluster: Cluster, log: Path, expected: int) -> dict[str, int]:
    """After the run: every bench pod (name `p-...`) in the mirror namespace was patched by the mutating webhook
    and allowed, without findings, by the validating webhook (pullguard's review log), at least `expected` of each;
    every stored pod names the mirror image. Returns the counts."""
    namespace = f"bench-{MIRROR_TARGET}"
    counts = {"mutate": 0, "patched": 0, "validate": 0, "validate-clean": 0}
    for entry in bench_reviews(log, namespace):
        endpoint = entry.get("endpoint")
        if endpoint == "mutate":
            counts["mutate"] += 1
            patched = entry.get("patched") or []
            if any(p.get("from") == SOURCE_IMAGE and p.get("to") == MIRROR_IMAGE for p in patched):
                counts["patched"] += 1
        elif endpoint == "validate":
            counts["validate"] += 1
            counts["validate-clean"] += not entry.get("findings")
    with cluster.http_client() as client:
        listed = client.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"]
    counts["stored"] = len(listed)
    counts["stored-on-mirror"] = sum(p["spec"]["containers"][0]["image"] == MIRROR_IMAGE for p in listed)
    if not (
        counts["patched"] == counts["mutate"] >= expected
        and counts["validate-clean"] == counts["validate"] >= expected
        and counts["stored-on-mirror"] == counts["stored"] > 0
    ):
        raise RuntimeError(f"not every pod of {namespace} was rewritten to the mirror and allowed: {counts}")
    return counts


def registry_requests(registry: RegistryServer | None) -> int:
    """Requests the bench registry has logged so far (its access log)."""
    if registry is None:
        return 0
    return sum(" /v2/" in line for line in registry.log_file.read_text(errors="replace").splitlines())
