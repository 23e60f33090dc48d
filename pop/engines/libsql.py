"""The ``libsql`` engine: libSQL embedded replicas through ``libsql-experimental``.

``libsql_experimental.connect(path, sync_url=...)`` keeps the replica file and, beside
it, ``<file>-client_wal_index``: the origin's log id and the last frame applied. Each
``sync()`` pulls the frames after that one from the libSQL server (``sqld``, Turso) over
gRPC-web on its HTTP port. ``tursodb`` does not serve this protocol; its origins are
replicated by the ``turso`` engine.

The library runs in a child process (``pop.engines.libsql_sync`` says why). Reads use
plain SQLite (apsw) connections on the same file: the replica is an ordinary WAL
database, and apsw offers what the binding lacks (interrupting a statement, the columns
of a result without rows).
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import apsw
import httpx

from pop.config import Settings
from pop.engines.base import (
    Description,
    OffTheLoop,
    Rows,
    SyncResult,
    WrongOrigin,
    replica_size_bytes,
    within_slice,
)
from pop.engines.libsql_sync import SyncProcess
from pop.hrana.result_size import MAX_VALUE_BYTES
from pop.sql.pragma_guard import only_object_pragmas

log = logging.getLogger(__name__)

# <file>-client_wal_index, as libSQL writes it after each applied transaction: the log id
# (16 bytes), the last committed frame number and padding (little-endian u64s).
_WAL_INDEX = struct.Struct("<16sQQ")
_NO_FRAME = 2**64 - 1
_READER_BUSY_MS = 5000
# How often (in SQLite VM steps, each well under a microsecond) a statement in a time
# slice looks at the clock.
_SLICE_CHECK_STEPS = 1000


class LibsqlEngine:
    name = "libsql"
    follows_replication_index = True

    def __init__(self, settings: Settings) -> None:
        self.path: Path = settings.replica_path
        self._sync_url = settings.origin_http_url
        token = settings.turso_auth_token
        self._auth_token = token.get_secret_value() if token else ""
        self._sync_timeout = settings.sync_timeout
        self._syncer: SyncProcess | None = None
        # Cached for request paths (see ReplicaEngine.position); set on the sync thread.
        self._frame: int | None = None
        # Frames applied since this process opened the replica (bootstrap included).
        self._frames_pulled = 0

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists() and self.path.stat().st_size > 0
        # Where a replica kept on its volume stands, so that only newer frames count as pulled.
        self._frame = self._applied_frame()
        try:
            # Unbounded: a first sync copies the whole database, however long that takes.
            self._pull(timeout=None)
        except RuntimeError as exc:
            hint = self._origin_hint()
            if hint:
                raise WrongOrigin(f"{exc}{hint}") from None
            raise
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
        before = self._frame
        self._pull(timeout=self._sync_timeout)
        return SyncResult(changed=self._frame != before, position=self.position())

    def _pull(self, timeout: float | None) -> None:
        if self._syncer is None or not self._syncer.alive:
            self._syncer = SyncProcess(str(self.path), self._sync_url, self._auth_token)
        self._syncer.sync(timeout)
        before, self._frame = self._frame, self._applied_frame()
        if self._frame is not None and self._frame >= (before or 0):
            self._frames_pulled += self._frame - (before or 0)

    def position(self) -> str | None:
        return str(self._frame) if self._frame is not None else None

    def is_bookkeeping(self, name: str) -> bool:
        return False  # libSQL's replication metadata lives beside the file, not in it

    def connect_reader(self) -> SqliteReader:
        return SqliteReader(self.path)

    def stats(self) -> dict[str, Any]:
        return {
            "frame": self._frame,
            "frames_pulled": self._frames_pulled,
            "size_bytes": replica_size_bytes(self.path),
        }

    def close(self) -> None:
        if self._syncer is not None:
            self._syncer.close()
            self._syncer = None

    def _applied_frame(self) -> int | None:
        """The last frame libSQL applied, from the index it keeps beside the replica."""
        try:
            raw = self.path.with_name(self.path.name + "-client_wal_index").read_bytes()
        except FileNotFoundError:
            return None
        if len(raw) < _WAL_INDEX.size:
            return None
        _, frame, _ = _WAL_INDEX.unpack_from(raw)
        return None if frame == _NO_FRAME else int(frame)

    def _origin_hint(self) -> str:
        """Why a handshake may have failed, when the origin is not a libSQL server at all."""
        try:
            answer = httpx.get(f"{self._sync_url}/version", timeout=3)
        except httpx.HTTPError:
            return ""
        if answer.status_code == 404:
            return (
                f" ({self._sync_url} answers GET /version with 404, so it is not a libSQL"
                " server: the libsql engine replicates from sqld or Turso; for a"
                " tursodb --sync-server origin set REPLICA_ENGINE=turso)"
            )
        return ""


# What a statement in a time slice stops with: the progress handler ran out of time, or
# a lock is held elsewhere (no busy wait in a slice).
_STOPPED_BY_THE_SLICE = (apsw.InterruptError, apsw.BusyError)


class SqliteReader:
    """A read-only SQLite connection on the replica file."""

    def __init__(self, path: Path) -> None:
        self._conn = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
        self._conn.set_busy_timeout(_READER_BUSY_MS)
        # sqld's own limit: a longer string or blob is SQLITE_TOOBIG before it is made.
        self._conn.limit(apsw.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        # Only reads the inspector let through run here; this holds even if one slipped by.
        self._conn.authorizer = only_object_pragmas
        self._slice_ends: float | None = None

    @property
    def in_transaction(self) -> bool:
        return bool(self._conn.in_transaction)

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Rows:
        cursor = self._conn.cursor()
        # apsw gives no columns once a statement has finished (a result without rows):
        # they are taken when it is prepared, before its first step.
        described: list[Description] = []

        def note_columns(prepared: apsw.Cursor, _sql: str, _bindings: Any) -> bool:
            described.append(prepared.description)
            return True

        cursor.exec_trace = note_columns
        try:
            rows: Iterator[tuple[Any, ...]] = cursor.execute(sql, tuple(parameters))
        except _STOPPED_BY_THE_SLICE:
            if self._slice_ends is None:
                raise
            raise OffTheLoop() from None
        if self._slice_ends is not None:
            rows = within_slice(rows, self._slice_ends, _STOPPED_BY_THE_SLICE)
        return Rows(described[0] if described else None, rows)

    def interrupt(self) -> None:
        self._conn.interrupt()

    def set_time_slice(self, seconds: float | None) -> None:
        if seconds is None:
            self._slice_ends = None
            self._conn.set_progress_handler(None)
            self._conn.set_busy_timeout(_READER_BUSY_MS)
            return
        self._slice_ends = time.monotonic() + seconds
        self._conn.set_busy_timeout(0)  # a lock held elsewhere: BusyError at once
        self._conn.set_progress_handler(self._past_slice, _SLICE_CHECK_STEPS)

    def _past_slice(self) -> bool:
        # True stops the statement: apsw raises InterruptError, made OffTheLoop above.
        return self._slice_ends is not None and time.monotonic() > self._slice_ends

    def close(self) -> None:
        self._conn.close()
