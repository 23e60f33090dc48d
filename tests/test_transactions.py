"""Interactive write transactions over several HTTP calls, through POPs.

They need an origin that keeps streams, and run against both kinds here: ``sqld`` (the
libSQL server, as Turso runs it) with POPs on the ``libsql`` engine, and ``tursodb``
behind ``edge-pop gateway`` (which gives every client a real stream on tursodb's one
connection and makes everyone else wait while a transaction is open) with POPs on the
``turso`` engine. Bare ``tursodb`` keeps no streams: see ``tests/test_clients_js.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from pop.devtools.processes import (
    GatewayProcess,
    HranaServer,
    PopProcess,
    SqldServer,
    TursodbOrigin,
)
from tests.conftest import SCHEMA
from tests.helpers import execute, pipeline, rows, running

NodeClient = Callable[..., Any]


@pytest.fixture(scope="module", params=["sqld", "gateway"])
def stack(
    request: pytest.FixtureRequest,
    tursodb_binary: str,
    sqld_binary: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp(f"tx-{request.param}")
    servers: list[HranaServer | GatewayProcess]
    if request.param == "sqld":
        origin: HranaServer = SqldServer(sqld_binary, workdir)
        servers, url, engine = [origin], origin.url, "libsql"
    else:
        origin = TursodbOrigin(tursodb_binary, workdir)
        gateway = GatewayProcess(origin.url, workdir)
        servers, url, engine = [origin, gateway], gateway.url, "turso"
    eu = PopProcess(
        url, workdir, region="eu", engine=engine, extra_env={"STREAM_IDLE_TIMEOUT": "3"}
    )
    us = PopProcess(url, workdir, region="us", engine=engine, token=eu.token)
    with ExitStack() as stop:
        stop.enter_context(running(servers[0]))
        for sql in SCHEMA:
            origin.execute(sql)
        stop.enter_context(running(*servers[1:], eu, us))
        yield {"origin": origin, "eu": eu, "us": us}


def _count(pop: PopProcess, prefix: str) -> str:
    with pop.client() as http:
        answer = pipeline(http, [execute("SELECT count(*) FROM kv WHERE k LIKE ?", f"{prefix}%")])
    return str(rows(answer)[0][0])


# "ws": Hrana over WebSocket, what @libsql/client speaks for ws:// and wss:// URLs.
SCHEMES = pytest.mark.parametrize("scheme", ["http", "ws"])


@SCHEMES
def test_client_transaction_write_commits(
    node_client: NodeClient, stack: dict[str, Any], scheme: str
) -> None:
    prefix = f"jstx{scheme}"
    result = node_client("writeTransaction", stack["eu"], prefix, scheme=scheme)
    assert result["inside"] == [["1"]]
    assert result["after"] == [[f"{prefix}-a"], [f"{prefix}-b"]]
    at_origin = stack["origin"].execute(f"SELECT count(*) FROM kv WHERE k LIKE '{prefix}-%'")
    assert at_origin["rows"][0][0]["value"] == "2"


@SCHEMES
def test_client_transaction_rollback_leaves_nothing(
    node_client: NodeClient, stack: dict[str, Any], scheme: str
) -> None:
    prefix = f"jsrb{scheme}"
    result = node_client("writeTransactionRollback", stack["eu"], prefix, scheme=scheme)
    assert result == [["0"]]
    at_origin = stack["origin"].execute(f"SELECT count(*) FROM kv WHERE k = '{prefix}-rb'")
    assert at_origin["rows"][0][0]["value"] == "0"


@pytest.mark.parametrize("scenario", ["values", "readTransaction", "constraint", "executeMultiple"])
def test_the_client_over_websocket_gets_what_it_gets_over_http(
    node_client: NodeClient, stack: dict[str, Any], scenario: str
) -> None:
    over_http = node_client(scenario, stack["eu"], f"{scenario}h")
    over_ws = node_client(scenario, stack["eu"], f"{scenario}w", scheme="ws")
    assert over_ws == over_http


def test_transaction_is_atomic_and_then_readable_from_the_pops(stack: dict[str, Any]) -> None:
    eu, us = stack["eu"], stack["us"]
    with eu.client() as writer, us.client() as other:
        opened = pipeline(
            writer, [execute("BEGIN IMMEDIATE"), execute("INSERT INTO kv VALUES ('atomic-1', 'a')")]
        )
        assert [r["type"] for r in opened["results"]] == ["ok", "ok"]
        # Another client writing meanwhile waits for the transaction to finish.
        finished: list[float] = []

        def concurrent_write() -> None:
            pipeline(other, [execute("INSERT INTO kv VALUES ('atomic-later', 'b')")])
            finished.append(time.monotonic())

        thread = threading.Thread(target=concurrent_write)
        thread.start()
        second = pipeline(
            writer, [execute("INSERT INTO kv VALUES ('atomic-2', 'a')")], baton=opened["baton"]
        )
        time.sleep(0.5)
        assert finished == [], "a write ran inside another client's open transaction"
        # Nothing of the open transaction is visible through either POP, even after a sync.
        writer.post("/sync")
        assert _count(eu, "atomic-") == "0"
        committed_at = time.monotonic()
        done = pipeline(writer, [execute("COMMIT"), {"type": "close"}], baton=second["baton"])
        assert [r["type"] for r in done["results"]] == ["ok", "ok"]
        thread.join(10)
    assert finished and finished[0] >= committed_at
    # Read-your-writes on the writer's POP, right after COMMIT returned.
    assert _count(eu, "atomic-") == "3"
    with us.client() as http:
        http.post("/sync")
    assert _count(us, "atomic-") == "3"


def test_abandoned_transaction_expires_and_rolls_back(stack: dict[str, Any]) -> None:
    eu = stack["eu"]
    with eu.client() as http:
        opened = pipeline(
            http, [execute("BEGIN IMMEDIATE"), execute("INSERT INTO kv VALUES ('abandoned', 'x')")]
        )
        assert opened["baton"]
        # The POP's stream expires after 3 s; the gateway's after 10 s. Either way the
        # row never commits and other writers get the connection back.
        time.sleep(3.5)
        later = pipeline(http, [execute("INSERT INTO kv VALUES ('after-abandon', 'y')")])
        assert later["results"][0]["type"] == "ok", later
        answer = httpx.post(
            f"{eu.url}/v2/pipeline",
            headers={"Authorization": f"Bearer {eu.token}"},
            json={"baton": opened["baton"], "requests": [execute("COMMIT")]},
        )
        assert answer.status_code == 400
    at_origin = stack["origin"].execute(
        "SELECT k FROM kv WHERE k IN ('abandoned', 'after-abandon')"
    )
    assert [row[0]["value"] for row in at_origin["rows"]] == ["after-abandon"]


def test_libsql_python_default_mode_commits(stack: dict[str, Any], tmp_path: Path) -> None:
    import libsql

    eu = stack["eu"]
    conn = libsql.connect(eu.url, auth_token=eu.token)
    conn.execute("INSERT INTO kv (k, v) VALUES ('py-tx-1', '1')")
    conn.execute("INSERT INTO kv (k, v) VALUES ('py-tx-2', '2')")
    conn.commit()
    assert _count(eu, "py-tx-") == "2"
