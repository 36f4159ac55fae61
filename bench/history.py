"""The regression guard: one table per figure in `bench/RESULTS.md` ("Figure history"), a row per dated run.

Each benchmark hands its figures to `report()`, which prints every value against the last recorded row of its
table (the change, and whether it is worse by more than the figure's run-to-run spread on this machine) and,
with `--record`, appends the run as a new row (date, commit, values, note). A slow drift cannot hide: every
recorded run stays in the table, and every run is read against the one before.
"""

from __future__ import annotations

import datetime
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

RESULTS = Path(__file__).resolve().with_name("RESULTS.md")
SECTION = "## Figure history"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    higher_is_better: bool


@dataclass(frozen=True)
class Figure:
    key: str  # the table's id in its heading: `### <key>: <title>`
    title: str
    columns: tuple[Column, ...]
    noise: float  # a change within this fraction is inside this machine's run-to-run spread for the figure


def _cells(prefix: str, label: str, higher: bool) -> tuple[Column, ...]:
    return tuple(
        Column(f"{prefix}.{mode}.c{creators}", f"{label} {mode} c={creators}", higher)
        for mode in ("dry", "real")
        for creators in (1, 8)
    )


FIGURES = {
    figure.key: figure
    for figure in (
        Figure(
            "warm-path",
            "pullguard's warm path against the FastAPI no-op, 50 connections (`bench.run`)",
            (
                Column("validate", "validate req/s vs no-op", True),
                Column("validate-p99", "validate p99 vs no-op", False),
                Column("mutate", "mutate req/s vs no-op", True),
                Column("above-floor-us", "validate us/request above the floor", False),
            ),
            0.08,  # runs of one commit: 0.56-0.66
        ),
        Figure(
            "creates-added",
            "pullguard's added p50 create latency against the raw do-nothing webhook's (`bench.apiserver`)",
            _cells("added", "added", False),
            0.25,  # runs of one commit differ by up to a quarter in a cell (etcd's writes in the real c=8 one)
        ),
        Figure(
            "creates-p99",
            "pullguard's p99 create latency against the raw do-nothing webhook's (`bench.apiserver`)",
            # whole p99s, not added ones: the difference of two tails is often near 0 and the ratio meaningless
            _cells("p99", "p99", False),
            0.30,  # a p99 of 150 sequential creates is its second-slowest
        ),
        Figure(
            "creates-rate",
            "pullguard's creates/s against the raw do-nothing webhook's (`bench.apiserver`)",
            _cells("rate", "creates/s", True),
            0.10,
        ),
        Figure(
            "creates-mirror",
            "with a mirror rule rewriting every pod: added p50 against raw-patch (`bench.apiserver`)",
            _cells("mirror", "added", False),
            0.25,
        ),
        Figure(
            "memory",
            "RSS with a cluster's objects cached, start-up path, MiB (`bench.apiserver`)",
            (
                Column("rss-5k", "5k/2k/1k", False),
                Column("rss-50k", "50k/20k/10k", False),
            ),
            0.04,  # 111-116 MiB at 5k over the recorded runs
        ),
        Figure(
            "storm",
            "200 new TLS connections at once, p50 ms (`bench.apiserver`)",
            (
                Column("pullguard-p50", "pullguard", False),
                Column("noop-p50", "no-op, same run", False),
                Column("vs-noop", "pullguard / no-op", False),  # the absolute p50s move with the machine
            ),
            0.10,  # 135-147 ms, 0.96-1.06 of the no-op
        ),
    )
}


def _section(text: str) -> str:
    start = text.find(SECTION)
    if start < 0:
        return ""
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end >= 0 else len(text)]


class Recorded(NamedTuple):
    value: float
    date: str
    commit: str


def last_recorded(text: str) -> dict[str, dict[str, Recorded]]:
    """Per figure and column, the last row of its table that has a value there (a `-` is skipped: a run that
    left that measurement out compares the next one with the run before it)."""
    found: dict[str, dict[str, Recorded]] = {}
    current: Figure | None = None
    for line in _section(text).splitlines():
        heading = re.match(r"### ([\w-]+):", line)
        if heading is not None:
            current = FIGURES.get(heading[1])
            continue
        if current is None or not line.startswith("| ") or line.startswith(("| date", "| ---")):
            continue
        date, commit_, *values = (cell.strip() for cell in line.strip().strip("|").split("|"))
        for column, written in zip(current.columns, values, strict=False):
            number = _number(written)
            if number is not None:
                found.setdefault(current.key, {})[column.key] = Recorded(number, date, commit_)
    return found


def _number(written: str) -> float | None:
    match = re.fullmatch(r"\**(-?\d+(?:\.\d+)?)\**", written)
    return float(match[1]) if match else None


def compare(figure: Figure, values: dict[str, float], last: dict[str, Recorded]) -> list[str]:
    """One line per column: this run's value, the last recorded one and the change."""
    lines = []
    for column in figure.columns:
        if column.key not in values:
            continue
        now, before = values[column.key], last.get(column.key)
        if before is None or before.value == 0:
            lines.append(f"  {figure.key} {column.label}: {now:.2f} (no recorded run to compare with)")
            continue
        change = (now - before.value) / abs(before.value)
        worse = -change if column.higher_is_better else change
        verdict = "WORSE" if worse > figure.noise else "better" if worse < -figure.noise else "within noise"
        lines.append(
            f"  {figure.key} {column.label}: {now:.2f} against {before.value:.2f} on {before.date} ({before.commit}):"
            f" {change:+.0%}, {verdict}"
        )
    return lines


def row(figure: Figure, values: dict[str, float], date: str, commit: str, note: str) -> str:
    cells = [f"{values[c.key]:.2f}" if c.key in values else "-" for c in figure.columns]
    return "| " + " | ".join([date, commit, *cells, note]) + " |"


def append_row(text: str, figure: Figure, line: str) -> str:
    """`text` with `line` added at the end of the figure's table (the section and the table are made if missing)."""
    lines = text.rstrip("\n").split("\n")
    if SECTION not in lines:
        lines += ["", SECTION]
    begin = lines.index(SECTION)
    end = next((i for i in range(begin + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    heading = next((i for i in range(begin, end) if lines[i].startswith(f"### {figure.key}:")), None)
    if heading is None:
        while end > begin + 1 and not lines[end - 1].strip():
            end -= 1
        header = "| " + " | ".join(["date", "commit", *(c.label for c in figure.columns), "note"]) + " |"
        rule = "|" + " --- |" * (len(figure.columns) + 3)
        table = ["", f"### {figure.key}: {figure.title}", "", header, rule, line]
        lines[end:end] = table + ([""] if end < len(lines) else [])
    else:
        at = heading + 1
        while at < end and not lines[at].startswith("|"):
            at += 1
        while at < end and lines[at].startswith("|"):
            at += 1
        lines.insert(at, line)
    return "\n".join(lines) + "\n"


def commit() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=RESULTS.parent, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ":/", f":(top,exclude)bench/{RESULTS.name}")
    return head + ("-dirty" if changed else "")  # the results file itself is what --record edits


def report(figures: dict[str, dict[str, float]], *, record: bool, note: str = "", results: Path = RESULTS) -> str:
    """The comparison lines for `figures` ({figure key: {column key: value}}); with `record`, each is appended to
    its table in `results`."""
    text = results.read_text()
    last = last_recorded(text)
    lines = ["Against the last recorded run (bench/RESULTS.md, Figure history):"]
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    head = commit()
    for key, values in figures.items():
        figure = FIGURES[key]
        lines += compare(figure, values, last.get(key, {}))
        if record:
            text = append_row(text, figure, row(figure, values, date, head, note or "-"))
    if record:
        results.write_text(text)
        lines.append(f"recorded as {date} {head} in {results.name}")
    return "\n".join(lines)
