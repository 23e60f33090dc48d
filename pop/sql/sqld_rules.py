"""What ``sqld`` decides about a statement before it runs anything.

``sqld`` (the libSQL server) parses each statement with its own parser first: a statement
kind it does not serve is refused as ``SQL_PARSE_ERROR`` ("unsupported statement") with
nothing run: temporary tables, views and triggers, ``ANALYZE``, ``VACUUM``, ``ATTACH``,
and every PRAGMA outside its list (most settable ones only without a value; names in
quotes never). The same parse decides the result fields: ``affected_row_count`` is
counted only for INSERT/UPDATE/DELETE, ``last_insert_rowid`` only for INSERT (REPLACE
included). The POP answers exactly as ``sqld`` does, so it makes the same decisions,
here, on SQLite's tokens; ``tests/test_sqld_parity.py`` checks them against the binary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pop.sql.script import quoted_tokens

# Tokens of SQLite's grammar that matter here: literals and quoted names are kept whole
# (so words inside them are never read as keywords), comments dropped.
_TOKEN = re.compile(
    r"""\s+|--[^\n]*|/\*.*?(?:\*/|$)"""
    rf"""|(?P<quoted>{quoted_tokens(end="?")})"""
    r"""|(?P<word>[A-Za-z_][A-Za-z_0-9$]*)|(?P<other>.)""",
    re.DOTALL,
)

# PRAGMAs sqld serves with or without a value (reads, and a few it allows to set).
_PRAGMAS_ANY_FORM = frozenset(
    [
        "table_list",
        "index_list",
        "table_info",
        "table_xinfo",
        "index_xinfo",
        "index_info",
        "pragma_list",
        "compile_options",
        "database_list",
        "function_list",
        "module_list",
        "encoding",
        "defer_foreign_keys",
        "foreign_keys",
        "foreign_key_list",
        "foreign_key_check",
        "collation_list",
        "data_version",
        "freelist_count",
        "integrity_check",
        "legacy_file_format",
        "page_count",
        "quick_check",
        "stats",
        "user_version",
    ]
)
# PRAGMAs sqld serves only to read (no "= value", no "(value)").
_PRAGMAS_READ_ONLY_FORM = frozenset(
    [
        "analysis_limit",
        "application_id",
        "auto_vacuum",
        "automatic_index",
        "busy_timeout",
        "cache_size",
        "cache_spill",
        "cell_size_check",
        "checkpoint_fullfsync",
        "fullfsync",
        "hard_heap_limit",
        "journal_mode",
        "journal_size_limit",
        "legacy_alter_table",
        "locking_mode",
        "max_page_count",
        "mmap_size",
        "page_size",
        "query_only",
        "read_uncommitted",
        "recursive_triggers",
        "reverse_unordered_selects",
        "schema_version",
        "secure_delete",
        "soft_heap_limit",
        "synchronous",
        "temp_store",
        "threads",
        "trusted_schema",
        "wal_autocheckpoint",
    ]
)
# PRAGMAs a read-only token may run (sqld takes every other one for a write, reading
# ones too: "PRAGMA user_version" needs write permission there).
_PRAGMAS_READ_PERMITTED = frozenset(
    [
        "compile_options",
        "database_list",
        "encoding",
        "function_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "module_list",
        "pragma_list",
        "schema_version",
        "table_info",
        "table_list",
        "table_xinfo",
    ]
)
# Verbs whose statements need write permission (with a served PRAGMA outside the list).
_WRITE_VERBS = frozenset(
    ["INSERT", "REPLACE", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "REINDEX"]
)
_SERVED_VERBS = frozenset(
    [
        "SELECT",
        "VALUES",
        "INSERT",
        "REPLACE",
        "UPDATE",
        "DELETE",
        "BEGIN",
        "COMMIT",
        "END",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "CREATE",
        "DROP",
        "ALTER",
        "PRAGMA",
        "REINDEX",
        "DETACH",
    ]
)
# Every statement SQLite parses begins with one of these (EXPLAIN aside).
_SQLITE_VERBS = _SERVED_VERBS | {"ATTACH", "ANALYZE", "VACUUM"}
_MAIN_VERBS = frozenset({"SELECT", "VALUES", "INSERT", "REPLACE", "UPDATE", "DELETE"})


@dataclass(frozen=True, slots=True)
class SqldVerdict:
    """sqld's view of one statement: whether it serves it, and what it counts."""

    unsupported: bool = False
    counts_changes: bool = False  # INSERT, UPDATE, DELETE (WITH ... included)
    reports_rowid: bool = False  # INSERT, REPLACE
    # A token with claim a=ro may not run it: the whole call is refused (HTTP 403).
    needs_write: bool = False


SERVED_READ = SqldVerdict()
SERVED_WRITE = SqldVerdict(needs_write=True)


def sqld_verdict(sql: str) -> SqldVerdict:
    """How sqld treats ``sql``, one statement (comments and a final ``;`` allowed)."""
    tokens = _tokens(sql)
    if tokens[:1] == ["EXPLAIN"]:
        if tokens[1:2] == ["PRAGMA"]:
            return _pragma(tokens[1:])
        return SERVED_READ
    verb = _main_verb(tokens)
    if verb is None or verb not in _SQLITE_VERBS:
        return SERVED_READ  # not SQLite at all: compiling it gives the syntax error
    if verb not in _SERVED_VERBS:
        return SqldVerdict(unsupported=True)
    if verb in ("INSERT", "REPLACE"):
        return SqldVerdict(counts_changes=True, reports_rowid=True, needs_write=True)
    if verb in ("UPDATE", "DELETE"):
        return SqldVerdict(counts_changes=True, needs_write=True)
    if verb == "PRAGMA":
        return _pragma(tokens)
    if verb == "CREATE" and _is_temporary(tokens):
        return SqldVerdict(unsupported=True)
    return SERVED_WRITE if verb in _WRITE_VERBS else SERVED_READ


def _tokens(sql: str) -> list[str]:
    """Upper-cased words, quoted tokens as written, other characters; comments dropped."""
    out: list[str] = []
    for match in _TOKEN.finditer(sql):
        if match.group("word") is not None:
            out.append(match.group("word").upper())
        elif match.group("quoted") is not None:
            out.append(match.group("quoted"))
        elif match.group("other") is not None:
            out.append(match.group("other"))
    return out


def _main_verb(tokens: list[str]) -> str | None:
    """The statement's verb; after a ``WITH`` clause, the one its CTEs lead to."""
    if not tokens:
        return None
    if tokens[0] != "WITH":
        return tokens[0]
    depth = 0
    for part in tokens[1:]:
        if part == "(":
            depth += 1
        elif part == ")":
            depth -= 1
        elif depth == 0 and part in _MAIN_VERBS:
            return part
    return None


def _pragma(tokens: list[str]) -> SqldVerdict:
    """``PRAGMA [schema.]name [= value | (value)]``."""
    rest = tokens[1:]
    if len(rest) >= 2 and rest[1] == ".":
        rest = rest[2:]
    if not rest or not (rest[0][:1].isalpha() or rest[0][:1] == "_"):
        return SqldVerdict(unsupported=True)  # a quoted name is never on sqld's lists
    name = rest[0].lower()
    has_value = any(token not in (";",) for token in rest[1:])
    if name in _PRAGMAS_ANY_FORM or (name in _PRAGMAS_READ_ONLY_FORM and not has_value):
        return SERVED_READ if name in _PRAGMAS_READ_PERMITTED else SERVED_WRITE
    return SqldVerdict(unsupported=True)


def _is_temporary(tokens: list[str]) -> bool:
    """``CREATE TEMP ...``, or a table, view or trigger named in the ``temp`` schema."""
    if tokens[1:2] in (["TEMP"], ["TEMPORARY"]):
        return True
    kinds = ("TABLE", "VIEW", "TRIGGER")
    at = next((i for i, token in enumerate(tokens[:4]) if token in kinds), None)
    if at is None:
        return False
    name = tokens[at + 1 :]
    if name[:3] == ["IF", "NOT", "EXISTS"]:
        name = name[3:]
    return name[:2] == ["TEMP", "."]
