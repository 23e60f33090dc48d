"""The origin client's transport (``pop.origin.transport``) on real sockets.

An answer passes through whole, and each way a call can fail is raised as the httpx
exception that says whether the origin may have run it: the origin client answers
"unavailable" (safe to retry) only for a call that cannot have been sent. The servers
here are plain asyncio TCP servers, each misbehaving in one way.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from pop.origin.transport import AiohttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def _serving(handler: Handler) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def _request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request's head and body, as the server read them."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head, await reader.readexactly(length)


def _client(
    url: str, *, timeout: float = 5.0, max_connections: int | None = None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        timeout=timeout,
        transport=AiohttpTransport(max_connections=max_connections, keepalive_expiry=60),
        headers={"Authorization": "Bearer token"},
    )


def test_a_request_and_its_answer_pass_through_whole_on_one_kept_connection() -> None:
    seen: list[tuple[bytes, bytes]] = []
    connections = 0

    async def origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while not reader.at_eof():
            try:
                seen.append(await _request(reader))
            except asyncio.IncompleteReadError:
                break
            body = b'{"results": []}'
            writer.write(
                b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\nx-origin: yes\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()

    async def calls() -> list[httpx.Response]:
        async with _serving(origin) as url, _client(url) as client:
            return [await client.post("/v3/pipeline", content=b'{"n": %d}' % n) for n in range(3)]

    answers = asyncio.run(calls())
    assert [a.status_code for a in answers] == [201] * 3
    assert answers[0].json() == {"results": []} and answers[0].headers["x-origin"] == "yes"
    assert [body for _, body in seen] == [b'{"n": 0}', b'{"n": 1}', b'{"n": 2}']
    assert all(b"authorization: bearer token" in head.lower() for head, _ in seen)
    assert connections == 1


def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # closed below: nothing listens there

    async def call() -> None:
        async with _client(f"http://127.0.0.1:{port}") as client:
            await client.post("/v3/pipeline", content=b"{}")

    with pytest.raises(httpx.ConnectError):
        asyncio.run(call())


async def _reads_then_closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _request(reader)
    writer.close()


async def _reads_then_waits(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _request(reader)
    await asyncio.sleep(30)


async def _answers_garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _request(reader)
    writer.write(b"this is not HTTP\r\n\r\n")
    await writer.drain()
    writer.close()


@pytest.mark.parametrize(
    ("origin", "raised"),
    [
        (_reads_then_closes, httpx.ReadError),
        (_reads_then_waits, httpx.ReadTimeout),
        (_answers_garbage, httpx.ReadError),
    ],
)
def test_a_call_the_origin_may_have_run_fails_as_a_read(
    origin: Handler, raised: type[httpx.HTTPError]
) -> None:
    async def call() -> None:
        async with _serving(origin) as url, _client(url, timeout=0.5) as client:
            await client.post("/v3/pipeline", content=b"{}")

    with pytest.raises(raised) as failure:
        asyncio.run(call())
    assert not isinstance(failure.value, httpx.ConnectError | httpx.ConnectTimeout)


def test_no_free_connection_in_time_is_a_connect_timeout() -> None:
    """Waiting for the pool sends nothing: the origin cannot have run the call."""

    async def calls() -> None:
        async with (
            _serving(_reads_then_waits) as url,
            _client(url, timeout=0.5, max_connections=1) as client,
        ):
            held = asyncio.create_task(client.post("/v3/pipeline", content=b"{}", timeout=5))
            await asyncio.sleep(0.1)  # the one connection is taken
            try:
                await client.post("/v3/pipeline", content=b"{}")
            finally:
                held.cancel()

    with pytest.raises(httpx.ConnectTimeout):
        asyncio.run(calls())


def test_a_proxy_the_environment_names_carries_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _ = await _request(reader)
        asked.append(head.split(b"\r\n")[0])
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    async def call() -> httpx.Response:
        async with _serving(proxy) as proxy_url:
            monkeypatch.setenv("HTTP_PROXY", proxy_url)
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            async with _client("http://origin.example:8080") as client:
                return await client.post("/v3/pipeline", content=b"{}")

    assert asyncio.run(call()).json() == {}
    assert asked == [b"POST http://origin.example:8080/v3/pipeline HTTP/1.1"]
