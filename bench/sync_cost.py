"""Sync cost against database size: one changed row pulled by a POP whose replica holds
about 1 MB, 100 MB or 1 GB (issue 22, item 5). The pull must cost the same whatever the
size: it brings what changed, not the database.

For each engine and size: a fresh origin (``tursodb`` for the turso engine, ``sqld`` for
the libsql engine) seeded with that many bytes in rows of 1,000-byte random blobs; a POP
bootstrapped from it (its first start, timed); then ``--trials`` rounds of: one row
written at the origin directly, ``POST /sync`` on the POP, and what that pull cost: the
POP's own ``duration_ms`` and what the engine says it brought (``/ready``: the bytes the
turso engine received, the frames the libsql engine applied). The interval sync is off,
so each pull brings exactly one change.

Run: ``uv run python -m bench.sync_cost`` (``--quick``: 1 and 10 MB, few trials, not
recorded). Needs ``tursodb`` (tools/ensure-tursodb.sh) and ``sqld``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.machine import markdown_table, percentile, report
from bench.origins import origin_makers
from pop.devtools.processes import HranaServer, PopProcess

ROW_BYTES = 1000
ROWS_PER_STATEMENT = 50_000  # one origin transaction each: ~50 MB


def seed(origin: HranaServer, megabytes: int) -> None:
    """About ``megabytes`` of 1,000-byte random blobs, and the table the trials write."""
    origin.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB NOT NULL)")
    origin.execute("CREATE TABLE changes (id INTEGER PRIMARY KEY, at TEXT NOT NULL)")
    rows = megabytes * 1_000_000 // ROW_BYTES
    for start in range(0, rows, ROWS_PER_STATEMENT):
        count = min(ROWS_PER_STATEMENT, rows - start)
        origin.execute(
            "INSERT INTO big (b) WITH RECURSIVE n(x) AS "
            f"(SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {count}) "
            f"SELECT randomblob({ROW_BYTES}) FROM n"
        )


def _engine_stats(pop: PopProcess) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{pop.url}/ready", timeout=10).json()["engine"]
    return stats


def _pulled(pop: PopProcess, engine: str) -> float:
    """What the engine says it has brought so far: bytes (turso) or frames (libsql)."""
    stats = _engine_stats(pop)
    return float(stats["network_received_bytes" if engine == "turso" else "frames_pulled"])


def measure(
    engine: str, origin: HranaServer, workdir: Path, megabytes: int, trials: int
) -> list[str]:
    with ExitStack() as stack:
        started = time.perf_counter()
        pop = PopProcess(
            origin.url,
            workdir,
            region=f"{engine}-{megabytes}",
            engine=engine,
            extra_env={"TURSO_SYNC_INTERVAL": "3600", "LOG_LEVEL": "warning"},
        )
        pop.startup_timeout = 1800.0  # the first start copies the whole database
        pop.start_and_wait()
        stack.callback(pop.stop)
        bootstrap = time.perf_counter() - started
        size_mb = _engine_stats(pop)["size_bytes"] / 1e6  # write-ahead log included
        durations: list[float] = []
        brought: list[float] = []
        headers = {"Authorization": f"Bearer {pop.token}"}
        with httpx.Client(base_url=pop.url, headers=headers, timeout=60) as client:
            for trial in range(trials):
                origin.execute("INSERT INTO changes (at) VALUES (?)", [f"trial {trial}"])
                before = _pulled(pop, engine)
                answer = client.post("/sync").json()
                if not (answer["ok"] and answer["changed"]):
                    raise RuntimeError(f"the pull of trial {trial} brought nothing: {answer}")
                durations.append(float(answer["duration_ms"]))
                brought.append(_pulled(pop, engine) - before)
    unit = "bytes" if engine == "turso" else "frames"
    return [
        engine,
        f"{megabytes:,}",
        f"{size_mb:,.1f}",
        f"{bootstrap:.1f}",
        str(trials),
        f"{statistics.median(durations):.1f}",
        f"{percentile(durations, 99):.1f}",
        f"{statistics.median(brought):,.0f} {unit}",
    ]


def run(sizes: list[int], trials: int, engines: list[str]) -> str:
    makers = origin_makers(engines)
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="edge-pop-sync-cost-") as tmp:
        for engine in engines:
            for megabytes in sizes:
                workdir = Path(tmp) / f"{engine}-{megabytes}"
                workdir.mkdir()
                origin = makers[engine](workdir)
                origin.start_and_wait()
                try:
                    print(f"{engine}: seeding {megabytes} MB", file=sys.stderr, flush=True)
                    seed(origin, megabytes)
                    rows.append(measure(engine, origin, workdir, megabytes, trials))
                finally:
                    origin.stop()
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    header = [
        "engine",
        "seeded MB",
        "replica MB",
        "bootstrap s",
        "pulls",
        "p50 ms",
        "p99 ms",
        "brought per pull",
    ]
    return markdown_table(header, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1,100,1000", help="database sizes, MB")
    parser.add_argument("--trials", type=int, default=30, help="one-row pulls per size")
    parser.add_argument("--engines", default="turso,libsql")
    parser.add_argument("--quick", action="store_true", help="1 and 10 MB, 5 pulls, not recorded")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.trials = "1,10", 5
    table = run([int(size) for size in args.sizes.split(",")], args.trials, args.engines.split(","))
    note = (
        "Each pull brings one row written at the origin just before (`POST /sync` on the "
        "POP; its `duration_ms`). The origin, the POP and this script share the machine; "
        "the replica is on the same disk as the origin."
    )
    report(
        "sync_cost",
        "Sync cost: one changed row pulled, by database size",
        table,
        note,
        record=not args.quick,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
