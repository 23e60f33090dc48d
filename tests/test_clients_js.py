"""``@libsql/client`` (npm, the client most Turso users have) against a POP, each test
three times: ``http://``, ``ws://`` and the URL a Turso user writes, ``libsql://`` (here
with ``?tls=0``). On Node.js, 0.18 speaks Hrana over HTTP for ``libsql://``
(``expandConfig(config, preferHttp=true)``), over WebSocket only for ``ws://``/``wss://``;
over HTTP it speaks JSON to ``/v2/pipeline``, as to sqld.

Origin: a real ``tursodb --sync-server``; POP: ``edge-pop serve`` with the turso engine.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pytest

from pop.devtools.processes import PopProcess, TursodbOrigin
from tests.helpers import metric

NodeClient = Callable[..., Any]
CLIENT_ENDPOINTS = ("websocket", "v2_pipeline", "v3_pipeline", "v3_protobuf_pipeline")


def _served(pop: PopProcess, endpoint: str) -> float:
    return metric(pop, "edgepop_requests_total", endpoint=endpoint)


@pytest.fixture(params=["http", "ws", "libsql"])
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def node_client(node_client: NodeClient, scheme: str) -> NodeClient:
    """The session's runner, speaking over ``scheme``."""
    return functools.partial(node_client, scheme=scheme)


def test_every_value_type_round_trips_exactly(
    node_client: NodeClient, pop: PopProcess, scheme: str
) -> None:
    before = {endpoint: _served(pop, endpoint) for endpoint in CLIENT_ENDPOINTS}
    result = node_client("values", pop)
    used = {endpoint for endpoint in CLIENT_ENDPOINTS if _served(pop, endpoint) > before[endpoint]}
    # What 0.18 speaks, to a POP as to sqld: Hrana 2 in JSON over HTTP (it never probes
    # for protobuf), JSON over WebSocket.
    assert used == {"websocket" if scheme == "ws" else "v2_pipeline"}
    assert result["rowsAffected"] == 1
    assert result["columns"] == ["i", "f", "t", "b", "n", "typeof(b)"]
    assert result["columnTypes"][:4] == ["INTEGER", "REAL", "TEXT", "BLOB"]
    first, second = result["rows"]
    assert first == [
        "9223372036854775807",
        3.25,
        "héllo wörld ✓ 日本",
        [0, 1, 0, 255, 0],
        None,
        "blob",
    ]
    assert second == ["-9223372036854775808", -0.5, "", [], None, "blob"]


def test_batch_modes(
    node_client: NodeClient, pop: PopProcess, origin: TursodbOrigin, scheme: str
) -> None:
    result = node_client("batchModes", pop, scheme)
    assert result["write"] == [1, 1]
    assert result["read"] == [[["2"]], [["2"]]]
    assert result["deferredRead"] == [[["1"]]]
    assert result["deferredWrite"] == [
        {"affected": 1, "rows": []},
        {"affected": 0, "rows": [["22"]]},
    ]
    # A failing write batch is rolled back whole: bw3 was inserted before the duplicate.
    assert result["atomicFailure"]["code"] == "SQLITE_CONSTRAINT"
    assert result["afterFailure"] == [["0"]]
    at_origin = origin.execute(f"SELECT v FROM kv WHERE k = '{scheme}-bw2'")
    assert at_origin["rows"] == [[{"type": "text", "value": "22"}]]


def test_read_transaction_runs_locally_and_refuses_writes(
    node_client: NodeClient, pop: PopProcess
) -> None:
    result = node_client("readTransaction", pop)
    assert result["second"] == [["read-tx"]]
    assert result["writeError"]["code"] == "SQLITE_READONLY"


def test_constraint_errors_carry_sqlite_codes(node_client: NodeClient, pop: PopProcess) -> None:
    result = node_client("constraint", pop)
    assert result["primaryKey"]["code"] == "SQLITE_CONSTRAINT", result
    assert result["notNull"]["code"] == "SQLITE_CONSTRAINT", result
    assert result["check"]["code"] == "SQLITE_CONSTRAINT", result
    assert result["syntax"]["code"] == "SQL_PARSE_ERROR", result
    assert "syntax error" in result["syntax"]["message"]


def test_read_your_writes_in_a_loop(node_client: NodeClient, pop: PopProcess) -> None:
    result = node_client("readYourWrites", pop, "200")
    assert result == {"iterations": 200, "misses": []}


def test_interactive_write_transaction_is_refused_clearly_by_a_streamless_origin(
    node_client: NodeClient, pop: PopProcess, origin: TursodbOrigin
) -> None:
    """tursodb keeps no streams, so the POP must not open a transaction there."""
    import pytest

    with pytest.raises(AssertionError, match="TRANSACTION_NOT_SUPPORTED"):
        node_client("writeTransaction", pop, "streamless")
    assert origin.execute("SELECT count(*) FROM kv WHERE k LIKE 'streamless-%'")["rows"] == [
        [{"type": "integer", "value": "0"}]
    ]


def test_execute_multiple_as_the_clients_own_tests_run_it(
    node_client: NodeClient, pop: PopProcess, origin: TursodbOrigin, scheme: str
) -> None:
    """Once, DROP/CREATE/INSERT in one script was acknowledged and the INSERT never ran."""
    result = node_client("executeMultiple", pop, f"js_{scheme}")
    assert result["multiple"] == "15"
    assert result["errorStops"] != "no error"
    assert result["afterErrorStops"] == "7"
    assert result["manualTransaction"] == "31"
    assert result["errorRollsBack"] != "no error"
    assert result["afterRollback"] == "0"
    at_origin = origin.execute(f"SELECT SUM(a) FROM em_js_{scheme}")["rows"]
    assert at_origin == [[{"type": "integer", "value": "0"}]]


def test_constraint_ddl_and_batch_constraint_errors(
    node_client: NodeClient, pop: PopProcess, scheme: str
) -> None:
    """CREATE TABLE ... UNIQUE once answered INTERNAL (a classifier library fault)."""
    result = node_client("constraintDdl", pop, f"js_{scheme}")
    assert result["primaryKey"]["code"] == "SQLITE_CONSTRAINT", result
    assert result["unique"]["code"] == "SQLITE_CONSTRAINT", result
    assert result["count"] == "1"  # both failing batches were rolled back whole
