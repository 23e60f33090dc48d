"""Restarts, an unreachable origin, and the operational endpoints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from pop.devtools.processes import HranaServer, PopProcess, SqldServer, TursodbOrigin
from tests.helpers import execute, pipeline, routes, rows


def test_restart_does_not_bootstrap_again(tursodb_binary: str, tmp_path: Path) -> None:
    origin = TursodbOrigin(tursodb_binary, tmp_path)
    origin.start_and_wait()
    try:
        origin.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)")
        for _ in range(10):
            origin.execute("INSERT INTO big (b) VALUES (randomblob(100000))")
        first = PopProcess(origin.url, tmp_path, region="r")
        first.start_and_wait()
        bootstrap = httpx.get(f"{first.url}/ready").json()["engine"]
        first.stop()
        again = PopProcess(origin.url, tmp_path, region="r", token=first.token)
        again.start_and_wait()
        restart = httpx.get(f"{again.url}/ready").json()["engine"]
        with again.client() as http:
            assert rows(pipeline(http, [execute("SELECT count(*) FROM big")])) == [["10"]]
        again.stop()
    finally:
        origin.stop()
    assert bootstrap["network_received_bytes"] > 1_000_000
    assert restart["network_received_bytes"] < 10_000, restart
    assert restart["revision"] == bootstrap["revision"]


@pytest.fixture()
def lonely_pop(tursodb_binary: str, tmp_path: Path) -> tuple[TursodbOrigin, PopProcess]:
    origin = TursodbOrigin(tursodb_binary, tmp_path)
    origin.start_and_wait()
    origin.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    origin.execute("INSERT INTO notes (body) VALUES ('kept locally')")
    pop = PopProcess(origin.url, tmp_path, region="alone")
    pop.start_and_wait()
    return origin, pop


def test_origin_down_reads_served_writes_fail_clearly(
    lonely_pop: tuple[TursodbOrigin, PopProcess],
) -> None:
    origin, pop = lonely_pop
    try:
        origin.stop()
        with pop.client() as http:
            answer = pipeline(
                http,
                [
                    execute("SELECT body FROM notes"),
                    execute("INSERT INTO notes (body) VALUES ('lost?')"),
                ],
            )
            assert rows(answer) == [["kept locally"]]
            error = answer["results"][1]["error"]
            assert error["code"] == "ORIGIN_UNAVAILABLE"
            assert origin.url in error["message"]
            assert httpx.get(f"{pop.url}/ready").status_code == 200
            metrics = httpx.get(f"{pop.url}/metrics").text
            assert 'edgepop_origin_errors_total{kind="unavailable"} 1.0' in metrics
    finally:
        pop.stop()


def test_operational_endpoints(pop: PopProcess, pop_factory: Callable[..., PopProcess]) -> None:
    assert httpx.get(f"{pop.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{pop.url}/ready").json()
    assert ready["ready"] is True and ready["position"]
    version = httpx.get(f"{pop.url}/version").json()
    assert version["region"] == "eu-west" and version["engine"] == "turso"
    assert httpx.post(f"{pop.url}/sync").status_code == 401
    with pop.client() as http:
        synced = http.post("/sync").json()
    assert synced["ok"] is True and isinstance(synced["changed"], bool)
    metrics = httpx.get(f"{pop.url}/metrics")
    assert metrics.status_code == 200
    assert 'edgepop_syncs_total{outcome="ok",trigger="api"}' in metrics.text
    assert pop.token not in metrics.text


def test_json_logs_have_one_line_per_sync_and_forwarded_write(
    origin: TursodbOrigin, pop_factory: Callable[..., PopProcess]
) -> None:
    import json

    pop = pop_factory("jsonlog", extra_env={"LOG_FORMAT": "json"})
    with pop.client() as http:
        answer = pipeline(http, [execute("INSERT INTO kv (k, v) VALUES ('logged', 'x')")])
        assert answer["results"][0]["type"] == "ok"
    pop.stop()
    lines = pop.log_path.read_text().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(events) == len(lines), "every log line is JSON"
    forwarded = [e for e in events if e["message"] == "forwarded to origin"]
    assert forwarded and forwarded[0]["outcome"] == "ok" and forwarded[0]["duration_ms"] >= 0
    syncs = [e for e in events if e["message"] == "sync ok" and e["trigger"] == "write"]
    assert syncs and {"changed", "duration_ms", "position"} <= set(syncs[0])
    assert pop.token not in pop.log_path.read_text()


@pytest.mark.parametrize("engine", ["turso", "libsql"])
def test_origin_unreachable_at_first_start_then_ready_once_it_comes_up(
    engine: str, tursodb_binary: str, sqld_binary: str, tmp_path: Path
) -> None:
    """The origin is down when the POP first starts: not ready, saying why, until it is up."""
    origin: HranaServer = (
        TursodbOrigin(tursodb_binary, tmp_path / "origin")
        if engine == "turso"
        else SqldServer(sqld_binary, tmp_path / "origin")
    )
    pop = PopProcess(origin.url, tmp_path / "pop", region="early", engine=engine)
    try:
        pop.start()
        pop.wait_until(f"{pop.url}/ready", 30, expect_status=503)
        reason = httpx.get(f"{pop.url}/ready").json()["reason"]
        assert f"cannot open the {engine} replica" in reason and "retrying" in reason, reason
        with pop.client() as http:
            refused = http.post("/v2/pipeline", json={"requests": [execute("SELECT 1")]})
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "REPLICA_NOT_OPEN", refused.text

        origin.start_and_wait()
        origin.execute("CREATE TABLE early (x)")
        origin.execute("INSERT INTO early VALUES ('arrived')")
        pop.wait_until(f"{pop.url}/ready", 60)
        with pop.client() as http:
            assert http.post("/sync").json()["ok"]
            local = routes(pop).get("local", 0)
            assert rows(pipeline(http, [execute("SELECT x FROM early")])) == [["arrived"]]
            assert routes(pop).get("local", 0) == local + 1
    finally:
        pop.stop()
        origin.stop()


@pytest.mark.parametrize(
    ("engine", "origin_up", "words"),
    [
        # tursodb serves no libSQL replication: say so, and name the engine that fits.
        ("libsql", True, "is not a libSQL server: the libsql engine replicates from sqld or"),
        ("libsql", True, "for a tursodb --sync-server origin set REPLICA_ENGINE=turso"),
    ],
)
def test_a_pop_pointed_at_the_wrong_kind_of_origin_stops_with_one_clear_line(
    engine: str, origin_up: bool, words: str, tursodb_binary: str, tmp_path: Path
) -> None:
    origin = TursodbOrigin(tursodb_binary, tmp_path)
    if origin_up:
        origin.start_and_wait()
    pop = PopProcess(origin.url, tmp_path, region="broken", engine=engine)
    try:
        pop.start()
        assert pop.proc is not None
        assert pop.proc.wait(60) == 1
    finally:
        pop.stop()
        origin.stop()
    errors = [line for line in pop.log_tail(50).splitlines() if " ERROR " in line]
    assert len(errors) == 1 and words in errors[0], pop.log_tail(50)
    assert "Traceback" not in pop.log_tail(50)
