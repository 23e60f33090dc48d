"""One sync at a time per replica; a request during a running sync is never dropped.

Whoever asks for a sync while one runs is folded into exactly one follow-up sync that
starts when the running one ends, so the write that prompted the request is seen, and a
burst of requests costs at most one extra sync.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pop.engines.base import ReplicaEngine, SyncResult

log = logging.getLogger(__name__)

Trigger = Literal["startup", "interval", "pubsub", "api", "write"]


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
        self, engine: ReplicaEngine, on_done: Callable[[SyncOutcome], None] | None = None
    ) -> None:
        self._engine = engine
        self._on_done = on_done
        self._running: asyncio.Task[None] | None = None
        self._current: asyncio.Future[SyncOutcome] | None = None
        self._next: asyncio.Future[SyncOutcome] | None = None
        self._next_trigger: Trigger = "api"
        self.last_success: float | None = None  # time.time() of the last good sync

    @property
    def running(self) -> bool:
        return self._running is not None

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
        try:
            result: SyncResult = await asyncio.to_thread(self._engine.sync)
        except Exception as exc:
            outcome = SyncOutcome(
                trigger,
                False,
                False,
                self._engine.position(),
                time.perf_counter() - started,
                error=str(exc) or type(exc).__name__,
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
            self._on_done(outcome)
        return outcome
