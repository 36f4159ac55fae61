"""What the API server relays: one warning line per finding (kubectl prints them as `Warning:`), and the denial
message (kubectl prints it as the error). The words are policies/render.py's.

The API server keeps warnings short: it asks for <=120 characters where possible, may truncate past 256, and drops
what exceeds 4 KiB in total, so every finding gets one printable line and the list is capped with a line saying how
many were left out (webhook/limits.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from policies import render
from policies.model import Finding
from webhook.limits import MAX_WARNING, MAX_WARNINGS_TOTAL

PREFIX = "pullguard: "


def finding_line(finding: Finding) -> str:
    """The warning the API server relays for one finding (also the finding's line in the review log)."""
    line = PREFIX + render.sentence(finding)
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
    return f"- [{finding.reason}] {render.problem(finding)} (fix: {render.fix(finding)})"


def denial_message(kind: str, namespace: str, name: str, denials: Sequence[Finding]) -> str:
    """Readable in `kubectl` output: one line per problem (shared problems once), each with its fix."""
    problems = list(dict.fromkeys(map(denial_item, denials)))
    count = f"{len(problems)} image problem" + ("s" if len(problems) != 1 else "")
    where = f"{namespace}/{name}" if namespace else name
    return "\n".join([f"pullguard denied {kind} {where}: {count} would stop its pods from starting", *problems])
