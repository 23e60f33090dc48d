"""Replica connections for reads.

Autocommit reads share one connection (everything runs on the event loop thread, one
statement at a time). A stream that opens a read-only transaction gets a connection of its
own for as long as the transaction lasts, so its snapshot is not disturbed by other
clients and does not hold back theirs. When the schema changes, every connection is
retired (those lent to streams when they come back): engines may keep compiled
statements, which must not outlive their schema.
"""

from __future__ import annotations

from pop.engines.base import ReadConnection, ReplicaEngine

_MAX_IDLE = 8


class ReaderPool:
    def __init__(self, engine: ReplicaEngine) -> None:
        self._engine = engine
        self._shared: ReadConnection | None = None
        self._idle: list[ReadConnection] = []
        self._generation = 0
        self._born: dict[int, int] = {}  # id(connection) -> generation it was opened in

    def shared(self) -> ReadConnection:
        if self._shared is None:
            self._shared = self._take_idle_or_new()
        return self._shared

    def detach_shared(self) -> ReadConnection:
        """Hand the shared connection to a stream that just began a transaction on it."""
        conn = self.shared()
        self._shared = None
        return conn

    def give_back(self, conn: ReadConnection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if self._born.get(id(conn)) == self._generation and len(self._idle) < _MAX_IDLE:
            self._idle.append(conn)
        else:
            self._close(conn)

    def schema_changed(self) -> None:
        self._generation += 1
        for conn in [*self._idle, *([self._shared] if self._shared else [])]:
            self._close(conn)
        self._idle.clear()
        self._shared = None

    def close(self) -> None:
        self.schema_changed()

    def _take_idle_or_new(self) -> ReadConnection:
        if self._idle:
            return self._idle.pop()
        conn = self._engine.connect_reader()
        self._born[id(conn)] = self._generation
        return conn

    def _close(self, conn: ReadConnection) -> None:
        self._born.pop(id(conn), None)
        conn.close()
