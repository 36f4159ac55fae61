"""One wording of a finding in every output: the webhook's warning and denial, `check`'s table, JSON and SARIF, the
audit's PolicyReport and `explain`. Each says the same problem and the same fix (policies/render.py); the outputs
differ only in how they join the two."""

from __future__ import annotations

import json

from policies import render
from policies.checks import pull_secrets
from policies.mirrors import MIRROR_MISSING, REWRITTEN, MirrorOutcome
from policies.model import Decision, Finding, JudgedFinding, Mode, Reason, Workload
from tests.unit.policy_helpers import image
from webhook.explain.pods import failing_containers
from webhook.explain.render import ContainerReport, ExplainReport, PodReport, render_text
from webhook.explain.render import render_json as explain_json
from webhook.explain.verdict import judge
from webhook.formats import warnings
from webhook.formats.policyreport import AuditedWorkload, results
from webhook.formats.report import Inventory, Report, Result, render_json, render_table
from webhook.formats.sarif import render_sarif
from webhook.util.manifests import Document, Manifests

IMAGE = "registry.example.test/shop/web:2.1"
CONTAINER = image(IMAGE, "app")
# A line break and a tab, as a registry's error text may bring: every output shows them as one line.
FINDING = Finding(
    pull_secrets.NAME,
    CONTAINER,
    Reason.ERR_IMAGE_PULL,
    f"{CONTAINER.label}: registry registry.example.test denied\nan anonymous pull (insufficient scope)",
    "check the repository name;\tif it is private, add an imagePullSecret for registry.example.test",
)
PROBLEM = (
    'container "app" image "registry.example.test/shop/web:2.1": '
    "registry registry.example.test denied an anonymous pull (insufficient scope)"
)
BARE_PROBLEM = "registry registry.example.test denied an anonymous pull (insufficient scope)"  # columns say the rest
FIX = "check the repository name; if it is private, add an imagePullSecret for registry.example.test"


def test_the_parts_are_one_printable_line_each() -> None:
    assert render.problem(FINDING) == PROBLEM
    assert render.problem(FINDING, container=False) == BARE_PROBLEM
    assert render.fix(FINDING) == FIX


def test_the_webhook_warns_and_denies_with_the_same_problem_and_fix() -> None:
    assert warnings.warning_lines([FINDING]) == [f"pullguard: {PROBLEM}: {FIX}"]
    denial = warnings.denial_message("Deployment", "shop", "web", [FINDING])
    assert denial.splitlines()[1:] == [f"- [ErrImagePull] {PROBLEM} (fix: {FIX})"]


def test_check_table_json_and_sarif_say_the_same_problem_and_fix() -> None:
    report = _report(FINDING)
    row = render_table(report).splitlines()[1]
    assert row.endswith(f"  {BARE_PROBLEM}; fix: {FIX}")
    (record,) = json.loads(render_json(report))["findings"]
    assert (record["message"], record["hint"]) == (PROBLEM, FIX)
    (result,) = json.loads(render_sarif(report))["runs"][0]["results"]
    assert result["message"]["text"] == f"{PROBLEM}. Fix: {FIX}"


def test_the_audit_report_says_the_same_problem_and_fix() -> None:
    audited = AuditedWorkload("Deployment", "shop", "web", "u1", 1, (JudgedFinding(FINDING, Mode.WARN, False),))
    (result,) = results(audited, seconds=0)
    assert result["message"] == f"{PROBLEM}: {FIX}" == render.sentence(FINDING)
    assert result["properties"]["fix"] == FIX


def test_explain_gives_the_same_problem_as_cause_and_the_same_fix() -> None:
    pod = {
        "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
        "spec": {"nodeName": "n1", "containers": [{"name": "app", "image": IMAGE}]},
        "status": {
            "phase": "Pending",
            "containerStatuses": [{"name": "app", "image": IMAGE, "state": {"waiting": {"reason": "ErrImagePull"}}}],
        },
    }
    (failing,) = failing_containers(pod, [])
    decision = Decision(allowed=True, findings=(JudgedFinding(FINDING, Mode.WARN, False),))
    verdict = judge(failing, decision, None, offline=False, node="n1")
    assert (verdict.verdict, verdict.cause, verdict.fix) == ("confirmed", PROBLEM, FIX)
    report = ExplainReport(
        "pod/web", "shop", [PodReport("shop", "web", None, "n1", "Pending", (ContainerReport(failing, verdict),))]
    )
    text = render_text(report)
    assert f"  cause:    confirmed by pullguard: {PROBLEM}\n" in text and f"  fix:      {FIX}\n" in text
    (container,) = json.loads(explain_json(report))["pods"][0]["containers"]
    assert [(f["message"], f["hint"]) for f in container["findings"]] == [(PROBLEM, FIX)]


def test_a_mirror_outcome_is_one_line() -> None:
    source = image("nginx:1.27")
    rewritten = MirrorOutcome(source, "mirror.example.test", "mirror.example.test/library/nginx:1.27", REWRITTEN)
    assert render.mirror_outcome_text(rewritten) == "rewrite nginx:1.27 -> mirror.example.test/library/nginx:1.27"
    missing = "mirror mirror.example.test has no such manifest"
    kept = MirrorOutcome(
        source, "mirror.example.test", "mirror.example.test/library/nginx:1.27", MIRROR_MISSING, missing
    )
    assert render.mirror_outcome_text(kept) == (
        "kept nginx:1.27 (mirrorMissing): mirror mirror.example.test has no such manifest"
    )


def _report(finding: Finding) -> Report:
    document = Document("deploy.yaml", 1, {"kind": "Deployment"})
    workload = Workload("Deployment", "shop", "web", (finding.container,))
    judged = JudgedFinding(finding, Mode.ENFORCE, denies=True)
    manifests = Manifests(files=["deploy.yaml"], documents=[document])
    inventory = Inventory(workloads=[(document, workload)])
    return Report(["deploy.yaml"], manifests, inventory, [Result(document, workload, judged, 16, 16)], "none")
