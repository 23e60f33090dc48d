"""Classify statements with SQLite's own compiler, not with keyword guesses.

The inspector keeps an in-memory SQLite database holding the replica's schema (no rows)
and compiles each statement there without running it (prepared under an exec tracer that
stops it before its first step). SQLite then tells whether the statement is read-only
(``sqlite3_stmt_readonly``), what it does (authorizer actions: BEGIN, PRAGMA with a value,
ATTACH ...), its parameters and its result columns with their declared types. A statement
SQLite cannot compile here (a table that reached the origin but not yet this replica, a
libSQL-only function), or that the inspector fails on for any reason, is *unknown* and is
sent to the origin, which has the final word.

PRAGMA statements are the exception: SQLite applies many of them while *compiling*
(``PRAGMA hard_heap_limit=1`` changes the whole process; ``EXPLAIN PRAGMA query_only=0``
flips a connection flag), so only side-effect-free introspection pragmas are ever
compiled here, and every other PRAGMA goes to the origin uncompiled. The ``pragma_*``
table-valued functions need no such care: SQLite lets them only read.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import apsw

from pop.sql.script import strip_comments

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
# PRAGMAs that only report, with no side effect when compiled or run, and no argument.
_QUERY_PRAGMAS_PLAIN = frozenset(
    {
        "application_id",
        "collation_list",
        "compile_options",
        "data_version",
        "database_list",
        "encoding",
        "foreign_key_check",
        "foreign_keys",
        "freelist_count",
        "function_list",
        "integrity_check",
        "module_list",
        "page_count",
        "page_size",
        "pragma_list",
        "quick_check",
        "schema_version",
        "table_list",
        "user_version",
    }
)
_PRAGMA = re.compile(
    r"\s*(?:EXPLAIN\s+(?:QUERY\s+PLAN\s+)?)?PRAGMA\s+"
    r"(?:(?:\w+|\"[^\"]*\"|`[^`]*`|\[[^\]]*\])\s*\.\s*)?(\w+)\s*([=(]?)",
    re.IGNORECASE,
)
log = logging.getLogger(__name__)
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

    def _compile(self, sql: str) -> StatementInfo:
        unsafe = _pragma_not_to_compile(sql)
        if unsafe is not None:
            return StatementInfo(sql=sql, kind=Kind.UNKNOWN, error=unsafe)
        try:
            return self._prepare(sql)
        except apsw.Error as exc:
            return StatementInfo(sql=sql, kind=Kind.UNKNOWN, error=str(exc))
        except Exception as exc:
            # A fault of the inspector, not of the statement: the origin decides.
            log.warning(
                "could not classify a statement; sending it to the origin",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )
            return StatementInfo(sql=sql, kind=Kind.UNKNOWN, error=f"not classified: {exc}")

    def _prepare(self, sql: str) -> StatementInfo:
        """Compile ``sql`` without running it; what SQLite says of it."""
        actions: list[tuple[int, str | None, str | None]] = []
        compiled: list[_Compiled] = []

        def authorize(code: int, third: str | None, fourth: str | None, *_: object) -> int:
            actions.append((code, third, fourth))
            return apsw.SQLITE_OK

        def stop_before_running(cursor: apsw.Cursor, first: str, _: object) -> bool:
            compiled.append(
                _Compiled(
                    first=first,
                    readonly=bool(cursor.is_readonly),
                    explain=bool(cursor.is_explain),
                    params=cursor.bindings_count,
                    names=tuple(cursor.bindings_names),
                    columns=tuple(
                        Column(name=col[0], decltype=col[1]) for col in cursor.description_full
                    ),
                )
            )
            return False

        cursor = self._db.cursor()
        cursor.exec_trace = stop_before_running
        self._db.authorizer = authorize
        try:
            # apsw's "no bindings given yet" marker: parameters are counted, not checked.
            cursor.execute(sql, apsw._null_bindings, can_cache=False)  # type: ignore[attr-defined]
        except apsw.ExecTraceAbort:
            pass
        finally:
            self._db.authorizer = None
        if not compiled:  # only comments or empty
            return StatementInfo(sql=sql, kind=Kind.UNKNOWN, error="no statement")
        seen = compiled[0]
        rest = sql[len(seen.first) :]
        if strip_comments(rest).strip(" \t\r\n;"):
            return StatementInfo(sql=sql, kind=Kind.UNKNOWN, error="more than one statement")
        readonly = seen.readonly
        kind = Kind.READ if readonly else Kind.WRITE
        for code, third, fourth in actions:
            if code == apsw.SQLITE_TRANSACTION:
                kind = _transaction_kind(third or "", sql, readonly)
            elif code == apsw.SQLITE_SAVEPOINT:
                kind = Kind.SAVEPOINT
            elif code in (apsw.SQLITE_ATTACH, apsw.SQLITE_DETACH):
                kind = Kind.WRITE
            elif code == apsw.SQLITE_PRAGMA and _sets_pragma(third, fourth):
                # Setting a pragma changes the database or the connection: either way not
                # something a shared read-only replica connection may take.
                kind = Kind.WRITE
        if seen.explain:
            kind = Kind.READ  # EXPLAIN shows a program without running it
        return StatementInfo(
            sql=sql,
            kind=kind,
            param_count=seen.params,
            param_names=seen.names,
            columns=seen.columns,
            is_explain=seen.explain,
        )


@dataclass(frozen=True, slots=True)
class _Compiled:
    """What SQLite reported of a compiled statement."""

    first: str  # the text of the first statement
    readonly: bool
    explain: bool
    params: int
    names: tuple[str | None, ...]
    columns: tuple[Column, ...]


def _pragma_not_to_compile(sql: str) -> str | None:
    """Why a PRAGMA statement must not be compiled here, or None if it may be."""
    match = _PRAGMA.match(strip_comments(sql))
    if match is None:
        return None
    name, value = match.group(1).lower(), match.group(2)
    if value == "(" and name in _QUERY_PRAGMAS_WITH_ARGUMENT:
        return None
    if not value and name in _QUERY_PRAGMAS_PLAIN:
        return None
    return f"PRAGMA {name} may change state as it is compiled; it runs at the origin"


def _transaction_kind(operation: str, sql: str, is_readonly: bool) -> Kind:
    if operation.upper() != "BEGIN":
        return Kind.END_TRANSACTION
    if not is_readonly:
        return Kind.BEGIN_WRITE  # IMMEDIATE or EXCLUSIVE: SQLite marks those as writing
    # SQLite parses "BEGIN TRANSACTION READONLY" as a transaction *named* READONLY; the
    # name is all that carries libSQL's read-only meaning, so it is read from the tokens.
    tokens = strip_comments(sql).replace(";", " ").split()
    if tokens and tokens[-1].upper() == "READONLY":
        return Kind.BEGIN_READ
    return Kind.BEGIN_DEFERRED


def _sets_pragma(name: str | None, value: str | None) -> bool:
    return value is not None and (name or "").lower() not in _QUERY_PRAGMAS_WITH_ARGUMENT
