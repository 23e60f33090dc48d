"""The ``turso`` engine: Turso Sync through pyturso.

``turso.sync.connect`` bootstraps the file on first use and afterwards pulls only what
changed. Reads go through plain ``turso.connect`` connections on the same file, which see
what each pull brought in.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import turso
import turso.sync
from turso._turso import Busy, Interrupt
from turso._turso import PyTursoStatusCode as Status

from pop.config import Settings
from pop.engines.base import (
    Description,
    OffTheLoop,
    ReadConnection,
    Rows,
    SyncResult,
    replica_size_bytes,
    within_slice,
)

log = logging.getLogger(__name__)


# Turso Sync keeps its change log and pull cursor as tables in the replica file itself.
_BOOKKEEPING_PREFIXES = ("turso_cdc", "turso_sync_", "__turso_internal")


class TursoSyncEngine:
    name = "turso"
    follows_replication_index = False  # a pull revision: tursodb reports no index

    def __init__(self, settings: Settings) -> None:
        self.path: Path = settings.replica_path
        self._remote_url = settings.origin_http_url
        token = settings.turso_auth_token
        self._auth_token = token.get_secret_value() if token else None
        self._sync: Any = None
        # Read by request paths on the event loop while a pull may run on another thread;
        # pyturso's stats() would wait for that pull's lock, so they are kept here.
        self._position: str | None = None
        self._stats: dict[str, Any] = {}

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists() and self.path.stat().st_size > 0
        self._sync = turso.sync.connect(
            str(self.path), self._remote_url, auth_token=self._auth_token, client_name="edge-pop"
        )
        self._refresh_stats()
        log.info(
            "replica opened",
            extra={
                "engine": self.name,
                "path": str(self.path),
                "bootstrapped": not existed,
                "position": self.position(),
            },
        )

    def sync(self) -> SyncResult:
        changed = bool(self._require_open().pull())
        self._refresh_stats()
        return SyncResult(changed=changed, position=self._position)

    def position(self) -> str | None:
        return self._position

    def is_bookkeeping(self, name: str) -> bool:
        return name.lower().startswith(_BOOKKEEPING_PREFIXES)

    def connect_reader(self) -> ReadConnection:
        conn = turso.connect(str(self.path), isolation_level=None)
        conn.execute("PRAGMA query_only=1")
        return TursoReader(conn)

    def stats(self) -> dict[str, Any]:
        return dict(self._stats)

    def _refresh_stats(self) -> None:
        """Called on the thread that opens or pulls, never from a request path."""
        stats = self._require_open().stats()
        revision = getattr(stats, "revision", None)
        self._position = str(revision) if revision is not None else None
        self._stats = {
            "network_received_bytes": stats.network_received_bytes,
            "network_sent_bytes": stats.network_sent_bytes,
            "last_pull_unix_time": stats.last_pull_unix_time,
            "revision": stats.revision,
            "size_bytes": replica_size_bytes(self.path),
        }

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    def _require_open(self) -> Any:
        if self._sync is None:
            raise RuntimeError("the replica is not open")
        return self._sync


# What a statement in a time slice stops with: the query timeout that bounds it ran out,
# or a lock is held elsewhere.
_STOPPED_BY_THE_SLICE = (Interrupt, Busy)
_STATEMENT_CACHE = 256
CACHED_SQL_MAX_CHARS = 16 * 1024


class TursoReader:
    """A replica connection that keeps its compiled statements.

    pyturso's DB-API cursor compiles every statement twice per call, which costs more
    than the point read itself; compiled statements are reset and rebound instead. The
    pool drops readers when the schema changes, so a statement never outlives its schema.
    """

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._raw = conn._conn  # pyturso's low-level connection: prepare, bind, step
        # sql -> (compiled statement, its DB-API description)
        self._statements: OrderedDict[str, tuple[Any, Description]] = OrderedDict()
        self._slice_ends: float | None = None

    @property
    def in_transaction(self) -> bool:
        return not self._raw.get_auto_commit()

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Rows:
        """Start ``sql``; its rows are stepped as the caller iterates over the result."""
        stmt, description = self._statement(sql)
        try:
            stmt.reset()
            if parameters:
                stmt.bind(tuple(parameters))
            first = self._step(stmt)
        except Exception as exc:
            self._done_with(sql, stmt)
            if self._slice_ends is not None and isinstance(exc, _STOPPED_BY_THE_SLICE):
                raise OffTheLoop() from None
            raise
        rows = self._rows(sql, stmt, first)
        if self._slice_ends is not None:
            rows = within_slice(rows, self._slice_ends, _STOPPED_BY_THE_SLICE)
        return Rows(description, rows)

    def interrupt(self) -> None:
        self._raw.interrupt()

    def set_time_slice(self, seconds: float | None) -> None:
        if seconds is None:
            self._slice_ends = None
            self._raw.set_query_timeout(0)  # none
            return
        self._slice_ends = time.monotonic() + seconds
        # Whole milliseconds: past them a step stops with Interrupt.
        self._raw.set_query_timeout(max(1, math.ceil(seconds * 1000)))

    def _rows(self, sql: str, stmt: Any, status: Any) -> Iterator[tuple[Any, ...]]:
        failed = False
        try:
            while status == Status.Row:
                yield tuple(stmt.row())
                status = self._step(stmt)
        except Exception:
            failed = True
            raise
        finally:
            if failed or sql not in self._statements:
                self._done_with(sql, stmt)
            else:
                # A kept statement holds its last row's values until reset (a 5 MB blob
                # each), and one left unfinished (a result cut off at its size limit)
                # would keep its read snapshot open on this connection.
                stmt.reset()

    def _done_with(self, sql: str, stmt: Any) -> None:
        """Drop a statement that failed or was never cached."""
        if self._statements.get(sql, (None,))[0] is stmt:
            self._forget(sql)
        else:
            stmt.finalize()

    def close(self) -> None:
        for sql in list(self._statements):
            self._forget(sql)
        self._conn.close()

    def _statement(self, sql: str) -> tuple[Any, Description]:
        cached = self._statements.get(sql)
        if cached is not None:
            self._statements.move_to_end(sql)
            return cached
        prepared, tail = self._raw.prepare_first(sql)
        if sql[tail:].strip(" \t\r\n;"):
            prepared.finalize()
            raise turso.ProgrammingError("You can only execute one statement at a time")
        description = tuple(
            (name, None, None, None, None, None, None) for name in prepared.columns()
        )
        entry = (prepared, description or None)
        if len(sql) <= CACHED_SQL_MAX_CHARS:  # big one-off texts would pile up in memory
            self._statements[sql] = entry
            if len(self._statements) > _STATEMENT_CACHE:
                self._forget(next(iter(self._statements)))
        return entry

    def _forget(self, sql: str) -> None:
        entry = self._statements.pop(sql, None)
        if entry is not None:
            entry[0].finalize()

    @staticmethod
    def _step(stmt: Any) -> Any:
        while (status := stmt.step()) == Status.Io:
            stmt.run_io()
        return status
