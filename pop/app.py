"""HTTP wiring: ``PopService`` behind Starlette, its data endpoints as bare ASGI apps.

Endpoints and bodies are those of Turso/libSQL (Hrana over HTTP) plus the original
program's ``/``, ``/health``, ``/version`` and ``/sync``; ``/ready`` and ``/metrics`` are
for Kubernetes and Prometheus.
"""

from __future__ import annotations

import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pop import __version__
from pop.hrana.errors import ProtocolError
from pop.hrana.messages import CursorBody, LegacyBody, PipelineBody, parse_body
from pop.local.runner import Cancellation, current_cancellation
from pop.service import PopService

# What a data endpoint answers: body, status and content type.
Reply = tuple[bytes, int, bytes]
# A data endpoint: answers a request body for the endpoint it is mounted as, saying where
# (local, origin, none) the answer came from.
DataHandler = Callable[[bytes, str], Awaitable[tuple[Reply, str]]]

_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _DataEndpoint:
    """One data endpoint as a bare ASGI app: auth, body limit, protocol errors, metrics.

    The hot path of the POP, so it skips Starlette's ``Request``/``Response`` objects; what
    goes over the wire (status, headers, bodies) is what they would send.
    """

    def __init__(
        self, service: PopService, endpoint: str, handler: DataHandler, expected: bytes
    ) -> None:
        self._service = service
        self._endpoint = endpoint
        self._handler = handler
        self._expected = expected
        self._limit = service.settings.max_body_bytes
        self._latency = {
            route: service.metrics.http_request_duration.labels(endpoint, route)
            for route in ("local", "origin", "none")
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        route = "none"
        try:
            presented = (_header(scope, b"authorization") or "").encode()
            if not hmac.compare_digest(presented, self._expected):
                raise ProtocolError(
                    "missing or wrong bearer token in the Authorization header",
                    code="UNAUTHORIZED",
                    status=401,
                )
            if not self._service.ready:
                raise ProtocolError(
                    f"this POP is not serving yet: {self._service.readiness()}",
                    code="REPLICA_NOT_OPEN",
                    status=503,
                )
            body = await _read_body(scope, receive, self._limit)
            reply, route = await _cancelled_on_disconnect(
                self._handler(body, self._endpoint), receive
            )
        except ClientDisconnect:
            return  # nobody to answer; the request's local work was interrupted
        except ProtocolError as exc:
            self._service.metrics.count_request(
                self._endpoint, "http", "none", f"http_{exc.status}"
            )
            reply = (orjson.dumps(exc.to_json()), exc.status, _JSON)
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
        await send({"type": "http.response.body", "body": body})


class _PopApp:
    """Starlette, with POSTs to the data endpoints handed straight to their ASGI apps.

    The same apps are mounted in Starlette too, which answers everything else (other
    methods on those paths with 405, trailing slashes, lifespan) as before.
    """

    def __init__(self, starlette: Starlette, data: dict[str, _DataEndpoint]) -> None:
        self.starlette = starlette
        self._data = data

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self._data.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.starlette(scope, receive, send)


def create_app(service: PopService) -> ASGIApp:
    settings = service.settings
    expected = b"Bearer " + settings.proxy_auth_token.get_secret_value().encode()

    async def pipeline(raw: bytes, endpoint: str) -> tuple[Reply, str]:
        body = parse_body(PipelineBody, raw)
        answer = await service.pipeline(body, endpoint)
        return (orjson.dumps(answer.body), 200, _JSON), answer.route.value

    async def cursor(raw: bytes, _: str) -> tuple[Reply, str]:
        answer = await service.cursor(parse_body(CursorBody, raw))
        lines = b"".join(orjson.dumps(entry) + b"\n" for entry in answer.body)
        return (lines, 200, _TEXT), answer.route.value

    async def legacy(raw: bytes, _: str) -> tuple[Reply, str]:
        answer = await service.legacy(parse_body(LegacyBody, raw))
        return (orjson.dumps(answer.body), 200, _JSON), answer.route.value

    async def sync(_: bytes, __: str) -> tuple[Reply, str]:
        outcome = await service.sync("api")
        body = {
            "ok": outcome.ok,
            "changed": outcome.changed,
            "position": outcome.position,
            "duration_ms": round(outcome.duration_seconds * 1000, 3),
            "error": outcome.error,
        }
        return (orjson.dumps(body), 200 if outcome.ok else 502, _JSON), "none"

    data = {
        path: _DataEndpoint(service, endpoint, handler, expected)
        for path, endpoint, handler in (
            ("/v2/pipeline", "v2_pipeline", pipeline),
            ("/v3/pipeline", "v3_pipeline", pipeline),
            ("/v3/cursor", "v3_cursor", cursor),
            ("/", "legacy", legacy),
            ("/sync", "sync", sync),
        )
    }

    async def health(_: Request) -> Response:
        problem = service.liveness()
        if problem is None:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "wedged", "reason": problem}, status_code=503)

    async def ready(_: Request) -> Response:
        # Cached values only: this is polled while pulls run (see ReplicaEngine.position).
        problem = service.readiness()
        body = {
            "ready": problem is None,
            "position": service.engine.position(),
            "engine": service.engine.stats(),
        }
        if problem is None:
            return JSONResponse(body)
        return JSONResponse({**body, "reason": problem}, status_code=503)

    async def version(_: Request) -> Response:
        return JSONResponse(
            {
                "version": __version__,
                "protocol": ["hrana2", "hrana3"],
                "endpoints": ["/v2/pipeline", "/v3/pipeline", "/v3/cursor", "/"],
                "region": settings.region,
                "engine": service.engine.name,
            }
        )

    async def metrics(_: Request) -> Response:
        service.refresh_gauges()
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def hrana_version(_: Request) -> Response:
        return PlainTextResponse("Hello, this is edge-pop speaking Hrana over HTTP")

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    starlette = Starlette(
        routes=[
            *(Route(path, app, methods=["POST"]) for path, app in data.items()),
            Route("/v2", hrana_version, methods=["GET"]),
            Route("/v3", hrana_version, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    return _PopApp(starlette, data)


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
