"""The replica engines' contract, one suite for both engine/origin pairs.

- ``libsql`` (libSQL embedded replicas, the default) replicating from ``sqld``;
- ``turso`` (Turso Sync) replicating from ``tursodb --sync-server``.

The same tests run for both. Where an origin lacks something, the gap is named in
``Pair``: ``tursodb`` answers writes with no ``replication_index``, so only the libsql
pair checks that the position is the origin's index. (An engine pointed at the other
kind of origin stops with a clear line: ``tests/test_lifecycle.py``.)
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pop.devtools.processes import HranaServer, PopProcess, SqldServer, TursodbOrigin
from tests.helpers import execute, pipeline, routes, rows, running


@dataclass(frozen=True)
class Pair:
    engine: str
    origin: HranaServer
    # The origin answers writes with a replication_index, and the engine's position is
    # that index (libsql/sqld); tursodb reports none, and turso's position is a revision.
    position_is_replication_index: bool

    def pop(self, workdir: Path) -> PopProcess:
        return PopProcess(self.origin.url, workdir, region="eu-west", engine=self.engine)

    def check_position(self, pop: PopProcess, written: dict[str, object]) -> None:
        """After a sync, the POP's position shows the write ``written`` answered."""
        position = _position(pop)
        assert position is not None
        if self.position_is_replication_index:
            assert position == written["replication_index"], (position, written)


@pytest.fixture(params=["libsql/sqld", "turso/tursodb"])
def pair(
    request: pytest.FixtureRequest, sqld_binary: str, tursodb_binary: str, tmp_path: Path
) -> Iterator[Pair]:
    if request.param == "libsql/sqld":
        found = Pair("libsql", SqldServer(sqld_binary, tmp_path / "origin"), True)
    else:
        found = Pair("turso", TursodbOrigin(tursodb_binary, tmp_path / "origin"), False)
    with running(found.origin):
        yield found


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


def test_first_sync_bootstraps_an_empty_file(pair: Pair, tmp_path: Path) -> None:
    pair.origin.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v)")
    last = pair.origin.execute("INSERT INTO kv VALUES ('a', 1), ('b', x'00ff')")
    pop = pair.pop(tmp_path / "pop")
    with running(pop):
        assert _read(pop, "SELECT k, typeof(v) FROM kv ORDER BY k") == [
            ["a", "integer"],
            ["b", "blob"],
        ]
        pair.check_position(pop, last)


def test_incremental_syncs_and_a_restart_pull_only_what_changed(pair: Pair, tmp_path: Path) -> None:
    pair.origin.execute("CREATE TABLE log (n INTEGER PRIMARY KEY, pad BLOB)")
    _fill(pair.origin, "log", rows=500, size=1000)
    pop = pair.pop(tmp_path / "pop")
    with running(pop):
        inode = pop.replica_path.stat().st_ino
        before = _position(pop)
        written = pair.origin.execute("INSERT INTO log (n) VALUES (501)")
        synced = _sync(pop).json()
        assert synced["ok"] and synced["changed"], synced
        assert synced["position"] != before
        pair.check_position(pop, written)
        position = str(synced["position"])
        gauge = float(position) if position.isdigit() else -1.0
        assert f"edgepop_replica_position {gauge}" in httpx.get(f"{pop.url}/metrics").text
        assert _read(pop, "SELECT count(*) FROM log") == [["501"]]

    after = pair.origin.execute("INSERT INTO log (n) VALUES (502)")
    pop = pair.pop(tmp_path / "pop")
    with running(pop):
        assert pop.replica_path.stat().st_ino == inode, "the replica was rebuilt on restart"
        assert _position(pop) != position
        pair.check_position(pop, after)
        assert _read(pop, "SELECT max(n), count(*) FROM log") == [["502", "502"]]


def test_a_failed_sync_leaves_the_replica_readable_and_unchanged(
    pair: Pair, tmp_path: Path
) -> None:
    pair.origin.execute("CREATE TABLE kept (x)")
    pair.origin.execute("INSERT INTO kept VALUES (1)")
    pop = pair.pop(tmp_path / "pop")
    with running(pop):
        position = _position(pop)
        pair.origin.stop()
        failed = _sync(pop)
        assert failed.status_code == 502, failed.text
        assert failed.json()["error"], failed.text
        assert _read(pop, "SELECT x FROM kept") == [["1"]]
        assert _position(pop) == position

        pair.origin.start_and_wait()
        written = pair.origin.execute("INSERT INTO kept VALUES (2)")
        assert _sync(pop).json()["ok"]
        pair.check_position(pop, written)
        assert _read(pop, "SELECT x FROM kept ORDER BY x") == [["1"], ["2"]]


BIG_ROWS = 10_000  # of 10 kB each: a 100 MB database


def _fill(origin: HranaServer, table: str, *, rows: int, size: int) -> dict[str, object]:
    """``rows`` rows of ``size`` random bytes (no generate_series: tursodb has none);
    returns the last insert's answer."""
    chunk = 100
    last: dict[str, object] = {}
    for start in range(0, rows, chunk):
        values = ", ".join(f"(randomblob({size}))" for _ in range(min(chunk, rows - start)))
        last = origin.execute(f"INSERT INTO {table} (pad) VALUES {values}")
    return last


def test_a_100_mb_database_bootstraps_and_reads_stay_responsive_while_it_syncs(
    pair: Pair, tmp_path: Path
) -> None:
    pair.origin.execute("CREATE TABLE small (x)")
    pair.origin.execute("INSERT INTO small VALUES (1)")
    pair.origin.execute("CREATE TABLE big (n INTEGER PRIMARY KEY, pad BLOB)")
    pop = pair.pop(tmp_path / "writer")
    with running(pop):
        written = _fill(pair.origin, "big", rows=BIG_ROWS, size=10_000)
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
        assert synced["ok"], synced
        pair.check_position(pop, written)
        assert answered >= 10, f"only {answered} reads were answered while the sync ran"
        assert _read(pop, "SELECT count(*), sum(length(pad)) FROM big") == [
            [str(BIG_ROWS), str(BIG_ROWS * 10_000)]
        ]

    fresh = pair.pop(tmp_path / "fresh")
    with running(fresh):
        assert fresh.replica_path.stat().st_size > BIG_ROWS * 10_000
        pair.check_position(fresh, written)
        assert _read(fresh, "SELECT count(*) FROM big") == [[str(BIG_ROWS)]]
