"""The replica's one owner: opening it, keeping it fresh, and saying how it is.

It opens the replica (retrying while the origin is unreachable), runs the interval syncs
and the Redis subscriber, has the replica catch up after this POP's own writes (the
session asks it to: ``catch_up``), knows whether the replica lacks a write this POP
acknowledged ("behind"; reads then go to the origin), keeps the inspector's schema equal
to the replica's, and answers the readiness and liveness probes. Nothing here calls back
into the wiring (``pop.service``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from pop.config import Settings
from pop.engines import ReplicaEngine
from pop.engines.base import WrongOrigin, replica_size_bytes
from pop.local.pool import ReaderPool
from pop.local.runner import LocalRunner
from pop.metrics import PopMetrics
from pop.origin.client import credentials_refusal
from pop.sql.inspector import SchemaObject, SqlInspector
from pop.streams import WriteShown
from pop.sync.coordinator import SyncCoordinator, SyncOutcome, Trigger
from pop.sync.messages import SyncMessage, database_key
from pop.sync.pubsub import RedisFabric

log = logging.getLogger(__name__)

# Between attempts to open a replica whose origin could not be reached at start.
OPEN_RETRY_SECONDS = (1.0, 2.0, 4.0, 8.0, 15.0)


class ReplicaOpenError(Exception):
    """The replica could not be opened or bootstrapped; the message says why."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable  # False: the configuration is wrong, not the network


class Replica:
    def __init__(
        self,
        settings: Settings,
        engine: ReplicaEngine,
        inspector: SqlInspector,
        pool: ReaderPool,
        runner: LocalRunner,
        metrics: PopMetrics,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self._inspector = inspector
        self._pool = pool
        self._runner = runner
        self._metrics = metrics
        self.coordinator = SyncCoordinator(
            engine, on_done=self._synced, timeout=settings.sync_timeout
        )
        self.fabric: RedisFabric | None = None
        if settings.redis_connection_string is not None:
            self.fabric = RedisFabric(
                settings.redis_connection_string.get_secret_value(),
                settings.redis_sync_channel,
                database=database_key(settings.turso_database_url),
                pop_id=settings.pop_id,
                metrics=metrics,
                holds=self._holds,
                on_message=self._pubsub_message,
            )
        # Good syncs so far: one that ends after a write was acknowledged brought it.
        self._good_syncs = 0
        self._last_sync_error: str | None = None
        # The engine's frames_pulled already added to the metrics counter.
        self._frames_counted = 0
        self._open = False
        self._open_error: str | None = None
        self._opening: asyncio.Task[None] | None = None
        self._interval_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self.serving = False

    # -- its life ----------------------------------------------------------------------

    def open(self) -> None:
        """Open (and on first start, bootstrap) the replica; raises ``ReplicaOpenError``.

        Blocking: the server calls it before it starts, ``start`` on a worker thread.
        """
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
        self._open = True

    async def start(self) -> None:
        """Serve the replica; if it cannot be opened yet, keep trying in the background.

        Until it opens, ``readiness`` says why and ``serving`` is false: a POP never
        answers from a replica it does not have.
        """
        if not self._open:
            try:
                await asyncio.to_thread(self.open)
            except ReplicaOpenError as exc:
                if not exc.retryable:
                    raise
                self._open_error = str(exc)
                self._opening = asyncio.create_task(self._open_when_possible(), name="open")
                return
        await self._serve()

    async def _open_when_possible(self) -> None:
        attempt = 0
        while not self._open:
            delay = OPEN_RETRY_SECONDS[min(attempt, len(OPEN_RETRY_SECONDS) - 1)]
            log.warning(
                "replica not open; retrying", extra={"error": self._open_error, "in_s": delay}
            )
            await asyncio.sleep(delay)
            attempt += 1
            try:
                await asyncio.to_thread(self.open)
            except ReplicaOpenError as exc:
                self._open_error = str(exc)
        self._open_error = None
        await self._serve()

    async def _serve(self) -> None:
        started = time.perf_counter()
        await self._reload_schema()
        outcome = await self.coordinator.request("startup")
        if not outcome.ok:
            log.warning(
                "first sync failed; serving the replica as it is on disk",
                extra={"error": outcome.error},
            )
        if self.fabric is not None:
            self.fabric.start()
        self._interval_task = asyncio.create_task(self._interval_sync(), name="interval-sync")
        self.serving = True
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

    async def stop(self) -> None:
        """Stop serving and syncing; the engine stays open until ``close``."""
        self.serving = False
        if self._opening is not None:
            self._opening.cancel()
        if self._interval_task is not None:
            self._interval_task.cancel()
            self._interval_task = None
        if self.fabric is not None:
            await self.fabric.stop()

    async def close(self) -> None:
        try:
            # Bounded: a pull stuck on a stalled origin holds the engine, and shutting
            # down must not wait for it.
            await asyncio.wait_for(asyncio.to_thread(self.engine.close), 5)
        except TimeoutError:
            log.warning("the replica did not close within 5 s (a sync is stuck); exiting anyway")

    # -- freshness ---------------------------------------------------------------------

    async def sync(self, trigger: Trigger) -> SyncOutcome:
        return await self.coordinator.request(trigger)

    async def catch_up(self, replication_index: str | None) -> WriteShown | None:
        """A request this POP forwarded may have committed a write at the origin: the
        replica gets it before the client hears back (read-your-writes).

        Returns None once the replica shows the write. If it cannot (the sync failed:
        the origin went away meanwhile), the write is still acknowledged, and what is
        returned tells when the replica shows it; until then that client's reads go to
        the origin (``pop.streams.Stream.await_write``), everyone else's stay here.
        """
        if self.fabric is not None:
            # The origin has the change now: the other POPs pull it while this one does.
            # In the background, so that a slow or absent Redis never delays a write.
            announced = replication_index if self.engine.follows_replication_index else None
            self._in_background(self.fabric.publish(announced))
        shown: WriteShown
        if (
            replication_index is not None
            and self.engine.follows_replication_index
            and self.settings.read_your_writes == "position"
        ):
            # Read-your-writes by position: the replica must hold the write's frame, and
            # a sync already under way, or already done, may have brought it.
            frame = int(replication_index)

            def shown() -> bool:
                return self._holds(frame)

            outcome = await self.coordinator.reach(shown, "write")
            if outcome is None or shown():
                return None
            error: str | None = outcome.error or (
                f"the replica reached {self.engine.position()}, short of the write's "
                f"replication_index {replication_index}"
            )
        else:
            outcome = await self.coordinator.request("write")
            if outcome.ok:
                return None
            error = outcome.error
            # A sync that ends well from now on began after the write: it brings it.
            good_syncs = self._good_syncs

            def shown() -> bool:
                return self._good_syncs > good_syncs

        log.warning(
            "replica could not catch up after a write; the writing client's reads go to "
            "the origin until the replica shows it, other clients' stay on the replica",
            extra={"error": error},
        )
        return shown

    def outcome_unknown(self) -> None:
        """A forwarded request may or may not have been applied at the origin: pull, so
        the replica shows it if it was."""
        self._in_background(self.coordinator.request("write"))

    def _holds(self, replication_index: int) -> bool:
        """Whether the replica holds the origin's frame ``replication_index``.

        Frames of sqld's log only grow, so a replica at or past it holds it. Only engines
        that follow that index can tell; the others never claim to.
        """
        if not self.engine.follows_replication_index:
            return False
        position = self.engine.position()
        return position is not None and position.isdigit() and int(position) >= replication_index

    async def _interval_sync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.turso_sync_interval)
            await self.coordinator.request("interval")

    async def _pubsub_message(self, message: SyncMessage) -> None:
        await self.coordinator.request("pubsub")

    async def _synced(self, outcome: SyncOutcome) -> None:
        self._metrics.syncs.labels(outcome.trigger, "ok" if outcome.ok else "error").inc()
        self._metrics.sync_duration.labels(outcome.trigger).observe(outcome.duration_seconds)
        self._last_sync_error = outcome.error
        if outcome.changed:
            await self._reload_schema()
        if outcome.ok:
            self._good_syncs += 1

    async def _reload_schema(self) -> None:
        # A plain read: on the event loop when the schema is small (the usual case, and
        # it runs after every sync that brought something), on a worker otherwise.
        done = await self._runner.run(
            None,
            lambda conn: [
                tuple(row)
                for row in conn.execute(
                    "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL"
                )
            ],
            loop_first=True,
        )
        rows = [row for row in done.unwrap() if not self.engine.is_bookkeeping(row[1])]
        if self._inspector.load_schema(SchemaObject(*row) for row in rows):
            self._pool.schema_changed()
            log.debug("schema reloaded", extra={"objects": len(rows)})

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- health ------------------------------------------------------------------------

    def readiness(self) -> str | None:
        """Why this POP should not get traffic now, or None when it should."""
        if self._open_error is not None:
            return f"{self._open_error}; retrying"
        if not self.serving:
            return "starting: the replica is not open or its first sync has not run"
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
        """The replica's values, computed when scraped rather than kept up to date."""
        last = self.coordinator.last_success
        self._metrics.sync_last_success_age.set(time.time() - last if last else -1)
        self._metrics.replica_size.set(replica_size_bytes(self.engine.path))
        position = self.engine.position()
        self._metrics.replica_position.set(int(position) if position and position.isdigit() else -1)
        pulled = self.engine.stats().get("frames_pulled")
        if isinstance(pulled, int) and pulled > self._frames_counted:
            self._metrics.frames_pulled.inc(pulled - self._frames_counted)
            self._frames_counted = pulled
