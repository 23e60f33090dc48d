"""The small interface every replica engine offers the rest of the POP.

An engine owns the replica file: it bootstraps it on first start (and only then), pulls
what changed at the origin, and hands out read connections. Read connections follow the
Python DB-API (``execute``, ``description``, ``fetchall``), which both the pyturso and the
libSQL bindings implement, so the Hrana executor never needs to know which engine runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class Cursor(Protocol):
    """Rows come one at a time, so a result can be cut off at a size limit."""

    @property
    def description(self) -> Sequence[Sequence[Any]] | None: ...

    def __iter__(self) -> Iterator[Sequence[Any]]: ...


# A DB-API cursor description: one 7-tuple per result column, or None without columns.
Description = tuple[tuple[Any, ...], ...] | None


class Rows:
    """The little of a DB-API cursor the executor uses: a description and lazy rows."""

    def __init__(self, description: Description, rows: Iterator[tuple[Any, ...]]) -> None:
        self.description = description
        self._rows = rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self._rows


class ReadConnection(Protocol):
    """A DB-API connection opened for reading the replica."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def interrupt(self) -> None:
        """Stop the statement running on this connection (called from another thread)."""

    def set_time_slice(self, seconds: float | None) -> None:
        """From now on, for ``seconds``, a statement that would run past them or wait for a
        lock stops with ``OffTheLoop`` instead; ``None`` ends the slice. For work on the
        event loop, which must never wait."""

    def close(self) -> None: ...


class OffTheLoop(BaseException):
    """The work would take longer than its time slice on the event loop (or wait for a
    lock): run it again on a worker thread. Not an ``Exception``, so that no handler of
    a statement's own errors takes it for one."""


def within_slice(
    rows: Iterator[tuple[Any, ...]], ends: float, stopped: tuple[type[Exception], ...]
) -> Iterator[tuple[Any, ...]]:
    """``rows``, stopped with ``OffTheLoop`` once the clock passes ``ends`` (monotonic) or
    when the engine stops them with one of ``stopped`` (its own slice ran out, a lock):
    each row is cheap to step, but many of them are not."""
    try:
        for row in rows:
            if time.monotonic() > ends:
                raise OffTheLoop()
            yield row
    except stopped:
        raise OffTheLoop() from None


class WrongOrigin(Exception):
    """The origin is not one this engine replicates from: retrying cannot help."""


@dataclass(frozen=True, slots=True)
class SyncResult:
    changed: bool
    position: str | None  # engine-specific replication position after the sync


class ReplicaEngine(Protocol):
    name: str
    path: Path
    # Whether position() counts the origin's frames, so that it compares with the
    # replication_index the origin answers a write with.
    follows_replication_index: bool

    def is_bookkeeping(self, name: str) -> bool:
        """Whether a schema object is the engine's own, not the origin's.

        Such objects exist only in the replica file; the inspector leaves them out, so a
        statement naming one is unknown here and the origin answers it as the origin would.
        """

    def open(self) -> None:
        """Open the replica, bootstrapping from the origin only if the file is new."""

    def sync(self) -> SyncResult:
        """Pull what changed at the origin. Blocking: run it off the event loop."""

    def position(self) -> str | None:
        """The replication position as of the last open or sync, if the engine has one.

        Never calls into the engine's library: request paths ask for it while a pull may
        hold the library's locks on another thread (that wait once froze every POP).
        """

    def connect_reader(self) -> ReadConnection:
        """A new connection for reads; it refuses to write (``PRAGMA query_only``)."""

    def stats(self) -> dict[str, Any]:
        """Engine counters as of the last open or sync; like ``position``, never blocks."""

    def close(self) -> None: ...


def replica_size_bytes(path: Path) -> int:
    """Bytes the replica takes on disk, write-ahead log included."""
    total = 0
    for candidate in (path, path.with_name(path.name + "-wal")):
        try:
            total += candidate.stat().st_size
        except FileNotFoundError:
            continue
    return total


# Less room than this on the replica's volume is as good as none: a pull writes pages.
_NEARLY_FULL_BYTES = 1024 * 1024


def volume_full_hint(path: Path) -> str:
    """Why a pull may have failed, when the replica's volume is (nearly) full; else ''."""
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return ""
    free = stats.f_bavail * stats.f_frsize
    if free >= _NEARLY_FULL_BYTES:
        return ""
    return (
        f" (the replica's volume, {path.parent}, has {free} bytes free: it is full; reads "
        "are served from the replica as it stands until there is room again)"
    )
