"""Deciding, request by request, whether the replica or the origin answers.

Reads run on the local replica; anything that writes, or a transaction that may write,
runs on the origin; a transaction never runs half here and half there. SQLite's compiler
(``pop.sql.inspector``) says what a statement does.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pop.engines.base import ReadConnection
from pop.hrana.errors import HranaError, OriginUnavailable
from pop.hrana.messages import (
    BatchReq,
    CloseSqlReq,
    DescribeReq,
    ExecuteReq,
    GetAutocommitReq,
    SequenceReq,
    Stmt,
    StoreSqlReq,
    StreamRequest,
)
from pop.local.binding import args_refusal, parameter_display_names
from pop.local.executor import LocalExecutor, run_batch
from pop.local.pool import ReaderPool
from pop.local.runner import Done, LocalRunner
from pop.origin.forward import Forwarder
from pop.session import Handled, Route
from pop.sql.inspector import Kind, SqlInspector, StatementInfo
from pop.sql.script import split_script
from pop.streams import Stream, TxnState

log = logging.getLogger(__name__)
T = TypeVar("T")


# A lone statement may start a local transaction only if it says READONLY; a batch shows
# all its statements up front, so a deferred transaction of reads can stay local too.
_LOCAL_ALONE = frozenset({Kind.READ, Kind.BEGIN_READ, Kind.END_TRANSACTION})
_LOCAL_IN_BATCH = _LOCAL_ALONE | {Kind.BEGIN_DEFERRED}
_OPENS_TRANSACTION = frozenset(
    {Kind.BEGIN_READ, Kind.BEGIN_DEFERRED, Kind.BEGIN_WRITE, Kind.SAVEPOINT}
)


class Router:
    def __init__(
        self,
        inspector: SqlInspector,
        pool: ReaderPool,
        runner: LocalRunner,
        executor: LocalExecutor,
        forwarder: Forwarder,
        after_origin_write: Callable[[str | None], Awaitable[None]],
        replica_is_current: Callable[[], bool],
    ) -> None:
        self._inspector = inspector
        self._pool = pool
        self._runner = runner
        self._executor = executor
        self._forwarder = forwarder
        self._after_origin_write = after_origin_write
        # False while the replica is known to lack a write this POP acknowledged (its
        # catch-up sync failed): reads then go to the origin, so read-your-writes holds.
        self._replica_is_current = replica_is_current

    async def handle(self, stream: Stream, request: StreamRequest) -> Handled:
        """Run one stream request; raises ``HranaError`` for a per-request error."""
        if isinstance(request, ExecuteReq):
            sql = stream.resolve_sql(request.stmt.sql, request.stmt.sql_id)
            info = self._inspector.inspect(sql)
            _refuse_as_sqld(info, request.stmt)
            if self._choose(stream, [info], _LOCAL_ALONE) is Route.LOCAL:
                done = await self._locally(
                    stream, lambda conn: self._executor.execute(conn, request.stmt, info)
                )
                return Handled({"type": "execute", "result": done.value}, Route.LOCAL, done)
            await self._check_origin_can_hold(stream, [info], whole=False)
            result = await self._at_origin(
                stream, [info], self._forwarder.execute(stream.origin, request.stmt, sql)
            )
            return Handled({"type": "execute", "result": result}, Route.ORIGIN)
        if isinstance(request, BatchReq):
            sqls = [stream.resolve_sql(s.stmt.sql, s.stmt.sql_id) for s in request.batch.steps]
            infos = [self._inspector.inspect(sql) for sql in sqls]
            for step, info in zip(request.batch.steps, infos, strict=True):
                _refuse_as_sqld(info, step.stmt)  # sqld checks every step before running any
            if self._choose(stream, infos, _LOCAL_IN_BATCH) is Route.LOCAL:
                by_stmt = dict(zip((id(s.stmt) for s in request.batch.steps), infos, strict=True))
                done = await self._locally(
                    stream,
                    lambda conn: run_batch(
                        request.batch,
                        lambda stmt: self._executor.execute(conn, stmt, by_stmt[id(stmt)]),
                        lambda: not conn.in_transaction,
                    ),
                )
                return Handled({"type": "batch", "result": done.value}, Route.LOCAL, done)
            await self._check_origin_can_hold(stream, infos, whole=True)
            result = await self._at_origin(
                stream, infos, self._forwarder.batch(stream.origin, request.batch, sqls)
            )
            return Handled({"type": "batch", "result": result}, Route.ORIGIN)
        if isinstance(request, SequenceReq):
            script = stream.resolve_sql(request.sql, request.sql_id)
            statements = split_script(script)
            infos = [self._inspector.inspect(sql) for sql in statements]
            for info in infos:  # sqld parses the whole script before it runs any of it
                refusal = info.refused()
                if refusal is not None:
                    raise refusal
            if self._choose(stream, infos, _LOCAL_IN_BATCH) is Route.LOCAL:
                ran = await self._locally(
                    stream, lambda conn: self._executor.run_script(conn, infos)
                )
                return Handled({"type": "sequence"}, Route.LOCAL, ran)
            await self._check_origin_can_hold(stream, infos, whole=True)
            await self._at_origin(
                stream, infos, self._forwarder.sequence(stream.origin, script, statements)
            )
            return Handled({"type": "sequence"}, Route.ORIGIN)
        if isinstance(request, DescribeReq):
            return await self._describe(stream, stream.resolve_sql(request.sql, request.sql_id))
        if isinstance(request, StoreSqlReq):
            stream.store_sql(request.sql_id, request.sql)
            return Handled({"type": "store_sql"}, Route.NONE)
        if isinstance(request, CloseSqlReq):
            stream.sqls.pop(request.sql_id, None)
            return Handled({"type": "close_sql"}, Route.NONE)
        if isinstance(request, GetAutocommitReq):
            state = stream.state
            if state is TxnState.ORIGIN_TXN and stream.origin.baton is not None:
                autocommit = await self._forwarder.get_autocommit(stream.origin)
                return Handled(
                    {"type": "get_autocommit", "is_autocommit": autocommit}, Route.ORIGIN
                )
            return Handled(
                {"type": "get_autocommit", "is_autocommit": state is TxnState.AUTOCOMMIT},
                Route.LOCAL,
            )
        raise HranaError(f"unsupported request type {request.type!r}", "HRANA_PROTO_ERROR")

    def holding(self, stream: Stream) -> contextlib.AbstractAsyncContextManager[None]:
        # Streams share nothing here: each has its own replica connection or origin stream.
        return contextlib.nullcontext()

    async def release(self, stream: Stream) -> None:
        """Free what a closed or expired stream holds, here and at the origin."""
        if stream.local_conn is not None:
            self._pool.give_back(stream.local_conn)
        await self._forwarder.close(stream.origin)

    def _choose(
        self, stream: Stream, infos: list[StatementInfo], local_kinds: frozenset[Kind]
    ) -> Route:
        state = stream.state
        if state is TxnState.ORIGIN_TXN:
            return Route.ORIGIN
        if state is TxnState.LOCAL_TXN:
            for info in infos:
                if info.kind not in _LOCAL_IN_BATCH:
                    raise _not_in_read_transaction(info)
            return Route.LOCAL
        if (
            all(info.kind in local_kinds for info in infos)
            and not _leaves_deferred_open(infos)
            and self._replica_is_current()
        ):
            return Route.LOCAL
        return Route.ORIGIN

    async def _check_origin_can_hold(
        self, stream: Stream, infos: list[StatementInfo], *, whole: bool
    ) -> None:
        """On an origin without streams, a transaction must begin and end in one request."""
        if await self._forwarder.client.keeps_streams():
            return
        opens = any(info.kind in _OPENS_TRANSACTION for info in infos)
        ends = any(info.kind is Kind.END_TRANSACTION for info in infos)
        if opens and not (whole and ends):
            raise HranaError(
                f"the origin {self._forwarder.client.base_url} does not keep streams, so a "
                "write transaction cannot stay open across requests there; send it as one "
                "batch (e.g. client.batch([...], 'write')) or use an origin that keeps streams",
                "TRANSACTION_NOT_SUPPORTED",
            )

    async def _locally(self, stream: Stream, work: Callable[[ReadConnection], T]) -> Done[T]:
        """Run on the stream's own connection, or a pooled one, on a worker thread; the
        session keeps the connection the work leaves inside a transaction."""
        return await self._runner.run(stream.local_conn, work)

    async def _at_origin(
        self, stream: Stream, infos: list[StatementInfo], call: Awaitable[Any]
    ) -> Any:
        started = time.perf_counter()
        outcome = "error"
        reached_origin = True
        was_in_transaction = stream.origin.in_transaction
        index: str | None = None
        try:
            result = await call
            outcome = "ok"
            index = _replication_index(result)
        except OriginUnavailable:
            reached_origin = False
            raise
        finally:
            log.info(
                "forwarded to origin",
                extra={
                    "stream": stream.id,
                    "statements": len(infos),
                    "writes": sum(not info.is_read for info in infos),
                    "outcome": outcome,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            if reached_origin and _may_have_committed(
                infos, was_in_transaction, stream.origin.in_transaction
            ):
                # Read-your-writes: the replica catches up before the client hears back,
                # after an error too, since a sequence that failed midway applied the
                # statements before its error.
                await self._after_origin_write(index)
        return result

    async def _describe(self, stream: Stream, sql: str) -> Handled:
        # sqld describes with SQLite itself, not its parser: empty text describes as an
        # empty statement, and of several statements the first is described.
        statements = split_script(sql)
        if not statements:
            empty = {"params": [], "cols": [], "is_explain": False, "is_readonly": True}
            return Handled({"type": "describe", "result": empty}, Route.NONE)
        info = self._inspector.inspect(statements[0])
        if info.kind in (Kind.UNKNOWN, Kind.REFUSED):
            result = await self._forwarder.describe(stream.origin, sql)
            return Handled({"type": "describe", "result": result}, Route.ORIGIN)
        result = {
            "params": [{"name": name} for name in parameter_display_names(sql, info)],
            "cols": [{"name": col.name, "decltype": col.decltype} for col in info.columns],
            "is_explain": info.is_explain,
            "is_readonly": info.is_read or info.kind in (Kind.END_TRANSACTION, Kind.BEGIN_DEFERRED),
        }
        return Handled({"type": "describe", "result": result}, Route.LOCAL)


def _replication_index(result: Any) -> str | None:
    """The origin's replication index after a forwarded call, if it gave one."""
    index = result.get("replication_index") if isinstance(result, dict) else None
    return index if isinstance(index, str) and index.isdigit() else None


def _may_have_committed(
    infos: list[StatementInfo], was_in_transaction: bool, is_in_transaction: bool
) -> bool:
    """Whether a forwarded request may have committed a write at the origin.

    Whether the stream is inside a transaction there, before and after, is what the
    origin said (the forwarder asks it), not what the statements suggest: only writes
    made wholly inside a transaction that was open before and is still open after are
    surely not visible yet. (``INSERT ...; BEGIN`` committed its insert and left a
    transaction open.)
    """
    if not any(not info.is_read for info in infos):
        return False
    ends = any(info.kind in (Kind.END_TRANSACTION, Kind.RELEASE) for info in infos)
    return ends or not (was_in_transaction and is_in_transaction)


def _refuse_as_sqld(info: StatementInfo, stmt: Stmt) -> None:
    """Raise the error sqld gives a statement before it runs anything, if any."""
    refusal = info.refused() or args_refusal(stmt)
    if refusal is not None:
        raise refusal


def _leaves_deferred_open(infos: list[StatementInfo]) -> bool:
    """A deferred transaction still open after the request may write later: origin."""
    open_deferred = False
    for info in infos:
        if info.kind is Kind.BEGIN_DEFERRED:
            open_deferred = True
        elif info.kind is Kind.END_TRANSACTION:
            open_deferred = False
    return open_deferred


def _not_in_read_transaction(info: StatementInfo) -> HranaError:
    if info.kind is Kind.UNKNOWN:
        return HranaError(
            f"cannot run this statement inside a read-only transaction: {info.error}",
            "SQLITE_ERROR",
        )
    return HranaError(
        "attempt to write inside a read-only transaction (BEGIN ... READONLY); "
        "commit it first, then write",
        "SQLITE_READONLY",
    )
