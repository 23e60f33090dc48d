"""PRAGMAs that act while SQLite compiles them never take effect in the POP's process,
however their name is spelled: SQLite's authorizer sees the name as SQLite resolved it.

Once, ``PRAGMA "hard_heap_limit"=1`` (and ``[...]``, and the same inside ``describe``)
was compiled in the POP and set the process-wide heap limit, after which every sync
failed; the classifier's pattern did not know quoted names. These tests take the
classifier's own rules out of the way (as if a spelling got past them) and show that the
layer beneath still holds: the inspector's schema copy and the readers' connections.
"""

from __future__ import annotations

from pathlib import Path

import apsw
import pytest

from pop.engines.libsql import SqliteReader
from pop.sql import inspector as inspector_module
from pop.sql.inspector import Kind, SqlInspector
from pop.sql.sqld_rules import SERVED_READ

SPELLINGS = [
    'PRAGMA "hard_heap_limit"=1',
    "PRAGMA [hard_heap_limit]=1",
    "PRAGMA `hard_heap_limit`=1",
    "PRAGMA main.'hard_heap_limit'=1",
    "pragma HARD_HEAP_LIMIT(1)",
    'EXPLAIN PRAGMA "hard_heap_limit"=1',
]


def _heap_limit() -> int:
    return int(apsw.Connection(":memory:").execute("PRAGMA hard_heap_limit").get)


@pytest.fixture()
def unguarded(monkeypatch: pytest.MonkeyPatch) -> SqlInspector:
    """An inspector whose statement rules let every PRAGMA through to SQLite."""
    monkeypatch.setattr(inspector_module, "sqld_verdict", lambda sql: SERVED_READ)
    monkeypatch.setattr(inspector_module, "_pragma_not_to_compile", lambda sql: None)
    return SqlInspector()


@pytest.mark.parametrize("sql", SPELLINGS)
def test_the_inspector_never_applies_a_pragma(unguarded: SqlInspector, sql: str) -> None:
    before = _heap_limit()
    info = unguarded.inspect(sql)
    assert _heap_limit() == before
    assert info.kind is Kind.UNKNOWN  # the origin answers it
    assert info.error == "PRAGMA hard_heap_limit is answered by the origin"


def test_the_inspector_still_compiles_what_describes_one_table(unguarded: SqlInspector) -> None:
    unguarded.load_schema([inspector_module.SchemaObject("table", "t", "CREATE TABLE t (a)")])
    assert unguarded.inspect('PRAGMA "table_info"(t)').kind is Kind.READ


@pytest.fixture()
def reader(tmp_path: Path) -> SqliteReader:
    path = tmp_path / "replica.db"
    with apsw.Connection(str(path)) as setup:
        setup.execute("CREATE TABLE t (a)")
    return SqliteReader(path)


@pytest.mark.parametrize("sql", [*SPELLINGS, "EXPLAIN PRAGMA query_only=0", "PRAGMA query_only"])
def test_a_reader_refuses_every_pragma_but_those_of_one_table(
    reader: SqliteReader, sql: str
) -> None:
    before = _heap_limit()
    with pytest.raises(apsw.AuthError):
        list(reader.execute(sql))
    assert _heap_limit() == before
    assert next(iter(reader.execute("PRAGMA table_info(t)")))[1] == "a"
