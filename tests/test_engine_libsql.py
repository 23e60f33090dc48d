"""The ``libsql`` engine (libSQL embedded replicas) replicating from a real ``sqld``.

Origin: ``sqld`` (libsql-server; see ``tests/conftest.py`` for where it comes from). POP:
``edge-pop serve`` with ``REPLICA_ENGINE=libsql``, its default. (Pointed at ``tursodb``
instead, it stops with a clear line: ``tests/test_lifecycle.py``.)
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pop.localrun import PopProcess, SqldServer
from tests.helpers import execute, pipeline, routes, rows, running


@pytest.fixture()
def origin(sqld_binary: str, tmp_path: Path) -> Iterator[SqldServer]:
    server = SqldServer(sqld_binary, tmp_path / "sqld")
    server.start_and_wait()
    try:
        yield server
    finally:
        server.stop()


def _pop(origin_url: str, workdir: Path) -> PopProcess:
    return PopProcess(origin_url, workdir, region="eu-west", engine="libsql")


def _read(pop: PopProcess, sql: str) -> list[list[object]]:
    """Rows of ``sql``, which the POP must answer from its replica."""
    local = routes(pop).get("local", 0)
    with pop.client() as http:
        found = rows(pipeline(http, [execute(sql)]))
    assert routes(pop).get("local", 0) == local + 1, "not answered from the replica"
    return found


def _position(pop: PopProcess) -> str | None:
    position: str | None = httpx.get(f"{pop.url}/ready").json()["position"]
    return position


def _sync(pop: PopProcess) -> httpx.Response:
    with pop.client() as http:
        return http.post("/sync")


def test_first_sync_bootstraps_an_empty_file(origin: SqldServer, tmp_path: Path) -> None:
    origin.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v)")
    last = origin.execute("INSERT INTO kv VALUES ('a', 1), ('b', x'00ff')")
    pop = _pop(origin.url, tmp_path / "pop")
    with running(pop):
        assert _read(pop, "SELECT k, typeof(v) FROM kv ORDER BY k") == [
            ["a", "integer"],
            ["b", "blob"],
        ]
        # The position is the library's own: the last frame it applied, which is the
        # replication index sqld answered the last write with.
        assert _position(pop) == last["replication_index"]


def test_incremental_syncs_and_a_restart_pull_only_what_changed(
    origin: SqldServer, tmp_path: Path
) -> None:
    origin.execute("CREATE TABLE log (n INTEGER PRIMARY KEY, pad BLOB)")
    origin.execute("INSERT INTO log SELECT value, randomblob(1000) FROM generate_series(1, 500)")
    pop = _pop(origin.url, tmp_path / "pop")
    with running(pop):
        inode = pop.replica_path.stat().st_ino
        before = int(_position(pop) or 0)
        written = origin.execute("INSERT INTO log (n) VALUES (501)")
        synced = _sync(pop).json()
        assert synced["ok"] and synced["changed"], synced
        # Frames after the last applied one, and no others: the position moves from the
        # old index straight to the new one.
        assert synced["position"] == written["replication_index"]
        assert int(written["replication_index"]) > before
        metrics = httpx.get(f"{pop.url}/metrics").text
        assert f"edgepop_replica_position {float(written['replication_index'])}" in metrics
        assert _read(pop, "SELECT count(*) FROM log") == [["501"]]

    at_stop = written["replication_index"]
    after = origin.execute("INSERT INTO log (n) VALUES (502)")
    pop = _pop(origin.url, tmp_path / "pop")
    with running(pop):
        assert pop.replica_path.stat().st_ino == inode, "the replica was rebuilt on restart"
        assert int(after["replication_index"]) > int(at_stop)
        assert _position(pop) == after["replication_index"]
        assert _read(pop, "SELECT max(n), count(*) FROM log") == [["502", "502"]]


def test_a_failed_sync_leaves_the_replica_readable_and_unchanged(
    origin: SqldServer, tmp_path: Path
) -> None:
    origin.execute("CREATE TABLE kept (x)")
    origin.execute("INSERT INTO kept VALUES (1)")
    pop = _pop(origin.url, tmp_path / "pop")
    with running(pop):
        position = _position(pop)
        origin.stop()
        failed = _sync(pop)
        assert failed.status_code == 502, failed.text
        assert failed.json()["error"], failed.text
        assert _read(pop, "SELECT x FROM kept") == [["1"]]
        assert _position(pop) == position

        origin.start_and_wait()
        written = origin.execute("INSERT INTO kept VALUES (2)")
        assert _sync(pop).json()["ok"]
        assert _position(pop) == written["replication_index"]
        assert _read(pop, "SELECT x FROM kept ORDER BY x") == [["1"], ["2"]]


BIG_ROWS = 10_000  # of 10 kB each: a 100 MB database


def test_a_100_mb_database_bootstraps_and_reads_stay_responsive_while_it_syncs(
    origin: SqldServer, tmp_path: Path
) -> None:
    origin.execute("CREATE TABLE small (x)")
    origin.execute("INSERT INTO small VALUES (1)")
    origin.execute("CREATE TABLE big (n INTEGER PRIMARY KEY, pad BLOB)")
    pop = _pop(origin.url, tmp_path / "writer")
    with running(pop):
        written = origin.execute(
            f"INSERT INTO big SELECT value, randomblob(10000) FROM generate_series(1, {BIG_ROWS})"
        )
        # The sync runs in the background; reads and /health are answered meanwhile.
        with concurrent.futures.ThreadPoolExecutor(1) as background:
            pulling = background.submit(_sync, pop)
            answered = 0
            with pop.client() as http:
                while not pulling.done():
                    assert rows(pipeline(http, [execute("SELECT x FROM small")])) == [["1"]]
                    assert http.get("/health").status_code == 200
                    answered += 1
            synced = pulling.result().json()
        assert synced["ok"] and synced["position"] == written["replication_index"], synced
        assert answered >= 10, f"only {answered} reads were answered while the sync ran"
        assert _read(pop, "SELECT count(*), sum(length(pad)) FROM big") == [
            [str(BIG_ROWS), str(BIG_ROWS * 10_000)]
        ]

    fresh = _pop(origin.url, tmp_path / "fresh")
    with running(fresh):
        assert fresh.replica_path.stat().st_size > BIG_ROWS * 10_000
        assert _position(fresh) == written["replication_index"]
        assert _read(fresh, "SELECT count(*) FROM big") == [[str(BIG_ROWS)]]
