"""``python -m pop.devtools.faultlink``: an HTTP link to an origin that faults on demand.

A fault injector for tests, standing between POPs and their origin: every request is
passed on to ``--upstream`` as it came, unless the link is told otherwise at
``PUT /_faultlink/mode`` (body: the mode's name):

- ``pass``: everything goes through (the start);
- ``hrana-only``: Hrana calls (``/v2``, ``/v3``, ``/v3-protobuf`` and their pipelines and
  cursors) go through, anything else (replication: sqld's gRPC-web, Turso's sync paths)
  gets 503, so a write reaches the origin while the sync after it fails.

Stopping the process is the origin going away (connections refused); starting it again
on the same port is the origin coming back.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

MODES = ("pass", "hrana-only")
CONTROL_PATH = "/_faultlink/mode"
_HRANA_PREFIXES = ("/v2", "/v3")
# Hop-by-hop headers, which belong to one connection and are not passed on.
_HOP_BY_HOP = frozenset(
    ["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"]
)


def create_app(upstream: str) -> Starlette:
    mode = {"now": "pass"}
    client = httpx.AsyncClient(base_url=upstream, timeout=120)

    async def control(request: Request) -> Response:
        wanted = (await request.body()).decode().strip()
        if wanted not in MODES:
            return PlainTextResponse(f"mode must be one of {', '.join(MODES)}", 400)
        mode["now"] = wanted
        return PlainTextResponse(wanted)

    async def relay(request: Request) -> Response:
        path = request.url.path
        if mode["now"] == "hrana-only" and not path.startswith(_HRANA_PREFIXES):
            return PlainTextResponse("faultlink: replication is cut (mode hrana-only)", 503)
        # Stripped: libsql sends "Bearer " with no token, a value httpx will not send.
        headers = {k: v.strip() for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers.pop("host", None)
        answer = await client.request(
            request.method,
            path,
            params=request.url.query or None,
            content=await request.body(),
            headers=headers,
        )
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP_BY_HOP}
        kept.pop("content-encoding", None)  # httpx decoded the body
        return Response(answer.content, answer.status_code, headers=kept)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"]
    return Starlette(
        routes=[
            Route(CONTROL_PATH, control, methods=["PUT"]),
            Route("/{path:path}", relay, methods=methods),
        ],
        lifespan=lifespan,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pop.devtools.faultlink", description=__doc__)
    parser.add_argument("--upstream", required=True, help="the origin's base URL")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    uvicorn.run(create_app(args.upstream), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
