"""The POP: replica, router, origin client, session loop and sync wired together.

HTTP concerns live in ``pop.http``; this module speaks in parsed Hrana bodies and plain
results, so it can be driven by tests and benchmarks without a server. The pipeline loop
itself is ``pop.session``'s, shared with ``edge-pop gateway``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from pop import __version__
from pop.config import Settings
from pop.engines import ReplicaEngine, open_engine
from pop.engines.base import WrongOrigin, replica_size_bytes
from pop.hrana.errors import (
    OriginUnavailable,
)
from pop.limits import Limits
from pop.local.executor import LocalExecutor
from pop.local.pool import ReaderPool
from pop.local.runner import LocalRunner
from pop.metrics import PopMetrics
from pop.origin.client import OriginClient, credentials_refusal
from pop.origin.forward import Forwarder
from pop.routing import Router
from pop.session import Session
from pop.sql.inspector import SchemaObject, SqlInspector
from pop.sync.coordinator import SyncCoordinator, SyncOutcome, Trigger
from pop.sync.messages import SyncMessage, database_key
from pop.sync.pubsub import RedisFabric
from pop.watchdog import LoopWatchdog

log = logging.getLogger(__name__)


class ReplicaOpenError(Exception):
    """The replica could not be opened or bootstrapped; the message says why."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable  # False: the configuration is wrong, not the network


# Between attempts to open a replica whose origin could not be reached at start.
OPEN_RETRY_SECONDS = (1.0, 2.0, 4.0, 8.0, 15.0)


class PopService:
    def __init__(self, settings: Settings, engine: ReplicaEngine | None = None) -> None:
        self.settings = settings
        self.engine = engine or open_engine(settings)
        self.metrics = PopMetrics()
        self.inspector = SqlInspector()
        self.pool = ReaderPool(self.engine)
        self.runner = LocalRunner(self.pool, settings.reader_threads, settings.statement_timeout)
        token = settings.turso_auth_token
        self.origin = OriginClient(
            settings.origin_http_url,
            token.get_secret_value() if token else None,
            settings.origin_timeout,
        )
        self.coordinator = SyncCoordinator(
            self.engine, on_done=self._synced, timeout=settings.sync_timeout
        )
        # Set when the catch-up sync after a forwarded write failed: the replica lacks a
        # write this POP acknowledged until the next good sync.
        self._replica_behind = False
        # The engine's frames_pulled already added to the metrics counter.
        self._frames_counted = 0
        self.router = Router(
            self.inspector,
            self.pool,
            self.runner,
            LocalExecutor(settings.max_result_bytes),
            Forwarder(self.origin, self.inspector),
            self._after_write,
            replica_is_current=lambda: not self._replica_behind,
        )
        self.session = Session(
            self.router,
            Limits.from_settings(settings),
            self.metrics,
            idle_timeout=settings.stream_idle_timeout,
            server="POP",
            # It may have been applied: pull, so the replica shows it if it was.
            on_outcome_unknown=lambda: self._in_background(self.coordinator.request("write")),
        )
        self.database = database_key(settings.turso_database_url)
        self.fabric: RedisFabric | None = None
        if settings.redis_connection_string is not None:
            self.fabric = RedisFabric(
                settings.redis_connection_string.get_secret_value(),
                settings.redis_sync_channel,
                database=self.database,
                pop_id=settings.pop_id,
                metrics=self.metrics,
                holds=self._holds,
                on_message=self._pubsub_message,
            )
        self._background: set[asyncio.Task[Any]] = set()
        self._last_sync_error: str | None = None
        self.watchdog = LoopWatchdog(settings.watchdog_timeout)
        self._replica_open = False
        self._open_error: str | None = None
        self._opening: asyncio.Task[None] | None = None
        self.ready = False
        self._interval_task: asyncio.Task[None] | None = None
        self.metrics.info.info(
            {"version": __version__, "engine": self.engine.name, "region": settings.region or ""}
        )

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Serve; if the replica cannot be opened yet, keep trying in the background.

        Until it opens, ``/ready`` answers 503 with the reason and the data endpoints
        refuse with 503: a POP never answers from a replica it does not have.
        """
        if not self._replica_open:
            try:
                await asyncio.to_thread(self.open_replica)
            except ReplicaOpenError as exc:
                if not exc.retryable:
                    raise
                self._open_error = str(exc)
                self._opening = asyncio.create_task(self._open_when_possible(), name="open")
                return
        await self._serve_replica()

    async def _open_when_possible(self) -> None:
        attempt = 0
        while not self._replica_open:
            delay = OPEN_RETRY_SECONDS[min(attempt, len(OPEN_RETRY_SECONDS) - 1)]
            log.warning(
                "replica not open; retrying", extra={"error": self._open_error, "in_s": delay}
            )
            await asyncio.sleep(delay)
            attempt += 1
            try:
                await asyncio.to_thread(self.open_replica)
            except ReplicaOpenError as exc:
                self._open_error = str(exc)
        self._open_error = None
        await self._serve_replica()

    async def _serve_replica(self) -> None:
        started = time.perf_counter()
        await self._reload_schema()
        outcome = await self.coordinator.request("startup")
        if not outcome.ok:
            log.warning(
                "first sync failed; serving the replica as it is on disk",
                extra={"error": outcome.error},
            )
        try:
            await self.origin.detect()
        except OriginUnavailable as exc:
            log.warning("origin not reachable at start", extra={"error": exc.message})
        self.session.streams.start()
        if self.fabric is not None:
            self.fabric.start()
        self._interval_task = asyncio.create_task(self._interval_sync(), name="interval-sync")
        self.watchdog.start()
        self.ready = True
        log.info(
            "POP ready",
            extra={
                "engine": self.engine.name,
                "region": self.settings.region,
                "origin": self.settings.origin_http_url,
                "replica": str(self.engine.path),
                "position": self.engine.position(),
                "startup_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )

    def open_replica(self) -> None:
        """Open (and on first start, bootstrap) the replica; raises ``ReplicaOpenError``."""
        token = self.settings.turso_auth_token
        refusal = credentials_refusal(
            self.settings.origin_http_url, token.get_secret_value() if token else None
        )
        if refusal is not None:
            raise ReplicaOpenError(
                f"the origin {self.settings.origin_http_url} refuses TURSO_AUTH_TOKEN "
                f"({refusal}); give the POP a valid token",
                retryable=False,
            )
        try:
            self.engine.open()
        except Exception as exc:
            raise ReplicaOpenError(
                f"cannot open the {self.engine.name} replica {self.engine.path} from "
                f"{self.settings.origin_http_url}: {str(exc).splitlines()[0]}",
                retryable=not isinstance(exc, WrongOrigin),
            ) from exc
        self._replica_open = True

    async def stop(self) -> None:
        self.ready = False
        if self._opening is not None:
            self._opening.cancel()
        self.watchdog.stop()
        if self._interval_task is not None:
            self._interval_task.cancel()
            self._interval_task = None
        await self.session.streams.stop()
        if self.fabric is not None:
            await self.fabric.stop()
        await self.origin.aclose()
        self.runner.close()
        self.pool.close()
        try:
            # Bounded: a pull stuck on a stalled origin holds the engine, and shutting
            # down must not wait for it.
            await asyncio.wait_for(asyncio.to_thread(self.engine.close), 5)
        except TimeoutError:
            log.warning("the replica did not close within 5 s (a sync is stuck); exiting anyway")

    async def _interval_sync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.turso_sync_interval)
            await self.coordinator.request("interval")

    # -- sync --------------------------------------------------------------------------

    async def sync(self, trigger: Trigger) -> SyncOutcome:
        return await self.coordinator.request(trigger)

    async def _after_write(self, replication_index: str | None) -> None:
        if self.fabric is not None:
            # The origin has the change now: the other POPs pull it while this one does.
            # In the background, so that a slow or absent Redis never delays a write.
            announced = replication_index if self.engine.follows_replication_index else None
            self._in_background(self.fabric.publish(announced))
        if (
            replication_index is not None
            and self.engine.follows_replication_index
            and self.settings.read_your_writes == "position"
        ):
            # Read-your-writes by position: the replica must hold the write's frame, and
            # a sync already under way, or already done, may have brought it.
            target = int(replication_index)
            outcome = await self.coordinator.reach(lambda: self._holds(target), "write")
            if outcome is None or self._holds(target):
                return
            error: str | None = outcome.error or (
                f"the replica reached {self.engine.position()}, short of the write's "
                f"replication_index {replication_index}"
            )
        else:
            outcome = await self.coordinator.request("write")
            if outcome.ok:
                return
            error = outcome.error
        # The write is at the origin (so it is acknowledged), but this replica cannot
        # show it: reads go to the origin and /ready fails until a sync succeeds.
        self._replica_behind = True
        log.warning(
            "replica could not catch up after a write; reads go to the origin and "
            "/ready reports not ready until a sync succeeds",
            extra={"error": error},
        )

    def _holds(self, replication_index: int) -> bool:
        """Whether the replica holds the origin's frame ``replication_index``.

        Frames of sqld's log only grow, so a replica at or past it holds it. Only engines
        that follow that index can tell; the others never claim to.
        """
        if not self.engine.follows_replication_index:
            return False
        position = self.engine.position()
        return position is not None and position.isdigit() and int(position) >= replication_index

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _pubsub_message(self, message: SyncMessage) -> None:
        await self.coordinator.request("pubsub")

    async def _synced(self, outcome: SyncOutcome) -> None:
        self.metrics.syncs.labels(outcome.trigger, "ok" if outcome.ok else "error").inc()
        self.metrics.sync_duration.labels(outcome.trigger).observe(outcome.duration_seconds)
        self._last_sync_error = outcome.error
        if outcome.changed:
            await self._reload_schema()
        if outcome.ok and self._replica_behind:
            log.info("replica caught up; reads are local again")
            self._replica_behind = False

    async def _reload_schema(self) -> None:
        done = await self.runner.run(
            None,
            lambda conn: [
                tuple(row)
                for row in conn.execute(
                    "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL"
                )
            ],
        )
        rows = [row for row in done.unwrap() if not self.engine.is_bookkeeping(row[1])]
        if self.inspector.load_schema(SchemaObject(*row) for row in rows):
            self.pool.schema_changed()
            log.debug("schema reloaded", extra={"objects": len(rows)})

    def readiness(self) -> str | None:
        """Why this POP should not get traffic now, or None when it should."""
        if self._open_error is not None:
            return f"{self._open_error}; retrying"
        if not self.ready:
            return "starting: the replica is not open or its first sync has not run"
        if self._replica_behind:
            return (
                "the replica lacks a write this POP forwarded (its catch-up sync failed: "
                f"{self._last_sync_error}); waiting for a sync to succeed"
            )
        last = self.coordinator.last_success
        age = time.time() - last if last is not None else None
        bound = self.settings.staleness_bound
        if age is None or age > bound:
            seen = "never synced" if age is None else f"last good sync {age:.0f} s ago"
            return (
                f"stale: {seen}, beyond READY_MAX_STALENESS={bound:g} s ({self._last_sync_error})"
            )
        return None

    def liveness(self) -> str | None:
        """Why this POP is wedged and should be restarted, or None when it is healthy."""
        age = self.coordinator.pull_age()
        bound = 4 * self.settings.sync_timeout
        if age > bound:
            return f"a sync has been running for {age:.0f} s (> 4 x SYNC_TIMEOUT): wedged"
        return None

    def refresh_gauges(self) -> None:
        """Values computed when scraped rather than kept up to date."""
        last = self.coordinator.last_success
        self.metrics.sync_last_success_age.set(time.time() - last if last else -1)
        self.metrics.replica_size.set(replica_size_bytes(self.engine.path))
        position = self.engine.position()
        self.metrics.replica_position.set(int(position) if position and position.isdigit() else -1)
        self.metrics.open_streams.set(len(self.session.streams))
        pulled = self.engine.stats().get("frames_pulled")
        if isinstance(pulled, int) and pulled > self._frames_counted:
            self.metrics.frames_pulled.inc(pulled - self._frames_counted)
            self._frames_counted = pulled
