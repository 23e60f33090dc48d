"""The sync coordinator: one sync at a time, nothing dropped, bursts folded.

The engine is the real ``turso`` engine on a real ``tursodb`` origin; a gate held inside
its ``sync`` (after the real pull) keeps a sync "running" for as long as the test needs.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from pop.config import Settings
from pop.devtools.processes import TursodbOrigin
from pop.engines.base import SyncResult
from pop.engines.turso import TursoSyncEngine
from pop.sync.coordinator import SyncCoordinator


class GatedEngine(TursoSyncEngine):
    """The real engine; each sync pulls, then waits for the gate to open."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.gate = threading.Event()
        self.pulls = 0
        self.pulled = threading.Event()

    def sync(self) -> SyncResult:
        result = super().sync()
        self.pulls += 1
        self.pulled.set()
        self.gate.wait(30)
        return result


def _count(engine: TursoSyncEngine) -> int:
    conn = engine.connect_reader()
    try:
        value = next(iter(conn.execute("SELECT count(*) FROM kv WHERE k LIKE 'co-%'")))[0]
        return int(value)
    finally:
        conn.close()


@pytest.fixture()
def engine(origin: TursodbOrigin, tmp_path: Path) -> GatedEngine:
    settings = Settings(
        turso_database_url=origin.url,
        proxy_auth_token="unused",
        db_filepath=tmp_path / "replica.db",
    )
    gated = GatedEngine(settings)
    gated.open()
    return gated


async def test_request_during_a_running_sync_is_not_lost(
    engine: GatedEngine, origin: TursodbOrigin
) -> None:
    coordinator = SyncCoordinator(engine)
    first = asyncio.create_task(coordinator.request("interval"))
    await asyncio.to_thread(engine.pulled.wait, 10)  # the first sync has pulled already
    origin.execute("INSERT INTO kv (k, v) VALUES ('co-late', 'x')")  # a write it missed
    second = asyncio.create_task(coordinator.request("write"))
    await asyncio.sleep(0.1)
    assert not second.done()
    engine.gate.set()
    await first
    outcome = await second
    assert outcome.ok and outcome.trigger == "write"
    assert engine.pulls == 2
    assert _count(engine) == 1  # the write that prompted the request is visible


async def test_a_hundred_requests_during_one_sync_cost_one_more(engine: GatedEngine) -> None:
    coordinator = SyncCoordinator(engine)
    first = asyncio.create_task(coordinator.request("interval"))
    await asyncio.to_thread(engine.pulled.wait, 10)
    waiters = [asyncio.create_task(coordinator.request("pubsub")) for _ in range(100)]
    await asyncio.sleep(0.1)
    engine.gate.set()
    await first
    outcomes = await asyncio.gather(*waiters)
    assert engine.pulls == 2
    assert all(o.ok for o in outcomes)
    assert len({id(o) for o in outcomes}) == 1  # all 100 share the one follow-up sync
    assert coordinator.pull_age() == 0  # nothing left running


async def test_a_failing_sync_is_reported_and_the_next_one_runs(
    engine: GatedEngine, origin: TursodbOrigin
) -> None:
    engine.gate.set()
    coordinator = SyncCoordinator(engine)
    origin.stop()
    try:
        failed = await coordinator.request("api")
        assert not failed.ok and failed.error
    finally:
        origin.start_and_wait()
    recovered = await coordinator.request("api")
    assert recovered.ok


async def test_a_pull_past_its_timeout_fails_and_the_next_starts_after_it(
    engine: GatedEngine,
) -> None:
    coordinator = SyncCoordinator(engine, timeout=0.5)
    stuck = await coordinator.request("api")  # the gate holds the pull: it overruns
    assert not stuck.ok and stuck.error and "SYNC_TIMEOUT" in stuck.error
    assert coordinator.pull_age() > 0  # /health can see the overrun pull
    waiter = asyncio.create_task(coordinator.request("write"))
    await asyncio.sleep(0.1)
    engine.gate.set()  # the overrun pull ends; only then does the next one start
    outcome = await waiter
    assert outcome.ok
    assert engine.pulls == 2
    assert coordinator.pull_age() == 0
