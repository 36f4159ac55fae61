"""What the API server relays: one warning line per finding (kubectl prints them as `Warning:`), and the denial
message (kubectl prints it as the error). The words are policies/render.py's.

The API server's limits (k8s.io/apiserver pkg/endpoints/filters/warning.go, v0.37): a request's warnings, from every
webhook, pass whole while they total at most 4096 runes; past that, every warning is cut to 256 runes and the ones
beyond 4096 are dropped. So pullguard sends each finding as one printable line, whole while its warnings together fit
MAX_WARNINGS_TOTAL (a little under 4096, for other webhooks' warnings). When they would not, or one line alone is
longer than MAX_WHOLE_WARNING (a hostile image string), each is shortened to MAX_WARNING (256) runes the way the
API server would keep it, but fix first (what to do survives the cut) and cut at a word; the review log has the
whole text; and a last line says how many were left out (webhook/limits.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from policies import render
from policies.model import Finding
from webhook.limits import MAX_WARNING, MAX_WARNINGS_TOTAL, MAX_WHOLE_WARNING, clip

PREFIX = "pullguard: "


CUT = " …"
MAX_LABEL_CHARS = 160  # of the container and image a shortened warning starts with


def finding_text(finding: Finding) -> str:
    """The whole finding as one line: the review log's, and the warning when it fits."""
    return PREFIX + render.sentence(finding)


def finding_line(finding: Finding, limit: int = MAX_WARNING) -> str:
    """One finding's warning in at most `limit` runes: whole when it fits; otherwise the fix first (what to do
    survives the cut), then the problem, cut at a word."""
    line = finding_text(finding)
    if len(line) <= limit:
        return line
    label = clip(render.one_line(finding.container.label), MAX_LABEL_CHARS)  # a hostile image: the fix still shows
    fitted = f"{PREFIX}{label}: fix: {render.fix(finding)}; problem: {render.problem(finding, container=False)}"
    return cut_at_word(fitted, limit)


def cut_at_word(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit - len(CUT)]
    space = head.rfind(" ")
    return (head[:space] if space > limit // 2 else head).rstrip(" ,;:") + CUT


def warning_lines(findings: Iterable[Finding]) -> list[str]:
    """One line per finding, deduplicated in order: whole while they fit the total budget, else shortened (fix
    first) and, past the budget, counted in a last line."""
    listed = list(findings)
    whole = list(dict.fromkeys(finding_line(f, MAX_WHOLE_WARNING) for f in listed))  # dict keeps first-seen order
    if sum(map(len, whole)) <= MAX_WARNINGS_TOTAL:
        return whole
    lines: list[str] = []
    total = 0
    unique = list(dict.fromkeys(map(finding_line, listed)))
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
    """Readable in `kubectl` output: a header that counts what would keep pods from starting apart from what
    the policy forbids (a `latest` tag starts fine) and what could not be verified, then one line per problem
    (shared problems once), each with its fix."""
    items = dict.fromkeys((denial_item(f), _kind_of(f)) for f in denials)
    kinds = [k for _, k in items]
    summary = ", ".join(
        f"{count} {one if count == 1 else many}{tail}"
        for kind_, one, many, tail in _DENIAL_KINDS
        if (count := kinds.count(kind_))
    )
    where = f"{namespace}/{name}" if namespace else name
    return "\n".join([f"pullguard denied {kind} {where}: {summary}", *(item for item, _ in items)])


def _kind_of(finding: Finding) -> str:
    if finding.unknown:
        return "unverified"
    return "stops" if finding.reason.stops_pods else "policy"


# (kind, singular, plural, the rest of the clause) of a denial header's counts, in that order
_DENIAL_KINDS = (
    ("stops", "image problem", "image problems", " would stop its pods from starting"),
    ("policy", "policy violation", "policy violations", " (the pods would start)"),
    ("unverified", "image", "images", " could not be verified (failurePolicy: closed)"),
)
