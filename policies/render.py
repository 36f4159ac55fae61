"""Turn findings into the words the API server relays: warning lines and a denial message.

The API server keeps warnings short: it asks for <=120 characters where possible, may truncate past 256,
and drops what exceeds 4 KiB in total, so every finding gets one printable line and the list is capped with
a line saying how many were left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from policies.model import Finding

PREFIX = "pullguard: "
MAX_WARNING = 256
MAX_WARNINGS_TOTAL = 4096 - 256  # leave room for other webhooks' warnings and the overflow line


def _one_line(text: str) -> str:
    if text.isprintable():  # the common case, and isprintable() is false for newlines and tabs
        return text
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


def finding_line(finding: Finding) -> str:
    line = _one_line(f"{PREFIX}{finding.message}: {finding.hint}")
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


def denial_message(kind: str, namespace: str, name: str, denials: Sequence[Finding]) -> str:
    """Readable in `kubectl` output: one line per problem (shared problems once), each with its fix."""
    problems = list(dict.fromkeys(f"- [{f.reason}] {_one_line(f.message)} (fix: {_one_line(f.hint)})" for f in denials))
    count = f"{len(problems)} image problem" + ("s" if len(problems) != 1 else "")
    where = f"{namespace}/{name}" if namespace else name
    return "\n".join([f"pullguard denied {kind} {where}: {count} would stop its pods from starting", *problems])
