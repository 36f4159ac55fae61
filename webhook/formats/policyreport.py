"""PolicyReports (`wgpolicyk8s.io/v1alpha2`, the format Kyverno, Kubewarden and Trivy write) from audit findings.

One report per namespace, named `pullguard-audit`, labelled `app.kubernetes.io/managed-by: pullguard`, with one
result per finding: `policy` is the check, `rule` the failure the kubelet would show, `result` `fail` (the check
enforces and the finding is definite), `warn` (warn mode, or advisory) or `error` (could not verify), and the
workload in `resources`; and one `skip` result per check that could not run for an image (`rule` says why, e.g. no
Node in the view). `summary.pass` counts the images every enabled check ran on without a finding.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from policies import render
from policies.model import ContainerImage, JudgedFinding, Mode, Unchecked
from webhook.limits import clip

GROUP, VERSION, PLURAL = "wgpolicyk8s.io", "v1alpha2", "policyreports"
REPORT_NAME = "pullguard-audit"
MANAGED_BY = {"app.kubernetes.io/managed-by": "pullguard"}
SOURCE = "pullguard"
# A report must always fit (a namespace's findings once made it too big: HTTP 500 every round, no report ever).
MAX_TEXT_CHARS = 512  # of each message, image, container path and fix
MAX_RESULTS = 500
MAX_REPORT_BYTES = 1024 * 1024
OMITTED_ANNOTATION = "pullguard.io/omitted-results"
_SEVERITY = {"fail": "high", "error": "medium", "warn": "low", "skip": "info"}
_API_VERSIONS = {
    "Pod": "v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
}


@dataclass(frozen=True, slots=True)
class AuditedWorkload:
    kind: str
    namespace: str
    name: str
    uid: str
    images: int  # how many images were checked
    findings: tuple[JudgedFinding, ...]
    unchecked: tuple[Unchecked, ...] = ()  # checks that could not run: `skip`, never counted as a pass


def result_of(judged: JudgedFinding) -> str:
    finding = judged.finding
    if judged.excepted:
        return "skip"  # an operator's exception in force (the message quotes it), as Kyverno reports one
    if finding.unknown:
        return "error"
    if judged.mode is Mode.ENFORCE and not finding.advisory:
        return "fail"
    return "warn"


def results(workload: AuditedWorkload, seconds: int) -> list[dict[str, Any]]:
    resource = {
        "apiVersion": _API_VERSIONS.get(workload.kind, "v1"),
        "kind": workload.kind,
        "namespace": workload.namespace,
        "name": workload.name,
        "uid": workload.uid,
    }
    found = []
    for judged in workload.findings:
        finding, outcome = judged.finding, result_of(judged)
        message = render.sentence(finding)
        result = _result(finding.check, str(finding.reason), outcome, message, resource=resource, seconds=seconds)
        result["properties"] = _properties(finding.container, fix=render.fix(finding))
        found.append(result)
    for unchecked in workload.unchecked:  # scored false: a check that did not run neither passes nor fails
        message = render.not_checked(unchecked)
        result = _result(unchecked.check, str(unchecked.gap), "skip", message, resource=resource, seconds=seconds)
        result["properties"] = _properties(unchecked.container)
        found.append(result)
    return found


def _result(
    policy: str, rule: str, outcome: str, message: str, *, resource: dict[str, str], seconds: int
) -> dict[str, Any]:
    return {
        "source": SOURCE,
        "policy": policy,
        "rule": rule,
        "category": "image pull",
        "severity": _SEVERITY[outcome],
        "result": outcome,
        "scored": outcome != "skip",
        "message": clip(message, MAX_TEXT_CHARS),
        "timestamp": {"seconds": seconds, "nanos": 0},
        "resources": [resource],
    }


def _properties(container: ContainerImage, fix: str | None = None) -> dict[str, str]:
    properties = {
        "container": clip(container.display_path, MAX_TEXT_CHARS),
        "image": clip(container.image, MAX_TEXT_CHARS),
    }
    if fix is not None:
        properties["fix"] = clip(fix, MAX_TEXT_CHARS)
    return properties


def _key(result: Mapping[str, Any]) -> tuple[str, ...]:
    resource = (result.get("resources") or [{}])[0]
    properties = result.get("properties") or {}
    return (
        str(resource.get("kind")),
        str(resource.get("name")),
        str(properties.get("container")),
        str(result.get("policy")),
        str(result.get("message")),
    )


def report(namespace: str, workloads: Iterable[AuditedWorkload], seconds: int) -> dict[str, Any]:
    """The namespace's report: every finding of `workloads` (all in `namespace`), sorted, deduplicated."""
    unique: dict[tuple[str, ...], dict[str, Any]] = {}
    checked = 0
    clean = 0
    for workload in workloads:
        checked += workload.images
        flagged = {j.finding.container.pointer for j in workload.findings}
        flagged |= {u.container.pointer for u in workload.unchecked}
        clean += max(workload.images - len(flagged), 0)
        for result in results(workload, seconds):
            unique.setdefault(_key(result), result)
    ordered = [unique[k] for k in sorted(unique)]
    counts = Counter(r["result"] for r in ordered)  # the summary counts every result, listed or not
    listed, omitted = _fitting(ordered)
    metadata: dict[str, Any] = {"name": REPORT_NAME, "namespace": namespace, "labels": dict(MANAGED_BY)}
    if omitted:
        metadata["annotations"] = {OMITTED_ANNOTATION: str(omitted)}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PolicyReport",
        "metadata": metadata,
        "summary": {
            "pass": clean,
            "fail": counts["fail"],
            "warn": counts["warn"],
            "error": counts["error"],
            "skip": counts["skip"],
        },
        "results": listed,
    }


def _fitting(ordered: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The results a report can hold: at most MAX_RESULTS, and MAX_REPORT_BYTES in all (etcd refuses an object
    over 1.5 MiB, and the API server 3 MiB); the rest is counted, and the report says how many it left out."""
    listed: list[dict[str, Any]] = []
    size = 0
    for result in ordered:
        size += len(orjson.dumps(result))
        if len(listed) >= MAX_RESULTS or size > MAX_REPORT_BYTES:
            break
        listed.append(result)
    return listed, len(ordered) - len(listed)


def same_results(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Equal but for timestamps: an unchanged report is not rewritten every round."""

    def strip(document: Mapping[str, Any]) -> Any:
        return (
            document.get("summary"),
            [{k: v for k, v in r.items() if k != "timestamp"} for r in document.get("results") or []],
        )

    return bool(strip(old) == strip(new))
