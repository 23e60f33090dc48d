"""/healthz (liveness) and /metrics of the operator process, served whether leader or not."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pop_operator.metrics import REGISTRY


async def _metrics(_: web.Request) -> web.Response:
    response = web.Response(body=generate_latest(REGISTRY))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def start_http_server(host: str, port: int, role: Callable[[], str]) -> web.AppRunner:
    """Serve until the runner is cleaned up; ``role`` tells leader or standby."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "role": role()})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", _metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
