"""Mirror rules as tables: which rule applies, what the image becomes, when it is kept and why, and the patch."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonpatch
import pytest

from policies.config import PolicyError, parse_policy
from policies.decide import mutate
from policies.mirrors import (
    INVALID,
    MIRROR_DENIED,
    MIRROR_DIFFERS,
    MIRROR_MISSING,
    MIRROR_UNKNOWN,
    OPTED_OUT,
    PRIVATE_SOURCE,
    REWRITTEN,
    ObjectMeta,
    object_meta,
    plan,
)
from policies.model import Facts
from policies.registry_facts import ImageFacts, LookupStatus
from tests.unit.policy_helpers import workload
from webhook.formats.warnings import warning_lines
from webhook.review.workloads import extract

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
RULES = parse_policy(
    """
mirrors:
  - {prefix: k8s.gcr.io, mirror: registry.example.com/google_containers, verify: false}
  - {registry: docker.io, mirror: mirror.example.com, verify: false}
  - {registry: "registry.example.com:5000", mirror: "mirror.example.com:8443/r5000", verify: false}
  - {prefix: index.docker.io/bitnami, mirror: unused.example.com, verify: false}
  - {registry: ghcr.io, mirror: mirror.example.com/ghcr, verify: false, namespaces: [team-a]}
  - {registry: ghcr.io, mirror: other.example.com/ghcr, verify: false}
"""
)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        # docker.io: short names, library, index.docker.io; an implicit tag stays implicit
        ("nginx", "mirror.example.com/library/nginx"),
        ("nginx:1.27", "mirror.example.com/library/nginx:1.27"),
        ("library/nginx:1.27", "mirror.example.com/library/nginx:1.27"),
        ("docker.io/library/nginx:1.27", "mirror.example.com/library/nginx:1.27"),
        ("index.docker.io/library/busybox:1", "mirror.example.com/library/busybox:1"),
        ("bitnami/redis", "mirror.example.com/bitnami/redis"),
        # digests, and tag+digest preserved exactly
        (f"nginx@{DIGEST}", f"mirror.example.com/library/nginx@{DIGEST}"),
        (f"nginx:1.27@{DIGEST}", f"mirror.example.com/library/nginx:1.27@{DIGEST}"),
        # prefixes match whole components; the first matching rule wins
        ("k8s.gcr.io/pause:3.9", "registry.example.com/google_containers/pause:3.9"),
        ("k8s.gcr.io.evil.com/pause:3.9", None),
        ("k8s.gcr.io/pause", "registry.example.com/google_containers/pause"),
        # ports are part of the host
        ("registry.example.com:5000/team/app:1", "mirror.example.com:8443/r5000/team/app:1"),
        ("registry.example.com/team/app:1", None),
        ("registry.example.com:5001/team/app:1", None),
        # per-rule namespaces: team-a's rule does not apply in default; the next ghcr.io rule does
        ("ghcr.io/org/tool:2", "other.example.com/ghcr/org/tool:2"),
        # already on a mirror: never rewritten again
        ("mirror.example.com/library/nginx:1.27", None),
        ("registry.example.com/google_containers/pause:3.9", None),
        ("quay.io/prometheus/node-exporter:v1", None),
        ("Not Valid", None),
    ],
)
def test_rewrite_table(image: str, expected: str | None) -> None:
    outcomes = plan(workload(image), Facts(), RULES)
    assert [o.target for o in outcomes if o.rewritten] == ([expected] if expected else [])


def test_a_rule_with_namespaces_applies_only_there() -> None:
    assert [o.target for o in plan(workload("ghcr.io/org/tool:2", namespace="team-a"), Facts(), RULES)] == [
        "mirror.example.com/ghcr/org/tool:2"
    ]


def test_a_docker_hub_prefix_written_as_index_docker_io_matches_normalized_names() -> None:
    policy = parse_policy("mirrors: [{prefix: index.docker.io/bitnami, mirror: m.example.com/b, verify: false}]")
    assert [o.target for o in plan(workload("bitnami/redis:7"), Facts(), policy)] == ["m.example.com/b/redis:7"]


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        ("{registry: docker.io/library, mirror: m.example.com}", "use 'prefix'"),
        ("{prefix: 'k8s.gcr.io/', mirror: m.example.com}", "without scheme or slash"),
        ("{registry: docker.io, mirror: m.example.com, privateImages: maybe}", "mirrors.0.privateImages"),
        ("{registry: docker.io, mirror: m.example.com, namespaces: team-a}", "mirrors.0.namespaces"),
    ],
)
def test_rule_schema_errors(rule: str, error: str) -> None:
    with pytest.raises(PolicyError, match=error):
        parse_policy(f"mirrors: [{rule}]")


# --- idempotent ---------------------------------------------------------------------------------------------


def _apply(document: dict[str, Any], patch: tuple[Any, ...]) -> dict[str, Any]:
    operations = list(patch)
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(document), operations)
    return result


def _deployment(*images: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "web", "namespace": "default"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata,
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]},
            }
        },
    }


def _mutate(document: dict[str, Any], policy: Any = RULES, facts: Facts | None = None) -> Any:
    w = extract(document["kind"], document)
    return mutate(w, facts or Facts(), policy, object_meta(document, w))


def test_reinvocation_and_pods_from_a_rewritten_template_are_left_alone() -> None:
    document = _deployment("nginx:1.27", "k8s.gcr.io/pause:3.9")
    first = _mutate(document)
    assert [p["op"] for p in first.patch] == ["test", "replace", "test", "replace", "add"]
    rewritten = _apply(document, first.patch)
    assert [c["image"] for c in rewritten["spec"]["template"]["spec"]["containers"]] == [
        "mirror.example.com/library/nginx:1.27",
        "registry.example.com/google_containers/pause:3.9",
    ]
    assert json.loads(rewritten["metadata"]["annotations"]["pullguard.io/original-images"]) == {
        "spec.template.spec.containers[0]": "nginx:1.27",
        "spec.template.spec.containers[1]": "k8s.gcr.io/pause:3.9",
    }
    again = _mutate(rewritten)  # reinvocation: the object as the first pass left it
    assert again.patch == () and again.findings == () and again.mirror_outcomes == ()
    pod = {
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "default"},
        "spec": rewritten["spec"]["template"]["spec"],
    }
    assert _mutate(pod).patch == ()  # pods created from the rewritten Deployment


def test_a_prefix_mirror_under_its_own_source_is_not_stacked() -> None:
    policy = parse_policy(
        "mirrors: [{prefix: registry.example.com, mirror: registry.example.com/cache, verify: false}]"
    )
    first = _mutate(_deployment("registry.example.com/app:1"), policy)
    rewritten = _apply(_deployment("registry.example.com/app:1"), first.patch)
    assert rewritten["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/cache/app:1"
    assert _mutate(rewritten, policy).patch == ()


def test_the_patch_tests_before_it_replaces() -> None:
    document = _deployment("nginx:1.27")
    patch = _mutate(document).patch
    changed = copy.deepcopy(document)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"  # another mutation in between
    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        _apply(changed, patch)


def test_the_annotation_merges_with_one_already_there() -> None:
    recorded = json.dumps({"spec.template.spec.containers[1]": "redis:7"})
    document = _deployment(
        "nginx:1.27", "mirror.example.com/library/redis:7", annotations={"pullguard.io/original-images": recorded}
    )
    patch = _mutate(document).patch
    assert patch[-1]["path"] == "/metadata/annotations/pullguard.io~1original-images"
    rewritten = _apply(document, patch)
    assert json.loads(rewritten["metadata"]["annotations"]["pullguard.io/original-images"]) == {
        "spec.template.spec.containers[0]": "nginx:1.27",
        "spec.template.spec.containers[1]": "redis:7",
    }


def test_a_garbled_annotation_is_replaced() -> None:
    document = _deployment("nginx", annotations={"pullguard.io/original-images": "[not json", "team": "a"})
    rewritten = _apply(document, _mutate(document).patch)
    assert rewritten["metadata"]["annotations"]["team"] == "a"
    assert json.loads(rewritten["metadata"]["annotations"]["pullguard.io/original-images"]) == {
        "spec.template.spec.containers[0]": "nginx"
    }


# --- opt-out ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["object", "template"])
def test_the_rewrite_false_annotation_opts_out(where: str) -> None:
    document = _deployment("nginx:1.27")
    target = document["metadata"] if where == "object" else document["spec"]["template"]["metadata"]
    target["annotations"] = {"pullguard.io/rewrite": "false"}
    decision = _mutate(document)
    assert decision.patch == () and decision.findings == ()  # deliberate: counted and logged, no warning
    assert [o.outcome for o in decision.mirror_outcomes] == [OPTED_OUT]


def test_a_pod_opts_out_with_its_own_annotation() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p", "annotations": {"pullguard.io/rewrite": "false"}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }
    assert _mutate(pod).patch == ()
    pod["metadata"]["annotations"] = {"pullguard.io/rewrite": "true"}
    assert _mutate(pod).patch != ()


def test_object_meta_of_a_cronjob_reads_the_job_templates_pod_template() -> None:
    cronjob = {
        "kind": "CronJob",
        "metadata": {"name": "c"},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "metadata": {"annotations": {"pullguard.io/rewrite": "false"}},
                        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                    }
                }
            },
        },
    }
    w = extract("CronJob", cronjob)
    assert object_meta(cronjob, w).opted_out


# --- verified rewrites: kept, with the reason -------------------------------------------------------------------

VERIFIED = parse_policy("mirrors: [{registry: docker.io, mirror: m.example}]")
TARGET = "m.example/library/nginx:1.27"
SOURCE = "docker.io/library/nginx:1.27"


def _facts(mirror: ImageFacts | None = None, source: ImageFacts | None = None) -> Facts:
    images = {}
    serves: dict[str, bool | None] = {}
    if mirror is not None:
        images[TARGET] = mirror
        exists = mirror.status is LookupStatus.EXISTS
        serves[TARGET] = True if exists else False if mirror.status.definite else None
    if source is not None:
        images[SOURCE] = source
    return Facts(images=images, mirror_serves=serves)


def _at(
    status: LookupStatus, *, digest: str | None = DIGEST, sent: bool = False, where: str = "m.example"
) -> ImageFacts:
    return ImageFacts(where, status, where, digest=digest, credentials_sent=sent, detail="boom" if status else "")


@pytest.mark.parametrize(
    ("mirror", "source", "outcome", "line"),
    [
        (_at(LookupStatus.EXISTS), None, REWRITTEN, None),
        (_at(LookupStatus.EXISTS), _at(LookupStatus.EXISTS, where="docker.io"), REWRITTEN, None),
        # upstream down, rate limited or blocked, mirror has it: that is the point of a mirror
        (_at(LookupStatus.EXISTS), _at(LookupStatus.RATE_LIMITED, digest=None, where="docker.io"), REWRITTEN, None),
        (_at(LookupStatus.EXISTS), _at(LookupStatus.REFUSED, digest=None, where="docker.io"), REWRITTEN, None),
        (_at(LookupStatus.EXISTS), _at(LookupStatus.BLOCKED, digest=None, where="docker.io"), REWRITTEN, None),
        (
            _at(LookupStatus.NOT_FOUND, digest=None),
            None,
            MIRROR_MISSING,
            "pullguard: kept docker.io/library/nginx:1.27: mirror m.example has no such manifest",
        ),
        (
            _at(LookupStatus.UNAUTHORIZED, digest=None),
            None,
            MIRROR_DENIED,
            "pullguard: kept docker.io/library/nginx:1.27: mirror m.example needs credentials the pod has no pull",
        ),
        (
            _at(LookupStatus.DENIED, digest=None, sent=True),
            None,
            MIRROR_DENIED,
            "pullguard: kept docker.io/library/nginx:1.27: mirror m.example refused the pod's pull secret",
        ),
        (
            _at(LookupStatus.TIMEOUT, digest=None),
            None,
            MIRROR_UNKNOWN,
            "pullguard: kept docker.io/library/nginx:1.27: could not verify mirror m.example (timeout: boom)",
        ),
        (None, None, MIRROR_UNKNOWN, "pullguard: kept docker.io/library/nginx:1.27: mirror m.example was not asked"),
        (
            _at(LookupStatus.EXISTS),
            _at(LookupStatus.EXISTS, digest=OTHER, where="docker.io"),
            MIRROR_DIFFERS,
            "pullguard: kept docker.io/library/nginx:1.27: mirror m.example has another image for this tag",
        ),
        (
            _at(LookupStatus.EXISTS),
            _at(LookupStatus.UNAUTHORIZED, digest=None, where="docker.io"),
            PRIVATE_SOURCE,
            "pullguard: kept docker.io/library/nginx:1.27: the source docker.io needs credentials the pod lacks",
        ),
        (
            _at(LookupStatus.EXISTS),
            _at(LookupStatus.DENIED, digest=None, sent=True, where="docker.io"),
            PRIVATE_SOURCE,
            "pullguard: kept docker.io/library/nginx:1.27: the source docker.io refused the pod's pull secret",
        ),
    ],
)
def test_verified_outcomes(
    mirror: ImageFacts | None, source: ImageFacts | None, outcome: str, line: str | None
) -> None:
    decision = mutate(workload("nginx:1.27"), _facts(mirror, source), VERIFIED, ObjectMeta())
    assert [o.outcome for o in decision.mirror_outcomes] == [outcome]
    assert decision.allowed
    if line is None:
        assert decision.findings == ()
        assert [p["value"] for p in decision.patch if p["op"] == "replace"] == [TARGET]
    else:
        assert decision.patch == ()
        (warning,) = warning_lines(decision.warnings)
        assert warning.startswith(line), warning
        assert not any(j.denies for j in decision.findings)


def test_private_images_allow_rewrites_what_the_pod_cannot_pull_at_the_source() -> None:
    policy = parse_policy("mirrors: [{registry: docker.io, mirror: m.example, privateImages: allow}]")
    facts = _facts(_at(LookupStatus.EXISTS), _at(LookupStatus.UNAUTHORIZED, digest=None, where="docker.io"))
    assert [o.outcome for o in plan(workload("nginx:1.27"), facts, policy)] == [REWRITTEN]


def test_a_digest_pinned_image_is_looked_up_by_its_digest() -> None:
    w = workload(f"nginx:1.27@{DIGEST}")
    target = f"m.example/library/nginx:1.27@{DIGEST}"
    facts = Facts(
        images={target: ImageFacts(target, LookupStatus.DIGEST_MISMATCH, "m.example")},
        mirror_serves={target: False},
    )
    (outcome,) = plan(w, facts, VERIFIED)
    assert outcome.target == target and not outcome.rewritten and "would fail the pull" in outcome.detail


def test_a_name_too_long_on_the_mirror_is_kept_with_a_warning() -> None:
    policy = parse_policy(f"mirrors: [{{registry: docker.io, mirror: m.example/{'x' * 250}, verify: false}}]")
    decision = mutate(workload("nginx:1.27"), Facts(), policy, ObjectMeta())
    assert [o.outcome for o in decision.mirror_outcomes] == [INVALID] and decision.patch == ()
    assert "would not be a valid reference" in warning_lines(decision.warnings)[0]
