"""HTTP wiring: Starlette routes over ``PopService``.

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
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from pop import __version__
from pop.hrana.errors import ProtocolError
from pop.hrana.messages import CursorBody, LegacyBody, PipelineBody, parse_body
from pop.service import PopService

Handler = Callable[[Request], Awaitable[Response]]
# A data endpoint: answers a request for the endpoint it is mounted as, saying where
# (local, origin, none) the answer came from.
DataHandler = Callable[[Request, str], Awaitable[tuple[Response, str]]]


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def create_app(service: PopService) -> Starlette:
    settings = service.settings
    expected = b"Bearer " + settings.proxy_auth_token.get_secret_value().encode()

    def protected(endpoint: str, handler: DataHandler) -> Handler:
        """Auth, protocol errors and metrics for one data endpoint."""
        latency = {
            route: service.metrics.http_request_duration.labels(endpoint, route)
            for route in ("local", "origin", "none")
        }

        async def wrapped(request: Request) -> Response:
            started = time.perf_counter()
            route = "none"
            try:
                presented = request.headers.get("authorization", "").encode()
                if not hmac.compare_digest(presented, expected):
                    raise ProtocolError(
                        "missing or wrong bearer token in the Authorization header",
                        code="UNAUTHORIZED",
                        status=401,
                    )
                response, route = await handler(request, endpoint)
            except ProtocolError as exc:
                service.metrics.count_request(endpoint, "http", "none", f"http_{exc.status}")
                response = JSONResponse(exc.to_json(), status_code=exc.status)
            latency[route].observe(time.perf_counter() - started)
            return response

        return wrapped

    async def read_body(request: Request) -> bytes:
        limit = settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                raise _too_large(limit)
            return await request.body()
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def pipeline(request: Request, endpoint: str) -> tuple[Response, str]:
        body = parse_body(PipelineBody, await read_body(request))
        answer = await service.pipeline(body, endpoint)
        return JSONResponse(answer.body), answer.route.value

    async def cursor(request: Request, _: str) -> tuple[Response, str]:
        answer = await service.cursor(parse_body(CursorBody, await read_body(request)))
        lines = b"".join(orjson.dumps(entry) + b"\n" for entry in answer.body)
        return Response(lines, media_type="text/plain"), answer.route.value

    async def legacy(request: Request, _: str) -> tuple[Response, str]:
        answer = await service.legacy(parse_body(LegacyBody, await read_body(request)))
        return JSONResponse(answer.body), answer.route.value

    async def sync(_: Request, __: str) -> tuple[Response, str]:
        outcome = await service.sync("api")
        response = JSONResponse(
            {
                "ok": outcome.ok,
                "changed": outcome.changed,
                "position": outcome.position,
                "duration_ms": round(outcome.duration_seconds * 1000, 3),
                "error": outcome.error,
            },
            status_code=200 if outcome.ok else 502,
        )
        return response, "none"

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(_: Request) -> Response:
        if service.ready:
            return JSONResponse(
                {
                    "ready": True,
                    "position": service.engine.position(),
                    "engine": service.engine.stats(),
                }
            )
        return JSONResponse({"ready": False}, status_code=503)

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

    return Starlette(
        routes=[
            Route("/v2/pipeline", protected("v2_pipeline", pipeline), methods=["POST"]),
            Route("/v3/pipeline", protected("v3_pipeline", pipeline), methods=["POST"]),
            Route("/v3/cursor", protected("v3_cursor", cursor), methods=["POST"]),
            Route("/", protected("legacy", legacy), methods=["POST"]),
            Route("/sync", protected("sync", sync), methods=["POST"]),
            Route("/v2", hrana_version, methods=["GET"]),
            Route("/v3", hrana_version, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def _too_large(limit: int) -> ProtocolError:
    return ProtocolError(
        f"request body is larger than the limit of {limit} bytes (MAX_BODY_BYTES)",
        code="BODY_TOO_LARGE",
        status=413,
    )
