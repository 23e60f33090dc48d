"""``edge-pop gateway``: Hrana streams in front of an origin that has none (``tursodb``).

``tursodb --sync-server`` runs every Hrana pipeline on one shared connection and echoes
batons instead of keeping streams, so a transaction cannot safely span HTTP calls there:
another client's statements would land inside it. The gateway gives each client a real
stream and serializes access to that one connection: while a stream holds a transaction
open, every other stream waits (as SQLite writers wait for the write lock) until it
commits, rolls back, or expires (rolled back). Everything that is not Hrana (the Turso
Sync protocol that replicas pull with) passes through untouched (``pop.http.gateway``), so
the gateway's URL can stand in for the origin's everywhere.

Pipelines run through the POP's session loop (``pop.session``), with the POP's default
limits; this module is only the backend: the shared connection, forwarding, and the schema
the forwarder words errors with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from pop.hrana.errors import HranaError
from pop.hrana.messages import (
    BatchReq,
    CloseSqlReq,
    ExecuteReq,
    GetAutocommitReq,
    SequenceReq,
    Stmt,
    StoreSqlReq,
    StreamRequest,
)
from pop.limits import Limits
from pop.metrics import PopMetrics
from pop.origin.client import OriginClient
from pop.origin.forward import Forwarder
from pop.session import Handled, Route, Session
from pop.sql.inspector import SchemaObject, SqlInspector
from pop.sql.prepared import Prepared
from pop.sql.script import split_script
from pop.streams import Stream

log = logging.getLogger(__name__)


class StreamGateway:
    def __init__(self, origin_url: str, idle_timeout: float = 10.0) -> None:
        self.origin_url = origin_url
        self.client = OriginClient(origin_url, None, timeout=30.0)
        self.inspector = SqlInspector()
        self.forwarder = Forwarder(self.client, self.inspector, holds_transactions=True)
        self.session = Session(
            self, Limits.from_settings(), PopMetrics(), idle_timeout=idle_timeout, server="gateway"
        )
        self._connection = asyncio.Lock()  # the origin's one connection
        self._owner: Stream | None = None
        # Set when a statement that may change the schema ran; reloading after every
        # pipeline would cost a round trip to the origin even for reads.
        self._schema_stale = False

    async def start(self) -> None:
        await self._reload_schema()
        self.session.streams.start()

    async def stop(self) -> None:
        await self.session.streams.stop()
        await self.client.aclose()

    @contextlib.asynccontextmanager
    async def holding(self, stream: Stream) -> AsyncIterator[None]:
        """The origin's one connection, for one call; kept while a transaction is open."""
        if self._owner is not stream:
            await self._connection.acquire()
            self._owner = stream
        try:
            yield
            if self._schema_stale and self._owner is stream:  # not if a close freed it
                await self._reload_schema()
        finally:
            if not stream.origin.in_transaction:
                self._free_connection(stream)

    async def handle(
        self, stream: Stream, request: StreamRequest, *, closing: bool = False
    ) -> Handled:
        return Handled(await self._run(stream, request, closing), Route.ORIGIN)

    async def _run(self, stream: Stream, request: StreamRequest, closing: bool) -> dict[str, Any]:
        if isinstance(request, ExecuteReq):
            stmt = self._prepare(stream, request.stmt)
            result = await self.forwarder.execute(stream.origin, stmt, then_close=closing)
            self._track([stmt], [True])
            return {"type": "execute", "result": result}
        if isinstance(request, BatchReq):
            steps = [self._prepare(stream, step.stmt) for step in request.batch.steps]
            outcome = await self.forwarder.batch(
                stream.origin, request.batch, steps, then_close=closing
            )
            self._track(steps, [result is not None for result in outcome["step_results"]])
            return {"type": "batch", "result": outcome}
        if isinstance(request, SequenceReq):
            script = stream.resolve_sql(request.sql, request.sql_id)
            statements = Prepared.script(self.inspector, split_script(script))
            await self.forwarder.sequence(stream.origin, script, statements, then_close=closing)
            self._track(statements, [True] * len(statements))
            return {"type": "sequence"}
        if isinstance(request, StoreSqlReq):
            stream.store_sql(request.sql_id, request.sql)
            return {"type": "store_sql"}
        if isinstance(request, CloseSqlReq):
            stream.sqls.pop(request.sql_id, None)
            return {"type": "close_sql"}
        if isinstance(request, GetAutocommitReq):
            return {"type": "get_autocommit", "is_autocommit": not stream.origin.in_transaction}
        raise HranaError(f"the gateway does not serve {request.type!r} requests", "NOT_SUPPORTED")

    def _prepare(self, stream: Stream, stmt: Stmt) -> Prepared:
        return Prepared.of(self.inspector, stmt, stream.resolve_sql(stmt.sql, stmt.sql_id))

    def _track(self, statements: list[Prepared], ran: list[bool]) -> None:
        """Note a schema change (whether a transaction is open the forwarder has asked)."""
        if any(
            succeeded and not statement.info.is_read
            for statement, succeeded in zip(statements, ran, strict=True)
        ):
            self._schema_stale = True

    async def release(self, stream: Stream) -> None:
        """A closed or expired stream's transaction is rolled back, and the connection
        freed for the next stream."""
        try:
            await self.forwarder.roll_back(stream.origin)
        finally:
            self._free_connection(stream)

    def _free_connection(self, stream: Stream) -> None:
        if self._owner is stream:
            self._owner = None
            self._connection.release()

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
