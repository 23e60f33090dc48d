"""The local runner with a stream's own connection, when the client leaves mid-read.

The other half of the session's rule in tests/test_session.py
(``test_a_stream_whose_client_left_mid_read_...``): the runner gives the interrupted
connection back to the pool itself, rolled back, once its worker lets go of it. Python's
``sqlite3`` stands in for a replica engine's connection here (same DB-API shape); the
engines' own connections are exercised through real POPs everywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any, cast

from pop.engines.base import ReadConnection, ReplicaEngine
from pop.local.pool import ReaderPool
from pop.local.runner import LocalRunner

ENDLESS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"


class SqliteFileEngine:
    """Only what the pool asks of an engine: a reader connection."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect_reader(self) -> ReadConnection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        return cast(ReadConnection, conn)


def test_cancelled_work_on_a_held_connection_goes_back_to_the_pool_rolled_back(
    tmp_path: Path,
) -> None:
    sqlite3.connect(tmp_path / "db").execute("CREATE TABLE t (x)").connection.commit()
    pool = ReaderPool(cast(ReplicaEngine, SqliteFileEngine(tmp_path / "db")))
    runner = LocalRunner(pool, workers=1, statement_timeout=30.0, slow_workers=1)

    async def leave_mid_read() -> Any:
        begun = await runner.run(None, lambda conn: list(conn.execute("BEGIN")))
        held = begun.kept
        assert held is not None and held.in_transaction
        endless = asyncio.ensure_future(runner.run(held, lambda c: list(c.execute(ENDLESS))))
        await asyncio.sleep(0.2)
        endless.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await endless
        for _ in range(100):  # the worker lets go once the interrupt lands
            if pool.take_idle() is held:
                return held
            await asyncio.sleep(0.05)
        raise AssertionError("the interrupted connection never came back to the pool")

    try:
        held = asyncio.run(leave_mid_read())
    finally:
        runner.close()
    assert not held.in_transaction  # rolled back on its way back
