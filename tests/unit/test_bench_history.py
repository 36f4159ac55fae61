"""The benchmarks' regression guard (bench/history.py): each run is read against the last recorded one, and
`--record` appends it to its figure's table in bench/RESULTS.md."""

from __future__ import annotations

from pathlib import Path

from bench import history

RESULTS = "# Benchmark results\n\nSome prose.\n\n## Reproduce\n\nmake bench\n"


def _rows(text: str, key: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"### {key}:"))
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("###") or line.startswith("## "):
            break
        if line.startswith("| 20"):
            table.append(line)
    return table


def test_a_first_run_makes_the_table_and_has_nothing_to_compare_with(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(RESULTS)
    printed = history.report({"storm": {"pullguard-p50": 140.0, "noop-p50": 150.0}}, record=True, results=results)
    assert "pullguard: 140.00 (no recorded run to compare with)" in printed
    text = results.read_text()
    assert text.startswith(RESULTS.rstrip("\n"))  # nothing before is touched
    assert text.index(history.SECTION) > text.index("## Reproduce")
    (row,) = _rows(text, "storm")
    assert row.split(" | ")[2:4] == ["140.00", "150.00"]


def test_each_run_is_read_against_the_last_and_appended_after_it(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text(RESULTS)
    history.report({"memory": {"rss-5k": 100.0, "rss-50k": 170.0}}, record=True, results=results)
    history.report({"memory": {"rss-5k": 110.0}}, record=True, note="small only", results=results)  # no 50k point
    printed = history.report({"memory": {"rss-5k": 107.0, "rss-50k": 200.0}}, record=False, results=results)
    # 5k: against the second run; 50k: the second run did not measure it, so against the first
    assert "5k/2k/1k: 107.00 against 110.00" in printed and "-3%, within noise" in printed
    assert "50k/20k/10k: 200.00 against 170.00" in printed and "+18%, WORSE" in printed  # memory: 4% spread
    rows = _rows(results.read_text(), "memory")
    assert len(rows) == 2 and rows[1].endswith("| 110.00 | - | small only |")


def test_the_direction_of_better_is_the_figures() -> None:
    last = {"validate": history.Recorded(0.60, "2026-12-07", "abc1234")}
    figure = history.FIGURES["warm-path"]
    assert "better" in history.compare(figure, {"validate": 0.70}, last)[0]  # higher throughput
    assert "WORSE" in history.compare(figure, {"validate": 0.50}, last)[0]
    latency = {"added.dry.c1": history.Recorded(1.50, "2026-12-07", "abc1234")}
    assert "better" in history.compare(history.FIGURES["creates-added"], {"added.dry.c1": 1.00}, latency)[0]
    assert "within noise" in history.compare(history.FIGURES["creates-added"], {"added.dry.c1": 1.70}, latency)[0]


def test_every_figure_has_its_table_in_the_repositorys_results() -> None:
    recorded = history.last_recorded(history.RESULTS.read_text())
    for key, figure in history.FIGURES.items():
        assert set(recorded.get(key, {})) == {c.key for c in figure.columns}, key
