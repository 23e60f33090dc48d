"""The original program's ``POST /`` API, answered as ``sqld`` answers it.

``{"statements": [sql | {"q": sql, "params": [...] | {...}}]}`` runs the statements in
order, each in autocommit, and stops at the first error: that entry is
``{"error": "message"}`` and the ones after it are ``null``, not run. Some requests are
refused whole, before anything runs, with an HTTP error and ``{"error": ...}``: text
``sqld`` cannot parse or does not serve (500); more than one statement in one string, a
savepoint release, or statements that leave a transaction open (400).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import orjson

from pop.hrana.errors import HranaError, ProtocolError
from pop.hrana.messages import Batch, BatchStep, LegacyBody, LegacyQuery, NamedArg, OkCond, Stmt
from pop.hrana.values import SqlValue, decode_blob
from pop.sql.inspector import Kind, StatementInfo

# What sqld answers where a statement is empty (SQLite's message for "no error").
_EMPTY_STATEMENT = "not an error"
_OPENS = frozenset({Kind.BEGIN_READ, Kind.BEGIN_DEFERRED, Kind.BEGIN_WRITE})
# How sqld's Hrana messages begin where its legacy ones give SQLite's message bare.
_HRANA_PREFIXES = ("SQLite error: ", "SQL input error: ")
_AT_OFFSET = re.compile(r" \(at offset (\d+)\)$")
# sqld's status for a legacy body that is JSON but not a request (400 is for broken JSON).
UNFIT_BODY = 422


class LegacyRefusal(ProtocolError):
    """A legacy request refused whole; its body is ``{"error": message}`` as sqld's is."""

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message}


@dataclass(frozen=True, slots=True)
class LegacyPlan:
    """The statements to run as one batch (each after the last succeeded), and whether a
    statement after them is empty (answered ``not an error``, ending the run there)."""

    batch: Batch
    ends_with_empty: bool
    total: int


def plan(body: LegacyBody, inspect: Callable[[str], StatementInfo]) -> LegacyPlan:
    """Check the request as sqld does before running it; raises ``LegacyRefusal``."""
    steps: list[BatchStep] = []
    kinds: list[Kind] = []
    ends_with_empty = False
    for statement in body.statements:
        stmt = _stmt(statement)
        info = inspect(stmt.sql or "")
        refusal = info.refused()
        if refusal is not None and refusal.code == "SQL_NO_STATEMENT":
            ends_with_empty = True
            continue
        if refusal is not None:
            _refuse_whole(refusal)
        if not ends_with_empty:  # statements after an empty one are checked, never run
            condition = OkCond(type="ok", step=len(steps) - 1) if steps else None
            steps.append(BatchStep(stmt=stmt, condition=condition))
        kinds.append(info.kind)
    if Kind.RELEASE in kinds:
        raise LegacyRefusal(
            "Query error: `savepoints are not supported in HTTP API, use hrana protocol instead`",
            code="SAVEPOINTS_NOT_SUPPORTED",
            status=400,
        )
    if _leaves_transaction_open(kinds):
        raise LegacyRefusal(
            "Query error: `interactive transaction not allowed in HTTP queries`",
            code="TRANSACTION_NOT_ALLOWED",
            status=400,
        )
    return LegacyPlan(Batch(steps=steps), ends_with_empty, len(body.statements))


def _refuse_whole(refusal: HranaError) -> NoReturn:
    if refusal.code == "SQL_MANY_STATEMENTS":
        raise LegacyRefusal(
            "Failed to parse query: `found more than one command in a single statement "
            "string. It is allowed to issue only one command per string.`",
            code="SQL_MANY_STATEMENTS",
            status=400,
        )
    detail = refusal.message.removeprefix("SQL string could not be parsed: ")
    raise LegacyRefusal(f"Internal Error: `{detail}`", code=refusal.code, status=500)


def _leaves_transaction_open(kinds: list[Kind]) -> bool:
    """Whether sqld predicts, from statement kinds alone, a transaction left open.

    Its prediction gives up (and lets the request run) once the kinds make no sense:
    ``BEGIN`` twice, ``COMMIT`` with nothing open, or any savepoint.
    """
    state: bool | None = False  # in a transaction; None once the prediction is lost
    for kind in kinds:
        if state is None:
            break
        if kind in _OPENS:
            state = None if state else True
        elif kind is Kind.END_TRANSACTION:
            state = False if state else None
        elif kind in (Kind.SAVEPOINT, Kind.RELEASE):
            state = None
    return state is True


def answer(legacy: LegacyPlan, outcome: dict[str, Any], max_result_bytes: int) -> bytes:
    """The legacy answer (JSON) from the Hrana answer to ``legacy.batch``. Past
    ``max_result_bytes`` it is refused as sqld refuses it: sqld counts the legacy JSON
    it writes (where its Hrana answers count raw values)."""
    if outcome["type"] == "error" and outcome["error"]["code"] == "RESPONSE_TOO_LARGE":
        _too_large(max_result_bytes)
    body = orjson.dumps(_entries(legacy, outcome))
    if len(body) > max_result_bytes:
        _too_large(max_result_bytes)
    return body


def _too_large(max_result_bytes: int) -> NoReturn:
    raise LegacyRefusal(
        f"query response exceeds the maximum size of {_byte_size(max_result_bytes)}. "
        "Try reducing the number of queried rows.",
        code="RESPONSE_TOO_LARGE",
        status=500,
    )


def _entries(legacy: LegacyPlan, outcome: dict[str, Any]) -> list[dict[str, Any] | None]:
    entries: list[dict[str, Any] | None]
    if outcome["type"] == "error":  # the batch as a whole failed (the origin is down)
        entries = [{"error": outcome["error"]["message"]}]
    else:
        result = outcome["response"]["result"]
        entries = []
        sqls = [step.stmt.sql or "" for step in legacy.batch.steps]
        for ok, error, sql in zip(result["step_results"], result["step_errors"], sqls, strict=True):
            if error is not None:
                entries.append({"error": _legacy_message(error, sql)})
                break
            if ok is None:
                break
            entries.append({"results": _rows(ok)})
        else:
            if legacy.ends_with_empty:
                entries.append({"error": _EMPTY_STATEMENT})
    return entries + [None] * (legacy.total - len(entries))


def _legacy_message(error: dict[str, Any], sql: str) -> str:
    """sqld's legacy wording of an error its Hrana API words otherwise."""
    message, code = str(error["message"]), error.get("code")
    if code == "SQL_INPUT_ERROR":
        match = _AT_OFFSET.search(message)
        if match is not None:
            detail = message[len("SQL input error: ") : match.start()]
            return f"{detail} in {sql} at offset {match.group(1)}"
    if code == "ARGS_INVALID":
        detail = message.removeprefix("Arguments do not match SQL parameters: ")
        return f"LibSQL failed to bind provided query parameters: `{detail}`"
    for prefix in _HRANA_PREFIXES:
        message = message.removeprefix(prefix)
    return message


def _stmt(statement: str | LegacyQuery) -> Stmt:
    # Values here are already Python values, so the models are built without validation.
    if isinstance(statement, str):
        return Stmt(sql=statement)
    params = statement.params
    named: list[NamedArg] = []
    args: list[SqlValue] = []
    if isinstance(params, dict):
        named = [NamedArg.model_construct(name=k, value=_value(v)) for k, v in params.items()]
    else:
        args = [_value(value) for value in params or []]
    return Stmt.model_construct(
        sql=statement.q, sql_id=None, args=args, named_args=named, want_rows=True
    )


def _value(value: Any) -> SqlValue:
    if value is None or isinstance(value, int | float | str):
        return value
    if isinstance(value, dict) and isinstance(value.get("base64"), str):
        try:
            return decode_blob(value["base64"], padding=False)
        except ValueError as exc:
            raise ProtocolError(str(exc), status=UNFIT_BODY) from None
    raise ProtocolError(f"unsupported parameter value {value!r}", status=UNFIT_BODY)


def _rows(result: dict[str, Any]) -> dict[str, Any]:
    def plain(value: dict[str, Any]) -> Any:
        kind = value["type"]
        if kind == "integer":
            return int(value["value"])
        if kind == "blob":
            return {"base64": value["base64"]}
        return value.get("value")

    return {
        "columns": [col["name"] for col in result["cols"]],
        "rows": [[plain(value) for value in row] for row in result["rows"]],
        "rows_read": result["rows_read"],
        "rows_written": result["rows_written"],
        "query_duration_ms": result["query_duration_ms"],
    }


def _byte_size(count: int) -> str:
    """A size as sqld words it (Rust's ``bytesize``: decimal units, one decimal)."""
    size, units = float(count), ["B", "KB", "MB", "GB", "TB"]
    while size >= 1000 and len(units) > 1:
        size /= 1000
        units.pop(0)
    return f"{count} B" if units[0] == "B" else f"{size:.1f} {units[0]}"
