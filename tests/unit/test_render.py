from __future__ import annotations

from policies.model import Finding, Reason
from tests.unit.policy_helpers import image
from webhook.formats.warnings import denial_message, finding_line, finding_text, warning_lines
from webhook.limits import MAX_WARNING, MAX_WHOLE_WARNING


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
    assert line.startswith('pullguard: container "app" image "nginx": fix: eee')
    assert len(line) <= MAX_WARNING and line.endswith(" …")


def test_a_long_warning_puts_the_fix_first_and_is_cut_at_a_word() -> None:
    """What to do survives the cut; the words are not split; the whole text stays in the review log."""
    hint = "add a mirror rule (mirrors: [{registry: docker.io, mirror: ...}]) or map docker.io in registry.hostsDir"
    long = finding("could not verify: registry host registry-1.docker.io does not resolve " + "because " * 30, hint)
    line = finding_line(long)
    assert line.startswith(f'pullguard: container "app" image "nginx": fix: {hint}; problem: could not verify')
    assert len(line) <= MAX_WARNING and line.endswith("because …")
    assert finding_text(long).endswith(f": {hint}") and len(finding_text(long)) > MAX_WARNING


def test_warnings_are_whole_while_they_fit_the_total_and_shortened_fix_first_when_not() -> None:
    """The API server passes whole warnings up to 4096 runes in all: a long one is sent whole while they fit."""
    long = finding("could not verify: registry host does not resolve " + "because " * 40, "map the host")
    (line,) = warning_lines([long])
    assert line == finding_text(long) and len(line) > MAX_WARNING
    many = warning_lines([finding(f"problem {i} " + "because " * 40, "map the host") for i in range(30)])
    assert all(len(w) <= MAX_WARNING for w in many) and many[0].startswith(
        'pullguard: container "app" image "nginx": fix:'
    )
    assert sum(map(len, many)) < 4096 and "more findings not shown" in many[-1]


def test_a_hostile_image_string_is_never_sent_whole() -> None:
    hostile = image("registry.example.test/" + "a/" * 600 + "app", "app")
    huge = Finding("latestTag", hostile, Reason.NOT_REPRODUCIBLE, f"{hostile.label} has no tag", "pin a version")
    (line,) = warning_lines([huge])
    assert len(line) <= MAX_WHOLE_WARNING and "characters): fix: pin a version; problem: has no tag" in line


def test_a_warning_that_fits_is_whole_and_unchanged() -> None:
    short = finding("has no tag", "pin a version")
    assert finding_line(short) == finding_text(short) == "pullguard: has no tag: pin a version"


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
        "pullguard denied Deployment shop/web: 2 policy violations (the pods would start)",
        "- [NotReproducible] bad one (fix: do x)",
        "- [NotReproducible] bad two (fix: do y)",
    ]


def test_the_denial_header_counts_what_stops_pods_apart_from_policy_and_unverified() -> None:
    stops = Finding("imageExists", image("nginx:9.9"), Reason.ERR_IMAGE_PULL, "not found", "push it")
    unknown = Finding("imageExists", image("a.test/b:1"), Reason.UNVERIFIED, "timed out", "retry", unknown=True)
    message = denial_message("Pod", "shop", "p", [stops, finding("has no tag", "pin it"), unknown])
    assert message.splitlines()[0] == (
        "pullguard denied Pod shop/p: 1 image problem would stop its pods from starting, "
        "1 policy violation (the pods would start), 1 image could not be verified (failurePolicy: closed)"
    )
    only_latest = denial_message("Pod", "shop", "p", [finding("has no tag", "pin it")])
    assert "would stop its pods from starting" not in only_latest  # a latest image starts fine
