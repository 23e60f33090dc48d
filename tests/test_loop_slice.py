"""Reads tried on the event loop first, within a time slice (pop.local.runner).

Most reads take microseconds, less than handing them to a worker thread and back, so the
runner tries them on the loop. These tests hold the bargain that makes that safe, with
each engine's real read connection (apsw for libsql, pyturso for turso): a read that
would run past the slice, by one long step or by many cheap rows, or wait for a lock,
stops and is answered from a worker, counted once, while the loop keeps turning.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import apsw
import pytest
import turso

from pop.engines.base import ReadConnection, ReplicaEngine
from pop.engines.libsql import SqliteReader
from pop.engines.turso import TursoReader
from pop.hrana.result_size import ResultAccount, ResultBudget, ResultMeter
from pop.local.pool import ReaderPool
from pop.local.runner import Done, LocalRunner

ROWS = 2000
# One long step: an aggregate over ten million generated rows (~0.5-2 s).
LONG_STEP = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000000) "
    "SELECT count(*) FROM n"
)
# Many cheap rows: every one of the table's rows, 100 times over.
MANY_ROWS = "SELECT t.id FROM t, (SELECT 1 FROM t LIMIT 100)"


class ReaderEngine:
    """Only what the pool asks of an engine: a reader connection (the engine's own)."""

    def __init__(self, connect: Callable[[], ReadConnection]) -> None:
        self.connect_reader = connect


def _sqlite_readers(path: Path) -> Callable[[], ReadConnection]:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", ((i, f"v{i}") for i in range(ROWS)))
    return lambda: SqliteReader(path)


def _turso_readers(path: Path) -> Callable[[], ReadConnection]:
    conn = turso.connect(str(path), isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(ROWS)])
    conn.close()
    return lambda: TursoReader(turso.connect(str(path), isolation_level=None))


ENGINES = {"libsql": _sqlite_readers, "turso": _turso_readers}


@pytest.fixture(params=sorted(ENGINES))
def runner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalRunner]:
    connect = ENGINES[request.param](tmp_path / "replica.db")
    pool = ReaderPool(cast(ReplicaEngine, ReaderEngine(connect)))
    pool.give_back(pool.connect())  # an idle connection, as a POP has after its first reads
    runner = LocalRunner(pool, workers=2, statement_timeout=30.0, slow_workers=1)
    yield runner
    runner.close()
    pool.close()


def _counted_read(sql: str, meter: ResultMeter, threads: list[str]) -> Callable[[Any], int]:
    def work(conn: Any) -> int:
        threads.append(threading.current_thread().name)
        for _ in conn.execute(sql):
            meter.add(10)
        return meter.used // 10

    return work


async def _longest_stall(work: asyncio.Future[Any]) -> float:
    """The longest the loop went without turning while ``work`` ran."""
    longest, last = 0.0, time.monotonic()
    while not work.done():
        await asyncio.sleep(0)
        now = time.monotonic()
        longest, last = max(longest, now - last), now
    return longest


def _run_counted(runner: LocalRunner, sql: str) -> tuple[Done[int], list[str], float, int]:
    budget = ResultBudget(10**9)
    account = ResultAccount(budget)
    meter = ResultMeter(10**9, account)
    threads: list[str] = []

    async def go() -> tuple[Done[int], float]:
        work = asyncio.ensure_future(
            runner.run(
                None,
                _counted_read(sql, meter, threads),
                loop_first=True,
                before_rerun=meter.rewind,
            )
        )
        stall = await _longest_stall(work)
        return await work, stall

    done, stall = asyncio.run(go())
    return done, threads, stall, account.held


def test_a_quick_read_is_answered_on_the_loop(runner: LocalRunner) -> None:
    done, threads, _, held = _run_counted(runner, "SELECT id FROM t WHERE id < 10")
    assert done.unwrap() == 10
    assert threads == ["MainThread"]
    assert held == 100


@pytest.mark.parametrize("sql, rows", [(LONG_STEP, 1), (MANY_ROWS, ROWS * 100)])
def test_a_read_past_the_slice_moves_to_a_worker_counted_once(
    runner: LocalRunner, sql: str, rows: int
) -> None:
    done, threads, stall, held = _run_counted(runner, sql)
    assert done.unwrap() == rows
    assert threads[0] == "MainThread" and threads[1].startswith("replica-reader"), threads
    assert len(threads) == 2
    # What was counted on the loop before the move was given back: counted once.
    assert held == rows * 10
    # The loop stopped the read within its slice (2 ms), and kept turning meanwhile.
    assert stall < 0.1, stall


def test_a_statement_error_on_the_loop_is_the_answer(runner: LocalRunner) -> None:
    done, threads, _, held = _run_counted(runner, "SELECT nope FROM t")
    assert done.error is not None and "nope" in str(done.error)
    assert threads == ["MainThread"] and held == 0


def test_a_read_that_would_wait_for_a_lock_waits_on_a_worker(tmp_path: Path) -> None:
    """A libsql replica is an SQLite file that another process (the sync) writes: a read
    on the loop must never wait for its lock. (A rollback-journal file, where a writer's
    lock keeps readers out; the turso engine's readers do not wait on its writer.)"""
    path = tmp_path / "replica.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO t VALUES (1)")
    pool = ReaderPool(cast(ReplicaEngine, ReaderEngine(lambda: SqliteReader(path))))
    pool.give_back(pool.connect())
    runner = LocalRunner(pool, workers=2, statement_timeout=30.0, slow_workers=1)
    # apsw, as the reader: SQLite's locks between connections of one process work only
    # within one copy of the library.
    writer = apsw.Connection(str(path))
    writer.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.3, lambda: writer.execute("COMMIT")).start()
    try:
        done, threads, stall, _ = _run_counted(runner, "SELECT id FROM t")
    finally:
        runner.close()
        pool.close()
    assert done.unwrap() == 1
    assert threads[0] == "MainThread" and threads[1].startswith("replica-reader"), threads
    assert stall < 0.1, stall
