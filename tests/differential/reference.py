"""The reference: each unit run on a plain SQLite connection, as sqld would run it.

The SQLite is a current one (apsw's, 3.54): Python's own ``sqlite3`` links the system's
SQLite 3.40, whose RETURNING gave values before column affinity (``0`` for a REAL
column, where sqld, tursodb and current SQLite give ``0.0``) and which kept the rows an
``INSERT OR IGNORE`` wrote before failing part-way.

Each mode is given the meaning the Hrana spec and ``@libsql/client`` give it: a stream is
one connection whose open transaction is rolled back when the stream closes; a batch runs
its steps in order, each only if the one before succeeded; a sequence stops at its first
error and keeps what ran before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import apsw

from pop.sql.script import leading_words
from tests.differential.grammar import CATALOG, Mode, Stmt, Unit
from tests.differential.outcome import (
    Dump,
    Failed,
    Outcome,
    Row,
    Rows,
    Skipped,
    quote_identifier,
    sort_key,
    typed,
)


def script_of(stmts: Iterable[Stmt]) -> str:
    return ";\n".join(s.sql for s in stmts)


# The steps a write batch wraps around the client's statements (as @libsql/client does).
BATCH_BEGIN = "BEGIN"
CLIENT_BEGIN = "BEGIN IMMEDIATE"


class Reference:
    def __init__(self) -> None:
        self.conn = apsw.Connection(":memory:")

    def close(self) -> None:
        self.conn.close()

    def run(self, unit: Unit) -> list[Outcome]:
        mode = unit.mode
        if mode in (Mode.EXECUTE, Mode.STREAM):
            outcomes = [self.statement(s) for s in unit.stmts]
            self._close_stream()
            return outcomes
        if mode is Mode.LEGACY:
            return self._legacy(unit.stmts)
        if mode is Mode.CLIENT_EXECUTE:
            outcomes = []
            for stmt in unit.stmts:
                outcomes.append(self.statement(stmt))
                self._close_stream()
            return outcomes
        if mode is Mode.BATCH:
            outcomes = self._write_batch(BATCH_BEGIN, unit.stmts)
            self._close_stream()
            return outcomes
        if mode is Mode.CLIENT_BATCH:
            outcomes = self._write_batch(CLIENT_BEGIN, unit.stmts)
            self._close_stream()
            return client_batch_outcome(outcomes)
        if mode in (Mode.SEQUENCE, Mode.CLIENT_MULTIPLE):
            outcome: Outcome = Rows((), ())
            for stmt in unit.stmts:
                result = self.statement(stmt)
                if isinstance(result, Failed):
                    outcome = result
                    break
            self._close_stream()
            return [outcome]
        assert mode is Mode.CLIENT_TRANSACTION
        outcomes = [self.statement(Stmt(CLIENT_BEGIN))]
        outcomes.extend(self.statement(s) for s in unit.stmts)
        outcomes.append(self.statement(Stmt("COMMIT" if unit.commit else "ROLLBACK")))
        self._close_stream()
        return outcomes

    def statement(self, stmt: Stmt) -> Outcome:
        try:
            columns, rows = _run(self.conn, stmt.sql, stmt.args)
        except apsw.Error as exc:
            return Failed(type(exc).__name__)
        changes, last_rowid = self.conn.changes(), self.conn.last_insert_rowid()
        return Rows(columns, tuple(rows), changes, last_rowid).normalized(
            ordered=stmt.ordered, counts_changes=stmt.counts_changes, inserts=stmt.inserts
        )

    def _legacy(self, stmts: tuple[Stmt, ...]) -> list[Outcome]:
        """POST /: refused whole as sqld refuses it (``_refused_whole``); else each
        statement in order, up to the first error (the rest not run)."""
        if _refused_whole(stmts):
            return [Failed(None)]
        outcomes: list[Outcome] = []
        for stmt in stmts:
            if outcomes and isinstance(outcomes[-1], Failed | Skipped):
                outcomes.append(Skipped())
                continue
            outcome = self.statement(stmt)
            if isinstance(outcome, Rows):  # the legacy answer has no counts
                outcome = Rows(outcome.columns, outcome.rows)
            outcomes.append(outcome.without_code() if isinstance(outcome, Failed) else outcome)
        self._close_stream()
        return outcomes

    def _write_batch(self, begin: str, stmts: Iterable[Stmt]) -> list[Outcome]:
        """BEGIN; each statement if the last succeeded; COMMIT; ROLLBACK if COMMIT failed."""
        steps = [Stmt(begin), *stmts, Stmt("COMMIT")]
        outcomes: list[Outcome] = []
        for step in steps:
            if outcomes and not isinstance(outcomes[-1], Rows):
                outcomes.append(Skipped())
                continue
            outcomes.append(self.statement(step))
        commit_ok = isinstance(outcomes[-1], Rows)
        outcomes.append(Skipped() if commit_ok else self.statement(Stmt("ROLLBACK")))
        return outcomes

    def _close_stream(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def dump(self) -> Dump:
        return dump_with(lambda sql: _plain_query(self.conn, sql))


def _refused_whole(stmts: Iterable[Stmt]) -> bool:
    """What sqld refuses of a legacy request from statement kinds alone: any savepoint
    release, or a transaction its state machine sees left open (it gives up, letting the
    request run, once the kinds make no sense: BEGIN twice, COMMIT with nothing open, or
    any savepoint)."""
    state: bool | None = False
    for stmt in stmts:
        first, second = [*leading_words(stmt.sql, 2), "", ""][:2]
        if first == "RELEASE" or (first == "ROLLBACK" and second == "TO"):
            return True
        if state is None:
            continue
        if first == "BEGIN":
            state = None if state else True
        elif first in ("COMMIT", "END", "ROLLBACK"):
            state = False if state else None
        elif first == "SAVEPOINT":
            state = None
    return state is True


def client_batch_outcome(steps: list[Outcome]) -> list[Outcome]:
    """What ``batch(..., "write")`` shows: the statements' results, or its first error."""
    for step in steps:
        if isinstance(step, Failed):
            return [step]
    return steps[1:-2]


def _run(
    conn: apsw.Connection, sql: str, args: tuple[Any, ...] = ()
) -> tuple[tuple[str, ...], list[Row]]:
    """One statement's column names and typed rows (the names even when it has none)."""
    cursor = conn.cursor()
    columns: list[tuple[str, ...]] = []

    def note_columns(prepared: apsw.Cursor, _sql: str, _bindings: Any) -> bool:
        # apsw would run a second statement too; the programs never hold one.
        assert not columns, f"two statements in one: {sql!r}"
        columns.append(tuple(d[0] for d in prepared.description))
        return True

    cursor.exec_trace = note_columns
    rows = [tuple(typed(v) for v in row) for row in cursor.execute(sql, args)]
    return (columns[0] if columns else ()), rows


def _plain_query(conn: apsw.Connection, sql: str) -> tuple[tuple[str, ...], list[Row]]:
    return _run(conn, sql)


Query = Callable[[str], tuple[tuple[str, ...], list[Row]]]


def dump_with(query: Query, content: Query | None = None) -> Dump:
    """A ``Dump`` read through ``query(sql) -> (columns, typed rows)``, anywhere.

    ``content`` (default ``query``) reads the tables' and views' rows; a POP's dump reads
    them through one that checks the replica answered.
    """
    _, objects = query(f"{CATALOG} ORDER BY type, name")
    contents = []
    for row in objects:
        if row[0][1] in ("table", "view"):
            name = str(row[1][1])
            read = f"SELECT * FROM {quote_identifier(name)}"
            try:
                columns, rows = (content or query)(read)
            except (AssertionError, apsw.Error):
                if row[0][1] == "table":
                    raise
                # A view over a dropped table or column fails everywhere alike.
                columns, rows = ("<unreadable view>",), []
            contents.append((name, columns, tuple(sorted(rows, key=sort_key))))
    _, version = query("PRAGMA user_version")
    return Dump(
        tuple((str(t[1]), str(n[1]), str(tb[1])) for t, n, tb in objects),
        tuple(contents),
        int(version[0][0][1]),
    )
