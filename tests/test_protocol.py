"""Hrana over HTTP as the spec describes it, request type by request type."""

from __future__ import annotations

import json

import httpx
import pytest

from pop.devtools.processes import PopProcess, TursodbOrigin
from tests.helpers import execute, ok_result, pipeline, rows


@pytest.mark.parametrize("version", ["v2", "v3", "v3-protobuf"])
def test_version_probes(version: str, pop: PopProcess) -> None:
    assert httpx.get(f"{pop.url}/{version}").status_code == 200


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_execute_with_positional_or_named_args(version: str, client: httpx.Client) -> None:
    named = {
        "sql": "SELECT :a, @b, $c",
        "named_args": [
            {"name": ":a", "value": {"type": "integer", "value": "1"}},
            {"name": "b", "value": {"type": "text", "value": "two"}},
            {"name": "$c", "value": {"type": "float", "value": 3.5}},
        ],
    }
    positional = {
        "sql": "SELECT ?, ?4",
        "args": [
            {"type": "null"},
            {"type": "null"},
            {"type": "null"},
            {"type": "blob", "base64": "AAEC"},
        ],
    }
    answer = pipeline(
        client,
        [
            {"type": "execute", "stmt": named},
            {"type": "execute", "stmt": positional},
            {"type": "close"},
        ],
        version=version,
    )
    assert rows(answer) == [["1", "two", 3.5]]
    assert rows(answer, 1) == [[None, "AAEC"]]
    assert answer["baton"] is None


def test_stream_keeps_stored_sql_across_calls(client: httpx.Client) -> None:
    first = pipeline(
        client, [{"type": "store_sql", "sql_id": 7, "sql": "SELECT v FROM kv WHERE k = ?"}]
    )
    assert ok_result(first) == {"type": "store_sql"}
    second = pipeline(
        client,
        [
            {"type": "execute", "stmt": {"sql_id": 7, "args": [{"type": "text", "value": "rt"}]}},
            {"type": "close_sql", "sql_id": 7},
            {"type": "execute", "stmt": {"sql_id": 7}},
        ],
        baton=first["baton"],
    )
    assert rows(second) == [["read-tx"]]
    assert ok_result(second, 1) == {"type": "close_sql"}
    assert second["results"][2]["type"] == "error"


def test_describe(client: httpx.Client) -> None:
    answer = pipeline(
        client,
        [
            {"type": "describe", "sql": "SELECT k, v FROM kv WHERE k = :key"},
            {"type": "describe", "sql": "INSERT INTO kv VALUES (?, ?)"},
        ],
        version="v3",
    )
    read = ok_result(answer)["result"]
    assert read["params"] == [{"name": ":key"}]
    assert read["cols"] == [{"name": "k", "decltype": "TEXT"}, {"name": "v", "decltype": "TEXT"}]
    assert read["is_readonly"] is True and read["is_explain"] is False
    write = ok_result(answer, 1)["result"]
    assert write["params"] == [{"name": None}, {"name": None}]
    assert write["is_readonly"] is False


def test_sequence_local_and_forwarded(client: httpx.Client, origin: TursodbOrigin) -> None:
    answer = pipeline(
        client,
        [
            {"type": "sequence", "sql": "SELECT 1; SELECT 2;"},
            {
                "type": "sequence",
                "sql": "INSERT INTO kv VALUES ('seq1', 'a'); INSERT INTO kv VALUES ('seq2', 'b');",
            },
            execute("SELECT count(*) FROM kv WHERE k LIKE 'seq%'"),
            {
                "type": "sequence",
                "sql": "INSERT INTO kv VALUES ('seq3', 'c'); "
                "INSERT INTO kv VALUES ('seq1', 'dup');",
            },
        ],
    )
    assert ok_result(answer) == {"type": "sequence"}
    assert ok_result(answer, 1) == {"type": "sequence"}
    assert rows(answer, 2) == [["2"]]
    assert answer["results"][3]["error"]["code"] == "SQLITE_CONSTRAINT"


def test_batch_conditions(client: httpx.Client) -> None:
    steps = [
        {"stmt": {"sql": "SELECT 1"}},  # 0 ok
        {"stmt": {"sql": "SELECT * FROM no_such_table_here"}},  # 1 error (forwarded: unknown)
        {"stmt": {"sql": "SELECT 'ok0'"}, "condition": {"type": "ok", "step": 0}},
        {"stmt": {"sql": "SELECT 'err1'"}, "condition": {"type": "error", "step": 1}},
        {
            "stmt": {"sql": "SELECT 'not-ok1'"},
            "condition": {"type": "not", "cond": {"type": "ok", "step": 1}},
        },
        {
            "stmt": {"sql": "SELECT 'and'"},
            "condition": {
                "type": "and",
                "conds": [{"type": "ok", "step": 0}, {"type": "ok", "step": 1}],
            },
        },
        {
            "stmt": {"sql": "SELECT 'or'"},
            "condition": {
                "type": "or",
                "conds": [{"type": "ok", "step": 0}, {"type": "ok", "step": 1}],
            },
        },
        {"stmt": {"sql": "SELECT 'autocommit'"}, "condition": {"type": "is_autocommit"}},
    ]
    answer = pipeline(client, [{"type": "batch", "batch": {"steps": steps}}], version="v3")
    result = ok_result(answer)["result"]
    ran = [r is not None for r in result["step_results"]]
    failed = [e is not None for e in result["step_errors"]]
    assert ran == [True, False, True, True, True, False, True, True]
    assert failed == [False, True, False, False, False, False, False, False]
    assert "no such table" in result["step_errors"][1]["message"]


def test_read_transaction_across_calls_and_get_autocommit(client: httpx.Client) -> None:
    first = pipeline(
        client, [execute("BEGIN TRANSACTION READONLY"), {"type": "get_autocommit"}], version="v3"
    )
    assert ok_result(first, 1) == {"type": "get_autocommit", "is_autocommit": False}
    second = pipeline(
        client,
        [
            execute("SELECT v FROM kv WHERE k = 'rt'"),
            execute("COMMIT"),
            {"type": "get_autocommit"},
            {"type": "close"},
        ],
        baton=first["baton"],
        version="v3",
    )
    assert rows(second) == [["read-tx"]]
    assert ok_result(second, 2)["is_autocommit"] is True
    assert second["baton"] is None


def test_requests_after_close_fail(client: httpx.Client) -> None:
    answer = pipeline(client, [{"type": "close"}, execute("SELECT 1")])
    assert answer["results"][1]["error"]["code"] == "STREAM_CLOSED"


def test_cursor(client: httpx.Client) -> None:
    batch = {
        "steps": [
            {"stmt": {"sql": "SELECT name, qty FROM items ORDER BY id"}},
            {"stmt": {"sql": "SELECT * FROM nowhere_at_all"}},
        ]
    }
    response = client.post("/v3/cursor", json={"baton": None, "batch": batch})
    assert response.status_code == 200
    entries = [json.loads(line) for line in response.text.splitlines()]
    assert set(entries[0]) == {"baton", "base_url"}
    kinds = [e["type"] for e in entries[1:]]
    assert kinds == ["step_begin", "row", "row", "step_end", "step_error", "replication_index"]
    assert entries[1]["cols"][0] == {"name": "name", "decltype": "TEXT"}
    assert entries[2]["row"] == [
        {"type": "text", "value": "apple"},
        {"type": "integer", "value": "3"},
    ]


def test_legacy_endpoint(client: httpx.Client, origin: TursodbOrigin) -> None:
    response = client.post(
        "/",
        json={
            "statements": [
                "SELECT name FROM items WHERE id = 1",
                {"q": "SELECT ? + 1, ?", "params": [41, None]},
                {"q": "INSERT INTO kv (k, v) VALUES (:k, :v)", "params": {"k": "legacy", "v": "1"}},
                "SELECT * FROM missing_table",
            ]
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body[0]["results"]["columns"] == ["name"]
    assert body[0]["results"]["rows"] == [["apple"]]
    assert body[1]["results"]["rows"] == [[42, None]]
    assert "results" in body[2]
    assert body[3] == {"error": "no such table: missing_table"}  # a string, as sqld's
    assert origin.execute("SELECT v FROM kv WHERE k = 'legacy'")["rows"] == [
        [{"type": "text", "value": "1"}]
    ]
