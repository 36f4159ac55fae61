"""`pullguard explain` output: a few lines per failing container (text), or one JSON document.

JSON: `{"target", "namespace", "pods": [{"namespace", "name", "owner", "node", "phase", "containers": [{"kind",
"container", "image", "reason", "message", "event", "class", "summary", "detail", "sandboxImage", "verdict",
"cause", "evidence", "fix", "findings": [{"check", "reason", "message", "hint", "unknown", "advisory"}]}]}],
"notes", "summary": {"failingPods", "failingContainers", "verdicts": {verdict: count}, "exitCode"}}`.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from policies import render
from webhook.explain.pods import SANDBOX, FailingContainer
from webhook.explain.verdict import Verdict
from webhook.limits import clip

EXIT_NOTHING_FAILING = 0
EXIT_FAILING = 1
EXIT_ERROR = 2

_VERDICT_PREFIX = {
    "confirmed": "confirmed by pullguard: ",
    "notReproduced": "",
    "unverified": "not confirmed: ",
    "notChecked": "",
    "node": "on the node: ",
}


@dataclass(frozen=True, slots=True)
class ContainerReport:
    failing: FailingContainer
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class PodReport:
    namespace: str
    name: str
    owner: str | None
    node: str | None
    phase: str
    containers: tuple[ContainerReport, ...]


@dataclass
class ExplainReport:
    target: str
    namespace: str | None
    pods: list[PodReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    nothing: str = ""  # why nothing is reported ("pod/web is not failing"), when nothing is

    @property
    def exit_code(self) -> int:
        return EXIT_FAILING if self.pods else EXIT_NOTHING_FAILING

    def verdicts(self) -> Counter[str]:
        return Counter(c.verdict.verdict for pod in self.pods for c in pod.containers)


_MAX_VALUE_CHARS = 2000  # of each value a line prints: a pod's messages and events may be a megabyte


def _one_line(text: str) -> str:
    return clip(" ".join(text.split()), _MAX_VALUE_CHARS)


def _what(failing: FailingContainer) -> str:
    if failing.kind == SANDBOX:
        return f'pod sandbox image "{failing.image}"'
    noun = {"initContainers": "init container", "ephemeralContainers": "ephemeral container"}.get(
        failing.kind, "container"
    )
    return f'{noun} "{failing.name}" image "{failing.image}"'


def render_text(report: ExplainReport) -> str:
    lines: list[str] = []
    for pod in report.pods:
        context = ", ".join(x for x in (pod.owner, f"node {pod.node}" if pod.node else "") if x)
        header = f"pod {pod.namespace}/{pod.name}" + (f" ({context})" if context else "")
        for report_line in pod.containers:
            failing, verdict = report_line.failing, report_line.verdict
            lines.append(f"{header}: {_what(failing)}")
            said = f"{failing.reason}: {failing.message}" if failing.message else failing.reason
            lines.append(f"  kubelet:  {_one_line(said)}")
            if failing.event:
                lines.append(f"  event:    {_one_line(failing.event)}")
            lines.append(f"  class:    {failing.error.klass}: {failing.error.summary}")
            lines.append(f"  cause:    {_VERDICT_PREFIX[verdict.verdict]}{_one_line(verdict.cause)}")
            for index, evidence in enumerate(verdict.evidence):
                lines.append(f"  {'evidence:' if index == 0 else '         '} {_one_line(evidence)}")
            lines.append(f"  fix:      {_one_line(verdict.fix)}")
            lines.append("")
    lines.extend(f"note: {note}" for note in report.notes)
    if report.pods:
        containers = sum(len(p.containers) for p in report.pods)
        counts = ", ".join(f"{n} {v}" for v, n in sorted(report.verdicts().items()))
        lines.append(
            f"{len(report.pods)} failing pod{'s' if len(report.pods) != 1 else ''}, "
            f"{containers} failing container{'s' if containers != 1 else ''} ({counts})"
        )
    else:
        lines.append(f"nothing failing: {report.nothing}")
    return "\n".join(lines) + "\n"


def _container_json(report: ContainerReport) -> dict[str, Any]:
    failing, verdict, error = report.failing, report.verdict, report.failing.error
    return {
        "kind": failing.kind,
        "container": failing.name,
        "image": failing.image,
        "reason": failing.reason,
        "message": failing.message,
        "event": failing.event,
        "class": str(error.klass),
        "summary": error.summary,
        "detail": error.detail,
        "sandboxImage": error.sandbox_image,
        "verdict": verdict.verdict,
        "cause": verdict.cause,
        "evidence": list(verdict.evidence),
        "fix": verdict.fix,
        "findings": [
            {
                "check": f.check,
                "reason": str(f.reason),
                "message": render.problem(f),
                "hint": render.fix(f),
                "unknown": f.unknown,
                "advisory": f.advisory,
            }
            for f in verdict.findings
        ],
    }


def render_json(report: ExplainReport) -> str:
    document = {
        "target": report.target,
        "namespace": report.namespace,
        "pods": [
            {
                "namespace": pod.namespace,
                "name": pod.name,
                "owner": pod.owner,
                "node": pod.node,
                "phase": pod.phase,
                "containers": [_container_json(c) for c in pod.containers],
            }
            for pod in report.pods
        ],
        "notes": report.notes,
        "nothing": report.nothing or None,
        "summary": {
            "failingPods": len(report.pods),
            "failingContainers": sum(len(p.containers) for p in report.pods),
            "verdicts": dict(sorted(report.verdicts().items())),
            "exitCode": report.exit_code,
        },
    }
    return json.dumps(document, indent=2) + "\n"
