"""Put what the kubelet saw next to what pullguard finds for the same container from here, and say the cause.

Verdicts:

- `confirmed`: a pullguard check finds a definite problem with this container (a missing tag, a pull secret that
  does not exist, an architecture the nodes lack, ...), or pullguard's own registry lookup ends the way the node's
  pull did (the same DNS failure, the same refused port). The cause and fix are the check's.
- `notReproduced`: the registry serves the image from here and no check objects: the node's network, DNS or
  hosts.toml differ from pullguard's, and the fix is the node-side one for the class the runtime reported.
- `unverified`: pullguard could not establish the outcome from here (no answer, a node-local registry, ...).
- `notChecked`: `--offline`: only the cluster's own evidence, classified.
- `node`: a failure of the node itself (no space left on device): nothing to ask a registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from policies import render
from policies.config import CHECK_RECORDS
from policies.image.platforms import format as format_platform
from policies.model import CheckName, ContainerKind, Decision, Finding, Reason
from policies.registry_facts import ImageFacts, LookupStatus
from webhook.explain.pods import SANDBOX, FailingContainer
from webhook.explain.pull_errors import REPRODUCED_BY, PullErrorClass

DIFFERS = "the registry answers fine from here: the node's network/DNS/hosts.toml differs"
# Checks worth fixing whose findings are never why a pull failed (a floating tag), as their records say.
_IRRELEVANT_CHECKS = frozenset(name for name, spec in CHECK_RECORDS.items() if not spec.explains_pull_failures)
_PLATFORM_CLASSES = frozenset({PullErrorClass.NO_MATCHING_PLATFORM, PullErrorClass.EXEC_FORMAT})
_AUTHORIZATION_CLASSES = frozenset({PullErrorClass.UNAUTHORIZED, PullErrorClass.DENIED})


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str
    cause: str
    fix: str
    evidence: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = field(default=())


def findings_for(decision: Decision | None, failing: FailingContainer) -> tuple[Finding, ...]:
    if decision is None:
        return ()
    kind = ContainerKind.CONTAINER.value if failing.kind == SANDBOX else failing.kind
    return tuple(
        j.finding
        for j in decision.findings
        if j.finding.container.kind.value == kind
        and j.finding.container.name == failing.name
        and j.finding.check not in _IRRELEVANT_CHECKS
    )


def facts_evidence(facts: ImageFacts | None) -> list[str]:
    if facts is None or facts.status is LookupStatus.NOT_CHECKED:
        return []
    where = f" at {facts.endpoint}" if facts.endpoint else ""
    detail = f" ({facts.detail})" if facts.detail else ""
    lines = [f"pullguard asked registry {facts.registry}{where}: {facts.status}{detail}"]
    if facts.credential_sources:
        lines.append("credentials presented: " + ", ".join(facts.credential_sources))
    elif facts.status is not LookupStatus.EXISTS:
        lines.append("no pull secret entry or node credential matched the image: asked anonymously")
    if facts.similar_tags:
        lines.append("existing tags closest to it: " + ", ".join(facts.similar_tags))
    if facts.platforms:
        lines.append("platforms it serves: " + ", ".join(format_platform(p) for p in facts.platforms))
    return lines


def judge(
    failing: FailingContainer,
    decision: Decision | None,
    facts: ImageFacts | None,
    *,
    offline: bool,
    node: str | None,
) -> Verdict:
    error = failing.error
    fix = error.fix(node=node, image=failing.image)
    findings = findings_for(decision, failing)
    evidence = facts_evidence(facts)
    evidence += [f"{f.check}: {render.problem(f)}" for f in findings[1:]]
    if error.klass is PullErrorClass.NO_SPACE:
        where = f" (node {node})" if node else ""
        return Verdict("node", f"{error.summary}{where}", fix, tuple(evidence), findings)
    if offline:
        return Verdict("notChecked", f"{error.summary} (--offline: not checked from here)", fix, (), ())
    definite = [f for f in findings if not f.unknown and not f.advisory]
    if error.klass is PullErrorClass.NEVER_PULL and node:  # "missing on node X" is advisory, but X is this pod's
        definite += [f for f in findings if f.check == CheckName.NEVER_PULL and f.advisory and node in f.nodes]
    if error.klass in _AUTHORIZATION_CLASSES:  # a skipped secret is only advisory at admission (the image may not
        # need it), but a node refused for lack of credentials names it as the cause
        definite += [f for f in findings if f.reason is Reason.SECRET_IGNORED and f.advisory]
    if definite:
        first = definite[0]
        return Verdict("confirmed", render.problem(first), render.fix(first), tuple(evidence), findings)
    if facts is not None and facts.status in REPRODUCED_BY.get(error.klass, frozenset()):
        same = next((f for f in findings if f.check == CheckName.IMAGE_EXISTS), None)
        cause = (
            render.problem(same) if same is not None else f"registry {facts.registry}: {facts.status} ({facts.detail})"
        )
        return Verdict("confirmed", f"pullguard sees the same from here: {cause}", fix, tuple(evidence), findings)
    unknown = [f for f in findings if f.unknown or f.advisory]
    if facts is not None and facts.status is LookupStatus.EXISTS:
        if error.klass in _PLATFORM_CLASSES:
            cause = (
                "the image has a build for the platforms of the cluster's Ready nodes from here: "
                f"the node{' ' + node if node else ''} differs from its labels, or the image changed since"
            )
            return Verdict("notReproduced", cause, fix, tuple(evidence), findings)
        if error.registry_side or error.klass is PullErrorClass.UNKNOWN:
            return Verdict("notReproduced", DIFFERS, fix, tuple(evidence), findings)
    if unknown:
        cause = f"{error.summary}; pullguard could not verify it from here: {render.problem(unknown[0])}"
        return Verdict("unverified", cause, fix, tuple(evidence), findings)
    return Verdict(
        "unverified", f"{error.summary} (pullguard found nothing to confirm it)", fix, tuple(evidence), findings
    )
