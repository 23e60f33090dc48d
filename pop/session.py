"""One Hrana stream's pipeline loop, shared by the POP and ``edge-pop gateway``.

A :class:`Session` takes a pipeline body or a single request, finds or opens the stream
its baton names, checks the size limits, runs each request on a :class:`Backend` (the
POP's router, or the gateway's forwarder), turns each failure into that request's
error result as sqld words it, counts requests and errors, and parks the stream under a
fresh baton. A backend only says how to run one request and how to free a stream.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from pop.hrana.errors import (
    HranaError,
    OriginStreamLost,
    OriginUnavailable,
    OutcomeUnknown,
    ProtocolError,
    error_result,
    write_forbidden,
)
from pop.hrana.messages import CloseReq, PipelineBody, StreamRequest
from pop.limits import Limits
from pop.local.runner import Done
from pop.metrics import PopMetrics
from pop.sql.write_check import WriteCheck
from pop.streams import Stream, StreamRegistry, TxnState, WriteShown

log = logging.getLogger(__name__)


class Route(enum.Enum):
    """Where a request was answered."""

    LOCAL = "local"
    ORIGIN = "origin"
    NONE = "none"  # bookkeeping requests that touch no database


@dataclass(frozen=True, slots=True)
class Handled:
    """A backend's answer to one request.

    ``local`` is set when the request ran on a replica connection: the session keeps the
    connection it left inside a transaction on the stream, then answers the work's error,
    if it failed, as the request's error.
    """

    response: dict[str, Any]
    route: Route
    local: Done[Any] | None = None
    # Set when a request sent to the origin may have committed a write there, even if it
    # failed: the session has the replica catch up before answering.
    wrote: bool = False
    replication_index: str | None = None  # the origin's, after the write, if it said
    # The request's error, answered after the catch-up (raised by the backend otherwise).
    failure: Exception | None = None


class ReplicaFreshness(Protocol):
    """What the session tells the replica's owner (``pop.replica``) about writes."""

    async def catch_up(self, replication_index: str | None) -> WriteShown | None:
        """A request may have committed a write at the origin: the replica gets it.
        Returns None once it shows the write, else what tells when it does."""

    def outcome_unknown(self) -> None:
        """A request may or may not have been applied at the origin."""


class Backend(Protocol):
    """Where a session's requests run."""

    def holding(self, stream: Stream) -> AbstractAsyncContextManager[None]:
        """Held while one call (a pipeline, a cursor batch) runs on ``stream``."""

    async def handle(
        self, stream: Stream, request: StreamRequest, *, closing: bool = False
    ) -> Handled:
        """Run one request; raise ``HranaError`` for its error result. ``closing``: the
        client closes the stream right after it (its ``close`` comes next in the same
        call), so what the stream holds elsewhere may end with it."""

    async def release(self, stream: Stream) -> None:
        """Free what a closed or expired stream holds."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a call: whether they may write (a token with claim ``a`` = ``ro`` may
    not), and the connection it came on (``None``: unknown, or passed on by a peer).

    Read-your-writes follows a client's connection as well as its stream: a client that
    wrote in one stream often reads in the next one it opens (``@libsql/client`` opens a
    stream per statement over HTTP), on the same kept-alive connection.
    """

    read_only: bool = False
    connection: str | None = None


ANYONE = Caller()
# Connections remembered with a write the replica does not show yet; past this, the
# oldest are forgotten (their streams keep their own mark).
MAX_CONNECTIONS_AWAITING_WRITES = 10_000


class _ConnectionWrites:
    """The writes each client connection made that the replica does not show yet."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[str, WriteShown] = OrderedDict()

    def remember(self, connection: str | None, shown: WriteShown) -> None:
        if connection is None:
            return
        self._waiting[connection] = shown
        self._waiting.move_to_end(connection)
        while len(self._waiting) > MAX_CONNECTIONS_AWAITING_WRITES:
            self._waiting.popitem(last=False)

    def of(self, connection: str | None) -> WriteShown | None:
        """What a stream on ``connection`` must wait for, if anything."""
        if connection is None or not self._waiting:
            return None
        shown = self._waiting.get(connection)
        if shown is not None and shown():
            del self._waiting[connection]
            return None
        return shown


@dataclass(frozen=True, slots=True)
class Answer:
    """What an endpoint sends back, and where it was answered (for the latency metric)."""

    body: Any
    route: Route


def _summary(routes: set[Route]) -> Route:
    """One route label for a whole call: origin if any request went there."""
    for route in (Route.ORIGIN, Route.LOCAL):
        if route in routes:
            return route
    return Route.NONE


def _after(requests: Sequence[StreamRequest], index: int) -> StreamRequest | None:
    return requests[index + 1] if index + 1 < len(requests) else None


def _closed() -> dict[str, Any]:
    return error_result(HranaError("the stream was closed by an earlier request", "STREAM_CLOSED"))


class Session:
    """The streams of one server and the loop their requests run in.

    It alone changes where a stream's transaction lives (``Stream.hold_local``), from what
    the backend reports, and it frees a stream that closes or expires.
    """

    def __init__(
        self,
        backend: Backend,
        limits: Limits,
        metrics: PopMetrics,
        *,
        idle_timeout: float,
        server: str,
        replica: ReplicaFreshness | None = None,
        owner: str | None = None,
        write_check: WriteCheck | None = None,
    ) -> None:
        """``replica``: the replica to keep fresh after writes (none for the gateway);
        ``owner``: this server's name in its batons (``pop.streams.baton_owner``);
        ``write_check``: what read-only callers may not run (none: they run nothing)."""
        self._backend = backend
        self.streams = StreamRegistry(idle_timeout, on_expire=self._expire, owner=owner)
        self._limits = limits
        self._metrics = metrics
        self._replica = replica
        self._held = 0  # streams from open() not closed yet (WebSocket streams)
        self._write_check = write_check
        self._unseen = _ConnectionWrites()
        self._internal_error = f"internal error in the {server}; see its log"

    async def pipeline(self, body: PipelineBody, endpoint: str, caller: Caller = ANYONE) -> Answer:
        """Run a pipeline call; a read-only ``caller``'s call that would write is refused
        whole."""
        self._limits.check_pipeline(len(body.requests))
        stream = self.streams.take(body.baton) if body.baton else self.streams.open()
        results: list[dict[str, Any]] = []
        routes: set[Route] = set()
        closed = False
        try:
            if caller.read_only:
                self.refuse_writes(body.requests, stream.sqls)
            async with self._backend.holding(stream):
                for index, request in enumerate(body.requests):
                    if closed:
                        results.append(_closed())
                    elif isinstance(request, CloseReq):
                        await self._release(stream)
                        closed = True
                        results.append({"type": "ok", "response": {"type": "close"}})
                        self._metrics.count_request(endpoint, "close", Route.NONE.value, "ok")
                    else:
                        closing = isinstance(_after(body.requests, index), CloseReq)
                        result, route = await self._run(
                            stream, request, endpoint, caller, closing=closing
                        )
                        results.append(result)
                        routes.add(route)
        finally:
            # Parked even when the call fails midway (client gone): the stream then
            # expires and is released like any abandoned one, instead of leaking.
            baton = None if closed else self.streams.park(stream)
        return Answer({"baton": baton, "base_url": None, "results": results}, _summary(routes))

    async def one(
        self,
        baton: str | None,
        request: StreamRequest,
        endpoint: str,
        *,
        keep: bool = True,
        caller: Caller = ANYONE,
    ) -> tuple[str | None, dict[str, Any], Route]:
        """One request on the stream ``baton`` names (a new one if None).

        Returns the baton to continue with (None unless ``keep``), the request's result
        and where it ran. Used by the endpoints that carry a single request.
        """
        stream = self.streams.take(baton) if baton else self.streams.open()
        parked: str | None = None
        try:
            if caller.read_only:
                self.refuse_writes([request], stream.sqls)
            result, route = await self.run(stream, request, endpoint, caller, closing=not keep)
        finally:
            if keep:
                parked = self.streams.park(stream)
            else:
                await self._release(stream)
        return parked, result, route

    async def _handle(self, stream: Stream, request: StreamRequest, *, closing: bool) -> Handled:
        try:
            return await self._backend.handle(stream, request, closing=closing)
        except asyncio.CancelledError:
            # The client left mid-request. Local work it interrupted gives its connection
            # back to the pool once the worker lets go (pop.local.runner); the stream
            # must not hold it too, or its expiry would give it back a second time and
            # the pool would lend one connection to two readers. (The one other wait
            # inside a read transaction, a describe sent to the origin, drops a
            # connection no worker holds: it is closed when collected.)
            if stream.state is TxnState.LOCAL_TXN:
                stream.hold_local(None)
            raise

    def refuse_writes(self, requests: Sequence[StreamRequest], stored: Mapping[int, str]) -> None:
        """Raise sqld's 403 if a read-only caller's ``requests`` would write."""
        if self._write_check is None:
            raise write_forbidden()
        self._write_check.refuse(requests, stored)

    def open(self, *, sqls: dict[int, str] | None = None) -> Stream:
        """A stream its caller keeps (a WebSocket's), with no baton and no idle timeout;
        ``sqls``: SQL texts it shares with others. End it with ``close``."""
        self._held += 1
        return self.streams.open(sqls)

    async def run(
        self,
        stream: Stream,
        request: StreamRequest,
        endpoint: str,
        caller: Caller = ANYONE,
        *,
        closing: bool = False,
    ) -> tuple[dict[str, Any], Route]:
        """One request on a stream at hand: its result and where it ran (``closing``: as
        ``Backend.handle``'s)."""
        async with self._backend.holding(stream):
            return await self._run(stream, request, endpoint, caller, closing=closing)

    async def close(self, stream: Stream) -> None:
        """End a stream from ``open``: what it holds is freed, here and at the origin."""
        self._held -= 1
        await self._release(stream)

    @property
    def open_streams(self) -> int:
        """Streams kept open: waiting for an HTTP client's next call, or a WebSocket's."""
        return len(self.streams) + self._held

    async def _release(self, stream: Stream) -> None:
        try:
            await self._backend.release(stream)
        finally:
            stream.hold_local(None)

    async def _expire(self, stream: Stream) -> None:
        if stream.state is not TxnState.AUTOCOMMIT:
            log.warning(
                "stream expired inside a transaction: rolled back",
                extra={"stream": stream.id, "where": stream.state.value},
            )
        await self._release(stream)

    async def _run(
        self,
        stream: Stream,
        request: StreamRequest,
        endpoint: str,
        caller: Caller,
        *,
        closing: bool = False,
    ) -> tuple[dict[str, Any], Route]:
        route = Route.NONE
        stream.await_write(self._unseen.of(caller.connection))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("request", extra={"stream": stream.id, "request": request.model_dump_json()})
        try:
            self._limits.check_request(request)
            handled = await self._handle(stream, request, closing=closing)
            route = handled.route  # where it ran, failed or not
            if handled.local is not None:
                stream.hold_local(handled.local.kept)
                handled.local.unwrap()  # the work's failure, answered below
            if handled.wrote and self._replica is not None:
                unseen = await self._replica.catch_up(handled.replication_index)
                if unseen is not None:
                    stream.await_write(unseen)
                    self._unseen.remember(caller.connection, unseen)
            if handled.failure is not None:
                raise handled.failure
        except OriginStreamLost:
            raise  # the whole call is answered as the origin answered it (see pop.http.endpoint)
        except (HranaError, ProtocolError) as exc:
            outcome = "error"
            if isinstance(exc, OriginUnavailable):
                self._metrics.origin_errors.labels("unavailable").inc()
                route = Route.ORIGIN
            elif isinstance(exc, OutcomeUnknown):
                self._metrics.origin_errors.labels("outcome_unknown").inc()
                route = Route.ORIGIN
                if self._replica is not None:
                    self._replica.outcome_unknown()
            answer = error_result(exc)
        except Exception:
            log.exception(
                "unexpected failure while handling a request", extra={"type": request.type}
            )
            outcome = "error"
            answer = error_result(HranaError(self._internal_error, "INTERNAL"))
        else:
            outcome = "ok"
            answer = {"type": "ok", "response": handled.response}
        self._metrics.count_request(endpoint, request.type, route.value, outcome)
        self._metrics.count_errors(answer)
        return answer, route
