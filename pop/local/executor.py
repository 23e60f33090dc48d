"""Executes Hrana statements, batches and sequences on a replica connection."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pop.engines.base import ReadConnection
from pop.hrana.errors import HranaError, clean_message, code_from_message
from pop.hrana.messages import AndCond, Batch, BatchCond, ErrorCond, NotCond, OkCond, OrCond, Stmt
from pop.hrana.values import encode_value
from pop.local.binding import positional_args
from pop.sql.inspector import Column, StatementInfo

StepRunner = Callable[[Stmt], dict[str, Any]]


class LocalExecutor:
    """Runs statements on a read connection and shapes their results as Hrana does."""

    def execute(self, conn: ReadConnection, stmt: Stmt, info: StatementInfo) -> dict[str, Any]:
        """Run ``stmt``, whose SQL (resolved, if it came by ``sql_id``) ``info`` describes."""
        sql = info.sql
        args = positional_args(stmt, info)
        started = time.perf_counter()
        try:
            cursor = conn.execute(sql, args)
            rows = cursor.fetchall() if stmt.want_rows else []
            description = cursor.description or ()
        except HranaError:
            raise
        except Exception as exc:  # the engines raise DB-API errors without codes
            raise engine_error(exc) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        columns = info.columns
        return {
            "cols": [
                {"name": col[0], "decltype": _decltype(columns, index, col[0])}
                for index, col in enumerate(description)
            ],
            "rows": [[encode_value(value) for value in row] for row in rows],
            "affected_row_count": 0,
            "last_insert_rowid": None,
            "replication_index": None,
            "rows_read": len(rows),
            "rows_written": 0,
            "query_duration_ms": round(elapsed_ms, 3),
        }

    def run_script(self, conn: ReadConnection, infos: list[StatementInfo]) -> None:
        """A Hrana ``sequence``: run each statement, stop at the first error."""
        for info in infos:
            self.execute(conn, Stmt(sql=info.sql, want_rows=False), info)


def run_batch(
    batch: Batch, run_step: StepRunner, is_autocommit: Callable[[], bool]
) -> dict[str, Any]:
    """Evaluate a Hrana batch: each step runs if its condition holds."""
    results: list[dict[str, Any] | None] = []
    errors: list[dict[str, Any] | None] = []

    def holds(cond: BatchCond | None) -> bool:
        if cond is None:
            return True
        if isinstance(cond, OkCond):
            return results[cond.step] is not None
        if isinstance(cond, ErrorCond):
            return errors[cond.step] is not None
        if isinstance(cond, NotCond):
            return not holds(cond.cond)
        if isinstance(cond, AndCond):
            return all(holds(inner) for inner in cond.conds)
        if isinstance(cond, OrCond):
            return any(holds(inner) for inner in cond.conds)
        return is_autocommit()

    for step in batch.steps:
        if not holds(step.condition):
            results.append(None)
            errors.append(None)
            continue
        try:
            results.append(run_step(step.stmt))
            errors.append(None)
        except HranaError as exc:
            results.append(None)
            errors.append(exc.to_json())
    return {"step_results": results, "step_errors": errors, "replication_index": None}


def engine_error(exc: Exception) -> HranaError:
    """A DB-API exception from an engine as a Hrana error with SQLite's code name."""
    message = str(exc) or type(exc).__name__
    code = getattr(exc, "sqlite_errorname", None)
    if not isinstance(code, str):
        code = code_from_message(message)
    return HranaError(clean_message(message), code)


def _decltype(columns: tuple[Column, ...], index: int, name: str) -> str | None:
    if index < len(columns) and columns[index].name == name:
        return columns[index].decltype
    # Otherwise by name; the last column of that name, as a dict built from them would.
    return next((col.decltype for col in reversed(columns) if col.name == name), None)
