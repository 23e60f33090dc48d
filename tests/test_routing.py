"""Read or write is decided by SQLite's compiler, not by keywords."""

from __future__ import annotations

import tracemalloc

import httpx
import pytest

from pop.devtools.processes import PopProcess, TursodbOrigin
from pop.sql.inspector import Kind, SchemaObject, SqlInspector
from pop.sql.script import split_script
from tests.helpers import execute, ok_result, pipeline, routes, rows


@pytest.fixture()
def inspector() -> SqlInspector:
    inspector = SqlInspector()
    inspector.load_schema(
        [
            SchemaObject("table", "t", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"),
            SchemaObject("index", "t_v", "CREATE INDEX t_v ON t (v)"),
            SchemaObject(
                "trigger", "tr", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END"
            ),
        ]
    )
    return inspector


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT * FROM t", Kind.READ),
        ("SELECT * FROM t WHERE id = ? AND v = :v", Kind.READ),
        ("/* INSERT */ SELECT 'DELETE FROM t' -- UPDATE", Kind.READ),
        ("WITH x AS (SELECT 1) INSERT INTO t (v) SELECT * FROM x", Kind.WRITE),
        ("WITH x AS (SELECT 1) SELECT * FROM x", Kind.READ),
        ("REPLACE INTO t VALUES (1, 'a')", Kind.WRITE),
        ("  -- leading comment\n  delete from t", Kind.WRITE),
        # Pragmas that set something are never compiled here (some act while compiled);
        # those sqld does not serve are refused as sqld refuses them.
        ("PRAGMA user_version = 3", Kind.UNKNOWN),
        ("PRAGMA hard_heap_limit=1", Kind.REFUSED),
        ('PRAGMA "hard_heap_limit"=1', Kind.REFUSED),
        ("PRAGMA [hard_heap_limit]=1", Kind.REFUSED),
        (";PRAGMA hard_heap_limit=1", Kind.REFUSED),
        ("EXPLAIN PRAGMA query_only=0", Kind.REFUSED),
        ("/* x */ PRAGMA main.cache_size(-1)", Kind.REFUSED),
        ("PRAGMA main.table_info(t)", Kind.READ),
        ("SELECT * FROM pragma_table_info('t')", Kind.READ),
        ("CREATE TABLE IF NOT EXISTS u (a UNIQUE)", Kind.WRITE),
        ("CREATE TABLE w (a PRIMARY KEY, b UNIQUE, c REFERENCES t (id))", Kind.WRITE),
        # Only pragmas describing one object are answered here; file-wide ones and the
        # catalog differ in the replica's file (the engine keeps its own tables there).
        ("PRAGMA user_version", Kind.UNKNOWN),
        ("PRAGMA table_list", Kind.UNKNOWN),
        ("PRAGMA table_info(t)", Kind.READ),
        ("SELECT name FROM sqlite_schema", Kind.UNKNOWN),
        ("SELECT * FROM pragma_table_list", Kind.UNKNOWN),
        ("SELECT count(*) FROM pragma_index_list('t')", Kind.READ),
        ("PRAGMA foreign_keys = ON", Kind.UNKNOWN),
        # What sqld's SQLite lacks or its authorizer denies fails here as it fails there.
        ("SELECT pgno FROM sqlite_dbpage", Kind.FAILS),
        ("UPDATE main.sqlite_dbpage SET data = NULL", Kind.FAILS),
        ("SELECT load_extension('/tmp/x.so')", Kind.FAILS),
        ("CREATE TABLE u (a)", Kind.WRITE),
        # No-ops against this schema copy (SQLite calls them read-only), not at the origin.
        ("DROP TRIGGER IF EXISTS not_here", Kind.WRITE),
        ("CREATE TRIGGER IF NOT EXISTS tr AFTER INSERT ON t BEGIN SELECT 1; END", Kind.WRITE),
        # Statement kinds sqld does not serve, refused before anything runs.
        ("CREATE TEMP TABLE u (a)", Kind.REFUSED),
        ("CREATE TABLE temp.u (a)", Kind.REFUSED),
        ("ATTACH 'x.db' AS x", Kind.REFUSED),
        ("VACUUM", Kind.REFUSED),
        ("SELEC 1", Kind.REFUSED),
        ("", Kind.REFUSED),
        ("-- only a comment", Kind.REFUSED),
        ("BEGIN", Kind.BEGIN_DEFERRED),
        ("BEGIN DEFERRED", Kind.BEGIN_DEFERRED),
        ("BEGIN IMMEDIATE", Kind.BEGIN_WRITE),
        ("BEGIN EXCLUSIVE TRANSACTION", Kind.BEGIN_WRITE),
        ("BEGIN TRANSACTION READONLY", Kind.BEGIN_READ),
        ("begin /* c */ transaction readonly;", Kind.BEGIN_READ),
        ("COMMIT", Kind.END_TRANSACTION),
        ("END TRANSACTION", Kind.END_TRANSACTION),
        ("ROLLBACK", Kind.END_TRANSACTION),
        ("SAVEPOINT s", Kind.SAVEPOINT),
        ("RELEASE s", Kind.RELEASE),
        ("ROLLBACK TO s", Kind.RELEASE),
        ("SELECT * FROM not_yet_synced", Kind.UNKNOWN),
        ("SELECT vector32('[1,2]')", Kind.UNKNOWN),
        ("SELECT 1; DELETE FROM t", Kind.REFUSED),
        ("SELECT 1;;  -- trailing", Kind.READ),
        ("EXPLAIN DELETE FROM t", Kind.READ),
    ],
)
def test_classification(inspector: SqlInspector, sql: str, kind: Kind) -> None:
    assert inspector.inspect(sql).kind is kind


def test_split_respects_strings_comments_and_triggers() -> None:
    script = (
        "INSERT INTO t (v) VALUES ('a;b'); -- c;d\n"
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET v = 'x;y'; END;"
        'SELECT 1 /* ; */, "we;ird", [br;acket], `back;tick`;'
    )
    parts = split_script(script)
    assert len(parts) == 3, parts
    assert parts[0] == "INSERT INTO t (v) VALUES ('a;b')"
    assert parts[1].endswith("END")
    assert parts[2].startswith("-- c;d") or parts[2].startswith("SELECT 1")


def test_split_does_not_depend_on_the_schema() -> None:
    # With "t" in a replica's schema, CREATE TABLE t cannot compile there; the
    # split must not care (once, the INSERT below was lost).
    script = "DROP TABLE IF EXISTS t; CREATE TABLE t (a); INSERT INTO t VALUES (1), (2), (4), (8);"
    assert split_script(script) == [
        "DROP TABLE IF EXISTS t",
        "CREATE TABLE t (a)",
        "INSERT INTO t VALUES (1), (2), (4), (8)",
    ]
    assert split_script("  ; -- only a comment\n ;") == []
    assert split_script("SELECT 'unterminated; still one") == ["SELECT 'unterminated; still one"]


@pytest.mark.parametrize("quote", ["'", '"', "`"])
def test_a_long_literal_is_read_in_little_memory(inspector: SqlInspector, quote: str) -> None:
    """Tokens are matched without a frame per character: a 1.5 MB literal once took
    184 MB to split and 226 MB to inspect (every POP's peak under MAX_SQL_BYTES texts)."""
    literal = quote + "x''y" * 375_000 + quote
    sql = f"SELECT {literal}; SELECT 2"
    tracemalloc.start()
    try:
        statements = split_script(sql)
        inspector.inspect(statements[0])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert statements == [f"SELECT {literal}", "SELECT 2"]
    assert peak < 20 * 1024 * 1024, f"{peak / 2**20:.0f} MB to read a 1.5 MB literal"


def test_schema_change_is_seen(inspector: SqlInspector) -> None:
    assert inspector.inspect("SELECT * FROM later").kind is Kind.UNKNOWN
    assert inspector.load_schema([SchemaObject("table", "later", "CREATE TABLE later (a)")])
    assert inspector.inspect("SELECT * FROM later").kind is Kind.READ
    assert not inspector.load_schema([SchemaObject("table", "later", "CREATE TABLE later (a)")])


def test_a_failure_after_schema_changes_in_the_same_request_is_compiled_after_them(
    inspector: SqlInspector,
) -> None:
    ran = ["CREATE TABLE later (a)", "INSERT INTO later VALUES (1)", "CREATE VIEW v AS SELECT 1"]
    ahead = inspector.after(ran)
    error = ahead.inspect("CREATE VIEW v AS SELECT 2").compile_error("View v already exists")
    assert (error.message, error.code) == (
        "SQL input error: view v already exists (at offset 12)",
        "SQL_INPUT_ERROR",
    )
    assert ahead.inspect("SELECT a FROM later").kind is Kind.READ
    # The replica's own schema is not touched, and a request without schema changes
    # needs no copy.
    assert inspector.inspect("SELECT a FROM later").kind is Kind.UNKNOWN
    assert inspector.after(["INSERT INTO t (v) VALUES ('x')"]) is inspector


@pytest.mark.parametrize(
    ("ran", "sql", "origin_says", "answer"),
    [
        # tursodb's words for SQLite's complaint get SQLite's words.
        (
            [],
            "SELECT * FROM later",
            "Parse error: No such table: LATER",
            "SQLite error: no such table: later",
        ),
        # tursodb checks the index name before the table; SQLite (and sqld) the table.
        (
            [],
            "CREATE INDEX t_v ON later (v)",
            "Parse error: Error: index with name 't_v' already exists.",
            "SQLite error: no such table: main.later",
        ),
        # ``later`` was created earlier in the same request: the complaint is about the
        # other table, as the origin compiled it.
        (
            ["CREATE TABLE later (a)"],
            'SELECT * FROM later JOIN "odd name"',
            "Parse error: no such table: odd name",
            "SQLite error: no such table: odd name",
        ),
    ],
)
def test_an_origin_compile_error_is_worded_as_sqlite_words_it(
    inspector: SqlInspector, ran: list[str], sql: str, origin_says: str, answer: str
) -> None:
    info = inspector.after(ran).inspect(sql)
    assert info.compile_error(origin_says, failed_to_compile=True).message == answer


@pytest.mark.parametrize(
    "sql",
    [
        "WITH n(x) AS (SELECT 'cte-insert') INSERT INTO kv (k, v) SELECT x, 'w' FROM n",
        "/* just a comment */ REPLACE INTO kv (k, v) VALUES ('replaced', 'w')",
        "-- select\nINSERT INTO kv (k, v) VALUES ('commented', 'w')",
    ],
)
def test_writes_that_keyword_guessing_misses_reach_the_origin(
    sql: str, client: httpx.Client, pop: PopProcess, origin: TursodbOrigin
) -> None:
    before = routes(pop).get("origin", 0)
    answer = pipeline(client, [execute(sql)])
    assert ok_result(answer)["result"]["affected_row_count"] == 1
    assert routes(pop).get("origin", 0) == before + 1
    assert origin.execute("SELECT count(*) FROM kv WHERE v = 'w'")["rows"][0][0]["value"] != "0"


def test_reads_stay_local(client: httpx.Client, pop: PopProcess) -> None:
    before = routes(pop).get("local", 0)
    answer = pipeline(
        client, [execute("WITH q AS (SELECT name FROM items) SELECT count(*) FROM q")]
    )
    assert rows(answer) == [["2"]]
    assert routes(pop).get("local", 0) == before + 1


def test_ddl_is_forwarded_and_then_readable_locally(
    client: httpx.Client, pop: PopProcess, origin: TursodbOrigin
) -> None:
    answer = pipeline(
        client,
        [
            execute("CREATE TABLE fresh (a INTEGER)"),
            execute("INSERT INTO fresh VALUES (7)"),
            execute("SELECT a FROM fresh"),
        ],
    )
    assert rows(answer, 2) == [["7"]]
    before = routes(pop).get("local", 0)
    pipeline(client, [execute("SELECT a FROM fresh")])
    assert routes(pop).get("local", 0) == before + 1


def test_compiled_statements_follow_schema_changes(
    client: httpx.Client, origin: TursodbOrigin
) -> None:
    origin.execute("CREATE TABLE evolving (a INTEGER)")
    origin.execute("INSERT INTO evolving VALUES (1)")
    client.post("/sync")
    before = ok_result(pipeline(client, [execute("SELECT * FROM evolving")]))["result"]
    assert [c["name"] for c in before["cols"]] == ["a"]
    origin.execute("ALTER TABLE evolving ADD COLUMN b TEXT DEFAULT 'new'")
    client.post("/sync")
    after = ok_result(pipeline(client, [execute("SELECT * FROM evolving")]))["result"]
    assert [c["name"] for c in after["cols"]] == ["a", "b"]
    assert after["rows"][0][1] == {"type": "text", "value": "new"}


def test_catalog_shows_the_origin_not_the_engine_bookkeeping(
    client: httpx.Client, pop: PopProcess, origin: TursodbOrigin
) -> None:
    # The turso engine keeps its change log (turso_cdc ...) as tables in the replica file;
    # once, listing sqlite_schema through a POP showed them, and "SELECT * FROM turso_cdc"
    # was answered from the replica. The differential suite found it.
    listing = "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name"
    through_pop = [row[0] for row in rows(pipeline(client, [execute(listing)]))]
    at_origin = [row[0]["value"] for row in origin.execute(listing)["rows"]]
    assert through_pop == at_origin
    answer = pipeline(client, [execute("SELECT * FROM turso_cdc")])
    assert answer["results"][0]["type"] == "error", answer
