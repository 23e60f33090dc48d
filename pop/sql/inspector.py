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
flips a connection flag), so only the pragmas that describe one table or index are ever
compiled here, and every other PRAGMA goes to the origin uncompiled; should a spelling get
past that, SQLite's authorizer denies it before it applies (``pop.sql.pragma_guard``). The
``pragma_*`` table-valued functions need no such care (SQLite lets them only read), but
those and the catalog (``sqlite_schema``) describe the whole file, and the replica's file
is not the origin's: the engine keeps its own tables in it. Statements reading them are
unknown.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

import apsw

from pop.hrana.errors import (
    HranaError,
    bare_message,
    many_statements,
    no_statement,
    sqlite_error,
    unsupported_statement,
)
from pop.sql.pragma_guard import OBJECT_PRAGMAS, allows_pragma
from pop.sql.script import leading_words, split_script, strip_comments
from pop.sql.sqld_rules import SERVED_READ, SqldVerdict, sqld_verdict

# Reads of these describe the whole file, where the replica differs from the origin: the
# engine's bookkeeping tables are in its catalog, its pages are laid out differently.
_WHOLE_FILE_TABLES = frozenset({"sqlite_master", "sqlite_temp_master", "sqlite_dbpage", "dbstat"})
# The connection-state PRAGMAs sqld lets a client set (it refuses every other setting).
_CONNECTION_PRAGMAS = frozenset({"foreign_keys", "defer_foreign_keys"})
# No table named sqlite_* can be created, so SQLite not knowing one here means sqld's
# SQLite does not know it either (neither build has sqlite_dbpage, which tursodb has).
_NO_SUCH_SYSTEM_TABLE = re.compile(r"^no such table: (?:\w+\.)?sqlite_", re.IGNORECASE)
# Functions sqld's authorizer denies, which would act on the host of whoever runs them.
_DENIED_FUNCTIONS = frozenset({"load_extension"})
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
    RELEASE = "release"  # RELEASE, ROLLBACK TO: ends a savepoint, maybe the transaction
    UNKNOWN = "unknown"  # not answerable here (see StatementInfo.error): the origin decides
    REFUSED = "refused"  # sqld refuses it before running anything (see StatementInfo.refusal)
    FAILS = "fails"  # sqld fails it when it runs, whatever the schema (StatementInfo.failure)


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
    error: str | None = None  # why it is not answerable here, for UNKNOWN
    compile_failed: bool = False  # error is then SQLite's own message from compiling it
    error_offset: int = -1  # where in the text SQLite placed that error, if anywhere
    refusal: tuple[str, str] | None = None  # (message, code), for REFUSED
    failure: tuple[str, str] | None = None  # (message, code), for FAILS
    # Sets state of the connection it runs on (PRAGMA foreign_keys = ...), which only an
    # origin that keeps a connection per stream can scope to the client that asked.
    sets_connection_state: bool = False
    sqld: SqldVerdict = SERVED_READ

    def refused(self) -> HranaError | None:
        """The error sqld answers this statement with before running it, if any."""
        return HranaError(*self.refusal) if self.refusal is not None else None

    def fails(self) -> HranaError | None:
        """The error sqld answers when this statement runs, if it surely fails there."""
        return HranaError(*self.failure) if self.failure is not None else None

    def compile_error(self, message: str, *, failed_to_compile: bool = False) -> HranaError:
        """An error the origin reported for this statement, in sqld's terms.

        When it is the error SQLite gave here while compiling (the same message, or the
        origin says it too failed to compile), SQLite's own wording is used: ``tursodb``
        words some differently ("No such table", "table 't' does not exist") and checks
        in another order (an index name before its table). Its offset in the text is then
        known too, which makes it an ``SQL_INPUT_ERROR`` for sqld. The schema here must be
        the one the origin compiled against: ``after`` adds what earlier statements of the
        same request changed.
        """
        said = self.error if self.compile_failed else None
        if said is not None and (
            failed_to_compile or said.lower() == bare_message(message)[0].lower()
        ):
            return sqlite_error(said, offset=self.error_offset)
        return sqlite_error(message)

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
            self._schema_digest = digest
            self._cache.clear()
            return True

    def after(self, ran: Iterable[str]) -> SqlInspector:
        """An inspector for the schema the origin had after running ``ran``.

        ``ran`` are statements of one request that the origin ran, in order, before a later
        one failed: their CREATE, DROP and ALTER are not in this replica's schema yet, so
        the failure is worded and placed as SQLite would against this schema plus them.
        Only schema statements are applied, on a copy: never anything a client sent to
        this inspector's own database.
        """
        changes = [sql for sql in ran if _changes_schema(sql)]
        if not changes:
            return self
        ahead = SqlInspector()
        with self._lock, ahead._db.backup("main", self._db, "main") as copy:
            copy.step()
        for sql in changes:
            try:
                ahead._db.execute(sql)
            except apsw.Error:
                continue  # fails here too (engine syntax): statements on it stay UNKNOWN
        return ahead

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
        # sqld parses before it runs anything: no statement, more than one (after a first
        # that parses), or a kind it does not serve are refused with nothing run.
        statements = split_script(sql)
        if not statements:
            return _refused(sql, no_statement())
        if len(statements) > 1:
            first = self._compile(statements[0])
            syntax = first.refused()
            if syntax is not None and syntax.code == "SQL_PARSE_ERROR":
                return _refused(sql, syntax)
            return _refused(sql, many_statements())
        # Judged and compiled without what surrounds it (";PRAGMA x=1" is "PRAGMA x=1").
        statement = statements[0]
        verdict = sqld_verdict(statement)
        if verdict.unsupported:
            return _refused(sql, unsupported_statement(statement))
        unsafe = _pragma_not_to_compile(statement)
        if unsafe is not None:
            return StatementInfo(
                sql=sql,
                kind=Kind.UNKNOWN,
                error=unsafe,
                sets_connection_state=_sets_connection_pragma(statement),
                sqld=verdict,
            )
        try:
            return dataclasses.replace(self._prepare(statement, verdict), sql=sql)
        except apsw.Error as exc:
            error = sqlite_error(str(exc), offset=getattr(exc, "error_offset", -1))
            if error.code == "SQL_PARSE_ERROR":  # no schema makes a syntax error valid
                return _refused(sql, error)
            if _NO_SUCH_SYSTEM_TABLE.match(str(exc)):
                return _fails(sql, sqlite_error(str(exc)), verdict)
            return StatementInfo(
                sql=sql,
                kind=Kind.UNKNOWN,
                error=str(exc),
                compile_failed=True,
                error_offset=getattr(exc, "error_offset", -1),
                sqld=verdict,
            )
        except Exception as exc:
            # A fault of the inspector, not of the statement: the origin decides.
            log.warning(
                "could not classify a statement; sending it to the origin",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )
            return StatementInfo(
                sql=sql, kind=Kind.UNKNOWN, error=f"not classified: {exc}", sqld=verdict
            )

    def _prepare(self, sql: str, verdict: SqldVerdict) -> StatementInfo:
        """Compile ``sql`` without running it; what SQLite says of it."""
        actions: list[tuple[int, str | None, str | None]] = []
        compiled: list[_Compiled] = []
        denied: list[str] = []

        def authorize(code: int, third: str | None, fourth: str | None, *_: object) -> int:
            actions.append((code, third, fourth))
            if not allows_pragma(code, third):
                denied.append(third or "")
                return apsw.SQLITE_DENY  # before SQLite applies it (pop.sql.pragma_guard)
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
        except apsw.AuthError:
            if not denied:
                raise
            error = f"PRAGMA {denied[0].lower()} is answered by the origin"
            return StatementInfo(sql=sql, kind=Kind.UNKNOWN, error=error, sqld=verdict)
        finally:
            self._db.authorizer = None
        if not compiled:  # the tokenizer saw a statement that SQLite did not
            return StatementInfo(sql=sql, kind=Kind.UNKNOWN, error="no statement", sqld=verdict)
        seen = compiled[0]
        if any(
            code == apsw.SQLITE_FUNCTION and (fourth or "").lower() in _DENIED_FUNCTIONS
            for code, _, fourth in actions
        ):
            return _fails(sql, sqlite_error("not authorized"), verdict)
        catalog = next(
            (third for code, third, _ in actions if _reads_whole_file(code, third)), None
        )
        if catalog is not None and seen.readonly:
            return StatementInfo(
                sql=sql,
                kind=Kind.UNKNOWN,
                error=f"reads {catalog}, which the origin answers",
                sqld=verdict,
            )
        # SQLite calls "CREATE TRIGGER IF NOT EXISTS" on a trigger it has, or "DROP TRIGGER
        # IF EXISTS" on one it lacks, read-only: a no-op *here*. The origin's schema may
        # be ahead of this copy, so a schema statement always goes there.
        readonly = seen.readonly and not _changes_schema(sql)
        kind = Kind.READ if readonly else Kind.WRITE
        for code, third, fourth in actions:
            if code == apsw.SQLITE_TRANSACTION:
                kind = _transaction_kind(third or "", sql, readonly)
            elif code == apsw.SQLITE_SAVEPOINT:
                kind = Kind.SAVEPOINT if (third or "").upper() == "BEGIN" else Kind.RELEASE
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
            sqld=verdict,
        )


def _refused(sql: str, error: HranaError) -> StatementInfo:
    return StatementInfo(sql=sql, kind=Kind.REFUSED, refusal=(error.message, error.code))


def _fails(sql: str, error: HranaError, verdict: SqldVerdict) -> StatementInfo:
    return StatementInfo(
        sql=sql, kind=Kind.FAILS, failure=(error.message, error.code), sqld=verdict
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
    if value == "(" and name in OBJECT_PRAGMAS:
        return None
    return f"PRAGMA {name} is answered by the origin"


def _sets_connection_pragma(sql: str) -> bool:
    match = _PRAGMA.match(strip_comments(sql))
    return bool(match and match.group(2) and match.group(1).lower() in _CONNECTION_PRAGMAS)


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
    return value is not None and (name or "").lower() not in OBJECT_PRAGMAS


def _changes_schema(sql: str) -> bool:
    return leading_words(sql, 1) in (["CREATE"], ["DROP"], ["ALTER"])


def _reads_whole_file(code: int, table: str | None) -> bool:
    """Whether an authorizer READ is of the catalog or of a file-wide ``pragma_*`` table."""
    if code != apsw.SQLITE_READ or not table:
        return False
    table = table.lower()
    if table.startswith("pragma_"):
        return table.removeprefix("pragma_") not in OBJECT_PRAGMAS
    return table in _WHOLE_FILE_TABLES
