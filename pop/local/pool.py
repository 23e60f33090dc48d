"""Replica connections for reads, lent to one piece of work at a time.

Autocommit reads borrow an idle connection and give it back when done. A stream that
opens a read-only transaction keeps its connection for as long as the transaction lasts,
so its snapshot is not disturbed by other clients and does not hold back theirs. When the
schema changes, every connection is retired (those lent out when they come back): engines
keep compiled statements, which must not outlive their schema.

The pool itself is only touched on the event loop thread; connections are opened on the
worker that first needs one (opening a file must not stall the loop).
"""

from __future__ import annotations

import threading

from pop.engines.base import ReadConnection, ReplicaEngine

_MAX_IDLE = 16


class ReaderPool:
    def __init__(self, engine: ReplicaEngine) -> None:
        self._engine = engine
        self._idle: list[ReadConnection] = []
        self._generation = 0
        self._born_lock = threading.Lock()
        self._born: dict[int, int] = {}  # id(connection) -> generation it was opened in

    def take_idle(self) -> ReadConnection | None:
        """An idle connection, or None: the worker then opens one with ``connect``."""
        return self._idle.pop() if self._idle else None

    def connect(self) -> ReadConnection:
        """Open a new connection. Thread-safe: called on worker threads."""
        conn = self._engine.connect_reader()
        with self._born_lock:
            self._born[id(conn)] = self._generation
        return conn

    def give_back(self, conn: ReadConnection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        with self._born_lock:
            current = self._born.get(id(conn)) == self._generation
        if current and len(self._idle) < _MAX_IDLE:
            self._idle.append(conn)
        else:
            self._close(conn)

    def schema_changed(self) -> None:
        with self._born_lock:
            self._generation += 1
        for conn in self._idle:
            self._close(conn)
        self._idle.clear()

    def close(self) -> None:
        self.schema_changed()

    def _close(self, conn: ReadConnection) -> None:
        with self._born_lock:
            self._born.pop(id(conn), None)
        conn.close()
