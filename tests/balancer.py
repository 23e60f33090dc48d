"""A round-robin HTTP load balancer for tests: a stand-in for a Kubernetes Service in front
of a region's POPs (no real Service outside a cluster), and a stricter one: it sends each
HTTP request to the next POP, where a Service picks a POP per connection.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn
from starlette.types import Receive, Scope, Send

from pop.devtools.processes import free_port


class RoundRobin:
    """Passes each request on to the next of ``backends`` and counts what each got."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.counts = dict.fromkeys(backends, 0)
        self._next = itertools.cycle(backends)
        self._client = httpx.AsyncClient(timeout=60)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to set up
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        backend = next(self._next)
        self.counts[backend] += 1
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"host", b"content-length")]
        answer = await self._client.request(
            scope["method"], f"{backend}{scope['path']}", headers=headers, content=body
        )
        await send(
            {
                "type": "http.response.start",
                "status": answer.status_code,
                "headers": [
                    (b"content-type", answer.headers.get("content-type", "").encode()),
                    (b"content-length", str(len(answer.content)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.content})


@contextmanager
def balancing(backends: list[str]) -> Iterator[tuple[str, RoundRobin]]:
    """Serve a ``RoundRobin`` on a loopback port; yields its URL and the balancer."""
    balancer = RoundRobin(backends)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(balancer, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="round-robin", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the balancer did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", balancer
    finally:
        server.should_exit = True
        thread.join(timeout=10)
