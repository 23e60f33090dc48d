"""libSQL's replica connection, kept in a child process of its own.

``libsql-experimental`` holds Python's GIL for the whole of ``sync()``: pulling a large
change takes seconds, and in the POP's process it would stop every read and the event
loop with them (measured: one tick of a 5 ms timer during a 5.5 s sync of 100 MB). In a
child process it stops nothing, and a sync stuck on a stalled origin can be killed.

The child applies frames to the replica file; the POP reads the same file with plain
SQLite, and the position from the index libSQL keeps beside it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

_STOP = "stop"
_SYNC = "sync"


class SyncProcess:
    """One child process that connects to the origin on its first sync and keeps going."""

    def __init__(self, path: str, sync_url: str, auth_token: str) -> None:
        # Spawned, not forked: the POP has threads, and a fork copies their locks.
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child, path, sync_url, auth_token),  # by pipe, not argv: no token in ps
            name="libsql-sync",
            daemon=True,
        )
        self._process.start()
        child.close()

    def sync(self, timeout: float | None) -> None:
        """Pull what the origin has; raises ``RuntimeError`` with libSQL's reason."""
        self._conn.send(_SYNC)
        if not self._conn.poll(timeout):
            self.kill()
            raise RuntimeError(f"libSQL sync did not answer within {timeout:g} s; stopped it")
        try:
            ok, error = self._conn.recv()
        except EOFError:
            raise RuntimeError("the libSQL sync process died") from None
        if not ok:
            raise RuntimeError(error)

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        with contextlib.suppress(OSError):  # a dead child's pipe is already closed
            self._conn.send(_STOP)
        self._process.join(timeout)
        self.kill()

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()


def _serve(conn: Connection, path: str, sync_url: str, auth_token: str) -> None:
    import libsql_experimental

    replica: Any = None
    while True:
        try:
            request = conn.recv()
        except EOFError:  # the POP is gone
            break
        if request == _STOP:
            break
        try:
            if replica is None:
                replica = libsql_experimental.connect(
                    path, sync_url=sync_url, auth_token=auth_token
                )
            replica.sync()
            conn.send((True, None))
        except Exception as exc:
            conn.send((False, str(exc) or type(exc).__name__))
    if replica is not None:
        replica.close()
