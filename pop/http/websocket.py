"""Hrana over WebSocket on ``/``, as the libSQL server serves it (subprotocols ``hrana3``,
``hrana2`` and ``hrana1``; not ``hrana3-protobuf``).

This is what ``@libsql/client`` (on Node.js) and the Go client speak for ``ws://`` and
``wss://`` URLs; for ``libsql://`` both speak HTTP. A
connection says ``hello`` with the POP's token, then opens streams under ids of its own
choosing. Each stream is a session stream (``pop.session``): its requests run through
the same loop and backend as HTTP's, one at a time in the order they came, while the
streams of one connection run side by side. SQL texts stored with ``store_sql`` belong to
the connection, shared by its streams. A WebSocket stream lives as long as its
connection; when the connection ends, its streams are closed (any transaction rolled
back). A connection quiet for ``WS_IDLE_TIMEOUT``, with no request waiting for its
answer, is closed. At ``MAX_WAITING_REQUESTS`` unanswered requests the connection is not
read until one is answered. A Hrana 3 cursor is a batch run on its stream when opened,
its entries (those of ``/v3/cursor``) then handed out in the chunks the client fetches.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NoReturn

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect

from pop.hrana.errors import HranaError, ProtocolError
from pop.hrana.messages import Batch, BatchReq, StreamRequest, describe_validation_error
from pop.hrana.result_size import ResultAccount, ResultBudget, held_for_the_answer
from pop.http import cursor
from pop.http.auth import Access, Authenticator, Unauthenticated
from pop.http.endpoint import connection_of
from pop.session import Caller, Session
from pop.streams import MAX_STORED_SQL, Stream

log = logging.getLogger(__name__)

# The versions served, in the order the POP prefers them.
SUBPROTOCOLS = ("hrana3", "hrana2", "hrana1")
MAX_STREAMS = 256  # per connection
# Requests read but not yet answered, per connection. At the bound the POP stops reading
# the socket until one is answered: the client waits (TCP backpressure), nothing is
# refused, and what a connection can hold in memory is bounded.
MAX_WAITING_REQUESTS = 128
ENDPOINT = "websocket"
# RFC 6455 close codes: the peer broke the protocol; a normal close (here: idle).
PROTOCOL_ERROR = 1002
NORMAL = 1000


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Hello(_Message):
    type: Literal["hello"]
    jwt: str | None = None


class Request(_Message):
    type: Literal["request"]
    request_id: int
    request: dict[str, Any]


_CLIENT_MESSAGE: TypeAdapter[Hello | Request] = TypeAdapter(
    Annotated[Hello | Request, Field(discriminator="type")]
)
_STREAM_REQUEST: TypeAdapter[StreamRequest] = TypeAdapter(StreamRequest)
_ON_STREAM = frozenset({"execute", "batch", "sequence", "describe", "get_autocommit"})


class Refused(Exception):
    """The client broke the protocol: the connection ends."""


@dataclass(frozen=True, slots=True)
class _CloseStream:
    pass


@dataclass(frozen=True, slots=True)
class _OpenCursor:
    cursor_id: int
    batch: Batch


@dataclass(frozen=True, slots=True)
class _FetchCursor:
    cursor_id: int
    max_count: int


@dataclass(frozen=True, slots=True)
class _CloseCursor:
    cursor_id: int


# What a stream's worker does, request by request.
_Work = StreamRequest | _CloseStream | _OpenCursor | _FetchCursor | _CloseCursor


@dataclass(eq=False)
class _WsStream:
    stream: Stream
    # Its requests in the order they came.
    queue: asyncio.Queue[tuple[int, _Work]] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None
    # Its open cursors, by cursor id.
    cursors: dict[int, _Cursor] = field(default_factory=dict)

    def drop_cursors(self) -> None:
        for opened in self.cursors.values():
            opened.account.close()
        self.cursors.clear()


@dataclass(eq=False)
class _Cursor:
    """A cursor's entries not fetched yet, counted in flight until they are."""

    entries: collections.deque[dict[str, Any]]
    account: ResultAccount


def choose_subprotocol(offered: list[str]) -> str | None:
    for name in SUBPROTOCOLS:
        if name in offered:
            return name
    return None


class HranaConnection:
    """One WebSocket connection: its streams by id, its stored SQL, its one sender."""

    def __init__(
        self,
        websocket: WebSocket,
        session: Session,
        authenticator: Authenticator,
        not_serving: Callable[[], str | None],
        idle_timeout: float,
        result_budget: ResultBudget,
    ) -> None:
        self._socket = websocket
        self._session = session
        self._result_budget = result_budget
        self._authenticator = authenticator
        # Until a hello says otherwise; its streams share one connection (read-your-writes).
        self._caller = Caller(read_only=True, connection=connection_of(websocket.scope))
        self._not_serving = not_serving  # why the POP cannot serve now, or None
        self._idle_timeout = idle_timeout
        # Quiet means no message either way and no request waiting for its answer.
        self._last_active = time.monotonic()
        self._in_flight = 0
        self._room = asyncio.Semaphore(MAX_WAITING_REQUESTS)
        self._authenticated = False
        self._sqls: dict[int, str] = {}
        self._streams: dict[int, _WsStream] = {}
        self._cursors: dict[int, _WsStream] = {}  # the stream each open cursor is on
        # Every stream's worker, closing ones too: the loop keeps only weak references.
        self._workers: set[asyncio.Task[None]] = set()
        self._sending = asyncio.Lock()

    async def serve(self) -> None:
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(self._socket.receive_text(), self._idle_timeout)
                except TimeoutError:
                    if self._in_flight or self._quiet_for() < self._idle_timeout:
                        continue
                    log.info(
                        "websocket connection idle: closed", extra={"idle_s": self._idle_timeout}
                    )
                    await self._socket.close(NORMAL, "idle (WS_IDLE_TIMEOUT)")
                    return
                self._last_active = time.monotonic()
                await self._on_message(raw)
        except WebSocketDisconnect:
            pass
        except Refused as exc:
            log.info("websocket connection refused", extra={"error": str(exc)})
            with contextlib.suppress(Exception):
                await self._socket.close(PROTOCOL_ERROR, str(exc)[:120])
        finally:
            await self._close_all()

    async def _on_message(self, raw: str) -> None:
        try:
            message = _CLIENT_MESSAGE.validate_json(raw)
        except ValidationError as exc:
            raise Refused(describe_validation_error(exc)) from None
        if isinstance(message, Hello):
            await self._hello(message)
        elif not self._authenticated:
            raise Refused("a request came before a successful hello")
        else:
            await self._request(message.request_id, message.request)

    async def _hello(self, hello: Hello) -> None:
        # A later hello (hrana3) replaces the token, and with it what the caller may do.
        try:
            access = self._authenticator.from_token(hello.jwt)
        except Unauthenticated as exc:
            await self._refuse_hello(exc.hello())
        if (reason := self._not_serving()) is not None:
            await self._refuse_hello(
                HranaError(f"this POP is not serving yet: {reason}", "REPLICA_NOT_OPEN")
            )
        self._authenticated = True
        self._caller = dataclasses.replace(self._caller, read_only=access is Access.READ_ONLY)
        await self._send({"type": "hello_ok"})

    async def _refuse_hello(self, error: HranaError) -> NoReturn:
        await self._send({"type": "hello_error", "error": error.to_json()})
        raise Refused(error.message)

    async def _request(self, request_id: int, request: dict[str, Any]) -> None:
        kind = request.get("type")
        try:
            if kind == "open_stream":
                self._open_stream(_id(request, "stream_id"))
                await self._ok(request_id, {"type": "open_stream"})
            elif kind == "close_stream":
                ws_stream = self._streams.pop(_id(request, "stream_id"), None)
                if ws_stream is None:
                    raise Refused("close_stream names a stream that is not open")
                # Its cursors end with it: a later fetch is refused here, never queued
                # behind the close where no worker would answer it.
                self._cursors = {c: on for c, on in self._cursors.items() if on is not ws_stream}
                await self._queue(ws_stream, request_id, _CloseStream())
            elif kind == "store_sql":
                self._store_sql(_id(request, "sql_id"), request.get("sql"))
                await self._ok(request_id, {"type": "store_sql"})
            elif kind == "close_sql":
                self._sqls.pop(_id(request, "sql_id"), None)
                await self._ok(request_id, {"type": "close_sql"})
            elif kind == "open_cursor":
                ws_stream = self._stream_of(request, kind)
                cursor_id = _id(request, "cursor_id")
                if cursor_id in self._cursors:
                    raise Refused(f"cursor {cursor_id} is already open")
                self._cursors[cursor_id] = ws_stream
                batch = _parse_batch(request.get("batch"))
                self._refuse_writes(BatchReq(type="batch", batch=batch))
                await self._queue(ws_stream, request_id, _OpenCursor(cursor_id, batch))
            elif kind == "fetch_cursor":
                cursor_id = _id(request, "cursor_id")
                on = self._cursors.get(cursor_id)
                if on is None:  # sqld ends the connection too
                    raise Refused(f"fetch_cursor names cursor {cursor_id}, which is not open")
                await self._queue(
                    on, request_id, _FetchCursor(cursor_id, _id(request, "max_count"))
                )
            elif kind == "close_cursor":
                cursor_id = _id(request, "cursor_id")
                on = self._cursors.pop(cursor_id, None)
                if on is None:
                    await self._ok(request_id, {"type": "close_cursor"})
                else:
                    await self._queue(on, request_id, _CloseCursor(cursor_id))
            elif kind in _ON_STREAM:
                ws_stream = self._stream_of(request, kind)
                parsed = _parse(request)
                self._refuse_writes(parsed)
                await self._queue(ws_stream, request_id, parsed)
            else:
                raise Refused(f"unknown request type {kind!r}")
        except (HranaError, ProtocolError) as exc:
            await self._error(request_id, exc.to_json())

    def _refuse_writes(self, request: StreamRequest) -> None:
        # Answered as an error of the request, where sqld drops the whole connection
        # (no close frame: a failure, not a design); the caller's other streams go on.
        if self._caller.read_only:
            self._session.refuse_writes([request], self._sqls)

    def _open_stream(self, stream_id: int) -> None:
        if stream_id in self._streams:
            raise Refused(f"stream {stream_id} is already open")
        if len(self._streams) >= MAX_STREAMS:
            raise ProtocolError(f"a connection may hold at most {MAX_STREAMS} streams")
        ws_stream = _WsStream(self._session.open(sqls=self._sqls))
        ws_stream.worker = asyncio.create_task(self._run_stream(ws_stream))
        self._workers.add(ws_stream.worker)
        ws_stream.worker.add_done_callback(self._workers.discard)
        self._streams[stream_id] = ws_stream

    def _store_sql(self, sql_id: int, sql: Any) -> None:
        if not isinstance(sql, str):
            raise Refused("store_sql needs sql, a string")
        if sql_id not in self._sqls and len(self._sqls) >= MAX_STORED_SQL:
            raise ProtocolError(f"a connection may store at most {MAX_STORED_SQL} SQL texts")
        self._sqls[sql_id] = sql

    async def _run_stream(self, ws_stream: _WsStream) -> None:
        """The stream's worker: its requests, one at a time, until it is closed."""
        while True:
            request_id, work = await ws_stream.queue.get()
            try:
                # Its results stay counted in flight until its answer is sent.
                with held_for_the_answer(self._result_budget):
                    if not await self._answer(ws_stream, request_id, work):
                        return
            finally:
                self._in_flight -= 1
                self._room.release()

    async def _answer(self, ws_stream: _WsStream, request_id: int, work: _Work) -> bool:
        """Do one request and answer it; False once the stream is closed."""
        if isinstance(work, _CloseStream):
            ws_stream.drop_cursors()
            await self._session.close(ws_stream.stream)
            await self._ok(request_id, {"type": "close_stream"})
            return False
        if isinstance(work, _OpenCursor):
            request = BatchReq(type="batch", batch=work.batch)
            # Kept before it runs, so that closing the stream gives back what it holds.
            opened = _Cursor(collections.deque(), ResultAccount(self._result_budget))
            ws_stream.cursors[work.cursor_id] = opened
            with opened.account.counting():
                answer = await self._run(ws_stream, request)
            # The entries /v3/cursor sends, without its header line (the baton).
            opened.entries.extend(cursor.entries(None, answer)[1:])
            await self._ok(request_id, {"type": "open_cursor"})
        elif isinstance(work, _FetchCursor):
            await self._fetch(request_id, ws_stream, work)
        elif isinstance(work, _CloseCursor):
            closed = ws_stream.cursors.pop(work.cursor_id, None)
            if closed is not None:
                closed.account.close()
            await self._ok(request_id, {"type": "close_cursor"})
        else:
            result = await self._run(ws_stream, work)
            if result["type"] == "ok":
                await self._ok(request_id, result["response"])
            else:
                await self._error(request_id, result["error"])
        return True

    async def _run(self, ws_stream: _WsStream, request: StreamRequest) -> dict[str, Any]:
        try:
            result, _ = await self._session.run(ws_stream.stream, request, ENDPOINT, self._caller)
        except (HranaError, ProtocolError) as exc:  # the origin ended its stream there
            return {"type": "error", "error": exc.to_json()}
        return result

    async def _fetch(self, request_id: int, ws_stream: _WsStream, fetch: _FetchCursor) -> None:
        # Queued only while its cursor is open, behind the open and before any close.
        opened = ws_stream.cursors[fetch.cursor_id]
        entries = opened.entries
        count = min(max(fetch.max_count, 0), len(entries))
        chunk = [entries.popleft() for _ in range(count)]
        # As sqld: done once a fetch reaches the end before max_count entries.
        done = count < fetch.max_count
        await self._ok(request_id, {"type": "fetch_cursor", "entries": chunk, "done": done})
        if not entries:  # nothing left to hold
            opened.account.close()

    def _stream_of(self, request: dict[str, Any], kind: Any) -> _WsStream:
        ws_stream = self._streams.get(_id(request, "stream_id"))
        if ws_stream is None:  # sqld ends the connection too
            raise Refused(f"{kind} names a stream that is not open")
        return ws_stream

    async def _close_all(self) -> None:
        streams, self._streams = list(self._streams.values()), {}
        for ws_stream in streams:
            if ws_stream.worker is not None:
                ws_stream.worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ws_stream.worker
            ws_stream.drop_cursors()
            await self._session.close(ws_stream.stream)

    async def _ok(self, request_id: int, response: dict[str, Any]) -> None:
        await self._send({"type": "response_ok", "request_id": request_id, "response": response})

    async def _error(self, request_id: int, error: dict[str, Any]) -> None:
        await self._send({"type": "response_error", "request_id": request_id, "error": error})

    def _quiet_for(self) -> float:
        return time.monotonic() - self._last_active

    async def _queue(self, ws_stream: _WsStream, request_id: int, work: _Work) -> None:
        # Called from the reading loop: waiting for room here is what stops the reading.
        await self._room.acquire()
        self._in_flight += 1  # until its answer is sent (see _run_stream)
        ws_stream.queue.put_nowait((request_id, work))

    async def _send(self, message: dict[str, Any]) -> None:
        self._last_active = time.monotonic()
        async with self._sending:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await self._socket.send_text(orjson.dumps(message).decode())


def _id(request: dict[str, Any], name: str) -> int:
    value = request.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise Refused(f"{request.get('type')} needs {name}, an integer")
    return value


def _parse_batch(batch: Any) -> Batch:
    try:
        return Batch.model_validate(batch)
    except ValidationError as exc:
        raise Refused(describe_validation_error(exc)) from None


def _parse(request: dict[str, Any]) -> StreamRequest:
    try:
        return _STREAM_REQUEST.validate_python(request)
    except ValidationError as exc:
        raise Refused(describe_validation_error(exc)) from None
