from __future__ import annotations

from policies.model import Finding, Reason
from tests.unit.policy_helpers import image
from webhook.formats.warnings import denial_message, finding_line, warning_lines
from webhook.limits import MAX_WARNING


def finding(message: str, hint: str = "fix it", name: str = "app") -> Finding:
    return Finding("latestTag", image("nginx", name), Reason.NOT_REPRODUCIBLE, message, hint)


def test_line_format_matches_the_issue_example() -> None:
    f = finding('container "web" image "nginx" has no tag (resolves to latest)', "pin a version tag or digest")
    assert finding_line(f) == (
        'pullguard: container "web" image "nginx" has no tag (resolves to latest): pin a version tag or digest'
    )


def test_lines_are_single_printable_and_capped() -> None:
    line = finding_line(finding("a\nb\tc\x00d", "e" * 500))
    assert "\n" not in line and "\t" not in line and "\x00" not in line
    assert line.startswith("pullguard: a b c d: eee")
    assert len(line) == MAX_WARNING and line.endswith("...")


def test_duplicates_are_dropped_in_order() -> None:
    lines = warning_lines([finding("one"), finding("two"), finding("one")])
    assert lines == ["pullguard: one: fix it", "pullguard: two: fix it"]


def test_total_stays_under_4_kib() -> None:
    findings = [finding(f"problem number {i} " + "x" * 150) for i in range(100)]
    lines = warning_lines(findings)
    assert sum(len(line) for line in lines) < 4096
    assert lines[-1].startswith("pullguard: ") and "more findings not shown" in lines[-1]
    shown = len(lines) - 1
    assert lines[-1].startswith(f"pullguard: {100 - shown} more findings")


def test_denial_message_lists_each_problem_with_its_fix() -> None:
    message = denial_message("Deployment", "shop", "web", [finding("bad one", "do x"), finding("bad two", "do y")])
    assert message.splitlines() == [
        "pullguard denied Deployment shop/web: 2 image problems would stop its pods from starting",
        "- [NotReproducible] bad one (fix: do x)",
        "- [NotReproducible] bad two (fix: do y)",
    ]
