"""What `pullguard check` found and what it did: findings at the line of their `image:`, every object accounted
for, and the table and JSON renderings of both (SARIF: webhook/formats/sarif.py). The text of a finding is
policies/render.py's, as in every other output."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from policies import render
from policies.config import DEFAULT_POLICY, Policy
from policies.model import Finding, Gap, JudgedFinding, Unchecked, Workload
from webhook.util.manifests import SUFFIXES, Document, Manifests

EXIT_CLEAN, EXIT_ENFORCED, EXIT_INPUT = 0, 1, 2
MAX_COLUMN = 40  # of the table's columns but the last: longer cells wrap
FAIL_ON_LEVELS = ("enforce", "warn", "unverified")  # each fails on what the one before does, and more
UNVERIFIABLE_HINT = "check with --kubeconfig, or put the Secrets in the input and pass --complete-input"
# What a CI run can do about each gap (policies.render.GAPS says what it is).
GAP_HINTS = {
    Gap.NO_LOOKUP: "run without --offline to look the images up",
    Gap.NO_CLUSTER: "use --kubeconfig, or put the Nodes, Secrets and ServiceAccounts in the input",
    Gap.NO_NODES: "use --kubeconfig, or put the Nodes in the input (kubectl get nodes -o yaml)",
}


@dataclass(frozen=True, slots=True)
class Skipped:
    file: str
    line: int | None
    kind: str | None
    namespace: str | None
    name: str | None
    reason: str
    error: bool = False  # unreadable input: the run ends with exit status 2


@dataclass(slots=True)
class Inventory:
    workloads: list[tuple[Document, Workload]] = field(default_factory=list)
    cluster_objects: list[dict[str, Any]] = field(default_factory=list)  # Secrets, ServiceAccounts, Nodes used
    skipped: list[Skipped] = field(default_factory=list)

    @property
    def errors(self) -> list[Skipped]:
        return [s for s in self.skipped if s.error]


@dataclass(frozen=True, slots=True)
class Result:
    document: Document
    workload: Workload
    judged: JudgedFinding
    line: int  # of the `image:` field (or its closest parent written in the file)
    column: int

    @property
    def finding(self) -> Finding:
        return self.judged.finding


@dataclass(frozen=True, slots=True)
class NotChecked:
    """A check that could not run for one image, at the line of its `image:`."""

    document: Document
    workload: Workload
    unchecked: Unchecked
    line: int


@dataclass(slots=True)
class Report:
    paths: list[str]
    manifests: Manifests
    inventory: Inventory
    results: list[Result]
    cluster_source: str  # kubeconfig | input | none
    unverifiable: Counter[tuple[str, str]] = field(default_factory=Counter)  # (namespace, secret): references
    fail_on: str = "enforce"  # enforce: enforced findings fail the run; warn: every non-advisory finding does;
    # unverified: that, and every check that could not run and every pull secret not verifiable
    not_checked: list[NotChecked] = field(default_factory=list)
    policy: Policy = DEFAULT_POLICY  # the run's: SARIF's rule levels

    @property
    def images(self) -> int:
        return sum(len(workload.images) for _, workload in self.inventory.workloads)

    @property
    def enforced(self) -> int:
        return sum(r.judged.denies for r in self.results)

    @property
    def failing(self) -> int:
        """What fails the run at the `fail_on` level (advisory findings never do)."""
        if self.fail_on == "enforce":
            return self.enforced
        failing = sum(r.judged.denies or not (r.finding.advisory or r.judged.excepted) for r in self.results)
        if self.fail_on == "unverified":
            failing += len(self.not_checked) + self.unverifiable.total()
        return failing

    @property
    def exit_code(self) -> int:
        """Unreadable input outranks a failing finding: what was not read may hide worse."""
        if self.inventory.errors:
            return EXIT_INPUT
        return EXIT_ENFORCED if self.failing else EXIT_CLEAN

    @property
    def nothing_to_check(self) -> str | None:
        if self.inventory.workloads or self.inventory.errors:
            return None  # errors say why on their own, and exit 2
        where = ", ".join("stdin" if p == "-" else p for p in self.paths)
        if not self.manifests.documents:
            return f"nothing to check: no Kubernetes objects in {where}"
        skipped = _count(len(self.inventory.skipped), "object")
        return f"nothing to check: no workload to check in {where} ({skipped} skipped)"

    def notes(self) -> list[str]:
        notes = [self.nothing_to_check] if self.nothing_to_check else []
        if self.manifests.excluded:
            notes.append(f"{_count(self.manifests.excluded, 'file')} in the directories given excluded by --exclude")
        if self.manifests.ignored:
            suffixes = ", ".join(SUFFIXES)
            ignored = _count(self.manifests.ignored, "file")
            notes.append(f"{ignored} in the directories given not read (the names do not end in {suffixes})")
        if self.unverifiable:
            shown = ", ".join(f"{name} in {namespace}" for namespace, name in list(self.unverifiable)[:3])
            more = f" and {len(self.unverifiable) - 3} more" if len(self.unverifiable) > 3 else ""
            references, secrets = (
                _count(self.unverifiable.total(), "reference"),
                _count(len(self.unverifiable), "secret"),
            )
            notes.append(
                f"pull secrets not verifiable: {references} to {secrets} not in the input ({shown}{more}); "
                f"{UNVERIFIABLE_HINT}"
            )
        return notes + self._gap_notes()

    def _gap_notes(self) -> list[str]:
        """One line per reason a check could not run, counting the images it could not run for."""
        by_gap: dict[Gap, Counter[str]] = {}
        for item in self.not_checked:
            by_gap.setdefault(item.unchecked.gap, Counter())[item.unchecked.check] += 1
        return [
            f"not checked, {render.GAPS[gap]}: "
            + ", ".join(f"{check} ({_count(n, 'image')})" for check, n in checks.items())
            + f"; {GAP_HINTS[gap]}"
            for gap, checks in by_gap.items()
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "files": len(self.manifests.files),
            "objects": len(self.manifests.documents),
            "workloads": len(self.inventory.workloads),
            "images": self.images,
            "clusterView": len(self.inventory.cluster_objects),
            "clusterSource": self.cluster_source,
            "skipped": len(self.inventory.skipped) - len(self.inventory.errors),
            "errors": len(self.inventory.errors),
            "findings": len(self.results),
            "notChecked": len(self.not_checked),
            "enforced": self.enforced,
            "failOn": self.fail_on,
            "failing": self.failing,
            "unverifiablePullSecrets": self.unverifiable.total(),
            "ignoredFiles": self.manifests.ignored,
            "excludedFiles": self.manifests.excluded,
            "exitCode": self.exit_code,
            "notes": self.notes(),
        }


def _record(result: Result) -> dict[str, Any]:
    finding = result.finding
    return {
        "check": finding.check,
        "mode": str(result.judged.mode),
        "kind": result.workload.kind,
        "namespace": result.workload.namespace,
        "name": result.workload.name,
        "container": finding.container.name,
        "image": finding.container.image,
        "reason": str(finding.reason),
        "message": render.problem(finding),
        "hint": render.fix(finding),
        "denies": result.judged.denies,
        "excepted": result.judged.excepted,
        "unknown": finding.unknown,
        "advisory": finding.advisory,
        "path": finding.container.display_path,
        "file": result.document.source,
        "line": result.line,
        "column": result.column,
    }


def _not_checked_record(item: NotChecked) -> dict[str, Any]:
    unchecked = item.unchecked
    return {
        "check": unchecked.check,
        "gap": str(unchecked.gap),
        "why": render.GAPS[unchecked.gap],
        "kind": item.workload.kind,
        "namespace": item.workload.namespace,
        "name": item.workload.name,
        "container": unchecked.container.name,
        "image": unchecked.container.image,
        "path": unchecked.container.display_path,
        "file": item.document.source,
        "line": item.line,
    }


def skipped_record(skipped: Skipped) -> dict[str, Any]:
    return {
        "file": skipped.file,
        "line": skipped.line,
        "kind": skipped.kind,
        "namespace": skipped.namespace,
        "name": skipped.name,
        "reason": skipped.reason,
        "error": skipped.error,
    }


def render_json(report: Report) -> str:
    body = {
        "findings": [_record(r) for r in report.results],
        "notChecked": [_not_checked_record(n) for n in report.not_checked],
        "skipped": [skipped_record(s) for s in report.inventory.skipped],
        "summary": report.summary(),
    }
    return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n"


def render_table(report: Report) -> str:
    rows = [
        (
            "DENY" if r.judged.denies else "excepted" if r.judged.excepted else str(r.judged.mode),
            r.finding.check,
            str(r.finding.reason),
            f"{r.document.source}:{r.line}",
            _object(r.workload.kind, r.workload.namespace, r.workload.name),
            r.finding.container.name,
            r.finding.container.image,
            _table_cell(r.finding),
        )
        for r in report.results
    ]
    header = ("MODE", "CHECK", "REASON", "FILE:LINE", "OBJECT", "CONTAINER", "IMAGE", "PROBLEM")
    lines = [*_columns([header, *rows], wrapped=(4, 5, 6)), ""] if rows else []
    summary = report.summary()
    counts = f"{_count(summary['findings'], 'finding')}, {summary['enforced']} enforced"
    if report.fail_on != "enforce":
        counts += f", {summary['failing']} failing (--fail-on {report.fail_on})"
    if not report.results:
        counts = "no findings"
    if report.not_checked:  # never a bare "no findings" when something was not looked at
        counts += f"; {_count(len(report.not_checked), 'check')} could not run (see below)"
    lines.append(counts)
    checked = ", ".join(
        _count(summary[key], noun)
        for key, noun in (("objects", "object"), ("workloads", "workload"), ("images", "image"))
    )
    lines.append(f"checked {_count(summary['files'], 'file')}: {checked}")
    if report.cluster_source == "kubeconfig":
        lines.append("cluster view: the live cluster (--kubeconfig)")
    elif report.inventory.cluster_objects:
        used = _count(summary["clusterView"], "object")
        lines.append(f"cluster view: {used} from the input (Secrets, ServiceAccounts, Nodes)")
    benign = [s for s in report.inventory.skipped if not s.error]
    if benign:
        lines.append(f"skipped {_count(len(benign), 'object')}:")
        lines += _columns([_skipped_row(s) for s in benign], indent="  ", wrapped=(1,))
    if report.inventory.errors:
        lines.append(f"unreadable ({len(report.inventory.errors)}, exit status 2):")
        lines += _columns([_skipped_row(s) for s in report.inventory.errors], indent="  ", wrapped=(1,))
    lines += report.notes()
    return "\n".join(lines) + "\n"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _object(kind: str | None, namespace: str | None, name: str | None) -> str:
    return "/".join(part for part in (kind, namespace, name) if part)


def _skipped_row(skipped: Skipped) -> tuple[str, ...]:
    where = f"{skipped.file}:{skipped.line}" if skipped.line is not None else skipped.file
    return where, _object(skipped.kind, skipped.namespace, skipped.name) or "-", skipped.reason


def _columns(rows: list[tuple[str, ...]], indent: str = "", wrapped: tuple[int, ...] = ()) -> list[str]:
    """Left-aligned columns; those in `wrapped` are at most MAX_COLUMN wide and a longer cell wraps onto the lines
    below (one digest would otherwise widen every row; FILE:LINE never wraps: it is what one copies). The last
    column is not padded (it is the long free text)."""
    if not rows:
        return []
    longest = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    widths = [min(MAX_COLUMN, n) if i in wrapped else n for i, n in enumerate(longest)]
    lines = []
    for row in rows:
        pieces = [_wrap(cell, width) for cell, width in zip(row, widths, strict=False)]
        for k in range(max(len(p) for p in pieces)):
            cells = "  ".join((p[k] if k < len(p) else "").ljust(w) for p, w in zip(pieces, widths, strict=True))
            lines.append(f"{indent}{cells}  {row[-1] if k == 0 else ''}".rstrip())
    return lines


def _wrap(cell: str, width: int) -> list[str]:
    """`cell` in pieces of at most `width`, broken after a `/`, `:` or `@` when one is in the second half."""
    pieces = []
    while len(cell) > width:
        cut = max(cell.rfind(separator, width // 2, width) for separator in "/:@") + 1 or width
        pieces.append(cell[:cut])
        cell = cell[cut:]
    return [*pieces, cell]


def _table_cell(finding: Finding) -> str:
    """The `check` table's PROBLEM column: the container and image have columns of their own."""
    return f"{render.problem(finding, container=False)}; fix: {render.fix(finding)}"
