"""Local work on the replica, off the event loop, in a bounded pool of worker threads.

A read never runs on the thread that serves every request: a slow or endless query would
stall ``/health`` and every other client. Each piece of work runs on a worker with a
connection of its own, under a per-statement time limit; past it, or when the client
goes away, the statement is interrupted and the worker is free again.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pop.engines.base import Cursor, ReadConnection
from pop.hrana.errors import HranaError
from pop.local.pool import ReaderPool

T = TypeVar("T")


@dataclass(eq=False)
class Cancellation:
    """Callbacks to run if the client of the current request goes away."""

    callbacks: list[Callable[[], None]] = field(default_factory=list)
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True
        for callback in list(self.callbacks):
            callback()


# Set by the HTTP layer for the duration of one request (see ``pop.app``).
current_cancellation: contextvars.ContextVar[Cancellation | None] = contextvars.ContextVar(
    "current_cancellation", default=None
)


class _Guard:
    """Interrupts the connection's statement if it overruns, but only while work runs.

    ``interrupt`` and ``finish`` share a lock, so an interrupt can never reach a
    connection that has already been handed to the next piece of work.
    """

    def __init__(self, conn: ReadConnection, timeout: float) -> None:
        self.conn = conn
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._running = True

    def statement_started(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def interrupt(self, reason: str) -> None:
        with self._lock:
            if self._running and self.reason is None:
                self.reason = reason
                self.conn.interrupt()

    def finish(self) -> None:
        with self._lock:
            self._running = False


class _TimedConnection:
    """A connection whose every statement restarts the guard's clock."""

    def __init__(self, conn: ReadConnection, guard: _Guard) -> None:
        self._conn = conn
        self._guard = guard

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        self._guard.statement_started()
        return self._conn.execute(sql, parameters)

    def interrupt(self) -> None:
        self._conn.interrupt()

    def close(self) -> None:
        raise RuntimeError("a lent connection is closed by its pool")


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """How a piece of work ended, and the connection it leaves a transaction open on."""

    value: T | None
    error: Exception | None
    kept: ReadConnection | None

    def unwrap(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class _Watch:
    """The timer that enforces the statement time limit of one piece of work."""

    def __init__(self) -> None:
        self.guard: _Guard | None = None
        self.handle: asyncio.TimerHandle | None = None
        self.stopped = False


class LocalRunner:
    def __init__(self, pool: ReaderPool, workers: int, statement_timeout: float) -> None:
        self._pool = pool
        self._statement_timeout = statement_timeout
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="replica-reader")

    async def run(
        self, held: ReadConnection | None, work: Callable[[ReadConnection], T]
    ) -> Done[T]:
        """Run ``work`` on ``held`` (a stream's connection) or on a pooled one.

        A connection left inside a transaction is returned as ``kept`` for the stream to
        hold; any other goes back to the pool. If the caller is cancelled, the work is
        interrupted and its connection given back once the worker lets go of it.
        """
        loop = asyncio.get_running_loop()
        conn = held or self._pool.take_idle()
        watch = _Watch()

        def job() -> tuple[ReadConnection, T | None, Exception | None]:
            lent = conn or self._pool.connect()
            guard = watch.guard = _Guard(lent, self._statement_timeout)
            try:
                return lent, work(_TimedConnection(lent, guard)), None
            except Exception as exc:
                return lent, None, _interrupted(guard, exc)
            finally:
                guard.finish()

        future = loop.run_in_executor(self._executor, job)
        cancellation = current_cancellation.get()

        def on_disconnect() -> None:
            if watch.guard is not None:
                watch.guard.interrupt("the client went away")

        if cancellation is not None:
            cancellation.callbacks.append(on_disconnect)
        watch.handle = loop.call_later(self._statement_timeout, self._check, watch, loop)
        try:
            lent, value, error = await asyncio.shield(future)
        except asyncio.CancelledError:
            on_disconnect()
            future.add_done_callback(self._give_back_when_done)
            raise
        finally:
            watch.stopped = True
            if watch.handle is not None:
                watch.handle.cancel()
            if cancellation is not None:
                cancellation.callbacks.remove(on_disconnect)
        if lent.in_transaction:
            return Done(value, error, lent)
        self._pool.give_back(lent)
        return Done(value, error, None)

    def _check(self, watch: _Watch, loop: asyncio.AbstractEventLoop) -> None:
        """Interrupt a statement past its limit; each statement restarts the clock."""
        if watch.stopped:
            return
        guard = watch.guard
        remaining = guard.deadline - time.monotonic() if guard else self._statement_timeout
        if remaining > 0 or guard is None:
            watch.handle = loop.call_later(max(remaining, 0.01), self._check, watch, loop)
            return
        limit = f"{guard.timeout:g}"
        guard.interrupt(f"the statement ran longer than {limit} s (STATEMENT_TIMEOUT)")

    def _give_back_when_done(
        self, future: asyncio.Future[tuple[ReadConnection, Any, Exception | None]]
    ) -> None:
        if not future.cancelled() and future.exception() is None:
            self._pool.give_back(future.result()[0])

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _interrupted(guard: _Guard, exc: Exception) -> Exception:
    """The engine's "interrupted" error, said as why it was interrupted."""
    if guard.reason is None:
        return exc
    return HranaError(f"interrupted: {guard.reason}", "SQLITE_INTERRUPT")
