"""Hrana over WebSocket on a POP, spoken by hand (``websockets``), against a real sqld
origin. ``@libsql/client`` over ``ws://`` runs in tests/test_transactions.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from pop.devtools.processes import PopProcess, SqldServer
from tests.conftest import SCHEMA
from tests.helpers import metric, running


@pytest.fixture(scope="module")
def sqld(sqld_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqldServer]:
    origin = SqldServer(sqld_binary, tmp_path_factory.mktemp("ws-origin"))
    with running(origin):
        for sql in SCHEMA:
            origin.execute(sql)
        yield origin


@pytest.fixture(scope="module")
def pop(sqld: SqldServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PopProcess]:
    pop = PopProcess(sqld.url, tmp_path_factory.mktemp("ws"), region="eu", engine="libsql")
    with running(pop):
        yield pop


def _connect(pop: PopProcess, subprotocol: str = "hrana2") -> ClientConnection:
    url = pop.url.replace("http://", "ws://", 1)
    return connect(url, subprotocols=[subprotocol], open_timeout=10)  # type: ignore[list-item]


class Hrana:
    """A hand-driven Hrana connection: numbered requests, answers by request id."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.next_id = 0

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def receive(self) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self.ws.recv(timeout=30))
        return answer

    def hello(self, token: str) -> dict[str, Any]:
        self.send({"type": "hello", "jwt": token})
        return self.receive()

    def request(self, request: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        self.send({"type": "request", "request_id": self.next_id, "request": request})
        answer = self.receive()
        assert answer["request_id"] == self.next_id, answer
        return answer


def _opened(ws: ClientConnection, pop: PopProcess) -> Hrana:
    """A connection past hello, with stream 1 open."""
    hrana = Hrana(ws)
    assert hrana.hello(pop.token) == {"type": "hello_ok"}
    assert hrana.request({"type": "open_stream", "stream_id": 1})["type"] == "response_ok"
    return hrana


def _execute(stream_id: int, sql: str, *args: Any) -> dict[str, Any]:
    values = [{"type": "text", "value": str(a)} for a in args]
    return {"type": "execute", "stream_id": stream_id, "stmt": {"sql": sql, "args": values}}


def test_a_wrong_token_gets_a_hello_error_and_the_connection_ends(pop: PopProcess) -> None:
    with _connect(pop) as ws:
        hrana = Hrana(ws)
        answer = hrana.hello("not-the-token")
        assert answer["type"] == "hello_error"
        assert answer["error"] == {
            "message": "Authentication failed: The token is not this POP's PROXY_AUTH_TOKEN",
            "code": "AUTH_TOKEN_INVALID",
        }
        with pytest.raises(ConnectionClosed):
            hrana.receive()


def test_a_request_before_hello_ends_the_connection_as_a_protocol_error(pop: PopProcess) -> None:
    with _connect(pop) as ws:
        ws.send(
            json.dumps(
                {
                    "type": "request",
                    "request_id": 1,
                    "request": {"type": "open_stream", "stream_id": 1},
                }
            )
        )
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002


def test_an_unknown_subprotocol_is_refused(pop: PopProcess) -> None:
    with pytest.raises((InvalidStatus, ConnectionClosed)), _connect(pop, "hrana9") as ws:
        ws.recv(timeout=10)


def test_streams_share_stored_sql_and_answer_in_order(pop: PopProcess) -> None:
    with _connect(pop) as ws:
        hrana = Hrana(ws)
        assert hrana.hello(pop.token) == {"type": "hello_ok"}
        for stream_id in (1, 2):
            assert hrana.request({"type": "open_stream", "stream_id": stream_id})["type"] == (
                "response_ok"
            )
        stored = {"type": "store_sql", "sql_id": 7, "sql": "INSERT INTO kv (k, v) VALUES (?, ?)"}
        assert hrana.request(stored)["response"] == {"type": "store_sql"}
        by_id = {
            "type": "execute",
            "stream_id": 2,
            "stmt": {
                "sql_id": 7,
                "args": [{"type": "text", "value": "ws-stored"}, {"type": "text", "value": "1"}],
            },
        }
        written = hrana.request(by_id)
        assert written["type"] == "response_ok", written
        assert written["response"]["result"]["affected_row_count"] == 1
        read = hrana.request(_execute(1, "SELECT v FROM kv WHERE k = ?", "ws-stored"))
        assert read["response"]["result"]["rows"] == [[{"type": "text", "value": "1"}]]
        autocommit = hrana.request({"type": "get_autocommit", "stream_id": 1})
        assert autocommit["response"] == {"type": "get_autocommit", "is_autocommit": True}
        assert hrana.request({"type": "close_stream", "stream_id": 2})["response"] == {
            "type": "close_stream"
        }
        # A request on a stream that is not open ends the connection, as sqld ends it.
        hrana.send({"type": "request", "request_id": 99, "request": _execute(2, "SELECT 1")})
        with pytest.raises(ConnectionClosed):
            hrana.receive()


def test_a_transaction_left_open_is_rolled_back_when_the_connection_ends(
    pop: PopProcess, sqld: SqldServer
) -> None:
    with _connect(pop) as ws:
        hrana = _opened(ws, pop)
        assert hrana.request(_execute(1, "BEGIN IMMEDIATE"))["type"] == "response_ok"
        inserted = hrana.request(_execute(1, "INSERT INTO kv (k, v) VALUES (?, 'x')", "ws-gone"))
        assert inserted["type"] == "response_ok", inserted
        autocommit = hrana.request({"type": "get_autocommit", "stream_id": 1})
        assert autocommit["response"]["is_autocommit"] is False
    # The connection is gone without a COMMIT: the origin's write lock is free for the
    # next writer, and nothing of the transaction stays there.
    with _connect(pop) as ws:
        hrana = _opened(ws, pop)
        after = hrana.request(_execute(1, "INSERT INTO kv (k, v) VALUES (?, 'y')", "ws-after"))
        assert after["type"] == "response_ok", after
    counted = sqld.execute("SELECT count(*) FROM kv WHERE k IN ('ws-gone', 'ws-after')")
    assert counted["rows"] == [[{"type": "integer", "value": "1"}]]


def test_hrana3_is_chosen_when_offered_and_protobuf_is_not() -> None:
    """What @libsql/client offers, in its order; the POP picks by its own preference."""
    from pop.http.websocket import choose_subprotocol

    offered = ["hrana3-protobuf", "hrana3", "hrana2", "hrana1"]
    assert choose_subprotocol(offered) == "hrana3"
    assert choose_subprotocol(["hrana3-protobuf"]) is None


def test_a_cursor_hands_out_a_batch_in_the_chunks_fetched(pop: PopProcess) -> None:
    with _connect(pop, "hrana3") as ws:
        assert ws.subprotocol == "hrana3"
        hrana = Hrana(ws)
        assert hrana.hello(pop.token) == {"type": "hello_ok"}
        hrana.request({"type": "open_stream", "stream_id": 1})
        batch = {
            "steps": [
                {"stmt": {"sql": "SELECT 1 UNION ALL SELECT 2"}},
                {"stmt": {"sql": "SELECT nosuch FROM kv"}},
                {"stmt": {"sql": "SELECT 3"}, "condition": {"type": "ok", "step": 1}},
            ]
        }
        opened = hrana.request(
            {"type": "open_cursor", "stream_id": 1, "cursor_id": 5, "batch": batch}
        )
        assert opened["response"] == {"type": "open_cursor"}, opened
        entries: list[dict[str, Any]] = []
        done, fetches = False, 0
        while not done:
            fetches += 1
            fetched = hrana.request({"type": "fetch_cursor", "cursor_id": 5, "max_count": 2})
            chunk = fetched["response"]["entries"]
            assert len(chunk) <= 2
            entries += chunk
            done = fetched["response"]["done"]
        # sqld's entries for this batch, in its chunks: the fourth fetch finds the end.
        assert [entry["type"] for entry in entries] == [
            "step_begin",
            "row",
            "row",
            "step_end",
            "step_error",
            "replication_index",
        ]
        assert fetches == 4
        assert entries[1]["row"] == [{"type": "integer", "value": "1"}]
        assert entries[4]["step"] == 1 and entries[4]["error"]["code"] == "SQL_INPUT_ERROR"
        closed = hrana.request({"type": "close_cursor", "cursor_id": 5})
        assert closed["response"] == {"type": "close_cursor"}
        # The stream goes on after its cursor.
        after = hrana.request(_execute(1, "SELECT 4"))
        assert after["response"]["result"]["rows"] == [[{"type": "integer", "value": "4"}]]
        # Fetching from a closed cursor ends the connection, as sqld ends it.
        hrana.send(
            {
                "type": "request",
                "request_id": 99,
                "request": {"type": "fetch_cursor", "cursor_id": 5, "max_count": 2},
            }
        )
        with pytest.raises(ConnectionClosed):
            hrana.receive()


# One connection's messages, each answered by sqld and by a POP in front of it; every
# answer is compared. Only reads and refused writes: both run against the same database.
SCRIPT: list[dict[str, Any]] = [
    {"type": "open_stream", "stream_id": 1},
    {"type": "store_sql", "sql_id": 3, "sql": "SELECT k, v FROM kv WHERE k = ?"},
    {
        "type": "execute",
        "stream_id": 1,
        "stmt": {"sql_id": 3, "args": [{"type": "text", "value": "ws-seed"}]},
    },
    {
        "type": "execute",
        "stream_id": 1,
        "stmt": {"sql": "INSERT INTO kv (k, v) VALUES ('ws-seed', 'x')"},
    },
    {"type": "execute", "stream_id": 1, "stmt": {"sql": "SELECT nosuch FROM kv"}},
    {"type": "execute", "stream_id": 1, "stmt": {"sql": "SELECT 1; SELECT 2"}},
    {
        "type": "batch",
        "stream_id": 1,
        "batch": {
            "steps": [
                {"stmt": {"sql": "SELECT count(*) FROM kv WHERE k = 'ws-seed'"}},
                {"stmt": {"sql": "SELECT 2"}, "condition": {"type": "error", "step": 0}},
                {
                    "stmt": {"sql": "SELECT x'00ff', 1.5, NULL"},
                    "condition": {"type": "ok", "step": 0},
                },
            ]
        },
    },
    {"type": "sequence", "stream_id": 1, "sql": "SELECT 1; SELECT 2;"},
    {"type": "describe", "stream_id": 1, "sql": "SELECT k FROM kv WHERE v = ?"},
    {"type": "get_autocommit", "stream_id": 1},
    {
        "type": "open_cursor",
        "stream_id": 1,
        "cursor_id": 1,
        "batch": {
            "steps": [
                {"stmt": {"sql": "SELECT v FROM kv WHERE k = 'ws-seed'"}},
                {"stmt": {"sql": "SELECT nosuch"}},
            ]
        },
    },
    {"type": "fetch_cursor", "cursor_id": 1, "max_count": 3},
    {"type": "fetch_cursor", "cursor_id": 1, "max_count": 3},
    {"type": "close_cursor", "cursor_id": 1},
    {"type": "close_sql", "sql_id": 3},
    {"type": "close_stream", "stream_id": 1},
]
# Fields that say how, not what: timings and counters, and where a replica stands.
UNCOMPARED = {"query_duration_ms", "rows_read", "rows_written", "replication_index"}


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if k not in UNCOMPARED}
    if isinstance(value, list):
        return [_comparable(item) for item in value]
    return value


def _answers(url: str, token: str | None) -> list[dict[str, Any]]:
    with connect(url, subprotocols=["hrana3"], open_timeout=10) as ws:  # type: ignore[list-item]
        hrana = Hrana(ws)
        assert hrana.hello(token)["type"] == "hello_ok"  # type: ignore[arg-type]
        return [_comparable(hrana.request(request)) for request in SCRIPT]


def test_the_same_messages_get_the_answers_sqld_gives(pop: PopProcess, sqld: SqldServer) -> None:
    sqld.execute("INSERT OR IGNORE INTO kv (k, v) VALUES ('ws-seed', 'seeded')")
    with pop.client() as http:
        assert http.post("/sync").json()["ok"]
    from_sqld = _answers(sqld.url.replace("http://", "ws://", 1), None)
    from_pop = _answers(pop.url.replace("http://", "ws://", 1), pop.token)
    for request, expected, got in zip(SCRIPT, from_sqld, from_pop, strict=True):
        assert got == expected, request


@pytest.fixture(scope="module")
def quick_pop(sqld: SqldServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PopProcess]:
    """Closes WebSocket connections quiet for 1 s; interrupts local statements after 3 s."""
    pop = PopProcess(
        sqld.url,
        tmp_path_factory.mktemp("ws-idle"),
        region="eu",
        engine="libsql",
        extra_env={"WS_IDLE_TIMEOUT": "1", "STATEMENT_TIMEOUT": "3"},
    )
    with running(pop):
        yield pop


ENDLESS = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"


def test_a_quiet_connection_is_closed_and_its_transaction_rolled_back(
    quick_pop: PopProcess, sqld: SqldServer
) -> None:
    with _connect(quick_pop) as ws:
        hrana = _opened(ws, quick_pop)
        hrana.request({"type": "open_stream", "stream_id": 2})
        assert metric(quick_pop, "edgepop_open_streams") == 2
        assert hrana.request(_execute(1, "BEGIN IMMEDIATE"))["type"] == "response_ok"
        hrana.request(_execute(1, "INSERT INTO kv (k, v) VALUES ('ws-idle', 'x')"))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)  # nothing sent: the POP closes it after 1 s
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
    # Rolled back, and the origin's write lock is free (this would wait for it).
    sqld.execute("INSERT INTO kv (k, v) VALUES ('ws-after-idle', 'y')")
    gone = sqld.execute("SELECT count(*) FROM kv WHERE k = 'ws-idle'")
    assert gone["rows"] == [[{"type": "integer", "value": "0"}]]
    assert metric(quick_pop, "edgepop_open_streams") == 0


def test_a_request_in_flight_keeps_a_quiet_connection_open(quick_pop: PopProcess) -> None:
    with _connect(quick_pop) as ws:
        hrana = _opened(ws, quick_pop)
        endless = hrana.request(_execute(1, ENDLESS))  # 3 s, longer than the idle timeout
        assert endless["type"] == "response_error"
        assert endless["error"]["code"] == "SQLITE_INTERRUPT"
        assert hrana.request(_execute(1, "SELECT 1"))["type"] == "response_ok"
