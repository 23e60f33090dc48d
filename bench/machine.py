"""What a benchmark ran on, and the tables and percentiles its report is made of."""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def describe_machine(extra: dict[str, str] | None = None) -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": memory,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "git": _git_head(),
        **(extra or {}),
    }


def _git_head() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def latency_cells(ms: list[float], percentiles: tuple[int, ...]) -> list[str]:
    """A table's latency columns: p50, each of ``percentiles``, then the maximum."""
    cells = [statistics.median(ms), *(percentile(ms, q) for q in percentiles), max(ms)]
    return [f"{value:.1f}" for value in cells]


def report(
    module: str, title: str, table: str, note: str, *, record: bool, variant: str = ""
) -> None:
    """Print a benchmark's report (its table, a note, the machine) and, if ``record``,
    keep it as ``bench/results/<module>[-<variant>]-<date>.md``."""
    machine = describe_machine()
    text = (
        f"# {title}\n\n"
        f"Command: `uv run python -m bench.{module} {' '.join(sys.argv[1:])}`\n\n"
        + table
        + f"\n\n{note}\n\n## Machine\n\n"
        + markdown_table(["what", "value"], [[k, v] for k, v in machine.items()])
        + "\n"
    )
    print("\n" + text)
    if record:
        record_result(f"{module}-{variant}" if variant else module, text)


def record_result(benchmark: str, text: str) -> Path:
    """Keep a result as ``bench/results/<benchmark>-<date>.md`` and draw its chart beside it."""
    from bench.charts import draw  # matplotlib loads only when a result is recorded

    out = REPO / "bench" / "results" / f"{benchmark}-{dt.date.today().isoformat()}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    chart = draw(out)
    print(f"recorded in {out.relative_to(REPO)}, chart {chart.relative_to(REPO)}", file=sys.stderr)
    return out
