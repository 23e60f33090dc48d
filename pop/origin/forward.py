"""Forwarding a stream's requests to the origin, adapted to what the origin serves.

Whether the origin is inside a transaction after a request is asked of the origin, never
guessed from the statements sent (a failed step, a skipped ``COMMIT`` or a ``SAVEPOINT``
leaves one open whatever the keywords say): a stream-keeping origin answers
``get_autocommit`` in the same pipeline; on ``tursodb``, whose one shared connection
keeps no streams, a last batch step conditioned on ``is_autocommit`` rolls back whatever
the request left open (or, for ``edge-pop gateway``, which holds transactions itself,
reports it).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from pop.hrana.errors import HranaError, OriginStreamLost, is_sqld_code, sqlite_error
from pop.hrana.messages import (
    AndCond,
    Batch,
    BatchCond,
    ErrorCond,
    NotCond,
    OkCond,
    OrCond,
)
from pop.hrana.values import encode_value
from pop.local.binding import positional_args
from pop.origin.client import WRITE_FACTS_SQL, Dialect, OriginClient
from pop.origin.stream import OriginStream
from pop.sql.inspector import Kind, SqlInspector, StatementInfo
from pop.sql.prepared import Prepared
from pop.sql.script import numbered_parameters

# Codes an origin without sqld's codes (tursodb) puts on SQLite errors.
_ENGINE_CODES = frozenset({"", "PREPARE_ERROR", "EXECUTE_ERROR", "BATCH_STEP_ERROR"})
_COMPILE_PREFIXES = ("Parse error: ", "Invalid argument supplied: ")


# Sent in place of a step whose arguments do not fit: it fails to compile anywhere, with
# no effect, so the origin evaluates later steps' conditions as sqld would.
_FAILS_TO_COMPILE = "SELECT edge_pop_arguments_do_not_fit()"
_NOT_AUTOCOMMIT = {"type": "not", "cond": {"type": "is_autocommit"}}
_OPENS = frozenset({Kind.BEGIN_READ, Kind.BEGIN_DEFERRED, Kind.BEGIN_WRITE, Kind.SAVEPOINT})

log = logging.getLogger(__name__)


class Forwarder:
    def __init__(
        self, client: OriginClient, inspector: SqlInspector, *, holds_transactions: bool = False
    ) -> None:
        """``holds_transactions``: on an origin without streams, leave a transaction a
        request opened open (``edge-pop gateway``, which serializes its clients), rather
        than roll it back (a POP, which must never leave the shared connection inside one).
        """
        self.client = client
        self._inspector = inspector
        self._holds_transactions = holds_transactions

    async def execute(
        self, stream: OriginStream, stmt: Prepared, *, then_close: bool = False
    ) -> dict[str, Any]:
        """Run one statement at the origin; returns a Hrana statement result.

        ``then_close`` (here and below): the client closes its stream right after, so the
        origin stream is closed in the same round trip instead of one more.
        """
        if await self.client.keeps_streams():
            result = await self._on_stream(
                stream, {"type": "execute", "stmt": _stmt_json(stmt)}, [stmt.info], then_close
            )
            return dict(result["result"])
        outcome = await self._basic_batch(stream, [(None, stmt)])
        error = outcome["step_errors"][0]
        if error is not None:
            raise HranaError(error["message"], error["code"])
        return dict(outcome["step_results"][0])

    async def batch(
        self,
        stream: OriginStream,
        batch: Batch,
        steps: list[Prepared],
        *,
        then_close: bool = False,
    ) -> dict[str, Any]:
        """Run ``batch``, whose steps' statements are ``steps``."""
        conditioned = [
            (step.condition, stmt) for step, stmt in zip(batch.steps, steps, strict=True)
        ]
        if await self.client.keeps_streams():
            sent = [
                {"stmt": _stmt_json(stmt), **_condition_json(condition, None)}
                for condition, stmt in conditioned
            ]
            request = {"type": "batch", "batch": {"steps": sent}}
            infos = [stmt.info for stmt in steps]
            result = await self._on_stream(stream, request, infos, then_close)
            return self._normalized_batch(dict(result["result"]), infos)
        return await self._basic_batch(stream, conditioned)

    async def sequence(
        self,
        stream: OriginStream,
        script: str,
        statements: list[Prepared],
        *,
        then_close: bool = False,
    ) -> None:
        """Run ``script`` (split into ``statements``) at the origin, up to its first error."""
        if await self.client.keeps_streams():
            # The origin gets the script as the client wrote it and splits it itself.
            request = {"type": "sequence", "sql": script}
            await self._on_stream(stream, request, [stmt.info for stmt in statements], then_close)
            return
        outcome = await self._basic_batch(
            stream,
            [
                (OkCond(type="ok", step=index - 1) if index else None, stmt)
                for index, stmt in enumerate(statements)
            ],
        )
        for error in outcome["step_errors"]:
            if error is not None:
                raise HranaError(error["message"], error["code"])

    async def describe(self, stream: OriginStream, sql: str) -> dict[str, Any]:
        if not await self.client.keeps_streams():
            raise HranaError(
                f"cannot describe this statement: {self._inspector.inspect(sql).error}",
                "SQLITE_ERROR",
            )
        result = await self._on_stream(stream, {"type": "describe", "sql": sql})
        return dict(result["result"])

    async def get_autocommit(self, stream: OriginStream) -> bool:
        result = await self._on_stream(stream, {"type": "get_autocommit"})
        return bool(result["is_autocommit"])

    async def close(self, stream: OriginStream) -> None:
        baton = stream.ended()
        if baton is not None:
            await self.client.close_stream(baton)

    async def roll_back(self, stream: OriginStream) -> None:
        """End the transaction a stream holds on an origin without streams (the gateway's
        shared connection), when the stream closes or expires."""
        if stream.in_transaction:
            stream.ended()
            await self.client.pipeline(None, [{"type": "execute", "stmt": {"sql": "ROLLBACK"}}])

    async def _on_stream(
        self,
        stream: OriginStream,
        request: dict[str, Any],
        statements: Sequence[StatementInfo] = (),
        then_close: bool = False,
    ) -> dict[str, Any]:
        """Send ``request`` on the stream's origin stream, holding ``statements``; with
        ``then_close``, close that stream after it (the origin rolls back what is open)."""
        requests = [request]
        asks = self.client.dialect is Dialect.V3 and request["type"] != "get_autocommit"
        if asks:
            requests.append({"type": "get_autocommit"})
        if then_close:
            requests.append({"type": "close"})
        try:
            baton, results = await self.client.pipeline(stream.baton, requests)
        except OriginStreamLost:
            # Nothing is left of it at the origin: not to be closed, nor held open.
            stream.ended()
            raise
        stream.answered(baton)
        if asks and results[1].get("type") == "ok":
            stream.transaction_is(not results[1]["response"]["is_autocommit"])
        elif request["type"] != "get_autocommit":
            # Hrana 2 has no get_autocommit: the statements sent are all there is to go by.
            _follow_keywords(stream, statements)
        if then_close:
            stream.ended()
        outcome = results[0]
        if outcome.get("type") == "error":
            first = statements[0] if statements else None
            raise self._normalized_error(outcome.get("error") or {}, first)
        response: dict[str, Any] = outcome.get("response") or {}
        return response

    async def _basic_batch(
        self, stream: OriginStream, steps: list[tuple[BatchCond | None, Prepared]]
    ) -> dict[str, Any]:
        """A batch for an origin without streams, with write facts asked after each write.

        Step ``i`` becomes step ``2i``; step ``2i+1`` reads ``changes()`` and
        ``last_insert_rowid()`` when step ``2i`` was an INSERT, UPDATE or DELETE that
        succeeded (the origin reports neither; sqld reports them for those only). A last
        step finds the connection inside a transaction, and rolls it back (see the module
        docstring).
        """
        sent: list[dict[str, Any]] = []
        infos = [stmt.info for _, stmt in steps]
        unbound: dict[int, HranaError] = {}
        for index, (condition, prepared) in enumerate(steps):
            try:
                stmt = _positional_stmt_json(prepared)
            except HranaError as exc:
                # sqld fails this step when binding it, after the steps before it ran;
                # the stand-in fails alike there, and its error is replaced by this one.
                unbound[index] = exc
                stmt = {"sql": _FAILS_TO_COMPILE}
            sent.append({"stmt": stmt, **_condition_json(condition, 2)})
            counts = prepared.info.sqld.counts_changes and index not in unbound
            sent.append(
                {
                    "stmt": {"sql": WRITE_FACTS_SQL, "want_rows": True},
                    "condition": _ran_ok(2 * index) if counts else _never(2 * index),
                }
            )
        end = "SELECT 1" if self._holds_transactions else "ROLLBACK"
        sent.append({"stmt": {"sql": end}, "condition": _NOT_AUTOCOMMIT})
        _, results = await self.client.pipeline(None, [{"type": "batch", "batch": {"steps": sent}}])
        outcome = results[0]
        if outcome.get("type") == "error":
            raise self._normalized_error(outcome.get("error") or {}, None)
        raw = outcome["response"]["result"]
        left_open = raw["step_results"][-1] is not None
        stream.transaction_is(left_open and self._holds_transactions)
        if left_open and not self._holds_transactions:
            log.info(
                "a forwarded request left the origin inside a transaction; rolled back",
                extra={"stream": stream.name, "statements": len(steps)},
            )
        step_results: list[dict[str, Any] | None] = []
        step_errors: list[dict[str, Any] | None] = []
        ran: list[StatementInfo] = []
        for index, info in enumerate(infos):
            result = raw["step_results"][2 * index]
            error = raw["step_errors"][2 * index]
            facts = raw["step_results"][2 * index + 1]
            if result is not None:
                changes, rowid = facts["rows"][0] if facts and facts.get("rows") else (None, None)
                result = {
                    **result,
                    "affected_row_count": int(changes["value"]) if changes else 0,
                    "last_insert_rowid": rowid["value"]
                    if rowid and info.sqld.reports_rowid and rowid.get("type") == "integer"
                    else None,
                }
            if index in unbound:
                error = unbound[index].to_json() if error else None
            elif error:
                error = self._normalized_error(error, info, ran).to_json()
            if result is not None:
                ran.append(info)
            step_results.append(result)
            step_errors.append(error)
        return {"step_results": step_results, "step_errors": step_errors, "replication_index": None}

    def _normalized_batch(
        self, result: dict[str, Any], infos: list[StatementInfo]
    ) -> dict[str, Any]:
        ran: list[StatementInfo] = []
        errors: list[dict[str, Any] | None] = []
        for error, done, info in zip(
            result.get("step_errors", []), result.get("step_results", []), infos, strict=False
        ):
            errors.append(self._normalized_error(error, info, ran).to_json() if error else None)
            if done is not None:
                ran.append(info)
        result["step_errors"] = errors
        return result

    def _normalized_error(
        self,
        error: dict[str, Any],
        info: StatementInfo | None,
        ran: Sequence[StatementInfo] = (),
    ) -> HranaError:
        """An origin's error with the code sqld gives, whatever the origin sent."""
        message = str(error.get("message") or "the origin reported an error without a message")
        code = str(error.get("code") or "")
        if is_sqld_code(code) or not (code in _ENGINE_CODES or code.startswith("SQLITE_")):
            return HranaError(message, code)
        if info is None:
            return sqlite_error(message)
        # tursodb marks what failed while compiling by code or, within a batch, by prefix.
        failed_to_compile = code == "PREPARE_ERROR" or message.startswith(_COMPILE_PREFIXES)
        # Compiled against the schema the origin had: earlier steps may have changed it.
        ahead = self._inspector.after(statement.sql for statement in ran)
        if ahead is not self._inspector:
            info = ahead.inspect(info.sql)
        return info.compile_error(message, failed_to_compile=failed_to_compile)


def _follow_keywords(stream: OriginStream, statements: Sequence[StatementInfo]) -> None:
    """On Hrana 2, which cannot be asked, what the statements sent say of the transaction."""
    for info in statements:
        if info.kind in _OPENS:
            stream.transaction_is(True)
        elif info.kind is Kind.END_TRANSACTION:
            stream.transaction_is(False)


def _stmt_json(stmt: Prepared) -> dict[str, Any]:
    """A statement for an origin that keeps streams: it binds the arguments itself."""
    return {
        "sql": stmt.sql,
        "want_rows": stmt.stmt.want_rows,
        "args": [encode_value(value) for value in stmt.stmt.args],
        "named_args": [
            {"name": arg.name, "value": encode_value(arg.value)} for arg in stmt.stmt.named_args
        ],
    }


def _positional_stmt_json(stmt: Prepared) -> dict[str, Any]:
    """A statement for ``tursodb``, which drops named arguments: every value in place.

    Raises ``HranaError`` (``ARGS_INVALID`` …) where the arguments do not fit, as sqld
    would when binding them.
    """
    info = stmt.info
    if info.kind is Kind.UNKNOWN:  # not compiled here: numbered from its tokens
        names = numbered_parameters(info.sql)
        info = dataclasses.replace(info, param_names=names, param_count=len(names))
    args = [encode_value(value) for value in positional_args(stmt.stmt, info)]
    return {"sql": info.sql, "want_rows": stmt.stmt.want_rows, "args": args}


def _ran_ok(step: int) -> dict[str, Any]:
    return {"type": "ok", "step": step}


def _never(step: int) -> dict[str, Any]:
    """A condition that never holds (a step cannot both succeed and fail)."""
    return {"type": "and", "conds": [_ran_ok(step), {"type": "error", "step": step}]}


def _condition_json(cond: BatchCond | None, scale: int | None) -> dict[str, Any]:
    """A condition as JSON, its step numbers multiplied by ``scale`` when steps moved."""
    if cond is None:
        return {}
    return {"condition": _cond(cond, scale or 1)}


def _cond(cond: BatchCond, scale: int) -> dict[str, Any]:
    if isinstance(cond, OkCond | ErrorCond):
        return {"type": cond.type, "step": cond.step * scale}
    if isinstance(cond, NotCond):
        return {"type": "not", "cond": _cond(cond.cond, scale)}
    if isinstance(cond, AndCond | OrCond):
        return {"type": cond.type, "conds": [_cond(inner, scale) for inner in cond.conds]}
    return {"type": "is_autocommit"}
