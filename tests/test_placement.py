"""Where a request runs, and that a forwarded statement is inspected once.

``pop.placement`` is a pure function of the prepared statements, the stream's state and
what the replica and the origin can do, so its rules are checked here as a table, against
a real SQLite inspector. The router's whole path to the origin runs below on an origin
made with ``httpx.MockTransport`` (one that keeps streams, as sqld, and one that does not,
as tursodb), with an inspector that counts how often each statement is compiled.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, cast

import httpx
import pytest

from pop.hrana.errors import HranaError
from pop.hrana.messages import PipelineBody, parse_body
from pop.limits import Limits
from pop.local.executor import LocalExecutor
from pop.local.pool import ReaderPool
from pop.local.runner import LocalRunner
from pop.metrics import PopMetrics
from pop.origin.client import WRITE_FACTS_SQL, OriginClient
from pop.origin.forward import Forwarder
from pop.placement import origin_refusal, place
from pop.routing import Router
from pop.session import Route, Session
from pop.sql.inspector import SchemaObject, SqlInspector, StatementInfo
from pop.streams import TxnState
from tests.test_session import RecordingReplica

SCHEMA = [SchemaObject("table", "t", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")]


class CountingInspector(SqlInspector):
    def __init__(self) -> None:
        super().__init__()
        self.inspected: list[str] = []

    def inspect(self, sql: str) -> StatementInfo:
        self.inspected.append(sql)
        return super().inspect(sql)


def _inspector() -> CountingInspector:
    inspector = CountingInspector()
    inspector.load_schema(SCHEMA)
    return inspector


def _infos(*sqls: str) -> list[StatementInfo]:
    inspector = _inspector()
    return [inspector.inspect(sql) for sql in sqls]


AUTO, LOCAL_TXN, ORIGIN_TXN = TxnState.AUTOCOMMIT, TxnState.LOCAL_TXN, TxnState.ORIGIN_TXN


@pytest.mark.parametrize(
    ("sqls", "state", "alone", "current", "route"),
    [
        (["SELECT * FROM t"], AUTO, True, True, Route.LOCAL),
        (["SELECT * FROM t"], AUTO, True, False, Route.ORIGIN),  # replica behind a write
        (["INSERT INTO t (v) VALUES ('a')"], AUTO, True, True, Route.ORIGIN),
        (["BEGIN TRANSACTION READONLY"], AUTO, True, True, Route.LOCAL),
        (["BEGIN"], AUTO, True, True, Route.ORIGIN),  # alone, a deferred one may write later
        (["BEGIN", "SELECT * FROM t", "COMMIT"], AUTO, False, True, Route.LOCAL),
        (["BEGIN", "SELECT * FROM t"], AUTO, False, True, Route.ORIGIN),  # left open
        (["SELECT * FROM t", "DELETE FROM t"], AUTO, False, True, Route.ORIGIN),
        (["SELECT * FROM t"], ORIGIN_TXN, True, True, Route.ORIGIN),  # never split
        (["SELECT * FROM t"], LOCAL_TXN, True, False, Route.LOCAL),  # its snapshot
        (["COMMIT"], LOCAL_TXN, True, True, Route.LOCAL),
        (["SELECT nosuch FROM t"], AUTO, True, True, Route.ORIGIN),  # the origin decides
    ],
)
def test_placement(
    sqls: list[str], state: TxnState, alone: bool, current: bool, route: Route
) -> None:
    assert place(_infos(*sqls), state, alone=alone, replica_shows_its_writes=current) is route


@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("INSERT INTO t (v) VALUES ('a')", "SQLITE_READONLY"),
        ("SELECT nosuch FROM t", "SQLITE_ERROR"),
    ],
)
def test_a_read_transaction_refuses_what_it_cannot_run(sql: str, code: str) -> None:
    with pytest.raises(HranaError) as refused:
        place(_infos(sql), LOCAL_TXN, alone=True, replica_shows_its_writes=True)
    assert refused.value.code == code


def test_an_origin_without_streams_takes_a_transaction_only_whole() -> None:
    def refusal(*sqls: str, whole: bool, keeps_streams: bool = False) -> str | None:
        error = origin_refusal(
            _infos(*sqls), keeps_streams=keeps_streams, whole=whole, origin="http://o"
        )
        return error.code if error else None

    assert refusal("BEGIN IMMEDIATE", whole=False) == "TRANSACTION_NOT_SUPPORTED"
    assert refusal("BEGIN", "INSERT INTO t (v) VALUES (1)", whole=True) == (
        "TRANSACTION_NOT_SUPPORTED"  # begun, not ended
    )
    assert refusal("BEGIN", "INSERT INTO t (v) VALUES (1)", "COMMIT", whole=True) is None
    assert refusal("INSERT INTO t (v) VALUES (1)", whole=False) is None
    assert refusal("BEGIN IMMEDIATE", whole=False, keeps_streams=True) is None


@pytest.mark.parametrize(
    "sql",
    [
        "PRAGMA foreign_keys = OFF",
        "pragma FOREIGN_KEYS(0)",
        "PRAGMA main.defer_foreign_keys = 1",
        "EXPLAIN PRAGMA foreign_keys = 0",  # SQLite sets flag pragmas while compiling
    ],
)
def test_connection_state_reaches_only_an_origin_that_keeps_streams(sql: str) -> None:
    # Once, "PRAGMA query_only=1" reached tursodb's one shared connection and every later
    # write of every POP failed; foreign_keys would switch checks off for every client.
    def refusal(*, keeps_streams: bool) -> str | None:
        error = origin_refusal(
            _infos(sql), keeps_streams=keeps_streams, whole=False, origin="http://o"
        )
        return error.code if error else None

    assert refusal(keeps_streams=False) == "CONNECTION_STATE_NOT_SUPPORTED"
    assert refusal(keeps_streams=True) is None  # sqld scopes it to the client's stream


@pytest.mark.parametrize("sql", ["PRAGMA foreign_keys", "PRAGMA user_version = 3"])
def test_reading_connection_state_or_setting_the_file_goes_to_any_origin(sql: str) -> None:
    assert origin_refusal(_infos(sql), keeps_streams=False, whole=False, origin="o") is None


@pytest.mark.parametrize(
    "sql", ["SELECT pgno FROM sqlite_dbpage", "SELECT load_extension('/tmp/x.so')"]
)
@pytest.mark.parametrize("keeps_streams", [False, True])
def test_what_surely_fails_at_sqld_is_never_sent(sql: str, keeps_streams: bool) -> None:
    # Once, tursodb (which has sqlite_dbpage) returned the raw pages of its file.
    error = origin_refusal(_infos(sql), keeps_streams=keeps_streams, whole=True, origin="o")
    assert error is not None and error.code == "SQLITE_UNKNOWN"
    assert place(_infos(sql), TxnState.AUTOCOMMIT, alone=True, replica_shows_its_writes=True) is (
        Route.LOCAL
    )


# -- the path to the origin, on mock origins ------------------------------------------

WRITTEN = {
    "cols": [],
    "rows": [],
    "affected_row_count": 1,
    "last_insert_rowid": "1",
    "replication_index": None,
}


def _ok(response: dict[str, Any]) -> dict[str, Any]:
    return {"type": "ok", "response": response}


def _keeps_streams(request: httpx.Request) -> httpx.Response:
    """An origin that keeps streams and answers every statement with one written row."""
    if request.url.path == "/v3":
        return httpx.Response(200)
    results = []
    for sent in json.loads(request.content)["requests"]:
        if sent["type"] == "execute":
            results.append(_ok({"type": "execute", "result": WRITTEN}))
        elif sent["type"] == "batch":
            steps = len(sent["batch"]["steps"])
            batch = {"step_results": [WRITTEN] * steps, "step_errors": [None] * steps}
            results.append(_ok({"type": "batch", "result": batch}))
        elif sent["type"] == "get_autocommit":
            results.append(_ok({"type": "get_autocommit", "is_autocommit": True}))
        else:
            results.append(_ok({"type": sent["type"]}))
    return httpx.Response(200, json={"baton": "b1", "base_url": None, "results": results})


def _keeps_no_streams(request: httpx.Request) -> httpx.Response:
    """An origin like tursodb: batches only; the write facts step answers (1, 1), and the
    last step (roll back if inside a transaction) does not run."""
    if request.url.path in ("/v3", "/v2"):
        return httpx.Response(404)
    (sent,) = json.loads(request.content)["requests"]
    steps = sent["batch"]["steps"]
    facts = {"cols": [], "rows": [[{"type": "integer", "value": "1"}] * 2]}
    results: list[dict[str, Any] | None] = [
        facts if step["stmt"]["sql"] == WRITE_FACTS_SQL else WRITTEN for step in steps[:-1]
    ]
    batch = {"step_results": [*results, None], "step_errors": [None] * len(steps)}
    return httpx.Response(
        200, json={"baton": None, "results": [_ok({"type": "batch", "result": batch})]}
    )


def pop_session(
    origin: httpx.AsyncBaseTransport,
    inspector: SqlInspector,
    base_url: str = "http://origin.test",
) -> tuple[Session, list[str | None]]:
    """A POP's session and router over the origin ``origin`` reaches (no HTTP server in
    front); returns it with the replication indexes the replica was asked to catch up to."""
    client = OriginClient(base_url, None, 5.0, transport=origin)
    # Every request below is a write: it never reaches the replica, so the router gets
    # a pool and runner over no engine.
    pool = ReaderPool(cast(Any, None))
    router = Router(
        inspector,
        pool,
        LocalRunner(pool, workers=1, statement_timeout=5.0, slow_workers=1),
        LocalExecutor(max_result_bytes=1 << 20),
        Forwarder(client, inspector),
    )
    replica = RecordingReplica()
    session = Session(
        router,
        Limits.from_settings(),
        PopMetrics(),
        idle_timeout=60.0,
        server="test",
        replica=replica,
    )
    return session, replica.caught_up


WRITES: list[dict[str, Any]] = [
    {
        "type": "execute",
        "stmt": {"sql": "INSERT INTO t (v) VALUES (?)", "args": [{"type": "text", "value": "a"}]},
    },
    {"type": "store_sql", "sql_id": 1, "sql": "UPDATE t SET v = :v"},
    {
        "type": "batch",
        "batch": {
            "steps": [
                {"stmt": {"sql_id": 1, "named_args": [{"name": ":v", "value": {"type": "null"}}]}},
                {
                    "stmt": {"sql": "DELETE FROM t WHERE id = 1"},
                    "condition": {"type": "ok", "step": 0},
                },
            ]
        },
    },
    {"type": "sequence", "sql": "INSERT INTO t (v) VALUES ('b'); DELETE FROM t WHERE id = 2"},
]


@pytest.mark.parametrize("origin", [_keeps_streams, _keeps_no_streams])
def test_a_forwarded_statement_is_inspected_once(
    origin: Callable[[httpx.Request], httpx.Response],
) -> None:
    inspector = _inspector()
    session, caught_up = pop_session(httpx.MockTransport(origin), inspector)
    body = parse_body(PipelineBody, json.dumps({"baton": None, "requests": WRITES}).encode())
    answer = asyncio.run(session.pipeline(body, "v3_pipeline"))
    results = answer.body["results"]
    assert [r["type"] for r in results] == ["ok"] * 4, results
    assert answer.route is Route.ORIGIN
    assert results[0]["response"]["result"]["affected_row_count"] == 1
    assert len(caught_up) == 3  # each write request made the replica catch up
    assert sorted(inspector.inspected) == sorted(
        [
            "INSERT INTO t (v) VALUES (?)",
            "UPDATE t SET v = :v",
            "DELETE FROM t WHERE id = 1",
            "INSERT INTO t (v) VALUES ('b')",
            "DELETE FROM t WHERE id = 2",
        ]
    )
