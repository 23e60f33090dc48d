"""Each recorded benchmark result has its chart beside it, drawn from its own table
(bench/charts.py), so a result re-recorded without its chart, or a chart edited by hand,
fails here."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import charts

RESULTS = sorted(charts.RESULTS.glob("*.md"))


def test_there_are_results_to_check() -> None:
    assert {path.stem.rsplit("-", 3)[0] for path in RESULTS} >= {
        "read_throughput",
        "propagation",
        "forwarded_write",
        "memory",
    }


def test_every_result_has_the_chart_its_table_draws() -> None:
    assert charts.stale_charts(RESULTS) == [], "run: uv run python -m bench.charts"


def test_a_changed_table_draws_another_chart(tmp_path: Path) -> None:
    original = next(path for path in RESULTS if path.name.startswith("propagation-"))
    changed = tmp_path / original.name
    changed.write_text(original.read_text().replace("| 2 | redis |", "| 3 | redis |", 1))
    shutil.copy(charts.chart_path(original), charts.chart_path(changed))
    assert charts.stale_charts([changed]) == [changed.name]


def test_the_first_table_is_read_as_written() -> None:
    table = charts.first_table(
        "# Title\n\n| | what | req/s |\n| --- | --- | ---: |\n| (a) | floor | 13,510 |\n"
        "| (b) | origin | 18,505 |\n\ntext\n\n| machine | |\n| --- | --- |\n| cores | 2 |\n"
    )
    assert table.header == ["", "what", "req/s"]
    assert table.column("what") == ["floor", "origin"]
    assert table.numbers("req/s") == [13510.0, 18505.0]
    with pytest.raises(ValueError, match="no column 'p99 ms'"):
        table.column("p99 ms")


def test_a_result_with_several_tables_is_charted_from_the_one_named() -> None:
    text = (
        "# Per core\n\n### 1 connection\n\n| what | req/s |\n| --- | ---: |\n| POP | 4,050 |\n\n"
        "### 16 connections\n\n| what | req/s |\n| --- | ---: |\n| POP | 6,635 |\n"
    )
    assert charts.first_table(text).numbers("req/s") == [4050.0]
    assert charts.first_table(text, "### 16 connections").numbers("req/s") == [6635.0]
    with pytest.raises(ValueError, match="no '### 64 connections'"):
        charts.first_table(text, "### 64 connections")


@pytest.mark.parametrize(
    ("cell", "value"), [("7,260", 7260.0), ("13,465-13,561", 13465.0), ("0.81", 0.81)]
)
def test_cells_are_numbers(cell: str, value: float) -> None:
    assert charts.number(cell) == value


def test_what_cannot_be_drawn_says_why(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a number: '-'"):
        charts.number("-")
    no_table = tmp_path / "propagation-2026-01-01.md"
    no_table.write_text("# Propagation\n\nno table\n")
    with pytest.raises(ValueError, match="no Markdown table"):
        charts.draw(no_table)
    unknown = tmp_path / "mystery-2026-01-01.md"
    unknown.write_text("| a |\n| --- |\n| 1 |\n")
    with pytest.raises(ValueError, match="no chart for benchmark 'mystery'"):
        charts.draw(unknown)
