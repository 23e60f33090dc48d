"""The same Hrana requests sent to ``sqld`` and through a POP: the answers must agree.

``sqld`` (the libSQL server behind Turso) is the reference for every answer a POP gives.
Fields that depend on the server's own state are left out of the comparison: ``baton``,
``base_url``, ``replication_index``, timings, and ``rows_read``/``rows_written`` (the
POP's origin here, ``tursodb``, reports none). Error messages are compared as well,
except where ``sqld``'s own parser or argument checker words them (``SQL_PARSE_ERROR``,
``SQL_INPUT_ERROR``'s offset, ``ARGS_INVALID``): there the code must agree.

Each case runs in tables of its own, created on both sides first.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pop.devtools.processes import PopProcess, SqldServer
from tests.differential.through_pop import legacy_json
from tests.helpers import comparable_with_sqld, execute

_names = itertools.count()


def _call(http: httpx.Client, requests: list[dict[str, Any]]) -> Any:
    response = http.post("/v3/pipeline", json={"baton": None, "requests": requests})
    assert response.status_code == 200, response.text
    return comparable_with_sqld(response.json())


class Both:
    """One pipeline sent to ``sqld`` and to a POP, in a table name of the case's own."""

    def __init__(self, sqld: SqldServer, pop: PopProcess) -> None:
        self.sqld = httpx.Client(base_url=sqld.url, timeout=30)
        self.pop = pop.client()

    def close(self) -> None:
        self.sqld.close()
        self.pop.close()

    def setup(self, *sqls: str) -> None:
        for http in (self.sqld, self.pop):
            answer = _call(http, [execute(sql) for sql in sqls])
            assert all(r["type"] == "ok" for r in answer["results"]), answer

    def agree(self, requests: list[dict[str, Any]]) -> Any:
        expected = _call(self.sqld, requests)
        got = _call(self.pop, requests)
        assert got == expected, f"\nPOP:  {got}\nsqld: {expected}"
        return expected


@pytest.fixture()
def both(sqld: SqldServer, pop: PopProcess) -> Any:
    pair = Both(sqld, pop)
    yield pair
    pair.close()


def _table() -> str:
    return f"parity_{next(_names)}"


def test_two_statements_in_one_execute_are_refused_and_none_runs(both: Both) -> None:
    t = _table()
    both.setup(f"CREATE TABLE {t} (x UNIQUE)")
    answer = both.agree(
        [
            execute(f"INSERT INTO {t} VALUES (1); INSERT INTO {t} VALUES (2)"),
            execute(f"SELECT 1; SELECT * FROM {t}"),
            execute(f"SELECT count(*) FROM {t}"),
        ]
    )
    assert answer["results"][0]["error"]["code"] == "SQL_MANY_STATEMENTS"
    assert answer["results"][2]["response"]["result"]["rows"] == [
        [{"type": "integer", "value": "0"}]
    ]


@pytest.mark.parametrize("sql", ["", "   ", "-- only a comment", "/* x */", ";;;", " ; -- c\n;"])
def test_no_statement(both: Both, sql: str) -> None:
    answer = both.agree([execute(sql)])
    assert answer["results"][0]["error"]["code"] == "SQL_NO_STATEMENT"


@pytest.mark.parametrize("sql", ["SELECT 1;", "SELECT 1;;", "SELECT 1; -- done", "  SELECT 1  "])
def test_one_statement_with_trailing_separators(both: Both, sql: str) -> None:
    both.agree([execute(sql)])


def test_error_codes_as_sqld_gives_them(both: Both) -> None:
    t = _table()
    both.setup(
        f"CREATE TABLE {t} (a INTEGER PRIMARY KEY, b TEXT UNIQUE, c NOT NULL, d CHECK (d > 0))",
        f"INSERT INTO {t} VALUES (1, 'one', 1, 1)",
        f"CREATE TABLE {t}_strict (a INTEGER) STRICT",
    )
    both.agree(
        [
            execute("SELEC 1"),
            execute("SELECT 'unterminated"),
            execute(f"SELECT nosuch FROM {t}"),
            execute("SELECT nosuchfn(1)"),
            execute(f"SELECT * FROM {t}_nosuch"),
            execute(f"INSERT INTO {t} (nosuch) VALUES (1)"),
            execute("COMMIT"),
            execute("ROLLBACK"),
            execute("RELEASE nosuch"),
            execute("ROLLBACK TO nosuch"),
            execute(f"INSERT INTO {t} VALUES (1, 'x', 1, 1)"),
            execute(f"INSERT INTO {t} VALUES (2, 'one', 1, 1)"),
            execute(f"INSERT INTO {t} VALUES (3, 'three', NULL, 1)"),
            execute(f"INSERT INTO {t} VALUES (4, 'four', 1, -1)"),
            execute(f"INSERT INTO {t}_strict VALUES ('abc')"),
            execute(f"INSERT INTO {t} (a, b, c, d) VALUES (0.5, 'half', 1, 1)"),  # MISMATCH
            execute(f"SELECT count(*) FROM {t}"),
        ]
    )


def test_constraint_errors_in_a_batch(both: Both) -> None:
    t = _table()
    both.setup(f"CREATE TABLE {t} (a INTEGER PRIMARY KEY, b UNIQUE)")
    steps = [
        {"stmt": {"sql": f"INSERT INTO {t} VALUES (1, 1)"}},
        {"stmt": {"sql": f"INSERT INTO {t} VALUES (1, 2)"}},
        {"stmt": {"sql": f"INSERT INTO {t} VALUES (2, 1)"}},
        {"stmt": {"sql": f"INSERT INTO {t} VALUES (3, 3); SELECT 1"}},
        {"stmt": {"sql": "-- nothing"}},
        {"stmt": {"sql": f"SELECT a, b FROM {t} ORDER BY a"}},
    ]
    both.agree([{"type": "batch", "batch": {"steps": steps}}])


def test_result_fields(both: Both) -> None:
    t = _table()
    both.agree(
        [
            execute(f"CREATE TABLE {t} (a INTEGER PRIMARY KEY, b)"),
            execute(f"INSERT INTO {t} (b) VALUES (x'00ff01'), (x''), (x'00')"),
            execute(f"CREATE INDEX {t}_b ON {t} (b)"),
            execute(f"UPDATE {t} SET b = x'01' WHERE a = 1"),
            execute(f"DELETE FROM {t} WHERE a = 2"),
            execute(f"SELECT a, b FROM {t} ORDER BY a"),
            execute(f"INSERT INTO {t} (a, b) VALUES (9223372036854775807, 'max') RETURNING a"),
        ]
    )


def test_arguments_checked_as_sqld_checks_them(both: Both) -> None:
    one = {"type": "integer", "value": "1"}
    both.agree(
        [
            {"type": "execute", "stmt": {"sql": "SELECT ?"}},
            {"type": "execute", "stmt": {"sql": "SELECT ?, ?", "args": [one]}},
            {"type": "execute", "stmt": {"sql": "SELECT ?", "args": [one, one]}},
            {"type": "execute", "stmt": {"sql": "SELECT ?2", "args": [one, one]}},
            {
                "type": "execute",
                "stmt": {
                    "sql": "SELECT :a, ?",
                    "args": [one],
                    "named_args": [{"name": ":a", "value": one}],
                },
            },
            {
                "type": "execute",
                "stmt": {"sql": "SELECT :a, @b", "named_args": [{"name": ":a", "value": one}]},
            },
        ]
    )


def test_arguments_for_a_table_the_replica_has_not_seen(both: Both) -> None:
    # Once, named arguments for a statement the POP could not compile (its table was
    # created in the same batch) reached tursodb, which drops named arguments: NULLs
    # were stored and the write acknowledged.
    t = _table()
    one, blob = {"type": "integer", "value": "1"}, {"type": "blob", "base64": "AP8"}
    steps = [
        {"stmt": {"sql": f"CREATE TABLE {t} (a, b)"}},
        {
            "stmt": {
                "sql": f"INSERT INTO {t} VALUES (:a, $b)",
                "named_args": [{"name": ":a", "value": one}, {"name": "$b", "value": blob}],
            }
        },
        {"stmt": {"sql": f"INSERT INTO {t} VALUES (?, ?)", "args": [one]}},
        {"stmt": {"sql": f"INSERT INTO {t} VALUES (?2, ?1)", "args": [one, blob]}},
        {"stmt": {"sql": f"SELECT a, b FROM {t} ORDER BY rowid"}},
    ]
    both.agree([{"type": "batch", "batch": {"steps": steps}}])


@pytest.mark.parametrize(
    "sql",
    [
        'PRAGMA "hard_heap_limit"=1',
        "PRAGMA [hard_heap_limit]=1",
        ";PRAGMA hard_heap_limit=1",
        "PRAGMA query_only=1",
        'EXPLAIN PRAGMA "query_only"=1',
        "EXPLAIN PRAGMA query_only=1",
    ],
)
def test_connection_state_pragmas_are_refused_as_sqld_refuses_them(both: Both, sql: str) -> None:
    # Once, these were compiled in the POP's own process (the heap limit is process-wide,
    # and sync then failed) or forwarded to tursodb's one shared connection (every later
    # write of every POP then failed with SQLITE_READONLY).
    answer = both.agree([execute(sql)])
    assert answer["results"][0]["error"]["code"] == "SQL_PARSE_ERROR"
    t = _table()
    both.agree(
        [
            execute(f"CREATE TABLE {t} (a)"),
            execute(f"INSERT INTO {t} VALUES (zeroblob(100000))"),
            execute(f"SELECT length(a) FROM {t}"),
        ]
    )


def _legacy(http: httpx.Client, statements: list[Any]) -> tuple[int, Any]:
    response = http.post("/", json={"statements": statements})
    body = legacy_json(response.text)
    if response.status_code == 500:  # refused by sqld's own parser, in its own words
        return response.status_code, None
    if isinstance(body, list):
        for entry in body:
            if entry and "results" in entry:
                del entry["results"]["rows_read"], entry["results"]["rows_written"]
                del entry["results"]["query_duration_ms"]
    return response.status_code, body


def test_sqld_answers_begin_then_a_failing_statement_with_broken_json(sqld: SqldServer) -> None:
    """A sqld defect, named where the differential suite reads sqld's legacy answers
    (``legacy_json``): that reading still gives what sqld means, which the POP answers
    (through a stream-keeping origin; the differential suite compares the two)."""
    statements = ["BEGIN", "BEGIN DEFERRED", "SELECT 1"]
    raw = httpx.post(f"{sqld.url}/", json={"statements": statements}).text
    with pytest.raises(ValueError):
        json.loads(raw)
    meant = legacy_json(raw)
    assert meant[1:] == [{"error": "cannot start a transaction within a transaction"}, None]


LEGACY_REQUESTS: dict[str, Callable[[str], list[Any]]] = {
    "runs in order, stops at the first error": lambda t: [
        f"CREATE TABLE {t} (a INTEGER PRIMARY KEY, b)",
        {"q": f"INSERT INTO {t} VALUES (?, ?)", "params": [1, "x"]},
        {"q": f"INSERT INTO {t} VALUES (:a, :b)", "params": {":a": 2, ":b": {"base64": "AP8"}}},
        f"SELECT a, b FROM {t} ORDER BY a",
        {"q": f"INSERT INTO {t} VALUES (?, ?)", "params": [1, "dup"]},
        f"INSERT INTO {t} VALUES (3, 'never run')",
        f"SELECT count(*) FROM {t}",
    ],
    "values": lambda t: ["SELECT x'00ff', 1.5, NULL, 9007199254740993, 'text'"],
    "a syntax error refuses the whole request": lambda t: [
        f"CREATE TABLE {t} (a)",
        "SELEC 1",
    ],
    "an open transaction refuses the whole request": lambda t: [
        f"CREATE TABLE {t} (a)",
        "BEGIN",
        f"INSERT INTO {t} VALUES (1)",
    ],
    "two statements in one string refuse the whole request": lambda t: [
        f"CREATE TABLE {t} (a)",
        "SELECT 1; SELECT 2",
    ],
    "an unsupported statement refuses the whole request": lambda t: ["PRAGMA query_only = 1"],
    "an empty statement": lambda t: ["SELECT 1", "", "SELECT 2"],
    "a syntax error after an empty statement": lambda t: ["SELECT 1", "", "SELEC 2"],
    "a savepoint release refuses the whole request": lambda t: [
        f"CREATE TABLE {t} (a)",
        "SAVEPOINT a",
        "RELEASE a",
    ],
    "a savepoint inside a transaction": lambda t: ["BEGIN", "SAVEPOINT x", "COMMIT"],
    "a transaction state sqld cannot predict": lambda t: ["COMMIT", "BEGIN"],
    "a failing statement": lambda t: ["SELECT * FROM nosuch_table", "SELECT 1"],
    "a transaction that ends": lambda t: [
        f"CREATE TABLE {t} (a)",
        "BEGIN",
        f"INSERT INTO {t} VALUES (1)",
        "COMMIT",
        f"SELECT count(*) FROM {t}",
    ],
}


@pytest.mark.parametrize("case", sorted(LEGACY_REQUESTS))
def test_legacy_api_as_sqld_answers_it(both: Both, case: str) -> None:
    t = _table()
    statements = LEGACY_REQUESTS[case](t)
    expected = _legacy(both.sqld, statements)
    got = _legacy(both.pop, statements)
    assert got == expected, f"\nPOP:  {got}\nsqld: {expected}"
    # Nothing of a refused request ran, and a run stopped where sqld stops.
    listing = f"SELECT count(*) FROM sqlite_schema WHERE name = '{t}'"
    assert _call(both.pop, [execute(listing)]) == _call(both.sqld, [execute(listing)])


def _integer(text: str) -> dict[str, Any]:
    return {"type": "integer", "value": text}


def _blob(text: str) -> dict[str, Any]:
    return {"type": "blob", "base64": text}


@pytest.mark.parametrize(
    "value",
    [
        _integer("1_000"),
        _integer("\u0663"),  # ARABIC-INDIC DIGIT THREE
        _integer(" 5"),
        _integer("5 "),
        _integer("0x10"),
        _integer(""),
        _integer("9223372036854775808"),
        _integer("+5"),
        _integer("-0"),
        _integer("00012"),
        {"type": "integer", "value": 5},
        _blob("!!!"),
        _blob("Y Q"),
        _blob("YQ"),
        _blob("YQ=="),
    ],
    ids=repr,
)
def test_argument_values_are_read_as_sqld_reads_them(both: Both, value: dict[str, Any]) -> None:
    # Once, Python's int() let "1_000", " 5" and non-ASCII digits through as integers,
    # and a JSON number was taken where sqld wants a string.
    stmt = {"sql": "SELECT ?", "args": [value]}
    body = {"baton": None, "requests": [{"type": "execute", "stmt": stmt}]}
    expected = both.sqld.post("/v3/pipeline", json=body)
    got = both.pop.post("/v3/pipeline", json=body)
    assert got.status_code == expected.status_code, f"\nPOP:  {got.text}\nsqld: {expected.text}"
    if expected.status_code == 200:
        assert comparable_with_sqld(got.json()) == comparable_with_sqld(expected.json())


@pytest.mark.parametrize(
    "body",
    [
        *(
            {"statements": [{"q": "SELECT ?", "params": [{"base64": encoded}]}]}
            for encoded in ("!!!", "YQ==", "Y Q", "YQ", "AP8")
        ),
        {"statements": [{"q": "SELECT ?", "params": [True]}]},
        {"statements": [{"q": "SELECT ?", "params": [{"x": 1}]}]},
        {"statements": [{"q": "SELECT ?", "params": [[1]]}]},
        {"statements": [5]},
        {"statements": 5},
        {"x": 1},
        "not JSON",
        "",
    ],
    ids=repr,
)
def test_legacy_bodies_are_read_as_sqld_reads_them(both: Both, body: Any) -> None:
    # Once, {"base64": "!!!"} became an empty blob; sqld refuses JSON that is not a
    # request with 422 (400 is for text that is not JSON) and legacy base64 with padding.
    raw = body if isinstance(body, str) else json.dumps(body)
    headers = {"content-type": "application/json"}
    expected = both.sqld.post("/", content=raw, headers=headers)
    got = both.pop.post("/", content=raw, headers=headers)
    assert got.status_code == expected.status_code, f"\nPOP:  {got.text}\nsqld: {expected.text}"
    if expected.status_code == 200:
        assert _legacy(both.pop, body["statements"]) == _legacy(both.sqld, body["statements"])


@pytest.mark.parametrize(
    "sql",
    [
        "VACUUM INTO '/tmp/edge-pop-vacuum-into.db'",
        "PRAGMA writable_schema=1",
        "SELECT pgno FROM sqlite_dbpage LIMIT 1",
        "CREATE TEMP TABLE scratch (a)",
        "CREATE TABLE temp.scratch (a)",
        "ATTACH DATABASE '/tmp/edge-pop-attached.db' AS other",
        "SELECT load_extension('/tmp/nothing')",
        "SELECT readfile('/etc/passwd')",
    ],
)
def test_statements_acting_on_the_origin_host_are_answered_as_sqld_answers(
    both: Both, sql: str
) -> None:
    # Once, tursodb behind a POP created the VACUUM INTO file on its host, returned raw
    # pages of sqlite_dbpage, and took a temporary table into its one shared connection.
    answer = both.agree([execute(sql)])
    assert answer["results"][0]["type"] == "error"


@pytest.mark.parametrize("sql", ["PRAGMA foreign_keys = OFF", "EXPLAIN PRAGMA foreign_keys = 0"])
def test_connection_settings_never_reach_a_shared_connection(both: Both, sql: str) -> None:
    # The POP here forwards to tursodb, whose one connection serves every client of every
    # POP (sqld, which the POP would forward to in the client's own stream, takes it).
    answer = _call(both.pop, [execute(sql), execute("PRAGMA foreign_keys")])
    assert answer["results"][0]["error"]["code"] == "CONNECTION_STATE_NOT_SUPPORTED"
    assert answer["results"][1]["type"] == "ok"
