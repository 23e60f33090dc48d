"""A POP's ASGI app for ``granian --factory`` (bench/read_throughput.py --per-core, row h).

Configured from the environment as ``edge-pop serve`` is. Only for measuring what the HTTP
layer costs: under granian the POP has none of its HTTP-layer limits (``pop.http.guard``
is a uvicorn protocol: request head size, read and write time limits, MAX_CONNECTIONS),
so this is not a supported way to run a POP.
"""

from __future__ import annotations

from starlette.types import ASGIApp

from pop.config import load_settings
from pop.http.app import create_app
from pop.logs import setup_logging
from pop.service import PopService


def app() -> ASGIApp:
    settings = load_settings(None)
    setup_logging(settings.log_level, settings.log_format)
    service = PopService(settings)
    service.replica.open()
    return create_app(service)
