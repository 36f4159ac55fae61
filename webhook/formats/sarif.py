"""`pullguard check --format sarif`: SARIF 2.1.0 for code-scanning UIs (GitHub, GitLab, IDEs).

Rules describe every check, results point at the `image:` line, paths are relative to the working directory
under `%SRCROOT%` (code scanning resolves them against the checkout), and what was skipped or unreadable goes
into the invocation's notifications so the run accounts for every object there too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from policies import render
from policies.checks import ALL_CHECKS
from policies.model import CheckName
from webhook.formats.report import Report, Result, Skipped
from webhook.util.manifests import STDIN
from webhook.version import version

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"

# check -> (shortDescription, fullDescription, help): what it predicts, from what, and how to fix it
RULES: dict[str, tuple[str, str, str]] = {
    CheckName.REFERENCE: (
        "The image reference is valid",
        "The image string must parse under the reference grammar the kubelet uses (distribution/reference); "
        "an invalid one ends in InvalidImageName and is never pulled.",
        "Fix the image string: a lowercase repository path, a tag of at most 128 characters of [A-Za-z0-9_.-], "
        "a digest written as sha256:<64 hex digits>.",
    ),
    CheckName.LATEST_TAG: (
        "The image tag is pinned",
        "A floating tag (latest, or no tag at all) may resolve to different images on different nodes, and "
        "makes every container restart pull again.",
        "Pin a version tag or a digest (image: nginx:1.27.2 or image: nginx@sha256:...).",
    ),
    CheckName.IMAGE_EXISTS: (
        "The image exists in its registry",
        "The registry must serve the tag or digest when asked the way the node asks (hosts.toml mirrors, "
        "Accept list, the pod's credentials); a missing image ends in ErrImagePull, then ImagePullBackOff.",
        "Check the repository and tag, or push the image; the finding names the closest existing tags.",
    ),
    CheckName.PULL_SECRETS: (
        "The pull secrets exist and match the registry",
        "The pod's imagePullSecrets (or its ServiceAccount's) must exist, be pull secrets, have an entry for "
        "the image's registry under the kubelet's keyring rules, and be accepted by the registry. The kubelet "
        "ignores a secret it cannot use and pulls anonymously.",
        "Create or fix the secret: kubectl create secret docker-registry NAME --docker-server=REGISTRY "
        "--docker-username=USER --docker-password=PASSWORD -n NAMESPACE.",
    ),
    CheckName.ARCHITECTURE: (
        "The image has a build for the nodes' platform",
        "The image must offer a build for the platform of every node the pod may land on (nodeSelector, "
        "required node affinity, Ready nodes); otherwise containerd reports no match for platform, or a "
        "single-platform image fails with exec format error.",
        "Push a multi-platform image index, or constrain the pod to nodes of a platform the image has.",
    ),
    CheckName.NEVER_PULL: (
        "With imagePullPolicy Never, the image is on the nodes",
        "With imagePullPolicy: Never the kubelet runs only images already on the node (Node status.images); "
        "an absent one ends in ErrImageNeverPull.",
        "Import the image into containerd's k8s.io namespace on each node (ctr -n k8s.io images import), or "
        "set imagePullPolicy: IfNotPresent.",
    ),
}
_RULE_INDEX: dict[str, int] = {spec.name: index for index, spec in enumerate(ALL_CHECKS)}


def render_sarif(report: Report) -> str:
    summary = report.summary()
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "pullguard",
                "version": version(),
                "rules": [_rule(spec.name) for spec in ALL_CHECKS],
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
        "results": [_result(r) for r in report.results],
        "properties": {"summary": summary},
    }
    sarif = {"$schema": SCHEMA, "version": "2.1.0", "runs": [run]}
    return orjson.dumps(sarif, option=orjson.OPT_INDENT_2).decode() + "\n"


def _rule(name: str) -> dict[str, Any]:
    short, full, help_text = RULES.get(name, (name, name, name))
    return {
        "id": name,
        "name": name,
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "help": {"text": help_text},
        "defaultConfiguration": {"level": "warning"},
    }


def _result(result: Result) -> dict[str, Any]:
    finding = result.finding
    workload = result.workload
    return {
        "ruleId": finding.check,
        "ruleIndex": _RULE_INDEX.get(finding.check, 0),
        "level": "error" if result.judged.denies else "warning",
        "message": {"text": render.sarif_text(finding)},
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
