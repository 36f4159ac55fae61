"""The one place a finding (or a mirror rule's outcome) becomes text, for every output that shows one.

A finding is said in two parts, each one printable line: the `problem` (what the kubelet would hit, starting with
the container and image) and the `fix`. The outputs differ only in how they join the parts:

| output | text |
| --- | --- |
| API server warning (`kubectl` prints `Warning:`), review log | `pullguard: {problem}: {fix}`, capped |
| PolicyReport `message` (audit) | `{problem}: {fix}` |
| denial (`kubectl` prints the error) | a line `- [{reason}] {problem} (fix: {fix})` per problem |
| `check` table, PROBLEM column | `{problem without its container and image}; fix: {fix}` |
| `check` JSON, `explain` JSON | `message`: problem, `hint`: fix |
| `check` SARIF `message.text` | `{problem}. Fix: {fix}` |
| `explain` text | `cause:` problem, `fix:` fix |

These are the words; the formats that join them live with the outputs (webhook/formats/: warnings and denials,
the check's table and JSON, SARIF, PolicyReports).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from policies.model import Finding, Gap, Unchecked

if TYPE_CHECKING:  # the type only, so that policies/mirrors.py can word its findings here without a cycle
    from policies.mirrors import MirrorOutcome


def one_line(text: str) -> str:
    """The text as one printable line: control characters and line breaks become single spaces."""
    if text.isprintable():  # the common case, and isprintable() is false for newlines and tabs
        return text
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def node_names(names: Sequence[str], shown: int = 3) -> str:
    """ "node a" or "nodes a, b, c and 4 more": how findings name nodes."""
    listed = ", ".join(names[:shown])
    if len(names) == 1:
        return f"node {listed}"
    return f"nodes {listed}" + (f" and {len(names) - shown} more" if len(names) > shown else "")


def problem(finding: Finding, *, container: bool = True) -> str:
    """What is wrong. `container=False` drops the container and image it starts with, for outputs that show
    those in columns of their own."""
    message = finding.message
    label = finding.container.label
    if not container and message.startswith(label):
        message = message[len(label) :].lstrip(": ")
    return one_line(message)


def fix(finding: Finding) -> str:
    return one_line(finding.hint)


def sentence(finding: Finding) -> str:
    """Problem and fix in one line: the text of a warning (without its prefix) and of a PolicyReport result."""
    return f"{problem(finding)}: {fix(finding)}"


GAPS = {
    Gap.NO_LOOKUP: "no registry lookup (offline)",
    Gap.NO_CLUSTER: "no cluster view (no Nodes, Secrets or ServiceAccounts)",
    Gap.NO_NODES: "no Node in the view it may run on",
}


def not_checked(unchecked: Unchecked) -> str:
    """One check that could not run for one image: `imageExists not checked for app (nginx:1.27): ...`."""
    return f"{unchecked.check} not checked for {one_line(unchecked.container.label)}: {GAPS[unchecked.gap]}"


def mirror_outcome_text(outcome: MirrorOutcome) -> str:
    """What a mirror rule did to one image: `rewrite IMAGE -> TARGET`, or `kept IMAGE (OUTCOME): DETAIL`."""
    image = one_line(outcome.container.image)
    if outcome.rewritten:
        return f"rewrite {image} -> {one_line(outcome.target)}"
    return f"kept {image} ({outcome.outcome}): {one_line(outcome.detail)}"
