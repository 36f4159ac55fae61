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

The API server keeps warnings short: it asks for <=120 characters where possible, may truncate past 256,
and drops what exceeds 4 KiB in total, so every finding gets one printable line and the list is capped with
a line saying how many were left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from policies.model import Finding

if TYPE_CHECKING:  # the type only, so that policies/mirrors.py can word its findings here without a cycle
    from policies.mirrors import MirrorOutcome

PREFIX = "pullguard: "
MAX_WARNING = 256
MAX_WARNINGS_TOTAL = 4096 - 256  # leave room for other webhooks' warnings and the overflow line


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


def finding_line(finding: Finding) -> str:
    """The warning the API server relays for one finding (also the finding's line in the review log)."""
    line = PREFIX + sentence(finding)
    return line if len(line) <= MAX_WARNING else line[: MAX_WARNING - 3] + "..."


def warning_lines(findings: Iterable[Finding]) -> list[str]:
    """One line per finding, deduplicated in order, under the API server's total budget."""
    lines: list[str] = []
    total = 0
    unique = list(dict.fromkeys(map(finding_line, findings)))  # dict keeps first-seen order
    for index, line in enumerate(unique):
        if total + len(line) > MAX_WARNINGS_TOTAL:
            lines.append(f"{PREFIX}{len(unique) - index} more findings not shown: run `pullguard check` for all")
            break
        lines.append(line)
        total += len(line)
    return lines


def denial_item(finding: Finding) -> str:
    return f"- [{finding.reason}] {problem(finding)} (fix: {fix(finding)})"


def denial_message(kind: str, namespace: str, name: str, denials: Sequence[Finding]) -> str:
    """Readable in `kubectl` output: one line per problem (shared problems once), each with its fix."""
    problems = list(dict.fromkeys(map(denial_item, denials)))
    count = f"{len(problems)} image problem" + ("s" if len(problems) != 1 else "")
    where = f"{namespace}/{name}" if namespace else name
    return "\n".join([f"pullguard denied {kind} {where}: {count} would stop its pods from starting", *problems])


def table_cell(finding: Finding) -> str:
    """The `check` table's PROBLEM column: the container and image have columns of their own."""
    return f"{problem(finding, container=False)}; fix: {fix(finding)}"


def sarif_text(finding: Finding) -> str:
    return f"{problem(finding)}. Fix: {fix(finding)}"


def mirror_outcome_text(outcome: MirrorOutcome) -> str:
    """What a mirror rule did to one image: `rewrite IMAGE -> TARGET`, or `kept IMAGE (OUTCOME): DETAIL`."""
    image = one_line(outcome.container.image)
    if outcome.rewritten:
        return f"rewrite {image} -> {one_line(outcome.target)}"
    return f"kept {image} ({outcome.outcome}): {one_line(outcome.detail)}"
