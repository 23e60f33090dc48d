"""A real HTTP server exposing the POP's lag gauge through prometheus_client.

Stands in for a POP's /metrics only: it serves the metric under the POP's name, in the
exposition format prometheus_client writes, on 127.0.0.1.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app

from pop.contract import LAG_METRIC


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def lag_metrics_server(seconds: float) -> Iterator[tuple[int, Gauge]]:
    """Serve ``/metrics`` with the lag gauge at ``seconds``; yield (port, gauge)."""
    registry = CollectorRegistry()
    gauge = Gauge(LAG_METRIC, "Seconds since the last successful sync.", registry=registry)
    gauge.set(seconds)
    server: WSGIServer = make_server("127.0.0.1", 0, make_wsgi_app(registry), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_port, gauge
    finally:
        server.shutdown()
        server.server_close()
