"""Sync fabric: Redis pub/sub across POPs, interval sync as the fallback, recovery.

Real Redis, real ``tursodb``, three real POP processes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pop.devtools.processes import PopProcess, RedisProcess, SqldServer, TursodbOrigin
from pop.sync.messages import SyncMessage, database_key
from tests.helpers import execute, pipeline, rows


def _metric(pop: PopProcess, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in httpx.get(f"{pop.url}/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_for(check: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _wait_connected(pop: PopProcess, connected: int, timeout: float) -> None:
    state = "connected" if connected else "disconnected"
    _wait_for(
        lambda: _metric(pop, "edgepop_redis_connected") == connected,
        timeout,
        f"{pop.region} {state}",
    )


def _wait_row(pop: PopProcess, key: str, timeout: float) -> float:
    return _wait_for(lambda: _has_row(pop, key), timeout, f"{key} at {pop.region}")


def _has_row(pop: PopProcess, key: str) -> bool:
    with pop.client() as http:
        return rows(pipeline(http, [execute("SELECT v FROM kv WHERE k = ?", key)])) != []


def _write(pop: PopProcess, key: str) -> None:
    with pop.client() as http:
        answer = pipeline(http, [execute("INSERT INTO kv (k, v) VALUES (?, 'x')", key)])
    assert answer["results"][0]["type"] == "ok", answer


def _trio(origin: TursodbOrigin, workdir: Path, redis_url: str, interval: str) -> list[PopProcess]:
    env = {"REDIS_CONNECTION_STRING": redis_url, "TURSO_SYNC_INTERVAL": interval}
    pops = [PopProcess(origin.url, workdir, region=r, extra_env=env) for r in ("a", "b", "c")]
    for pop in pops:
        pop.start_and_wait()
    return pops


@contextlib.contextmanager
def _subscribed_pop(
    origin: TursodbOrigin, workdir: Path, redis: RedisProcess, region: str
) -> Iterator[PopProcess]:
    """One POP subscribed to ``redis``, with a 1 h interval so only pub/sub can sync it."""
    env = {"REDIS_CONNECTION_STRING": redis.url, "TURSO_SYNC_INTERVAL": "3600"}
    pop = PopProcess(origin.url, workdir, region=region, extra_env=env)
    pop.start_and_wait()
    try:
        _wait_connected(pop, 1, 10)
        yield pop
    finally:
        pop.stop()


@pytest.fixture()
def redis(redis_binary: str, tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path, binary=redis_binary)
    server.start_and_wait()
    yield server
    server.stop()


def test_pubsub_propagates_writes_and_recovers_after_redis_restart(
    origin: TursodbOrigin, redis: RedisProcess, redis_binary: str, tmp_path: Path
) -> None:
    a, b, c = _trio(origin, tmp_path, redis.url, interval="3600")
    try:
        for pop in (a, b, c):
            _wait_connected(pop, 1, 10)
        _write(a, "fabric-1")
        for pop in (b, c):
            _wait_row(pop, "fabric-1", 5)
            assert _metric(pop, "edgepop_syncs_total", trigger="pubsub", outcome="ok") >= 1
        assert _metric(a, "edgepop_pubsub_messages_total", direction="sent") >= 1
        assert _metric(b, "edgepop_pubsub_messages_total", direction="received") >= 1

        redis.stop()
        for pop in (a, b, c):
            _wait_connected(pop, 0, 15)
            assert httpx.get(f"{pop.url}/ready").status_code == 200
        _write(a, "fabric-while-down")  # writes keep working; publishing fails quietly
        assert _has_row(a, "fabric-while-down")
        time.sleep(1)
        assert not _has_row(b, "fabric-while-down"), "no pub/sub and a 1 h interval: not yet"

        restarted = RedisProcess(tmp_path, port=redis.port, binary=redis_binary)
        restarted.start_and_wait()
        try:
            for pop in (a, b, c):
                _wait_connected(pop, 1, 20)
            _write(a, "fabric-2")
            for pop in (b, c):
                _wait_row(pop, "fabric-2", 5)
        finally:
            restarted.stop()
    finally:
        for pop in (a, b, c):
            pop.stop()


def test_interval_sync_carries_writes_while_redis_is_down(
    origin: TursodbOrigin, redis: RedisProcess, tmp_path: Path
) -> None:
    a, b, c = _trio(origin, tmp_path, redis.url, interval="2")
    try:
        for pop in (a, b, c):
            _wait_connected(pop, 1, 10)
        redis.stop()
        for pop in (a, b, c):
            _wait_connected(pop, 0, 15)
        pubsub_before = _metric(b, "edgepop_syncs_total", trigger="pubsub", outcome="ok")
        _write(a, "interval-1")
        for pop in (b, c):
            waited = _wait_row(pop, "interval-1", 8)
            assert waited <= 6
            assert _metric(pop, "edgepop_syncs_total", trigger="interval", outcome="ok") >= 1
        assert _metric(b, "edgepop_syncs_total", trigger="pubsub", outcome="ok") == pubsub_before
    finally:
        for pop in (a, b, c):
            pop.stop()


def test_operator_sync_message_is_accepted_by_a_pop(
    origin: TursodbOrigin, redis: RedisProcess, tmp_path: Path
) -> None:
    """The message the operator publishes for an EdgePop makes that EdgePop's POPs sync."""
    import redis as redis_client

    from pop_operator.model import parse_spec
    from pop_operator.synctrigger import sync_message

    with _subscribed_pop(origin, tmp_path, redis, "op") as pop:
        origin.execute("INSERT INTO kv (k, v) VALUES ('from-elsewhere', 'x')")
        assert not _has_row(pop, "from-elsewhere")
        spec = parse_spec(
            {
                "origin": {"url": origin.url},
                "clientAuthSecretRef": {"name": "pop", "key": "token"},
                "image": "edge-pop:dev",
                "regions": [{"name": "op"}],
            }
        )
        publisher = redis_client.Redis.from_url(redis.url)
        assert publisher.publish("sync", sync_message(spec, "operator")) == 1
        publisher.close()
        _wait_row(pop, "from-elsewhere", 5)
        assert _metric(pop, "edgepop_syncs_total", trigger="pubsub", outcome="ok") == 1


def test_messages_for_other_databases_and_own_messages_are_skipped(
    origin: TursodbOrigin, redis: RedisProcess, tmp_path: Path
) -> None:
    import redis as redis_client

    with _subscribed_pop(origin, tmp_path, redis, "solo") as pop:
        publisher = redis_client.Redis.from_url(redis.url)
        publisher.publish("sync", SyncMessage(database="other.example/db").encode())
        publisher.publish("sync", b"not a sync message")
        _wait_for(
            lambda: _metric(pop, "edgepop_pubsub_messages_total", direction="skipped") == 2,
            5,
            "skips",
        )
        assert _metric(pop, "edgepop_syncs_total", trigger="pubsub", outcome="ok") == 0
        publisher.publish("sync", b"sync")  # the original program's message
        _wait_for(
            lambda: _metric(pop, "edgepop_syncs_total", trigger="pubsub", outcome="ok") == 1,
            5,
            "legacy",
        )
        publisher.close()


def test_metrics_after_real_traffic(
    tursodb_binary: str, redis: RedisProcess, tmp_path: Path
) -> None:
    from pop.metrics import METRIC_NAMES

    origin = TursodbOrigin(tursodb_binary, tmp_path)
    origin.start_and_wait()
    origin.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)")
    env = {"REDIS_CONNECTION_STRING": redis.url, "TURSO_SYNC_INTERVAL": "1"}
    a, b = (PopProcess(origin.url, tmp_path, region=r, extra_env=env) for r in ("ma", "mb"))
    a.start_and_wait()
    b.start_and_wait()
    try:
        _wait_for(lambda: _metric(b, "edgepop_redis_connected") == 1, 10, "subscription")
        _write(a, "metrics-1")
        _wait_for(lambda: _has_row(b, "metrics-1"), 5, "propagation")
        with a.client() as http:
            http.post("/sync")
            pipeline(http, [execute("BEGIN TRANSACTION READONLY")])  # leaves a stream open
            _wait_for(
                lambda: _metric(a, "edgepop_syncs_total", trigger="interval", outcome="ok") > 0,
                5,
                "an interval sync",
            )
            origin.stop()
            failed = pipeline(http, [execute("INSERT INTO kv (k, v) VALUES ('lost', 'x')")])
            assert failed["results"][0]["error"]["code"] == "ORIGIN_UNAVAILABLE"
        time.sleep(1.2)
        text = httpx.get(f"{a.url}/metrics").text
        for name in METRIC_NAMES:
            assert name in text, f"{name} missing"
        values: dict[str, Any] = {
            "requests_local": _metric(
                a,
                "edgepop_requests_total",
                endpoint="v2_pipeline",
                request_type="execute",
                route="local",
                outcome="ok",
            ),
            "requests_origin": _metric(
                a,
                "edgepop_requests_total",
                endpoint="v2_pipeline",
                request_type="execute",
                route="origin",
                outcome="ok",
            ),
            "sync_write": _metric(a, "edgepop_syncs_total", trigger="write", outcome="ok"),
            "sync_api": _metric(a, "edgepop_syncs_total", trigger="api", outcome="ok"),
            "sync_interval": _metric(a, "edgepop_syncs_total", trigger="interval", outcome="ok"),
            "sync_seconds_count": _metric(
                a, "edgepop_sync_duration_seconds_count", trigger="write"
            ),
            "age": _metric(a, "edgepop_sync_last_success_age_seconds"),
            "size": _metric(a, "edgepop_replica_size_bytes"),
            "redis": _metric(a, "edgepop_redis_connected"),
            "sent": _metric(a, "edgepop_pubsub_messages_total", direction="sent"),
            "received_b": _metric(b, "edgepop_pubsub_messages_total", direction="received"),
            "streams": _metric(a, "edgepop_open_streams"),
            "origin_errors": _metric(a, "edgepop_origin_errors_total", kind="unavailable"),
            "latency_local": _metric(
                a,
                "edgepop_http_request_duration_seconds_count",
                endpoint="v2_pipeline",
                route="local",
            ),
            "latency_origin": _metric(
                a,
                "edgepop_http_request_duration_seconds_count",
                endpoint="v2_pipeline",
                route="origin",
            ),
        }
        assert [key for key, value in values.items() if key != "age" and value <= 0] == [], values
        assert 0 <= values["age"] < 5, values
    finally:
        a.stop()
        b.stop()
        origin.stop()


def test_libsql_pops_announce_the_write_frame_and_skip_what_they_hold(
    sqld: SqldServer, redis: RedisProcess, tmp_path: Path
) -> None:
    """Two ``libsql`` POPs on sqld: a message carries the write's replication_index."""
    import redis as redis_client

    env = {"REDIS_CONNECTION_STRING": redis.url, "TURSO_SYNC_INTERVAL": "3600"}
    writer, reader = (
        PopProcess(sqld.url, tmp_path, region=r, engine="libsql", extra_env=env)
        for r in ("libsql-w", "libsql-r")
    )
    listener = redis_client.Redis.from_url(redis.url).pubsub()  # type: ignore[no-untyped-call]
    try:
        for pop in (writer, reader):
            pop.start_and_wait()
            _wait_connected(pop, 1, 10)
        listener.subscribe("sync")
        _write_at(writer, reader, listener, "CREATE TABLE IF NOT EXISTS kv (k TEXT, v TEXT)")
        _write_at(writer, reader, listener, "INSERT INTO kv (k, v) VALUES ('frame', 'x')")
        assert _has_row(reader, "frame")  # read from its replica: it holds kv now
        held = int(_metric(reader, "edgepop_replica_position"))

        publisher = redis_client.Redis.from_url(redis.url)
        syncs = _metric(reader, "edgepop_syncs_total", trigger="pubsub", outcome="ok")
        skipped = _metric(reader, "edgepop_pubsub_messages_total", direction="skipped")
        key = database_key(sqld.url)
        for older in (held - 1, held):  # frames the reader holds: skipped, by order
            message = SyncMessage(key, sender="test", position=str(older))
            publisher.publish("sync", message.encode())
        _wait_for(
            lambda: (
                _metric(reader, "edgepop_pubsub_messages_total", direction="skipped") == skipped + 2
            ),
            5,
            "messages for frames the reader holds to be skipped",
        )
        beyond = SyncMessage(key, sender="test", position=str(held + 1)).encode()
        publisher.publish("sync", beyond)
        _wait_for(
            lambda: (
                _metric(reader, "edgepop_syncs_total", trigger="pubsub", outcome="ok") == syncs + 1
            ),
            5,
            "a message for a frame the reader lacks to be acted on",
        )
        publisher.close()
    finally:
        listener.close()
        for pop in (writer, reader):
            pop.stop()


def _write_at(writer: PopProcess, reader: PopProcess, listener: Any, sql: str) -> None:
    """Write through ``writer``; its message names the write's frame, the reader gets it."""
    with writer.client() as http:
        answer = pipeline(http, [execute(sql)])
    written_at = answer["results"][0]["response"]["result"]["replication_index"]
    announced = _next_message(listener)
    assert announced is not None and announced.position == written_at, (announced, answer)
    _wait_for(
        lambda: _metric(reader, "edgepop_replica_position") >= int(written_at),
        5,
        f"the reader to reach frame {written_at}",
    )


def _next_message(listener: Any) -> SyncMessage | None:
    """The next sync message on ``listener`` within 5 s (subscription notices skipped)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        item = listener.get_message(timeout=0.5)
        if item is not None and item["type"] == "message":
            return SyncMessage.decode(item["data"])
    return None
