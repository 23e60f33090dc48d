"""The POP wired together: replica, router, origin client and session loop.

Each part owns its job: ``pop.replica`` the replica's life and health, ``pop.routing``
where a request runs, ``pop.session`` the streams, ``pop.http`` the wire. This module only
builds them, starts and stops them in order; nothing calls back into it.
"""

from __future__ import annotations

import logging

from pop import __version__
from pop.config import Settings
from pop.engines import ReplicaEngine, open_engine
from pop.hrana.errors import OriginUnavailable
from pop.hrana.result_size import ResultBudget
from pop.limits import Limits
from pop.local.executor import LocalExecutor
from pop.local.pool import ReaderPool
from pop.local.runner import LocalRunner
from pop.metrics import PopMetrics
from pop.origin.client import OriginClient
from pop.origin.forward import Forwarder
from pop.replica import Replica
from pop.routing import Router
from pop.session import Session
from pop.sql.inspector import SqlInspector
from pop.sql.write_check import WriteCheck
from pop.watchdog import LoopWatchdog

log = logging.getLogger(__name__)


class PopService:
    def __init__(self, settings: Settings, engine: ReplicaEngine | None = None) -> None:
        self.settings = settings
        self.metrics = PopMetrics()
        self.inspector = SqlInspector()
        self.result_budget = ResultBudget(settings.max_total_result_bytes)
        engine = engine or open_engine(settings)
        self.pool = ReaderPool(engine)
        self.runner = LocalRunner(
            self.pool,
            settings.reader_threads,
            settings.statement_timeout,
            settings.slow_reader_threads,
        )
        self.replica = Replica(
            settings, engine, self.inspector, self.pool, self.runner, self.metrics
        )
        token = settings.turso_auth_token
        self.origin = OriginClient(
            settings.origin_http_url,
            token.get_secret_value() if token else None,
            settings.origin_timeout,
        )
        self.router = Router(
            self.inspector,
            self.pool,
            self.runner,
            LocalExecutor(settings.max_result_bytes),
            Forwarder(self.origin, self.inspector),
        )
        self.session = Session(
            self.router,
            Limits.from_settings(settings),
            self.metrics,
            idle_timeout=settings.stream_idle_timeout,
            server="POP",
            replica=self.replica,
            owner=settings.peer_name,
            write_check=WriteCheck(self.inspector.inspect),
        )
        self.watchdog = LoopWatchdog(settings.watchdog_timeout)
        self.metrics.info.info(
            {"version": __version__, "engine": engine.name, "region": settings.region or ""}
        )

    async def start(self) -> None:
        self.session.streams.start()
        self.watchdog.start()
        await self.replica.start()
        if self.replica.serving:
            try:
                await self.origin.detect()
            except OriginUnavailable as exc:
                log.warning("origin not reachable at start", extra={"error": exc.message})

    async def stop(self) -> None:
        await self.replica.stop()
        self.watchdog.stop()
        await self.session.streams.stop()
        await self.origin.aclose()
        self.runner.close()
        self.pool.close()
        await self.replica.close()

    def refresh_gauges(self) -> None:
        """Values computed when scraped rather than kept up to date."""
        self.replica.refresh_gauges()
        self.metrics.open_streams.set(self.session.open_streams)
