"""`pullguard check --format sarif`: SARIF 2.1.0 for code-scanning UIs (GitHub, GitLab, IDEs).

Rules describe every check, results point at the `image:` line, paths are relative to the working directory
under `%SRCROOT%` (code scanning resolves them against the checkout), and what was skipped or unreadable goes
into the invocation's notifications so the run accounts for every object there too. A check that could not run
for an image is a result of kind `open` (SARIF's "could not tell whether it passes"), level `none`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from policies import render
from policies.checks import ALL_CHECKS, CheckSpec
from policies.config import Policy
from policies.model import Finding, Mode
from webhook.formats.report import NotChecked, Report, Result, Skipped
from webhook.util.manifests import STDIN
from webhook.version import version

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"

_RULE_INDEX: dict[str, int] = {spec.name: index for index, spec in enumerate(ALL_CHECKS)}


def render_sarif(report: Report) -> str:
    summary = report.summary()
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "pullguard",
                "version": version(),
                "rules": [_rule(spec, report.policy) for spec in ALL_CHECKS],
            }
        },
        "originalUriBaseIds": {SRCROOT: {"uri": Path.cwd().as_uri() + "/"}},
        "invocations": [
            {
                "executionSuccessful": not report.inventory.errors,
                "exitCode": report.exit_code,
                "toolExecutionNotifications": [_notification(s) for s in report.inventory.skipped]
                + [{"level": "note", "message": {"text": note}} for note in summary["notes"]],
            }
        ],
        "results": [_result(r) for r in report.results] + [_open(n) for n in report.not_checked],
        "properties": {"summary": summary},
    }
    sarif = {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
    return orjson.dumps(sarif, option=orjson.OPT_INDENT_2).decode() + "\n"


def _rule(spec: CheckSpec, policy: Policy) -> dict[str, Any]:
    """A check's rule, from its record: what it predicts, from what, how to fix it, and the level its findings
    have under the run's policy (enforce: error; a namespace's own mode shows in each result's level)."""
    level = "error" if policy.check_mode(spec.name) is Mode.ENFORCE else "warning"
    return {
        "id": spec.name,
        "name": spec.name,
        "shortDescription": {"text": spec.rule.short},
        "fullDescription": {"text": spec.rule.full},
        "help": {"text": spec.rule.help},
        "defaultConfiguration": {"level": level},
    }


def _result(result: Result) -> dict[str, Any]:
    finding = result.finding
    workload = result.workload
    return {
        "ruleId": finding.check,
        "ruleIndex": _RULE_INDEX.get(finding.check, 0),
        "level": "error" if result.judged.denies else "note" if result.judged.excepted else "warning",
        "message": {"text": _text(finding)},
        "locations": [_location(result.document.source, result.line, result.column)],
        "properties": {
            "reason": str(finding.reason),
            "mode": str(result.judged.mode),
            "object": f"{workload.kind}/{workload.namespace}/{workload.name}",
            "container": finding.container.name,
            "image": finding.container.image,
            "path": finding.container.display_path,
        },
    }


def _open(item: NotChecked) -> dict[str, Any]:
    unchecked, workload = item.unchecked, item.workload
    return {
        "ruleId": unchecked.check,
        "ruleIndex": _RULE_INDEX[unchecked.check],
        "kind": "open",
        "level": "none",
        "message": {"text": render.not_checked(unchecked)},
        "locations": [_location(item.document.source, item.line, None)],
        "properties": {
            "gap": str(unchecked.gap),
            "object": f"{workload.kind}/{workload.namespace}/{workload.name}",
            "container": unchecked.container.name,
            "image": unchecked.container.image,
            "path": unchecked.container.display_path,
        },
    }


def _notification(skipped: Skipped) -> dict[str, Any]:
    return {
        "level": "error" if skipped.error else "note",
        "message": {"text": skipped.reason},
        "locations": [_location(skipped.file, skipped.line, None)],
    }


def _location(source: str, line: int | None, column: int | None) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": _artifact(source)}
    if line is not None:
        physical["region"] = {"startLine": line} | ({"startColumn": column} if column else {})
    return {"physicalLocation": physical}


def _artifact(source: str) -> dict[str, str]:
    if source == STDIN:
        return {"uri": "stdin"}
    absolute = os.path.abspath(source)
    relative = os.path.relpath(absolute)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):  # outside it: an absolute file URI
        return {"uri": Path(absolute).as_uri()}
    return {"uri": quote(Path(relative).as_posix()), "uriBaseId": SRCROOT}


def _text(finding: Finding) -> str:
    return f"{render.problem(finding)}. Fix: {render.fix(finding)}"
