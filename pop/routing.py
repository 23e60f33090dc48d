"""The POP's backend: each request prepared once, placed, and run on the replica or
forwarded to the origin.

Each statement is resolved and inspected once (``pop.sql.prepared``); ``pop.placement``
decides where the request runs from those and the stream's state; the local executor or
the forwarder runs the same prepared statements.
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
from pop.hrana.result_size import ResultMeter
from pop.local.binding import parameter_display_names
from pop.local.executor import LocalExecutor, run_batch
from pop.local.pool import ReaderPool
from pop.local.runner import Done, LocalRunner
from pop.origin.forward import Forwarder
from pop.placement import may_have_committed, origin_refusal, place, sqld_refusal
from pop.session import Handled, Route
from pop.sql.inspector import Kind, SqlInspector
from pop.sql.prepared import Prepared
from pop.sql.script import split_script
from pop.streams import Stream, TxnState

log = logging.getLogger(__name__)
T = TypeVar("T")


class Router:
    def __init__(
        self,
        inspector: SqlInspector,
        pool: ReaderPool,
        runner: LocalRunner,
        executor: LocalExecutor,
        forwarder: Forwarder,
    ) -> None:
        self._inspector = inspector
        self._pool = pool
        self._runner = runner
        self._executor = executor
        self._forwarder = forwarder

    async def handle(
        self, stream: Stream, request: StreamRequest, *, closing: bool = False
    ) -> Handled:
        """Run one stream request; raises ``HranaError`` for a per-request error.
        ``closing``: the client's close comes next; a forwarded request takes it along."""
        if isinstance(request, ExecuteReq):
            stmt = self._prepare(stream, request.stmt)
            _refuse_as_sqld([stmt])
            if self._place(stream, [stmt], alone=True) is Route.LOCAL:
                meter = self._executor.meter()
                done = await self._locally(
                    stream, [stmt], lambda conn: self._executor.execute(conn, stmt, meter), meter
                )
                return Handled({"type": "execute", "result": done.value}, Route.LOCAL, done)
            await self._check_origin_can_hold([stmt], whole=False)
            return await self._at_origin(
                stream,
                [stmt],
                self._forwarder.execute(stream.origin, stmt, then_close=closing),
                lambda result: {"type": "execute", "result": result},
            )
        if isinstance(request, BatchReq):
            steps = [self._prepare(stream, step.stmt) for step in request.batch.steps]
            _refuse_as_sqld(steps)  # sqld checks every step before running any
            if self._place(stream, steps, alone=False) is Route.LOCAL:
                meter = self._executor.meter()
                done = await self._locally(
                    stream,
                    steps,
                    lambda conn: run_batch(
                        request.batch,
                        lambda index: self._executor.execute(conn, steps[index], meter),
                        lambda: not conn.in_transaction,
                    ),
                    meter,
                )
                return Handled({"type": "batch", "result": done.value}, Route.LOCAL, done)
            await self._check_origin_can_hold(steps, whole=True)
            return await self._at_origin(
                stream,
                steps,
                self._forwarder.batch(stream.origin, request.batch, steps, then_close=closing),
                lambda result: {"type": "batch", "result": result},
            )
        if isinstance(request, SequenceReq):
            script = stream.resolve_sql(request.sql, request.sql_id)
            statements = Prepared.script(self._inspector, split_script(script))
            for statement in statements:  # sqld parses the whole script before it runs any
                refusal = statement.info.refused()
                if refusal is not None:
                    raise refusal
            if self._place(stream, statements, alone=False) is Route.LOCAL:
                ran = await self._locally(
                    stream, statements, lambda conn: self._executor.run_script(conn, statements)
                )
                return Handled({"type": "sequence"}, Route.LOCAL, ran)
            await self._check_origin_can_hold(statements, whole=True)
            return await self._at_origin(
                stream,
                statements,
                self._forwarder.sequence(stream.origin, script, statements, then_close=closing),
                lambda _: {"type": "sequence"},
            )
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

    def _prepare(self, stream: Stream, stmt: Stmt) -> Prepared:
        return Prepared.of(self._inspector, stmt, stream.resolve_sql(stmt.sql, stmt.sql_id))

    def _place(self, stream: Stream, statements: list[Prepared], *, alone: bool) -> Route:
        return place(
            [statement.info for statement in statements],
            stream.state,
            alone=alone,
            replica_shows_its_writes=stream.replica_shows_its_writes,
        )

    async def _check_origin_can_hold(self, statements: list[Prepared], *, whole: bool) -> None:
        refusal = origin_refusal(
            [statement.info for statement in statements],
            keeps_streams=await self._forwarder.client.keeps_streams(),
            whole=whole,
            origin=self._forwarder.client.base_url,
        )
        if refusal is not None:
            raise refusal

    async def _locally(
        self,
        stream: Stream,
        statements: list[Prepared],
        work: Callable[[ReadConnection], T],
        meter: ResultMeter | None = None,
    ) -> Done[T]:
        """Run on the stream's own connection, or a pooled one; the session keeps the
        connection the work leaves inside a transaction. Plain reads, which leave none
        and can be stopped and run again, are tried on the event loop first."""
        return await self._runner.run(
            stream.local_conn,
            work,
            loop_first=all(
                statement.info.kind is Kind.READ and not statement.info.sets_connection_state
                for statement in statements
            ),
            before_rerun=meter.rewind if meter is not None else None,
        )

    async def _at_origin(
        self,
        stream: Stream,
        statements: list[Prepared],
        call: Awaitable[Any],
        answer: Callable[[Any], dict[str, Any]],
    ) -> Handled:
        """Forward; the answer says whether a write may have committed there, so that
        the session has the replica catch up before the client hears back (after an
        error too: a sequence that failed midway applied the statements before it)."""
        started = time.perf_counter()
        was_in_transaction = stream.origin.in_transaction
        result: Any = None
        failure: Exception | None = None
        try:
            result = await call
        except OriginUnavailable:
            self._log_forwarded(stream, statements, "unreachable", started)
            raise  # it never reached the origin: nothing there to catch up with
        except Exception as exc:
            failure = exc
        self._log_forwarded(stream, statements, "error" if failure else "ok", started)
        wrote = may_have_committed(
            [statement.info for statement in statements],
            was_in_transaction,
            stream.origin.in_transaction,
        )
        if failure is not None:
            return Handled({}, Route.ORIGIN, wrote=wrote, failure=failure)
        index = _replication_index(result)
        return Handled(answer(result), Route.ORIGIN, wrote=wrote, replication_index=index)

    def _log_forwarded(
        self, stream: Stream, statements: list[Prepared], outcome: str, started: float
    ) -> None:
        log.info(
            "forwarded to origin",
            extra={
                "stream": stream.id,
                "statements": len(statements),
                "writes": sum(not statement.info.is_read for statement in statements),
                "outcome": outcome,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )

    async def _describe(self, stream: Stream, sql: str) -> Handled:
        # sqld describes with SQLite itself, not its parser: empty text describes as an
        # empty statement, and of several statements the first is described.
        statements = split_script(sql)
        if not statements:
            empty = {"params": [], "cols": [], "is_explain": False, "is_readonly": True}
            return Handled({"type": "describe", "result": empty}, Route.NONE)
        info = self._inspector.inspect(statements[0])
        failure = info.fails()
        if failure is not None:
            raise failure
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


def _refuse_as_sqld(statements: list[Prepared]) -> None:
    """Raise the first error sqld gives these statements before running any, if any."""
    for statement in statements:
        refusal = sqld_refusal(statement)
        if refusal is not None:
            raise refusal
