"""``edge-pop gateway``'s HTTP face: Hrana pipelines through its session loop, and
everything else (the sync protocol replicas pull with) passed to the origin untouched."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from pop.gateway import StreamGateway
from pop.hrana.errors import ProtocolError
from pop.hrana.messages import PipelineBody, parse_body

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def create_gateway_app(gateway: StreamGateway) -> Starlette:
    passthrough = httpx.AsyncClient(base_url=gateway.origin_url, timeout=60.0)

    async def pipeline(request: Request) -> Response:
        try:
            body = parse_body(PipelineBody, await request.body())
            endpoint = request.url.path.strip("/").replace("/", "_")  # v2_pipeline, as the POP
            answer = (await gateway.session.pipeline(body, endpoint)).body
        except ProtocolError as exc:
            return Response(
                orjson.dumps(exc.to_json()), status_code=exc.status, media_type="application/json"
            )
        return Response(orjson.dumps(answer), media_type="application/json")

    async def hello(_: Request) -> Response:
        return PlainTextResponse("edge-pop gateway: Hrana with streams")

    async def proxy(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = await passthrough.request(
            request.method,
            request.url.path,
            params=request.query_params,
            content=await request.body(),
            headers=headers,
        )
        kept = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() not in _HOP_BY_HOP | {"content-encoding"}
        }
        return Response(upstream.content, status_code=upstream.status_code, headers=kept)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()
            await passthrough.aclose()

    return Starlette(
        routes=[
            Route("/v2/pipeline", pipeline, methods=["POST"]),
            Route("/v3/pipeline", pipeline, methods=["POST"]),
            Route("/v2", hello, methods=["GET"]),
            Route("/v3", hello, methods=["GET"]),
            Route("/{path:path}", proxy, methods=["GET", "POST", "PUT", "DELETE", "HEAD"]),
        ],
        lifespan=lifespan,
    )


def run_gateway(origin_url: str, host: str, port: int) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_gateway_app(StreamGateway(origin_url)),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
    )
    return 0
