"""`pullguard check`: the webhook's verdicts for manifests on disk, for CI pipelines."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from policies.config import DEFAULT_POLICY, Policy, PolicyError, parse_policy
from policies.model import JudgedFinding, Workload
from webhook.cluster_wiring import connect, wait_synced
from webhook.facts import FactGatherer
from webhook.kube.view import ClusterView, StaticClusterView
from webhook.manifests import Document, ManifestError, read
from webhook.pipeline import judge
from webhook.registry.client import RegistryClient
from webhook.workloads import MalformedObjectError, extract, is_workload

EXIT_CLEAN, EXIT_ENFORCED, EXIT_INPUT = 0, 1, 2
CLUSTER_SYNC_SECONDS = 30


@dataclass(frozen=True, slots=True)
class Result:
    document: Document
    workload: Workload
    judged: JudgedFinding


def run_check(paths: list[str], config: Path | None, offline: bool, output: str, kubeconfig: Path | None = None) -> int:
    try:
        policy = _policy(config)
        documents = list(read(paths))
        workloads = [(doc, _workload(doc)) for doc in documents if is_workload(str(doc.body.get("kind", "")))]
    except (PolicyError, ManifestError) as exc:
        print(f"pullguard check: {exc}", file=sys.stderr)
        return EXIT_INPUT
    connection = None
    if kubeconfig is not None:
        try:
            connection = connect(str(kubeconfig))
        except Exception as exc:
            print(f"pullguard check: cannot use {kubeconfig}: {exc}", file=sys.stderr)
            return EXIT_INPUT
        if not wait_synced(connection, CLUSTER_SYNC_SECONDS):
            connection.stop()
            print(f"pullguard check: the cluster did not answer within {CLUSTER_SYNC_SECONDS}s", file=sys.stderr)
            return EXIT_INPUT
    view = connection.view if connection is not None else _file_view(documents)
    try:
        results = asyncio.run(_judge_all(workloads, policy, offline, view))
    finally:
        if connection is not None:
            connection.stop()
    sys.stdout.write(_FORMATS[output](results))
    return EXIT_ENFORCED if any(r.judged.denies for r in results) else EXIT_CLEAN


def _policy(config: Path | None) -> Policy:
    if config is None:
        return DEFAULT_POLICY
    try:
        return parse_policy(config.read_text(encoding="utf-8"), str(config))
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{config}: cannot read: {exc}") from None


def _workload(doc: Document) -> Workload:
    try:
        return extract(str(doc.body["kind"]), doc.body)
    except MalformedObjectError as exc:
        raise ManifestError(f"{doc.source}:{doc.line}: {doc.body['kind']}: {exc}") from None


def _file_view(documents: list[Document]) -> StaticClusterView | None:
    """Secrets, ServiceAccounts and Nodes in the input form the cluster view; with none, there is no view and
    the cluster checks stay silent rather than call every referenced secret missing."""
    objects = [d.body for d in documents if d.body.get("kind") in StaticClusterView.CLUSTER_KINDS]
    return StaticClusterView(objects) if objects else None


async def _judge_all(
    workloads: list[tuple[Document, Workload]], policy: Policy, offline: bool, view: ClusterView | None
) -> list[Result]:
    registry = None if offline else RegistryClient()
    gatherer = FactGatherer(registry, view)
    try:
        decisions = await asyncio.gather(*(judge(w, policy, gatherer, "validate") for _, w in workloads))
    finally:
        if registry is not None:
            await registry.close()
    return [Result(doc, w, j) for (doc, w), d in zip(workloads, decisions, strict=True) for j in d.findings]


def _record(result: Result) -> dict[str, Any]:
    finding = result.judged.finding
    return {
        "check": finding.check,
        "mode": str(result.judged.mode),
        "kind": result.workload.kind,
        "namespace": result.workload.namespace,
        "name": result.workload.name,
        "container": finding.container.name,
        "image": finding.container.image,
        "reason": str(finding.reason),
        "message": finding.message,
        "hint": finding.hint,
        "denies": result.judged.denies,
        "path": finding.container.display_path,
        "file": result.document.source,
        "line": result.document.line,
    }


def _json(results: list[Result]) -> str:
    return orjson.dumps({"findings": [_record(r) for r in results]}, option=orjson.OPT_INDENT_2).decode() + "\n"


def _table(results: list[Result]) -> str:
    if not results:
        return "no findings\n"
    rows = [("MODE", "CHECK", "REASON", "OBJECT", "CONTAINER", "IMAGE", "PROBLEM")]
    for r in results:
        f = r.judged.finding
        obj = f"{r.workload.kind}/{r.workload.namespace}/{r.workload.name}"
        mode = "DENY" if r.judged.denies else str(r.judged.mode)
        rows.append(
            (mode, f.check, str(f.reason), obj, f.container.name, f.container.image, f"{f.message}; fix: {f.hint}")
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows]
    denied = sum(r.judged.denies for r in results)
    lines.append(f"\n{len(results)} findings, {denied} enforced")
    return "\n".join(lines) + "\n"


def _sarif(results: list[Result]) -> str:
    rules = sorted({r.judged.finding.check for r in results})
    sarif = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "pullguard", "rules": [{"id": rule} for rule in rules]}},
                "results": [
                    {
                        "ruleId": r.judged.finding.check,
                        "level": "error" if r.judged.denies else "warning",
                        "message": {"text": f"{r.judged.finding.message}; fix: {r.judged.finding.hint}"},
                        "properties": {
                            "reason": str(r.judged.finding.reason),
                            "path": r.judged.finding.container.display_path,
                        },
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": r.document.source},
                                    "region": {"startLine": r.document.line},
                                }
                            }
                        ],
                    }
                    for r in results
                ],
            }
        ],
    }
    return orjson.dumps(sarif, option=orjson.OPT_INDENT_2).decode() + "\n"


_FORMATS = {"json": _json, "table": _table, "sarif": _sarif}
