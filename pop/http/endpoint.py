"""One data endpoint of the POP as a bare ASGI app: auth, body limit, protocol errors,
the latency metric, and local work interrupted when the client goes away.

The hot path of the POP, so it skips Starlette's ``Request``/``Response`` objects; what
goes over the wire (status, headers, bodies) is what they would send.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from pop.hrana.errors import ProtocolError
from pop.hrana.result_size import held_for_the_answer
from pop.http.auth import Access, Authenticator, Unauthenticated
from pop.local.runner import Cancellation, current_cancellation
from pop.service import PopService
from pop.session import ANYONE, Caller

# What a data endpoint answers: body, status and content type.
Reply = tuple[bytes, int, bytes]


@dataclass(frozen=True, slots=True)
class Call:
    """One call to a data endpoint: its body, the endpoint and path it came to, the POP
    of the region that passed it on (``None``: it came from a client), the caller's
    ``Authorization`` header (a peer is given the same one), and the caller."""

    body: bytes
    endpoint: str
    path: str
    forwarded_by: str | None = None
    authorization: str = ""
    caller: Caller = ANYONE


# A data endpoint: answers a call, saying where (local, origin, peer, none) the answer
# came from.
DataHandler = Callable[[Call], Awaitable[tuple[Reply, str]]]
# Passed on by another POP of the region (pop.http.peers), with that POP's name.
FORWARDED_HEADER = b"x-edge-pop-forwarded-by"

_PIECE_BYTES = 256 * 1024

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"


class DataEndpoint:
    """One data endpoint as a bare ASGI app (see the module's docstring)."""

    def __init__(
        self,
        service: PopService,
        path: str,
        endpoint: str,
        handler: DataHandler,
        authenticator: Authenticator,
    ) -> None:
        self._service = service
        self._path = path
        self._endpoint = endpoint
        self._handler = handler
        self._authenticator = authenticator
        self._limit = service.settings.max_body_bytes
        self._latency = {
            route: service.metrics.http_request_duration.labels(endpoint, route)
            for route in ("local", "origin", "peer", "none")
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The answer's results stay counted in flight until its last byte is handed over.
        with held_for_the_answer(self._service.result_budget):
            await self._answer(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        route = "none"
        try:
            authorization = _header(scope, b"authorization")
            try:
                access = self._authenticator.from_header(authorization)
            except Unauthenticated as exc:
                raise exc.http() from None
            if not self._service.replica.serving:
                raise ProtocolError(
                    f"this POP is not serving yet: {self._service.replica.readiness()}",
                    code="REPLICA_NOT_OPEN",
                    status=503,
                )
            body = await _read_body(scope, receive, self._limit)
            forwarded_by = _header(scope, FORWARDED_HEADER)
            caller = Caller(
                read_only=access is Access.READ_ONLY,
                # A peer's connection carries many clients' calls: their batons tell.
                connection=None if forwarded_by is not None else connection_of(scope),
            )
            call = Call(body, self._endpoint, self._path, forwarded_by, authorization or "", caller)
            reply, route = await _cancelled_on_disconnect(self._handler(call), receive)
        except ClientDisconnect:
            return  # nobody to answer; the request's local work was interrupted
        except ProtocolError as exc:
            self._service.metrics.count_request(
                self._endpoint, "http", "none", f"http_{exc.status}"
            )
            reply = (orjson.dumps(exc.to_json()), exc.status, JSON)
        self._latency[route].observe(time.perf_counter() - started)
        body, status, content_type = reply
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"content-type", content_type),
                ],
            }
        )
        # In pieces: uvicorn waits before each until the client has taken the last, so an
        # answer a client reads slowly waits here, counted, not in the socket's buffer.
        if len(body) <= _PIECE_BYTES:
            await send({"type": "http.response.body", "body": body})
            return
        view = memoryview(body)
        for start in range(0, len(body), _PIECE_BYTES):
            end = start + _PIECE_BYTES
            await send(
                {
                    "type": "http.response.body",
                    "body": view[start:end],
                    "more_body": end < len(body),
                }
            )


async def _cancelled_on_disconnect(
    work: Awaitable[tuple[Reply, str]], receive: Receive
) -> tuple[Reply, str]:
    """Await ``work``; if the client disconnects meanwhile, interrupt its local statements.

    Only local work is interrupted: a call already sent to the origin runs to its end, so
    that the stream's view of the origin stays true. Call only once the body is read:
    from then on ``receive`` only reports a disconnect.
    """

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    cancellation = Cancellation(disconnected)
    token = current_cancellation.set(cancellation)
    try:
        return await work
    finally:
        cancellation.close()
        current_cancellation.reset(token)


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused (413) as soon as it is known to be over ``limit``."""
    declared = _header(scope, b"content-length")
    checked = True  # without a usable Content-Length, the size is checked as it comes
    if declared is not None and declared.isdigit():
        if int(declared) > limit:
            raise _too_large(limit)
        checked = False
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            size += len(chunk)
            if checked and size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()


def connection_of(scope: Scope) -> str | None:
    """The client's connection (its address and port), if the server says."""
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else None


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header (names are lower case in ASGI), as Starlette reads it."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _too_large(limit: int) -> ProtocolError:
    return ProtocolError(
        f"request body is larger than the limit of {limit} bytes (MAX_BODY_BYTES)",
        code="BODY_TOO_LARGE",
        status=413,
    )
