"""Local work on the replica: a short slice on the event loop, then a bounded pool of
worker threads.

A read never holds the thread that serves every request for longer than a short slice: a
slow or endless query would stall ``/health`` and every other client. Plain reads that
leave no transaction open are tried on the event loop first, within ``LOOP_SLICE``: most
take a few microseconds, far less than handing them to a thread and back. One that would
run past the slice, or wait for a lock, stops and starts again on a worker. There each
piece of work has a connection of its own, under a per-statement time limit; past it, or
when the client goes away, the statement is interrupted and the worker is free again.

On the workers, work runs in two lanes, so that cheap reads never queue behind expensive
ones: it starts in the fast lane (``READER_THREADS`` at once; the rest wait their turn, in
order), and work still running after ``SLOW_AFTER`` moves to the slow lane, freeing its
fast place for the next. The slow lane holds ``SLOW_READER_THREADS``; work that turns slow
while it is full is interrupted with an error that says so, rather than keep a fast place.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pop.engines.base import Cursor, OffTheLoop, ReadConnection
from pop.hrana.errors import HranaError
from pop.local.pool import ReaderPool

T = TypeVar("T")


class Cancellation:
    """A request's link to its client: local work is interrupted if the client leaves.

    ``watch`` starts listening for the disconnect (an extra task), which the runner does
    only for work that has run a while; quick requests never pay for it.
    """

    def __init__(self, wait_for_disconnect: Callable[[], Awaitable[None]]) -> None:
        self.callbacks: list[Callable[[], None]] = []
        self._wait_for_disconnect = wait_for_disconnect
        self._watcher: asyncio.Task[None] | None = None

    def watch(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        await self._wait_for_disconnect()
        for callback in list(self.callbacks):
            callback()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()


# Set by the HTTP layer for the duration of one request (see ``pop.http.endpoint``).
current_cancellation: contextvars.ContextVar[Cancellation | None] = contextvars.ContextVar(
    "current_cancellation", default=None
)


class _Guard:
    """Interrupts the connection's statement if it overruns, but only while work runs.

    ``interrupt`` and ``finish`` share a lock, so an interrupt can never reach a
    connection that has already been handed to the next piece of work.
    """

    def __init__(self, timeout: float, cancellation: Cancellation | None) -> None:
        self.timeout = timeout
        self.in_fast_lane = True
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.cancellation = cancellation
        self.conn: ReadConnection | None = None
        self.reason: str | None = None
        self._lock = threading.Lock()
        self._running = True

    def statement_started(self) -> None:
        self.deadline = time.monotonic() + self.timeout

    def interrupt(self, reason: str) -> None:
        with self._lock:
            if self._running and self.reason is None and self.conn is not None:
                self.reason = reason
                self.conn.interrupt()

    def interrupt_for_disconnect(self) -> None:
        self.interrupt("the client went away")

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

    def set_time_slice(self, seconds: float | None) -> None:
        raise RuntimeError("work on a worker thread has no time slice")

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


_Outcome = tuple[ReadConnection, Any, Exception | None]


class LocalRunner:
    """Runs work on replica connections on worker threads, under the time limit.

    One sweeper checks every running piece of work ten times a second, rather than a
    timer per piece: most reads take well under a millisecond, and should pay nothing
    for the limit they never reach. Likewise a client's disconnect is only watched for
    once its work has run for a while.
    """

    SWEEP_INTERVAL = 0.1
    # The longest the event loop runs one piece of work before moving it to a worker: what
    # any other request may wait for it.
    LOOP_SLICE = 0.002
    WATCH_DISCONNECT_AFTER = 0.2
    SLOW_AFTER = 0.2

    def __init__(
        self, pool: ReaderPool, workers: int, statement_timeout: float, slow_workers: int
    ) -> None:
        self._pool = pool
        self._statement_timeout = statement_timeout
        # Submitted work always holds a fast place or a slow one, so the executor has a
        # thread for it at once: nothing waits inside the executor, where order is lost.
        self._executor = ThreadPoolExecutor(
            workers + slow_workers, thread_name_prefix="replica-reader"
        )
        self._fast_places = asyncio.Semaphore(workers)
        self._slow_places = slow_workers
        self._slow_running = 0
        self._running: set[_Guard] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(
        self,
        held: ReadConnection | None,
        work: Callable[[ReadConnection], T],
        *,
        loop_first: bool = False,
        before_rerun: Callable[[], None] | None = None,
    ) -> Done[T]:
        """Run ``work`` on ``held`` (a stream's connection) or on a pooled one.

        A connection left inside a transaction is returned as ``kept`` for the stream to
        hold; any other goes back to the pool. If the caller is cancelled, the work is
        interrupted and its connection given back once the worker lets go of it.

        With ``loop_first`` (work that can be stopped midway and run again from the
        start: reads that leave no transaction open), work without a held connection is
        tried on the event loop first; ``before_rerun`` undoes what a try that ran out
        of time had counted.
        """
        if loop_first and held is None:
            done = self._on_loop(work)
            if done is not None:
                return done
            if before_rerun is not None:
                before_rerun()
        if self._sweeper is None:
            self._loop = asyncio.get_running_loop()
            self._sweeper = self._loop.create_task(self._sweep(), name="statement-time-limit")
        await self._fast_places.acquire()
        guard = _Guard(self._statement_timeout, current_cancellation.get())
        try:
            return await self._run_guarded(held, work, guard)
        finally:
            if guard.in_fast_lane:
                self._fast_places.release()
            else:
                self._slow_running -= 1

    async def _run_guarded(
        self, held: ReadConnection | None, work: Callable[[ReadConnection], T], guard: _Guard
    ) -> Done[T]:
        conn = held or self._pool.take_idle()
        if guard.cancellation is not None:
            guard.cancellation.callbacks.append(guard.interrupt_for_disconnect)

        def job() -> _Outcome:
            lent = guard.conn = conn or self._pool.connect()
            try:
                return lent, work(_TimedConnection(lent, guard)), None
            except Exception as exc:
                return lent, None, _as_answer(_interrupted(guard, exc))
            finally:
                guard.finish()

        self._running.add(guard)
        submitted = self._executor.submit(job)
        try:
            lent, value, error = await asyncio.wrap_future(submitted)
        except asyncio.CancelledError:
            guard.interrupt("the request was cancelled")
            submitted.add_done_callback(self._give_back_when_done)
            raise
        finally:
            self._running.discard(guard)
            if guard.cancellation is not None:
                guard.cancellation.callbacks.remove(guard.interrupt_for_disconnect)
        if lent.in_transaction:
            return Done(value, error, lent)
        self._pool.give_back(lent)
        return Done(value, error, None)

    def _on_loop(self, work: Callable[[ReadConnection], T]) -> Done[T] | None:
        """``work`` on an idle connection, here on the event loop, within ``LOOP_SLICE``;
        ``None`` if it ran out of time or there was no idle connection (a worker opens
        one: opening a file must not stall the loop)."""
        conn = self._pool.take_idle()
        if conn is None:
            return None
        conn.set_time_slice(self.LOOP_SLICE)
        try:
            return Done(work(conn), None, None)
        except OffTheLoop:
            return None
        except Exception as exc:
            return Done(None, _as_answer(exc), None)
        finally:
            conn.set_time_slice(None)
            self._pool.give_back(conn)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.SWEEP_INTERVAL)
            now = time.monotonic()
            for guard in list(self._running):
                if now > guard.deadline:
                    guard.interrupt(
                        f"the statement ran longer than {guard.timeout:g} s (STATEMENT_TIMEOUT)"
                    )
                    continue
                if guard.in_fast_lane and now - guard.started > self.SLOW_AFTER:
                    self._to_slow_lane(guard)
                if guard.cancellation and now - guard.started > self.WATCH_DISCONNECT_AFTER:
                    guard.cancellation.watch()

    def _to_slow_lane(self, guard: _Guard) -> None:
        if self._slow_running < self._slow_places:
            guard.in_fast_lane = False
            self._slow_running += 1
            self._fast_places.release()
        else:
            guard.interrupt(
                f"it ran longer than {self.SLOW_AFTER:g} s while {self._slow_places} slow "
                "reads were running already (SLOW_READER_THREADS); retry it later"
            )

    def _give_back_when_done(self, submitted: Future[_Outcome]) -> None:
        # On the worker thread: the pool is the event loop's, so hand over to it.
        if not submitted.cancelled() and submitted.exception() is None:
            conn = submitted.result()[0]
            assert self._loop is not None  # set by the run that submitted this work
            self._loop.call_soon_threadsafe(self._pool.give_back, conn)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _interrupted(guard: _Guard, exc: Exception) -> Exception:
    """The engine's "interrupted" error, said as why it was interrupted."""
    if guard.reason is None:
        return exc
    return HranaError(f"interrupted: {guard.reason}", "SQLITE_INTERRUPT")


def _as_answer(error: Exception) -> Exception:
    """A ``HranaError`` is an answer, not a fault: it leaves without the frames it was
    raised through. They hold the rows read so far (up to ``MAX_RESULT_BYTES``), and a
    traceback in a reference cycle keeps them until a garbage collection happens to run.
    """
    if isinstance(error, HranaError):
        error.__traceback__ = None
        error.__context__ = None
    return error
