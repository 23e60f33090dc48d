"""Executes Hrana statements, batches and sequences on a replica connection."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pop.engines.base import Cursor, ReadConnection
from pop.hrana.errors import HranaError, sqlite_error
from pop.hrana.messages import AndCond, Batch, BatchCond, ErrorCond, NotCond, OkCond, OrCond
from pop.hrana.result_size import (
    ResponseTooLarge,
    ResultMeter,
    column_size,
    current_account,
    value_size,
)
from pop.hrana.values import encode_value
from pop.local.binding import positional_args
from pop.sql.inspector import Column
from pop.sql.prepared import Prepared

StepRunner = Callable[[int], dict[str, Any]]  # runs the batch's step of that index


class LocalExecutor:
    """Runs statements on a read connection and shapes their results as Hrana does."""

    def __init__(self, max_result_bytes: int) -> None:
        self._max_result_bytes = max_result_bytes

    def meter(self) -> ResultMeter:
        """A fresh count for one request's results (a batch's steps share one). Made on
        the event loop: the call's account is found in its context, which worker
        threads do not see."""
        return ResultMeter(self._max_result_bytes, current_account.get())

    def execute(
        self, conn: ReadConnection, prepared: Prepared, meter: ResultMeter
    ) -> dict[str, Any]:
        """Run one prepared statement; its result counts on ``meter``."""
        started = time.perf_counter()
        try:
            cursor = self._start(conn, prepared)
            cols = [
                {"name": col[0], "decltype": _decltype(prepared.info.columns, index, col[0])}
                for index, col in enumerate(cursor.description or ())
            ]
            meter.add(sum(column_size(col["name"], col["decltype"]) for col in cols))
            rows = []
            # Even with want_rows false: sqld sends the rows all the same (0.24.33, JSON
            # and protobuf). Each row's values are counted before they are encoded.
            for row in cursor:
                meter.add(sum(value_size(value) for value in row))
                rows.append([encode_value(value) for value in row])
        except HranaError:
            raise
        except Exception as exc:  # the engines raise DB-API errors without codes
            raise engine_error(exc) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        return {
            "cols": cols,
            "rows": rows,
            "affected_row_count": 0,
            "last_insert_rowid": None,
            "replication_index": None,
            "rows_read": len(rows),
            "rows_written": 0,
            "query_duration_ms": round(elapsed_ms, 3),
        }

    def run_script(self, conn: ReadConnection, statements: list[Prepared]) -> None:
        """A Hrana ``sequence``: run each statement, stop at the first error. Its rows are
        stepped through and dropped (a sequence answers none), so no size limit applies."""
        for statement in statements:
            try:
                for row in self._start(conn, statement):
                    for value in row:
                        value_size(value)
            except HranaError:
                raise
            except Exception as exc:
                raise engine_error(exc) from None

    @staticmethod
    def _start(conn: ReadConnection, prepared: Prepared) -> Cursor:
        info = prepared.info
        refusal = info.refused() or info.fails()
        if refusal is not None:
            raise refusal
        return conn.execute(info.sql, positional_args(prepared.stmt, info))


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

    for index, step in enumerate(batch.steps):
        if not holds(step.condition):
            results.append(None)
            errors.append(None)
            continue
        try:
            results.append(run_step(index))
            errors.append(None)
        except ResponseTooLarge:
            raise  # as sqld: the batch fails whole
        except HranaError as exc:
            results.append(None)
            errors.append(exc.to_json())
    return {"step_results": results, "step_errors": errors, "replication_index": None}


def engine_error(exc: Exception) -> HranaError:
    """A DB-API exception from an engine as the error sqld would give."""
    # The primary code, where the binding keeps one: sqlite3-style or apsw's ``result``.
    code = getattr(exc, "sqlite_errorcode", getattr(exc, "result", None))
    return sqlite_error(
        str(exc) or type(exc).__name__, primary=code if isinstance(code, int) else None
    )


def _decltype(columns: tuple[Column, ...], index: int, name: str) -> str | None:
    if index < len(columns) and columns[index].name == name:
        return columns[index].decltype
    # Otherwise by name; the last column of that name, as a dict built from them would.
    return next((col.decltype for col in reversed(columns) if col.name == name), None)
