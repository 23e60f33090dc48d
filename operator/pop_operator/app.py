"""The operator process: HTTP endpoints, leader election, then kopf."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import kopf

from pop_operator import handlers as _handlers  # noqa: F401  (registers the handlers)
from pop_operator import metrics
from pop_operator.httpserver import start_http_server
from pop_operator.leader import LeaderElector
from pop_operator.runtime import Runtime
from pop_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

EXIT_LOST_LEADERSHIP = 3


async def run(settings: OperatorSettings) -> int:
    """Run until stopped (0) or until the leader Lease is lost (3)."""
    runtime = Runtime.create(settings)
    role = {"now": "standby"}
    server = await start_http_server(settings.http_host, settings.http_port, lambda: role["now"])
    try:
        elector = None
        if settings.leader_election:
            elector = LeaderElector(
                runtime.client,
                name=settings.lease_name,
                namespace=settings.pod_namespace,
                identity=settings.pod_name,
                duration=settings.lease_duration_seconds,
            )
            await elector.acquire()
        role["now"] = "leader"
        metrics.LEADER.set(1)
        return await _serve(settings, runtime, elector)
    finally:
        metrics.LEADER.set(0)
        await server.cleanup()
        await runtime.close()


async def _serve(
    settings: OperatorSettings, runtime: Runtime, elector: LeaderElector | None
) -> int:
    stop = asyncio.Event()
    scope = {"namespaces": [settings.namespace]} if settings.namespace else {"clusterwide": True}
    operator = asyncio.create_task(
        kopf.operator(standalone=True, stop_flag=stop, memo=kopf.Memo(runtime=runtime), **scope)
    )
    if elector is None:
        await operator
        return 0
    holder = asyncio.create_task(elector.hold())
    done, _ = await asyncio.wait({operator, holder}, return_when=asyncio.FIRST_COMPLETED)
    if holder in done:
        stop.set()  # lost the Lease: stop handling at once, let the pod restart
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(operator, timeout=settings.lease_duration_seconds)
        return EXIT_LOST_LEADERSHIP
    holder.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await holder
    await elector.release()
    operator.result()
    return 0
