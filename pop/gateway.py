"""``edge-pop gateway``: Hrana streams in front of an origin that has none (``tursodb``).

``tursodb --sync-server`` runs every Hrana pipeline on one shared connection and echoes
batons instead of keeping streams, so a transaction cannot safely span HTTP calls there:
another client's statements would land inside it. The gateway gives each client a real
stream and serializes access to that one connection: while a stream holds a transaction
open, every other stream waits (as SQLite writers wait for the write lock) until it
commits, rolls back, or expires (rolled back). Everything that is not Hrana (the Turso
Sync protocol that replicas pull with) passes through untouched, so the gateway's URL can
stand in for the origin's everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from pop.hrana.errors import HranaError, ProtocolError, error_result
from pop.hrana.messages import (
    BatchReq,
    CloseReq,
    CloseSqlReq,
    ExecuteReq,
    GetAutocommitReq,
    PipelineBody,
    SequenceReq,
    StoreSqlReq,
    StreamRequest,
    parse_body,
)
from pop.origin.client import OriginClient
from pop.origin.forward import Forwarder
from pop.sql.inspector import SchemaObject, SqlInspector, StatementInfo
from pop.sql.script import split_script
from pop.streams import Stream, StreamRegistry

log = logging.getLogger(__name__)

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class StreamGateway:
    def __init__(self, origin_url: str, idle_timeout: float = 10.0) -> None:
        self.origin_url = origin_url
        self.client = OriginClient(origin_url, None, timeout=30.0)
        self.inspector = SqlInspector()
        self.forwarder = Forwarder(self.client, self.inspector, holds_transactions=True)
        self.streams = StreamRegistry(idle_timeout, on_expire=self._expire)
        self._connection = asyncio.Lock()  # the origin's one connection
        self._owner: Stream | None = None
        # Set when a statement that may change the schema ran; reloading after every
        # pipeline would cost a round trip to the origin even for reads.
        self._schema_stale = False

    async def start(self) -> None:
        await self._reload_schema()
        self.streams.start()

    async def stop(self) -> None:
        await self.streams.stop()
        await self.client.aclose()

    async def pipeline(self, body: PipelineBody) -> dict[str, Any]:
        stream = self.streams.take(body.baton) if body.baton else self.streams.open()
        if self._owner is not stream:
            await self._connection.acquire()
            self._owner = stream
        closed = False
        results: list[dict[str, Any]] = []
        try:
            for request in body.requests:
                if closed:
                    results.append(
                        error_result(HranaError("the stream is closed", "STREAM_CLOSED"))
                    )
                elif isinstance(request, CloseReq):
                    await self._end_transaction(stream)
                    closed = True
                    results.append({"type": "ok", "response": {"type": "close"}})
                else:
                    results.append(await self._one(stream, request))
            if self._schema_stale:
                await self._reload_schema()
        finally:
            if closed or not stream.origin_in_transaction:
                self._release(stream)
        return {
            "baton": None if closed else self.streams.park(stream),
            "base_url": None,
            "results": results,
        }

    async def _one(self, stream: Stream, request: StreamRequest) -> dict[str, Any]:
        try:
            return {"type": "ok", "response": await self._run(stream, request)}
        except (HranaError, ProtocolError) as exc:
            return error_result(exc)

    async def _run(self, stream: Stream, request: StreamRequest) -> dict[str, Any]:
        if isinstance(request, ExecuteReq):
            sql = stream.resolve_sql(request.stmt.sql, request.stmt.sql_id)
            result = await self.forwarder.execute(stream, request.stmt)
            self._track([self.inspector.inspect(sql)], [True])
            return {"type": "execute", "result": result}
        if isinstance(request, BatchReq):
            sqls = [stream.resolve_sql(s.stmt.sql, s.stmt.sql_id) for s in request.batch.steps]
            outcome = await self.forwarder.batch(stream, request.batch)
            ran = [result is not None for result in outcome["step_results"]]
            self._track([self.inspector.inspect(sql) for sql in sqls], ran)
            return {"type": "batch", "result": outcome}
        if isinstance(request, SequenceReq):
            script = stream.resolve_sql(request.sql, request.sql_id)
            statements = split_script(script)
            await self.forwarder.sequence(stream, script, statements)
            self._track([self.inspector.inspect(s) for s in statements], [True] * len(statements))
            return {"type": "sequence"}
        if isinstance(request, StoreSqlReq):
            stream.store_sql(request.sql_id, request.sql)
            return {"type": "store_sql"}
        if isinstance(request, CloseSqlReq):
            stream.sqls.pop(request.sql_id, None)
            return {"type": "close_sql"}
        if isinstance(request, GetAutocommitReq):
            return {"type": "get_autocommit", "is_autocommit": not stream.origin_in_transaction}
        raise HranaError(f"the gateway does not serve {request.type!r} requests", "NOT_SUPPORTED")

    def _track(self, infos: list[StatementInfo], ran: list[bool]) -> None:
        """Note a schema change (whether a transaction is open the forwarder has asked)."""
        if any(succeeded and not info.is_read for info, succeeded in zip(infos, ran, strict=True)):
            self._schema_stale = True

    async def _end_transaction(self, stream: Stream) -> None:
        if stream.origin_in_transaction:
            stream.origin_in_transaction = False
            await self.client.pipeline(None, [{"type": "execute", "stmt": {"sql": "ROLLBACK"}}])

    def _release(self, stream: Stream) -> None:
        if self._owner is stream:
            self._owner = None
            self._connection.release()

    async def _expire(self, stream: Stream) -> None:
        if self._owner is stream:
            log.warning(
                "stream expired inside a transaction: rolled back", extra={"stream": stream.id}
            )
            try:
                await self._end_transaction(stream)
            finally:
                self._release(stream)

    async def _reload_schema(self) -> None:
        _, results = await self.client.pipeline(
            None,
            [
                {
                    "type": "execute",
                    "stmt": {
                        "sql": "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL"
                    },
                }
            ],
        )
        self._schema_stale = False
        rows = results[0].get("response", {}).get("result", {}).get("rows", [])
        self.inspector.load_schema(
            SchemaObject(*(cell.get("value") for cell in row)) for row in rows
        )


def create_gateway_app(gateway: StreamGateway) -> Starlette:
    passthrough = httpx.AsyncClient(base_url=gateway.origin_url, timeout=60.0)

    async def pipeline(request: Request) -> Response:
        try:
            body = parse_body(PipelineBody, await request.body())
            answer = await gateway.pipeline(body)
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
