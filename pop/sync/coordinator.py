"""One sync at a time per replica; a request during a running sync is never dropped.

Whoever asks for a sync while one runs is folded into exactly one follow-up sync that
starts when the running one ends, so the write that prompted the request is seen, and a
burst of requests costs at most one extra sync.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from pop.engines.base import ReplicaEngine, SyncResult, volume_full_hint

log = logging.getLogger(__name__)

Trigger = Literal["startup", "interval", "pubsub", "api", "write"]
# Syncs ``reach`` starts at most: an origin answers a write's index only once it can
# serve its frames, so the first one normally suffices.
_REACH_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    trigger: Trigger
    ok: bool
    changed: bool
    position: str | None
    duration_seconds: float
    error: str | None = None


class SyncCoordinator:
    def __init__(
        self,
        engine: ReplicaEngine,
        on_done: Callable[[SyncOutcome], Awaitable[None]] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._engine = engine
        self._on_done = on_done
        self._timeout = timeout
        # A pull that overran its timeout keeps its thread (threads cannot be stopped);
        # no other pull starts until it ends, and ``pull_age`` tells /health about it.
        self._overrun: asyncio.Future[SyncResult] | None = None
        self._pull_started: float | None = None
        self._running: asyncio.Task[None] | None = None
        self._current: asyncio.Future[SyncOutcome] | None = None
        self._next: asyncio.Future[SyncOutcome] | None = None
        self._next_trigger: Trigger = "api"
        self.last_success: float | None = None  # time.time() of the last good sync

    def pull_age(self) -> float:
        """Seconds the engine's current pull has been running (0 when none runs)."""
        started = self._pull_started
        return time.monotonic() - started if started is not None else 0.0

    async def request(self, trigger: Trigger) -> SyncOutcome:
        """Ask for a sync that starts no earlier than now; returns when it has finished."""
        loop = asyncio.get_running_loop()
        if self._running is None:
            self._current = loop.create_future()
            waiter = self._current
            self._running = asyncio.create_task(self._drive(trigger), name="sync")
        else:
            if self._next is None:
                self._next = loop.create_future()
                self._next_trigger = trigger
            waiter = self._next
        return await asyncio.shield(waiter)

    async def reach(self, reached: Callable[[], bool], trigger: Trigger) -> SyncOutcome | None:
        """Sync until ``reached()`` holds, and no longer; a sync already running counts.

        Returns the outcome of the last sync waited for, or None when none was needed.
        """
        if reached():
            return None
        outcome: SyncOutcome | None = None
        if self._current is not None and not self._current.done():
            outcome = await asyncio.shield(self._current)
            if reached():
                return outcome
        for _ in range(_REACH_ATTEMPTS):
            outcome = await self.request(trigger)
            if not outcome.ok or reached():
                break
        return outcome

    async def _drive(self, trigger: Trigger) -> None:
        try:
            while self._current is not None:
                outcome = await self._sync_once(trigger)
                self._current.set_result(outcome)
                self._current, self._next = self._next, None
                trigger = self._next_trigger
        finally:
            self._running = None

    async def _sync_once(self, trigger: Trigger) -> SyncOutcome:
        started = time.perf_counter()
        error: str | None = None
        try:
            result = await self._pull()
        except TimeoutError:
            error = (
                f"the sync did not finish within {self._timeout:g} s (SYNC_TIMEOUT); "
                "the origin may be stalled"
            )
        except Exception as exc:
            # Engines word a full disk obscurely ("Error code 200: Unknown error code").
            error = (str(exc) or type(exc).__name__) + volume_full_hint(self._engine.path)
        if error is not None:
            outcome = SyncOutcome(
                trigger,
                False,
                False,
                self._engine.position(),
                time.perf_counter() - started,
                error=error,
            )
        else:
            self.last_success = time.time()
            outcome = SyncOutcome(
                trigger, True, result.changed, result.position, time.perf_counter() - started
            )
        log.log(
            logging.INFO if outcome.ok else logging.WARNING,
            "sync %s",
            "ok" if outcome.ok else "failed",
            extra={
                "trigger": trigger,
                "changed": outcome.changed,
                "position": outcome.position,
                "duration_ms": round(outcome.duration_seconds * 1000, 2),
                "error": outcome.error,
            },
        )
        if self._on_done is not None:
            try:
                await self._on_done(outcome)
            except Exception:
                log.exception("handling a sync's outcome failed")
        return outcome

    async def _pull(self) -> SyncResult:
        """One engine pull that starts now, bounded by the timeout."""
        if self._overrun is not None:
            # Still the one before: a pull must start after the request that asked for it.
            await asyncio.wait({self._overrun}, timeout=self._timeout)
            if not self._overrun.done():
                raise TimeoutError
            self._overrun = None
        self._pull_started = time.monotonic()
        pull = asyncio.ensure_future(asyncio.to_thread(self._engine.sync))
        pull.add_done_callback(self._pull_ended)
        try:
            return await asyncio.wait_for(asyncio.shield(pull), self._timeout)
        except TimeoutError:
            self._overrun = pull
            raise

    def _pull_ended(self, pull: asyncio.Future[SyncResult]) -> None:
        self._pull_started = None
        if not pull.cancelled():
            pull.exception()  # retrieved, so an overrun pull's failure is not reported twice
