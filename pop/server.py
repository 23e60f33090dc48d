"""Running one POP under uvicorn."""

from __future__ import annotations

import logging
import os
import sys
from urllib.parse import urlsplit

import uvicorn

from pop.config import ConfigError, load_settings
from pop.http.app import create_app
from pop.http.budget import ConnectionBudget
from pop.http.guard import guarded_protocol
from pop.logs import setup_logging
from pop.replica import ReplicaOpenError
from pop.service import PopService

log = logging.getLogger("pop")


def serve(env_file: str | None = ".env") -> int:
    try:
        settings = load_settings(env_file)
    except ConfigError as exc:
        print(f"edge-pop: {exc}", file=sys.stderr)
        return 2
    secrets = [
        s.get_secret_value()
        for s in (
            settings.turso_auth_token,
            settings.proxy_auth_token,
            settings.redis_connection_string,
        )
        if s is not None
    ]
    if settings.redis_connection_string is not None:
        password = urlsplit(settings.redis_connection_string.get_secret_value()).password
        secrets += [password] if password else []
    setup_logging(settings.log_level, settings.log_format, secrets)
    service = PopService(settings)
    try:
        # Before the server starts, so that a POP that cannot get its data exits with one
        # clear line instead of a server start-up traceback.
        service.replica.open()
    except ReplicaOpenError as exc:
        if not exc.retryable:
            log.error("%s", exc)
            return 1
        # The origin may come up later: serve /ready (503, with this reason) meanwhile.
        log.warning("%s; serving not-ready and retrying", exc)
    app = create_app(service)
    budget = ConnectionBudget(
        settings.max_connections,
        on_shed=lambda reason: service.metrics.connections_shed.labels(reason).inc(),
    )
    service.metrics.open_connections.set_function(lambda: len(budget))
    log.info(
        "starting POP",
        extra={"port": settings.port, "region": settings.region, "engine": settings.replica_engine},
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        http=guarded_protocol(
            settings.max_header_bytes,
            settings.client_read_timeout,
            settings.client_write_timeout,
            budget,
        ),
        ws_max_size=settings.max_body_bytes,  # one Hrana message, like one HTTP body
    )
    log.info("POP stopped")
    logging.shutdown()
    # Not a plain return: interpreter exit joins worker threads, and one stuck in a pull
    # from a stalled origin would keep a stopped POP alive forever.
    os._exit(0)
