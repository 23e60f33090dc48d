"""Hrana streams: a client's sequence of requests on one database connection.

A baton names a stream. Each answer carries a fresh baton and the one just used stops
working, so a replayed or concurrent baton is refused instead of silently interleaving
two callers on one transaction. Streams that stay quiet past the idle timeout expire:
their local transaction is rolled back and their origin stream closed.

A baton ends with ``@`` and the name of the POP holding its stream, so that another POP
of the region can pass the call on to it (``pop.http.peers``).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pop.engines.base import ReadConnection
from pop.hrana.errors import ProtocolError
from pop.origin.stream import OriginStream

log = logging.getLogger(__name__)

MAX_STORED_SQL = 1000
# Whether the replica shows, now, a write acknowledged earlier (pop.replica.catch_up).
WriteShown = Callable[[], bool]


class TxnState(enum.Enum):
    """Where a stream's open transaction lives, if it has one."""

    AUTOCOMMIT = "autocommit"
    LOCAL_TXN = "local"  # read-only, on a replica connection the stream holds
    ORIGIN_TXN = "origin"  # held open by the origin on the stream's origin stream


@dataclass(eq=False)
class Stream:
    """Where one client stream stands: stored SQL, and where its transaction lives.

    Its replica connection is changed only by the session (``pop.session``), from what
    the backend reports; its origin stream only by the forwarder, from what the origin
    answered. Everyone else reads ``state``.
    """

    id: str
    sqls: dict[int, str] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)
    # Its stream at the origin (a baton there, a transaction there); the forwarder's.
    origin: OriginStream = field(init=False)
    _local_conn: ReadConnection | None = field(default=None, init=False, repr=False)
    _unseen_write: WriteShown | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.origin = OriginStream(self.id)

    @property
    def state(self) -> TxnState:
        if self.origin.in_transaction:
            return TxnState.ORIGIN_TXN
        if self._local_conn is not None and self._local_conn.in_transaction:
            return TxnState.LOCAL_TXN
        return TxnState.AUTOCOMMIT

    @property
    def local_conn(self) -> ReadConnection | None:
        """The replica connection held while a read-only transaction is open."""
        return self._local_conn

    def await_write(self, shown: WriteShown | None) -> None:
        """A write its client made is acknowledged but not in the replica yet: the
        stream's reads go to the origin until ``shown()`` (None: nothing to wait for)."""
        if shown is not None:
            self._unseen_write = shown

    @property
    def replica_shows_its_writes(self) -> bool:
        """False while a write its client made is not in the replica (read-your-writes)."""
        if self._unseen_write is not None and self._unseen_write():
            self._unseen_write = None
        return self._unseen_write is None

    def touch(self) -> None:
        """A client used it now; its idle time starts again."""
        self.last_used = time.monotonic()

    def hold_local(self, conn: ReadConnection | None) -> None:
        """Keep ``conn`` (left inside a transaction) for the next request; None: none."""
        self._local_conn = conn

    def store_sql(self, sql_id: int, sql: str) -> None:
        if sql_id not in self.sqls and len(self.sqls) >= MAX_STORED_SQL:
            raise ProtocolError(f"a stream may store at most {MAX_STORED_SQL} SQL texts")
        self.sqls[sql_id] = sql

    def resolve_sql(self, sql: str | None, sql_id: int | None) -> str:
        if sql is not None:
            return sql
        assert sql_id is not None  # the message model guarantees one of the two
        try:
            return self.sqls[sql_id]
        except KeyError:
            raise ProtocolError(f"sql_id {sql_id} was not stored on this stream") from None


OWNER_MARK = "@"


def baton_owner(baton: str) -> str | None:
    """The name of the POP a baton says holds its stream, if it names one."""
    _, mark, owner = baton.rpartition(OWNER_MARK)
    return owner if mark else None


class StreamRegistry:
    def __init__(
        self,
        idle_timeout: float,
        on_expire: Callable[[Stream], Awaitable[None]],
        owner: str | None = None,
    ) -> None:
        """``owner``: the name each baton ends with (``baton_owner``), if any."""
        self.idle_timeout = idle_timeout
        self._owner_suffix = f"{OWNER_MARK}{owner}" if owner else ""
        self._on_expire = on_expire
        self._by_baton: dict[str, Stream] = {}
        self._ids = itertools.count(1)
        self._reaper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._by_baton)

    def open(self, sqls: dict[int, str] | None = None) -> Stream:
        """A new stream; ``sqls``: SQL texts it shares (a WebSocket connection's)."""
        # The id only names the stream in logs; the unguessable part is the baton's.
        return Stream(id=f"s{next(self._ids)}", sqls={} if sqls is None else sqls)

    def take(self, baton: str) -> Stream:
        """Claim the stream a baton names; the baton is spent by this call."""
        stream = self._by_baton.pop(baton, None)
        if stream is None:
            raise ProtocolError(
                "the baton is unknown: its stream was closed, expired after "
                f"{self.idle_timeout:g} s without requests, or the baton was already used",
                code="STREAM_EXPIRED",
            )
        stream.touch()
        return stream

    def park(self, stream: Stream) -> str:
        """Keep the stream for the client's next call; returns the baton naming it."""
        baton = f"{stream.id}.{secrets.token_urlsafe(18)}{self._owner_suffix}"
        stream.touch()
        self._by_baton[baton] = stream
        return baton

    def start(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_forever(), name="stream-reaper")

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        streams = list(self._by_baton.values())
        self._by_baton.clear()
        for stream in streams:
            await self._on_expire(stream)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.idle_timeout / 2))
            await self.reap()

    async def reap(self) -> None:
        deadline = time.monotonic() - self.idle_timeout
        expired = [(b, s) for b, s in self._by_baton.items() if s.last_used < deadline]
        for baton, stream in expired:
            del self._by_baton[baton]
            log.info("stream expired", extra={"stream": stream.id})
            try:
                await self._on_expire(stream)
            except Exception:
                log.exception("cleaning up an expired stream failed")
