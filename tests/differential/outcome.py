"""What a statement produced, in one shape for SQLite, raw Hrana and ``@libsql/client``.

Values keep their storage class (``("integer", 1)`` is not ``("float", 1.0)``), so the
comparison catches a POP that changes a type on the way.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

TypedValue = tuple[str, Any]
Row = tuple[TypedValue, ...]


def typed(value: Any) -> TypedValue:
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        raise TypeError("booleans are not SQL values")
    if isinstance(value, int):
        return ("integer", value)
    if isinstance(value, float):
        return ("float", value)
    if isinstance(value, str):
        return ("text", value)
    if isinstance(value, bytes | bytearray | memoryview):
        return ("blob", bytes(value))
    raise TypeError(f"not an SQL value: {value!r}")


def typed_hrana(raw: dict[str, Any]) -> TypedValue:
    kind = raw["type"]
    if kind == "null":
        return ("null", None)
    if kind == "integer":
        return ("integer", int(raw["value"]))
    if kind == "float":
        return ("float", float(raw["value"]))
    if kind == "text":
        return ("text", raw["value"])
    if kind == "blob":
        return ("blob", base64.b64decode(raw.get("base64", "") + "=="))
    raise ValueError(f"unknown Hrana value type {kind!r}")


def sort_key(row: Row) -> tuple[Any, ...]:
    return tuple((kind, repr(value)) for kind, value in row)


@dataclass(frozen=True)
class Rows:
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    affected: int | None = None  # compared only for statements that count changes
    last_rowid: int | None = None  # compared only for inserts that inserted

    def normalized(self, *, ordered: bool, counts_changes: bool, inserts: bool) -> Rows:
        rows = self.rows if ordered else tuple(sorted(self.rows, key=sort_key))
        affected = self.affected if counts_changes else None
        last_rowid = self.last_rowid if inserts and affected else None
        return Rows(self.columns, rows, affected, last_rowid)


@dataclass(frozen=True)
class Failed:
    code: str | None  # None where the channel carries no code (legacy POST /)

    def without_code(self) -> Failed:
        return Failed(None)


@dataclass(frozen=True)
class Skipped:
    """A batch step whose condition was false, or that a failed batch never reached."""


Outcome = Rows | Failed | Skipped


@dataclass(frozen=True)
class Dump:
    """A database's content: its objects, and every table's and view's columns and rows."""

    objects: tuple[tuple[str, str, str], ...]  # (type, name, table), sorted
    tables: tuple[tuple[str, tuple[str, ...], tuple[Row, ...]], ...]
    user_version: int

    def difference(self, other: Dump) -> str | None:
        if self == other:
            return None
        if self.objects != other.objects:
            return f"objects differ:\n  {self.objects}\n  {other.objects}"
        for mine, theirs in zip(self.tables, other.tables, strict=True):
            if mine != theirs:
                return f"table {mine[0]} differs:\n  {mine}\n  {theirs}"
        return f"user_version differs: {self.user_version} vs {other.user_version}"


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Fields of a Hrana answer that depend on the server's own state, not on the request.
_STATE_FIELDS = frozenset(
    {"baton", "base_url", "replication_index", "rows_read", "rows_written", "query_duration_ms"}
)
# Codes whose message sqld words with its own parser or binder: only the code must agree.
_OWN_WORDING = frozenset({"SQL_PARSE_ERROR", "SQL_INPUT_ERROR", "ARGS_INVALID"})


def normalized_answer(value: Any) -> Any:
    """A Hrana (or legacy) answer without what the rule of comparison leaves out.

    The rule: for the same request a POP answers what ``sqld`` answers, apart from opaque
    and state-dependent fields, and the wording of errors ``sqld``'s own parser and
    binder report (their code must agree).
    """
    if isinstance(value, dict):
        if set(value) == {"message", "code"}:
            return {"code": value["code"]} if value["code"] in _OWN_WORDING else dict(value)
        return {k: normalized_answer(v) for k, v in value.items() if k not in _STATE_FIELDS}
    if isinstance(value, list):
        return [normalized_answer(item) for item in value]
    return value
