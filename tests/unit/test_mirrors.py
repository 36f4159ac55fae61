from __future__ import annotations

import copy

import jsonpatch
import pytest

from policies.config import parse_policy
from policies.lookup import LookupKind
from policies.mirrors import object_meta, rewrites
from policies.model import ClusterFacts, Facts, PatchOperation
from policies.plan import Side, plan
from tests.reviews import manifest
from tests.unit.policy_helpers import workload
from webhook.review.workloads import extract

RULES = """
mirrors:
  - {registry: docker.io, mirror: mirror.example.com, verify: false}
  - {prefix: k8s.gcr.io/pause, mirror: registry.example.com/google_containers/pause, verify: false}
  - {prefix: quay.example.com, mirror: registry.example.com/quay}
"""


def _replaced(patch: tuple[PatchOperation, ...]) -> list[object]:
    return [p["value"] for p in patch if p["op"] == "replace"]


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("nginx", "mirror.example.com/library/nginx"),
        ("nginx:1.25", "mirror.example.com/library/nginx:1.25"),
        ("docker.io/bitnami/redis:7@sha256:" + "b" * 64, "mirror.example.com/bitnami/redis:7@sha256:" + "b" * 64),
        ("index.docker.io/library/busybox:1", "mirror.example.com/library/busybox:1"),
        ("k8s.gcr.io/pause:3.9", "registry.example.com/google_containers/pause:3.9"),
        ("k8s.gcr.io/pause-other:1", None),  # a prefix matches whole path components only
        ("registry.example.com/team/app:1", None),
        ("Not Valid", None),
    ],
)
def test_rewrites(image: str, expected: str | None) -> None:
    assert _replaced(rewrites(workload(image), Facts(), parse_policy(RULES))) == ([expected] if expected else [])


def test_verified_rules_need_the_mirror_to_serve_the_image() -> None:
    policy = parse_policy(RULES)
    target = "registry.example.com/quay/prom/exporter:1"
    w = workload("quay.example.com/prom/exporter:1")
    planned = plan(w, ClusterFacts(), policy, Side.MUTATE)
    assert [(lookup.kind, lookup.reference) for lookup in planned.lookups] == [
        (LookupKind.MIRROR, target),
        (LookupKind.IMAGE, "quay.example.com/prom/exporter:1"),  # privateImages: deny asks the source too
    ]
    assert plan(w, ClusterFacts(), policy, Side.VALIDATE).lookups[0].kind is LookupKind.IMAGE
    assert rewrites(w, Facts(), policy) == ()
    assert rewrites(w, Facts(mirror_serves={target: False}), policy) == ()
    assert rewrites(w, Facts(mirror_serves={target: None}), policy) == ()
    assert _replaced(rewrites(w, Facts(mirror_serves={target: True}), policy)) == [target]


def test_first_matching_rule_wins() -> None:
    policy = parse_policy(
        "mirrors: [{prefix: docker.io/library, mirror: a.example.com, verify: false},"
        " {registry: docker.io, mirror: b.example.com, verify: false}]"
    )
    assert _replaced(rewrites(workload("nginx:1", "bitnami/x:1"), Facts(), policy)) == [
        "a.example.com/nginx:1",
        "b.example.com/bitnami/x:1",
    ]


def test_patch_applies_to_the_real_object() -> None:
    deployment = manifest("deployment.yaml")
    w = extract("Deployment", deployment)
    meta = object_meta(deployment, w)
    patch = list(rewrites(w, Facts(), parse_policy(RULES), meta))
    patched = jsonpatch.apply_patch(copy.deepcopy(deployment), patch)
    containers = patched["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == "mirror.example.com/library/nginx"
    assert containers[1]["image"] == "quay.example.com/prom/nginx-exporter:latest"  # verify: true, unverified
