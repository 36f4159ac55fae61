"""`pullguard explain` without a cluster: which containers fail (webhook/explain/pods.py) and the verdict
(webhook/explain/verdict.py) from real checks (policies.decide) on hand-made facts."""

from __future__ import annotations

from typing import Any

from policies.config import DEFAULT_POLICY
from policies.decide import decide
from policies.image.platforms import Platform
from policies.model import ClusterFacts, Facts, Workload
from policies.registry_facts import ImageFacts, LookupStatus
from tests.unit.cluster_helpers import node
from webhook.explain.pods import FailingContainer, failing_containers
from webhook.explain.verdict import DIFFERS, judge
from webhook.review.workloads import extract

IMAGE = "registry.example.test/shop/web:2.1"
REF = "registry.example.test/shop/web:2.1"


def pod(state: dict[str, Any], *, last: dict[str, Any] | None = None, pull_policy: str | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": IMAGE}
    if pull_policy:
        container["imagePullPolicy"] = pull_policy
    status: dict[str, Any] = {"name": "app", "image": IMAGE, "state": state}
    if last:
        status["lastState"] = last
    return {
        "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
        "spec": {"nodeName": "n1", "containers": [container]},
        "status": {"phase": "Pending", "containerStatuses": [status]},
    }


def event(message: str, *, reason: str = "Failed", uid: str = "u1", field_path: str | None = None) -> dict[str, Any]:
    involved = {"kind": "Pod", "namespace": "shop", "name": "web", "uid": uid}
    if field_path:
        involved["fieldPath"] = field_path
    return {"involvedObject": involved, "reason": reason, "message": message, "lastTimestamp": "2026-11-26T10:00:00Z"}


def only(found: list[FailingContainer]) -> FailingContainer:
    (failing,) = found
    return failing


def test_which_containers_fail() -> None:
    crash = pod({"waiting": {"reason": "CrashLoopBackOff"}}, last={"terminated": {"message": "panic: boom"}})
    assert failing_containers(crash, []) == []  # a crash loop is not a pull failure
    exec_format = pod(
        {"waiting": {"reason": "CrashLoopBackOff"}}, last={"terminated": {"message": "exec /w: exec format error"}}
    )
    assert only(failing_containers(exec_format, [])).error.klass == "execFormatError"
    assert failing_containers(pod({"running": {}}), []) == []


def test_the_newest_event_that_names_a_cause_wins_and_other_pods_events_are_ignored() -> None:
    backoff = pod({"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{IMAGE}"'}})
    events = [
        event(f'Back-off pulling image "{IMAGE}"', reason="BackOff"),
        event(f'Failed to pull image "{IMAGE}": {REF}: not found'),  # no fieldPath: matched by the image
        event(f'Failed to pull image "{IMAGE}": 401 Unauthorized', uid="another-pod-of-that-name"),
    ]
    failing = only(failing_containers(backoff, events))
    assert failing.error.klass == "notFound" and failing.event is not None and "not found" in failing.event
    alone = only(failing_containers(backoff, events[:1]))
    assert alone.error.klass == "unknown" and alone.event == events[0]["message"]


def _judge(p: dict[str, Any], events: list[dict[str, Any]], facts: Facts, *, offline: bool = False) -> Any:
    workload: Workload = extract("Pod", p)
    decision = decide(workload, facts, DEFAULT_POLICY)
    failing = only(failing_containers(p, events))
    return judge(failing, decision, facts.image(workload.images[0]), offline=offline, node="n1")


def test_never_pull_missing_on_the_pods_node_is_confirmed() -> None:
    p = pod({"waiting": {"reason": "ErrImageNeverPull"}}, pull_policy="Never")
    events = [event(f'Container image "{IMAGE}" is not present with pull policy of Never', reason="ErrImageNeverPull")]
    cluster = ClusterFacts(known=True, nodes=(node("n1"), node("n2", images=(REF,))))
    verdict = _judge(p, events, Facts(cluster=cluster))
    assert verdict.verdict == "confirmed" and "is not on node n1, where the pod is bound" in verdict.cause, verdict
    elsewhere = ClusterFacts(known=True, nodes=(node("n1", images=(REF,)), node("n2")))
    assert _judge(p, events, Facts(cluster=elsewhere)).verdict == "unverified"  # missing on n2, the pod is on n1


def test_a_registry_pullguard_cannot_reach_is_unverified_and_one_that_answers_means_the_node_differs() -> None:
    p = pod({"waiting": {"reason": "ErrImagePull"}})
    events = [event(f'Failed to pull image "{IMAGE}": failed to resolve reference "{REF}": {REF}: not found')]
    timeout = ImageFacts(REF, LookupStatus.TIMEOUT, "registry.example.test", detail="no answer in 3s")
    verdict = _judge(p, events, Facts(images={REF: timeout}))
    assert verdict.verdict == "unverified" and "could not verify" in verdict.cause, verdict
    exists = ImageFacts(REF, LookupStatus.EXISTS, "registry.example.test", endpoint="https://registry.example.test/v2")
    differs = _judge(p, events, Facts(images={REF: exists}))
    assert differs.verdict == "notReproduced" and differs.cause == DIFFERS
    assert any("answered" in e or "exists" in e for e in differs.evidence)
    offline = _judge(p, events, Facts(images={REF: exists}), offline=True)
    assert offline.verdict == "notChecked" and offline.findings == ()


def test_exec_format_error_is_confirmed_by_the_architecture_check() -> None:
    p = pod({"waiting": {"reason": "CrashLoopBackOff"}}, last={"terminated": {"message": "exec /w: exec format error"}})
    amd64 = Platform("linux", "amd64")
    single = ImageFacts(
        REF,
        LookupStatus.EXISTS,
        "registry.example.test",
        media_type="application/vnd.oci.image.manifest.v1+json",
        platforms=(amd64,),
    )
    arm_nodes = ClusterFacts(known=True, nodes=(node("n1", "arm64"),))
    verdict = _judge(p, [], Facts(images={REF: single}, cluster=arm_nodes))
    assert verdict.verdict == "confirmed" and verdict.findings[0].check == "architecture", verdict
    amd_nodes = ClusterFacts(known=True, nodes=(node("n1", "amd64"),))
    assert _judge(p, [], Facts(images={REF: single}, cluster=amd_nodes)).verdict == "notReproduced"
