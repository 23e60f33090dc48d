"""The POP's HTTP face: Starlette for the probes, version and metrics, and the data
endpoints (Hrana pipelines, ``/v3/cursor``, the original ``POST /`` and ``/sync``) as
bare ASGI apps that only decode a body, hand it to the session loop, and encode the answer.

Endpoints and bodies are those of Turso/libSQL (Hrana over HTTP) plus the original
program's ``/``, ``/health``, ``/version`` and ``/sync``; ``/ready`` and ``/metrics`` are
for Kubernetes and Prometheus.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from pop import __version__
from pop.contract import HEALTH_PATH, METRICS_PATH, READY_PATH
from pop.hrana.messages import BatchReq, LegacyBody, parse_body
from pop.http import cursor, legacy
from pop.http.auth import Authenticator
from pop.http.encodings import JSON_ENCODING, PROTOBUF_ENCODING, Encoding
from pop.http.endpoint import JSON, Call, DataEndpoint, DataHandler, Reply
from pop.http.peers import Peers
from pop.http.websocket import HranaConnection, choose_subprotocol
from pop.service import PopService


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _PopApp:
    """Starlette, with POSTs to the data endpoints handed straight to their ASGI apps.

    The same apps are mounted in Starlette too, which answers everything else (other
    methods on those paths with 405, trailing slashes, lifespan) as before.
    """

    def __init__(self, starlette: Starlette, data: dict[str, DataEndpoint]) -> None:
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
    authenticator = Authenticator(
        settings.proxy_auth_token.get_secret_value(), settings.jwt_verifier()
    )
    session = service.session
    peers = Peers(
        settings.peer_name, settings.peer_url_template, settings.peer_timeout, service.metrics
    )

    def pipeline_endpoint(encoding: Encoding) -> DataHandler:
        async def handle(call: Call) -> tuple[Reply, str]:
            body = encoding.pipeline_body(call.body)
            if (holder := peers.holder(body.baton, call)) is not None:
                return await peers.forward(holder, call), "peer"
            answer = await session.pipeline(body, call.endpoint, call.caller)
            return encoding.pipeline_reply(answer.body), answer.route.value

        return handle

    def cursor_endpoint(encoding: Encoding) -> DataHandler:
        async def handle(call: Call) -> tuple[Reply, str]:
            body = encoding.cursor_body(call.body)
            if (holder := peers.holder(body.baton, call)) is not None:
                return await peers.forward(holder, call), "peer"
            request = BatchReq(type="batch", batch=body.batch)
            baton, answer, route = await session.one(
                body.baton, request, call.endpoint, caller=call.caller
            )
            return encoding.cursor_reply(cursor.entries(baton, answer)), route.value

        return handle

    async def legacy_endpoint(call: Call) -> tuple[Reply, str]:
        """The original ``POST /`` API, as sqld answers it (see ``pop.http.legacy``)."""
        body = parse_body(LegacyBody, call.body, unfit_status=legacy.UNFIT_BODY)
        plan = legacy.plan(body, service.inspector.inspect)
        request = BatchReq(type="batch", batch=plan.batch)
        _, answer, route = await session.one(
            None, request, call.endpoint, keep=False, caller=call.caller
        )
        return (legacy.answer(plan, answer, settings.max_result_bytes), 200, JSON), route.value

    async def sync(_: Call) -> tuple[Reply, str]:
        outcome = await service.replica.sync("api")
        body = {
            "ok": outcome.ok,
            "changed": outcome.changed,
            "position": outcome.position,
            "duration_ms": round(outcome.duration_seconds * 1000, 3),
            "error": outcome.error,
        }
        return (orjson.dumps(body), 200 if outcome.ok else 502, JSON), "none"

    data = {
        path: DataEndpoint(service, path, endpoint, handler, authenticator)
        for path, endpoint, handler in (
            ("/v2/pipeline", "v2_pipeline", pipeline_endpoint(JSON_ENCODING)),
            ("/v3/pipeline", "v3_pipeline", pipeline_endpoint(JSON_ENCODING)),
            ("/v3/cursor", "v3_cursor", cursor_endpoint(JSON_ENCODING)),
            ("/v3-protobuf/pipeline", "v3_protobuf_pipeline", pipeline_endpoint(PROTOBUF_ENCODING)),
            ("/v3-protobuf/cursor", "v3_protobuf_cursor", cursor_endpoint(PROTOBUF_ENCODING)),
            ("/", "legacy", legacy_endpoint),
            ("/sync", "sync", sync),
        )
    }

    async def health(_: Request) -> Response:
        problem = service.replica.liveness()
        if problem is None:
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "wedged", "reason": problem}, status_code=503)

    async def ready(_: Request) -> Response:
        # Cached values only: this is polled while pulls run (see ReplicaEngine.position).
        problem = service.replica.readiness()
        body = {
            "ready": problem is None,
            "position": service.replica.engine.position(),
            "engine": service.replica.engine.stats(),
        }
        if problem is None:
            return JSONResponse(body)
        return JSONResponse({**body, "reason": problem}, status_code=503)

    async def version(_: Request) -> Response:
        return JSONResponse(
            {
                "version": __version__,
                "protocol": ["hrana2", "hrana3"],
                "endpoints": [path for path in data if path != "/sync"],
                "region": settings.region,
                "engine": service.replica.engine.name,
            }
        )

    async def metrics(_: Request) -> Response:
        service.refresh_gauges()
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def hrana_version(_: Request) -> Response:
        return PlainTextResponse("Hello, this is edge-pop speaking Hrana over HTTP")

    def not_serving() -> str | None:
        replica = service.replica
        return None if replica.serving else replica.readiness()

    async def hrana_websocket(websocket: WebSocket) -> None:
        subprotocol = choose_subprotocol(websocket.scope.get("subprotocols", []))
        if subprotocol is None:
            await websocket.close()  # before accepting: the upgrade is refused (HTTP 403)
            return
        await websocket.accept(subprotocol=subprotocol)
        connection = HranaConnection(
            websocket,
            session,
            authenticator,
            not_serving,
            settings.ws_idle_timeout,
            service.result_budget,
        )
        await connection.serve()

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()
            await peers.aclose()

    starlette = Starlette(
        routes=[
            *(Route(path, app, methods=["POST"]) for path, app in data.items()),
            Route("/v2", hrana_version, methods=["GET"]),
            Route("/v3", hrana_version, methods=["GET"]),
            Route("/v3-protobuf", hrana_version, methods=["GET"]),
            Route(HEALTH_PATH, health, methods=["GET"]),
            Route(READY_PATH, ready, methods=["GET"]),
            Route("/version", version, methods=["GET"]),
            Route(METRICS_PATH, metrics, methods=["GET"]),
            WebSocketRoute("/", hrana_websocket),
        ],
        lifespan=lifespan,
    )
    return _PopApp(starlette, data)
