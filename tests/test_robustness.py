"""One client must not freeze, starve or bloat a POP (issue 8, "Seen on main" 2, 4, 5).

Every test runs a real ``edge-pop serve`` process against a real ``tursodb`` origin, with
limits set low enough that the test is quick, and checks both the refusal the client gets
and that the POP stays responsive to everyone else.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pop.devtools.processes import PopProcess
from tests.helpers import ENDLESS, execute, pipeline, rows

LIMITS = {
    "STATEMENT_TIMEOUT": "1.5",
    "READER_THREADS": "2",
    "MAX_RESULT_BYTES": str(2 * 1024 * 1024),
    "MAX_SQL_BYTES": str(256 * 1024),
    "MAX_PIPELINE_REQUESTS": "50",
    "MAX_BATCH_STEPS": "100",
    "MAX_HEADER_BYTES": "8192",
    "CLIENT_READ_TIMEOUT": "2",
}


@pytest.fixture(scope="module")
def limited(pop_factory: Callable[..., PopProcess]) -> PopProcess:
    return pop_factory("limited", extra_env=LIMITS)


@pytest.fixture()
def http(limited: PopProcess) -> Iterator[httpx.Client]:
    with limited.client() as client:
        yield client


def _health_seconds(pop: PopProcess) -> float:
    started = time.monotonic()
    assert httpx.get(f"{pop.url}/health", timeout=10).status_code == 200
    return time.monotonic() - started


def _rss_bytes(pop: PopProcess) -> int:
    assert pop.proc is not None
    status = Path(f"/proc/{pop.proc.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_an_endless_read_is_interrupted_and_others_are_served_meanwhile(
    limited: PopProcess, http: httpx.Client
) -> None:
    import threading

    answers: list[dict[str, object]] = []
    runaway = threading.Thread(target=lambda: answers.append(pipeline(http, [execute(ENDLESS)])))
    runaway.start()
    time.sleep(0.3)
    # While it runs: liveness and an ordinary read are answered (on the other worker).
    assert _health_seconds(limited) < 1.0
    with limited.client() as other:
        assert rows(pipeline(other, [execute("SELECT v FROM kv WHERE k = 'rt'")])) == [["read-tx"]]
    runaway.join(15)
    assert not runaway.is_alive()
    error = answers[0]["results"][0]  # type: ignore[index]
    assert error["type"] == "error"
    assert error["error"]["code"] == "SQLITE_INTERRUPT"
    assert "STATEMENT_TIMEOUT" in error["error"]["message"]
    # The worker is free again, and its connection still reads.
    for _ in range(3):
        assert rows(pipeline(http, [execute("SELECT 1")])) == [["1"]]


def test_a_client_that_goes_away_frees_its_worker(limited: PopProcess) -> None:
    # Fill both workers with endless reads whose clients then disconnect.
    for _ in range(2):
        with pytest.raises(httpx.ReadTimeout), limited.client() as quitter:
            quitter.post(
                "/v2/pipeline",
                json={"baton": None, "requests": [execute(ENDLESS)]},
                timeout=0.3,
            )
    started = time.monotonic()
    with limited.client() as client:
        assert rows(pipeline(client, [execute("SELECT 2")])) == [["2"]]
    # Interrupted on disconnect, not at STATEMENT_TIMEOUT (1.5 s) measured from the start.
    assert time.monotonic() - started < 1.2


def test_a_result_over_the_limit_is_refused_and_memory_stays_bounded(
    limited: PopProcess, http: httpx.Client
) -> None:
    big = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) "
        "SELECT x, printf('%0500d', x) FROM c"
    )  # about 100 MB of rows
    before = _rss_bytes(limited)
    for path in ("/v2/pipeline", "/v3/cursor", "/"):
        body: dict[str, object]
        if path == "/v3/cursor":
            body = {"baton": None, "batch": {"steps": [{"stmt": {"sql": big}}]}}
        elif path == "/":
            body = {"statements": [big]}
        else:
            body = {"baton": None, "requests": [execute(big)]}
        response = http.post(path, json=body)
        if path == "/":  # as sqld answers it: tests/test_result_limits.py
            assert response.status_code == 500, response.text
            assert "exceeds the maximum size of 2.1 MB" in response.text
        else:
            assert response.status_code == 200, response.text
            assert "RESPONSE_TOO_LARGE" in response.text
        assert len(response.content) < 4096  # the refusal, not the rows
    grown = _rss_bytes(limited) - before
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 1e6:.0f} MB"


def test_requests_over_the_size_limits_are_refused_whole(http: httpx.Client) -> None:
    too_many = http.post(
        "/v2/pipeline", json={"baton": None, "requests": [execute("SELECT 1")] * 51}
    )
    assert too_many.status_code == 413
    assert too_many.json()["code"] == "PIPELINE_TOO_LARGE"

    steps = [{"stmt": {"sql": "INSERT INTO kv (k, v) VALUES ('never', 'x')"}}] * 101
    answer = pipeline(http, [{"type": "batch", "batch": {"steps": steps}}])
    assert answer["results"][0]["error"]["code"] == "BATCH_TOO_LARGE"

    long_sql = "SELECT '" + "x" * 300_000 + "'"
    answer = pipeline(http, [execute(long_sql), execute("SELECT count(*) FROM kv WHERE k='never'")])
    assert answer["results"][0]["error"]["code"] == "SQL_TOO_LARGE"
    assert rows(answer, 1) == [["0"]]  # nothing of the refused batch was applied


def test_distinct_large_sql_texts_do_not_pile_up_in_memory(
    limited: PopProcess, http: httpx.Client
) -> None:
    pipeline(http, [execute("SELECT 1")])
    before = _rss_bytes(limited)
    for n in range(60):
        text = f"SELECT {n} AS n, '" + "y" * 200_000 + "' AS pad"
        assert rows(pipeline(http, [execute(text)]))[0][0] == str(n)
    grown = _rss_bytes(limited) - before
    # 60 texts of 200 KB are 12 MB; cached compiled copies of each would be several times that.
    assert grown < 40 * 1024 * 1024, f"RSS grew by {grown / 1e6:.0f} MB"


def test_an_endless_header_is_cut_off_and_health_stays_fast(limited: PopProcess) -> None:
    with socket.create_connection(("127.0.0.1", limited.port), 5) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        answer = b""
        try:
            for _ in range(2000):  # up to 8 MB; the POP must stop reading long before
                conn.sendall(b"a" * 4096)
        except OSError:
            pass  # the POP closed the connection
        conn.settimeout(5)
        try:
            answer = conn.recv(4096)
        except OSError:
            answer = b""
    assert answer.startswith(b"HTTP/1.1 431") or answer == b""
    assert _health_seconds(limited) < 1.0


@pytest.mark.parametrize("header_bytes", [9 * 1024, 20 * 1024, 100 * 1024])
@pytest.mark.parametrize("upgrade", [False, True], ids=["http", "websocket"])
def test_a_head_over_the_limit_is_refused_even_when_it_arrives_in_one_read(
    limited: PopProcess, header_bytes: int, upgrade: bool
) -> None:
    """MAX_HEADER_BYTES is 8,192 here; the whole head is sent with one sendall, so the
    POP reads it in one piece (it once parsed such a head to its end and served it)."""
    websocket = (
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: hrana3\r\n"
    )
    head = (
        b"GET /"
        + b"health" * (not upgrade)
        + b" HTTP/1.1\r\nHost: x\r\n"
        + websocket * upgrade
        + b"X-Big: "
        + b"a" * header_bytes
        + b"\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", limited.port), 5) as conn:
        conn.sendall(head)
        conn.settimeout(5)
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert b"MAX_HEADER_BYTES" in answer


def test_a_head_under_the_limit_is_served_in_one_read(limited: PopProcess) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 7000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", limited.port), 5) as conn:
        conn.sendall(head + head)  # two requests in one read: both answered
        conn.settimeout(5)
        answer = b""
        while answer.count(b"HTTP/1.1 200") < 2:
            chunk = conn.recv(65536)
            assert chunk, answer
            answer += chunk


def test_half_sent_requests_are_closed_after_the_read_timeout(limited: PopProcess) -> None:
    held = []
    for _ in range(200):
        conn = socket.create_connection(("127.0.0.1", limited.port), 5)
        conn.sendall(
            b"POST /v2/pipeline HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
            b"Authorization: Bearer " + limited.token.encode() + b"\r\n\r\n{"
        )
        held.append(conn)
    try:
        assert _health_seconds(limited) < 1.0
        time.sleep(2.5)  # CLIENT_READ_TIMEOUT is 2 s
        closed = 0
        for conn in held:
            conn.settimeout(3)
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            closed += data.startswith(b"HTTP/1.1 408") or data == b""
        assert closed == len(held)
    finally:
        for conn in held:
            conn.close()
