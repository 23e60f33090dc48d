"""Charts of recorded benchmark results: ``bench/results/<name>-<date>.md`` → ``.png`` beside it.

The recorded Markdown is the data; the chart is drawn from its first table, so a result
recorded before charts existed gets one too, and a benchmark's chart can never disagree
with its table. Every benchmark script draws its chart when it records a result;
``python -m bench.charts`` redraws them all (``--check`` fails when one differs, which
``tests/test_bench_charts.py`` runs).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display here, and the same bytes on every machine

from matplotlib import pyplot as plt
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

RESULTS = Path(__file__).resolve().parent / "results"
_SEPARATOR = re.compile(r"^:?-+:?$")
_COLOURS = ("#3b6ea8", "#e07b39", "#5a9e4b", "#b8474d")
_PLAIN = ticker.FuncFormatter(lambda value, _: f"{value:g}")  # 100, not 10²
_THOUSANDS = ticker.FuncFormatter(lambda value, _: f"{value / 1000:g}k" if value else "0")


@dataclass(frozen=True)
class Table:
    """A Markdown table: its header cells and its rows, cells as written."""

    header: list[str]
    rows: list[list[str]]

    def column(self, name: str) -> list[str]:
        try:
            index = self.header.index(name)
        except ValueError:
            raise ValueError(f"no column {name!r} in a table of {self.header}") from None
        return [row[index] for row in self.rows]

    def numbers(self, name: str) -> list[float]:
        return [number(cell) for cell in self.column(name)]

    def where(self, name: str, value: str) -> Table:
        index = self.header.index(name)
        return Table(self.header, [row for row in self.rows if row[index] == value])


def first_table(markdown: str, after: str | None = None) -> Table:
    """The first table in ``markdown`` (the result's own; the machine's comes later), or
    the first after the line ``after`` (a heading), if given."""
    text = markdown
    if after is not None:
        heading = f"\n{after}\n"
        if heading not in f"\n{markdown}":
            raise ValueError(f"no {after!r} in the result")
        text = f"\n{markdown}".split(heading, 1)[1]
    lines: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|"):
            lines.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif lines:
            break
    if len(lines) < 3 or not all(_SEPARATOR.match(cell) for cell in lines[1]):
        raise ValueError("no Markdown table (header, separator, rows) in the result")
    return Table(lines[0], lines[2:])


def number(cell: str) -> float:
    """A table cell's number: ``7,260`` → 7260.0; ``13,465-13,561`` (a range) → its low end."""
    match = re.match(r"-?[\d,]+(?:\.\d+)?", cell)
    if not match:
        raise ValueError(f"not a number: {cell!r}")
    return float(match.group().replace(",", ""))


def _latency_lines(
    axes: Axes, table: Table, x_column: str, group_column: str, x_label: str
) -> None:
    """p50 (solid) and p99 (dashed) against ``x_column``, one colour per group."""
    groups = list(dict.fromkeys(table.column(group_column)))
    for colour, group in zip(_COLOURS, groups, strict=False):
        part = table.where(group_column, group)
        x = part.numbers(x_column)
        axes.plot(x, part.numbers("p50 ms"), "o-", color=colour, label=f"{group}: p50")
        axes.plot(x, part.numbers("p99 ms"), "s--", color=colour, label=f"{group}: p99")
    axes.set_xticks(sorted(set(table.numbers(x_column))))
    axes.set_xlabel(x_label)
    axes.set_ylabel("ms (log scale)")
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(_PLAIN)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)


def _propagation(table: Table) -> Figure:
    figure, axes = plt.subplots(figsize=(7, 4.2))
    _latency_lines(axes, table, "POPs", "sync by", "POPs")
    axes.set_title("Propagation: a write through one POP until every other POP returns it")
    return figure


def _forwarded_write(table: Table) -> Figure:
    figure, axes = plt.subplots(figsize=(7, 4.2))
    _latency_lines(axes, table, "writers", "read-your-writes", "concurrent writers")
    axes.set_title("Forwarded write until the POP can read it")
    return figure


def _read_throughput(table: Table) -> Figure:
    labels = [
        f"{key} {what}" for key, what in zip(table.column(""), table.column("what"), strict=True)
    ]
    rows = range(len(labels))
    figure, (throughput, latency) = plt.subplots(
        1, 2, figsize=(11, 0.45 * len(labels) + 1.6), sharey=True
    )
    throughput.barh(rows, table.numbers("req/s"), color=_COLOURS[0])
    for row, value in zip(rows, table.numbers("req/s"), strict=True):
        throughput.annotate(f" {value:,.0f}", (value, row), va="center", fontsize=8)
    throughput.set_yticks(list(rows), labels, fontsize=8)
    throughput.invert_yaxis()
    throughput.set_xlabel("requests per second (more is better)")
    throughput.margins(x=0.2)
    throughput.xaxis.set_major_locator(ticker.MaxNLocator(5))
    throughput.xaxis.set_major_formatter(_THOUSANDS)
    height = 0.38
    latency.barh(
        [row - height / 2 for row in rows],
        table.numbers("p50 ms"),
        height,
        label="p50",
        color=_COLOURS[0],
    )
    latency.barh(
        [row + height / 2 for row in rows],
        table.numbers("p99 ms"),
        height,
        label="p99",
        color=_COLOURS[1],
    )
    latency.set_xscale("log")
    # 1-2-5 marks: a range under one decade still gets labels, a wide one no crowding
    latency.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    latency.xaxis.set_major_formatter(_PLAIN)
    latency.xaxis.set_minor_formatter(ticker.NullFormatter())
    latency.set_xlabel("latency, ms (log scale; less is better)")
    latency.legend(fontsize=8)
    for axes in (throughput, latency):
        axes.grid(True, axis="x", which="both", alpha=0.3)
    figure.suptitle("Read throughput and latency at the same load, in the same run")
    return figure


def _grouped_bars(
    labels: list[str], table: Table, columns: list[str], *, log: bool = False
) -> tuple[Figure, Axes]:
    """One horizontal bar per column for each row, the rows labelled ``labels``."""
    figure, axes = plt.subplots(figsize=(8, 0.6 * len(labels) + 1.6))
    height = 0.8 / len(columns)
    for index, (colour, name) in enumerate(zip(_COLOURS, columns, strict=False)):
        offsets = [row + (index - (len(columns) - 1) / 2) * height for row in range(len(labels))]
        axes.barh(offsets, table.numbers(name), height, label=name, color=colour)
    axes.set_yticks(list(range(len(labels))), labels, fontsize=8)
    axes.invert_yaxis()
    if log:
        axes.set_xscale("log")
        axes.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axes.xaxis.set_major_formatter(_PLAIN)
        axes.xaxis.set_minor_formatter(ticker.NullFormatter())
    axes.grid(True, axis="x", which="both", alpha=0.3)
    axes.legend(fontsize=8)
    return figure, axes


def _memory(table: Table) -> Figure:
    columns = [name for name in table.header if name != "probe"]
    figure, axes = _grouped_bars(table.column("probe"), table, columns)
    axes.set_xlabel("resident memory of one POP, MB")
    axes.set_title("POP memory before, at the peak of, and after each probe")
    return figure


def _flood(table: Table) -> Figure:
    labels = [
        f"{probe}\n{condition}"
        for condition, probe in zip(table.column("condition"), table.column("probe"), strict=True)
    ]
    figure, axes = _grouped_bars(labels, table, ["p50 ms", "p99 ms", "max ms"], log=True)
    axes.set_xlabel("ms on a new connection (log scale; less is better)")
    axes.set_title("Probes and a quick read, quiet and under a flood")
    return figure


def _sync_cost(table: Table) -> Figure:
    labels = [
        f"{engine}, {size} MB"
        for engine, size in zip(table.column("engine"), table.column("seeded MB"), strict=True)
    ]
    figure, axes = _grouped_bars(labels, table, ["p50 ms", "p99 ms"])
    axes.set_xlabel("one changed row pulled, ms (less is better; the same at every size)")
    axes.set_title("Sync cost by database size")
    return figure


CHARTS: dict[str, Callable[[Table], Figure]] = {
    "propagation": _propagation,
    "forwarded_write": _forwarded_write,
    "read_throughput": _read_throughput,
    "read_per_core": _read_throughput,
    "memory": _memory,
    "flood": _flood,
    "sync_cost": _sync_cost,
}


# Results with several tables: the heading of the one charted (issue 22 asks about 16).
CHART_TABLE = {"read_per_core": "### 16 connections"}


def chart_path(result: Path) -> Path:
    return result.with_suffix(".png")


def draw(result: Path, out: Path | None = None) -> Path:
    """Draw the chart of one recorded result; ``out`` defaults to the PNG beside it."""
    # name[-variant]-YYYY-MM-DD; a variant (propagation-libsql) is drawn as its benchmark
    benchmark = result.stem.rsplit("-", 3)[0].split("-")[0]
    if benchmark not in CHARTS:
        raise ValueError(
            f"{result.name}: no chart for benchmark {benchmark!r} (known: {sorted(CHARTS)})"
        )
    figure = CHARTS[benchmark](first_table(result.read_text(), CHART_TABLE.get(benchmark)))
    figure.tight_layout()
    target = out or chart_path(result)
    # No "Software" stamp, so that redrawing gives the same bytes (the check compares them).
    figure.savefig(target, dpi=100, metadata={"Software": None})
    plt.close(figure)
    return target


def stale_charts(results: list[Path]) -> list[str]:
    """The results whose committed chart is missing or not what their table draws."""
    stale = []
    with tempfile.TemporaryDirectory() as tmp:
        for result in results:
            fresh = draw(result, Path(tmp) / "chart.png")
            committed = chart_path(result)
            if not committed.exists() or committed.read_bytes() != fresh.read_bytes():
                stale.append(result.name)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("results", nargs="*", type=Path, help="default: bench/results/*.md")
    parser.add_argument(
        "--check", action="store_true", help="draw nothing; fail if a committed chart differs"
    )
    args = parser.parse_args(argv)
    results = args.results or sorted(RESULTS.glob("*.md"))
    if args.check:
        stale = stale_charts(results)
        for name in stale:
            print(
                f"{name}: its chart is missing or stale; run python -m bench.charts",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for result in results:
        print(f"drew {draw(result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
