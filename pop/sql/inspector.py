"""Classify statements with SQLite's own compiler, not with keyword guesses.

The inspector keeps an in-memory SQLite database holding the replica's schema (no rows)
and compiles each statement there without running it (``apsw.ext.query_info``). SQLite
then tells whether the statement is read-only (``sqlite3_stmt_readonly``), what it does
(authorizer actions: BEGIN, PRAGMA with a value, ATTACH ...), its parameters and its
result columns with their declared types. A statement SQLite cannot compile here (a table
that reached the origin but not yet this replica, a libSQL-only function) is *unknown* and
is sent to the origin, which has the final word.
"""

from __future__ import annotations

import enum
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import apsw
import apsw.ext

# PRAGMAs whose argument names a thing to look at, not a value to set.
_QUERY_PRAGMAS_WITH_ARGUMENT = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_info",
        "index_xinfo",
        "index_list",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
    }
)
_COMMENT = re.compile(r"--[^\n]*|/\*.*?(\*/|$)", re.DOTALL)
_CACHE_SIZE = 4096
_CACHED_SQL_MAX_CHARS = 16 * 1024


class Kind(enum.Enum):
    READ = "read"
    WRITE = "write"
    BEGIN_READ = "begin_read"  # BEGIN [DEFERRED] TRANSACTION READONLY
    BEGIN_DEFERRED = "begin_deferred"  # may or may not write: decided by what follows
    BEGIN_WRITE = "begin_write"  # BEGIN IMMEDIATE / EXCLUSIVE
    END_TRANSACTION = "end_transaction"  # COMMIT, END, ROLLBACK
    SAVEPOINT = "savepoint"
    UNKNOWN = "unknown"  # SQLite could not compile it here


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    decltype: str | None


@dataclass(frozen=True, slots=True)
class StatementInfo:
    sql: str
    kind: Kind
    param_count: int = 0
    param_names: tuple[str | None, ...] = ()
    columns: tuple[Column, ...] = ()
    is_explain: bool = False
    error: str | None = None  # why SQLite could not compile it, for UNKNOWN

    @property
    def is_read(self) -> bool:
        return self.kind in (Kind.READ, Kind.BEGIN_READ)


@dataclass(frozen=True, slots=True)
class SchemaObject:
    type: str
    name: str
    sql: str


class SqlInspector:
    """Compiles statements against a schema-only copy of the replica. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._db = apsw.Connection(":memory:")
        self._schema_digest = ""
        self._cache: OrderedDict[str, StatementInfo] = OrderedDict()
        self._primary_keys: dict[str, tuple[str, ...]] = {}

    @property
    def schema_digest(self) -> str:
        return self._schema_digest

    def load_schema(self, objects: Iterable[SchemaObject]) -> bool:
        """Mirror the replica's schema; returns whether it changed.

        Objects SQLite cannot create here (engine-specific syntax) are left out, which
        only makes statements on them UNKNOWN, and so sent to the origin.
        """
        wanted = sorted(
            (obj for obj in objects if obj.sql and not obj.name.startswith("sqlite_")),
            key=lambda obj: (
                ("table", "index", "view", "trigger").index(obj.type)
                if obj.type in ("table", "index", "view", "trigger")
                else 9
            ),
        )
        digest = hashlib.sha256(
            "\x00".join(f"{o.type}\x01{o.name}\x01{o.sql}" for o in wanted).encode()
        ).hexdigest()
        with self._lock:
            if digest == self._schema_digest:
                return False
            self._db.close()
            self._db = apsw.Connection(":memory:")
            for obj in wanted:
                try:
                    self._db.execute(obj.sql)
                except apsw.Error:
                    continue
            self._primary_keys = self._read_primary_keys()
            self._schema_digest = digest
            self._cache.clear()
            return True

    def _read_primary_keys(self) -> dict[str, tuple[str, ...]]:
        keys: dict[str, tuple[str, ...]] = {}
        tables = [
            row[0] for row in self._db.execute("SELECT name FROM sqlite_schema WHERE type='table'")
        ]
        for table in tables:
            columns = sorted(
                (row[5], row[1])
                for row in self._db.execute("SELECT * FROM pragma_table_info(?)", (table,))
                if row[5]
            )
            keys[table.lower()] = tuple(name.lower() for _, name in columns)
        return keys

    def is_primary_key(self, table: str, column: str) -> bool:
        """Whether ``column`` alone is ``table``'s primary key (for constraint codes)."""
        return self._primary_keys.get(table.lower()) == (column.lower(),)

    def inspect(self, sql: str) -> StatementInfo:
        """Classify one statement (the first, if ``sql`` holds several)."""
        with self._lock:
            cached = self._cache.get(sql)
            if cached is not None:
                self._cache.move_to_end(sql)
                return cached
            info = self._compile(sql)
            if len(sql) <= _CACHED_SQL_MAX_CHARS:  # big one-off texts would pile up
                self._cache[sql] = info
                if len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
            return info

    def split(self, sql: str) -> list[str]:
        """Split a script into its statements, the way SQLite's parser sees them."""
        statements: list[str] = []
        rest: str | None = sql
        with self._lock:
            while rest and rest.strip():
                try:
                    details = apsw.ext.query_info(self._db, rest)
                except apsw.Error:
                    # Cannot parse the rest here; the origin gets it as one piece.
                    statements.append(rest.strip())
                    break
                remaining = details.query_remaining
                first = rest[: len(rest) - len(remaining)] if remaining else rest
                if _strip_comments(first).strip(" \t\r\n;"):
                    statements.append(first.strip())
                rest = remaining
        return statements

    def _compile(self, sql: str) -> StatementInfo:
        try:
            details = apsw.ext.query_info(self._db, sql, actions=True)
        except apsw.Error as exc:
            return StatementInfo(sql=sql, kind=Kind.UNKNOWN, error=str(exc))
        if details.query_remaining and _strip_comments(details.query_remaining).strip(" \t\r\n;"):
            return StatementInfo(sql=sql, kind=Kind.UNKNOWN, error="more than one statement")
        actions = details.actions or []
        kind = Kind.READ if details.is_readonly else Kind.WRITE
        for action in actions:
            name = action.action_name
            if name == "SQLITE_TRANSACTION":
                kind = _transaction_kind(action.operation or "", sql, bool(details.is_readonly))
            elif name == "SQLITE_SAVEPOINT":
                kind = Kind.SAVEPOINT
            elif name in ("SQLITE_ATTACH", "SQLITE_DETACH"):
                kind = Kind.WRITE
            elif name == "SQLITE_PRAGMA" and _sets_pragma(action.pragma_name, action.pragma_value):
                # Setting a pragma changes the database or the connection: either way not
                # something a shared read-only replica connection may take.
                kind = Kind.WRITE
        if details.is_explain:
            kind = Kind.READ  # EXPLAIN shows a program without running it
        description = details.description_full or ()
        return StatementInfo(
            sql=sql,
            kind=kind,
            param_count=details.bindings_count,
            param_names=tuple(details.bindings_names),
            columns=tuple(Column(name=col[0], decltype=col[1]) for col in description),
            is_explain=bool(details.is_explain),
        )


def _transaction_kind(operation: str, sql: str, is_readonly: bool) -> Kind:
    if operation.upper() != "BEGIN":
        return Kind.END_TRANSACTION
    if not is_readonly:
        return Kind.BEGIN_WRITE  # IMMEDIATE or EXCLUSIVE: SQLite marks those as writing
    # SQLite parses "BEGIN TRANSACTION READONLY" as a transaction *named* READONLY; the
    # name is all that carries libSQL's read-only meaning, so it is read from the tokens.
    tokens = _strip_comments(sql).replace(";", " ").split()
    if tokens and tokens[-1].upper() == "READONLY":
        return Kind.BEGIN_READ
    return Kind.BEGIN_DEFERRED


def _sets_pragma(name: str | None, value: str | None) -> bool:
    return value is not None and (name or "").lower() not in _QUERY_PRAGMAS_WITH_ARGUMENT


def _strip_comments(sql: str) -> str:
    return _COMMENT.sub(" ", sql)
