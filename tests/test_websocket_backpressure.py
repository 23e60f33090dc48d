"""A WebSocket connection's unanswered requests are bounded: at the bound the POP stops
reading the socket until one is answered.

In process: ``HranaConnection`` on a scripted socket (a stand-in for Starlette's
``WebSocket``: the messages a client sent, and what the POP sent back) and a session whose
backend holds every execute until the test lets it go, so the requests pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from pop.hrana.messages import StreamRequest
from pop.hrana.result_size import DEFAULT_MAX_TOTAL_RESULT_BYTES, ResultBudget
from pop.http.auth import Authenticator
from pop.http.websocket import MAX_WAITING_REQUESTS, HranaConnection
from pop.limits import Limits
from pop.metrics import PopMetrics
from pop.session import Handled, Route, Session
from pop.streams import Stream

TOKEN = "t0ken"


class GatedBackend:
    """Answers each execute with its SQL once ``gate`` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()

    def holding(self, stream: Stream) -> contextlib.AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def handle(
        self, stream: Stream, request: StreamRequest, *, closing: bool = False
    ) -> Handled:
        await self.gate.wait()
        return Handled({"type": request.type, "echo": request.stmt.sql}, Route.LOCAL)  # type: ignore[union-attr]

    async def release(self, stream: Stream) -> None:
        return None


class ScriptedSocket:
    """Hands out the client's messages; records how many were read and what was sent."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self._messages = [orjson.dumps(m).decode() for m in messages]
        self.read = 0
        self.sent: list[dict[str, Any]] = []
        self.all_answered = asyncio.Event()
        self._expected = len(messages)
        self.scope = {"type": "websocket", "client": ("127.0.0.1", 50000)}

    async def receive_text(self) -> str:
        if self.read == len(self._messages):
            await self.all_answered.wait()
            raise WebSocketDisconnect(1000)
        self.read += 1
        return self._messages[self.read - 1]

    async def send_text(self, text: str) -> None:
        self.sent.append(orjson.loads(text))
        if len(self.sent) == self._expected:
            self.all_answered.set()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        raise AssertionError(f"the connection was closed: {code} {reason}")


def _request(request_id: int, request: dict[str, Any]) -> dict[str, Any]:
    return {"type": "request", "request_id": request_id, "request": request}


async def _pile_up(extra: int) -> tuple[ScriptedSocket, int]:
    backend = GatedBackend()
    session = Session(
        backend, Limits.from_settings(None), PopMetrics(), idle_timeout=60.0, server="test"
    )
    executes = [
        _request(i, {"type": "execute", "stream_id": 1, "stmt": {"sql": f"SELECT {i}"}})
        for i in range(2, 2 + MAX_WAITING_REQUESTS + extra)
    ]
    hello = {"type": "hello", "jwt": TOKEN}
    socket = ScriptedSocket(
        [hello, _request(1, {"type": "open_stream", "stream_id": 1}), *executes]
    )
    connection = HranaConnection(
        cast(WebSocket, socket),
        session,
        Authenticator(TOKEN),
        lambda: None,
        idle_timeout=60.0,
        result_budget=ResultBudget(DEFAULT_MAX_TOTAL_RESULT_BYTES),
    )
    serving = asyncio.create_task(connection.serve())
    await asyncio.sleep(0.5)  # the reading loop runs as far as it can
    read_while_held = socket.read
    backend.gate.set()
    await asyncio.wait_for(serving, 10)
    return socket, read_while_held


def test_reading_stops_at_the_bound_and_every_request_is_answered_in_order() -> None:
    socket, read_while_held = asyncio.run(_pile_up(extra=40))
    # hello, open_stream, then as many executes as there is room for, plus the one the
    # loop holds while it waits for room.
    assert read_while_held == 2 + MAX_WAITING_REQUESTS + 1
    answers = [m for m in socket.sent if m["type"] == "response_ok"]
    echoes = [a["response"]["echo"] for a in answers[1:]]
    assert echoes == [f"SELECT {i}" for i in range(2, 2 + MAX_WAITING_REQUESTS + 40)]
