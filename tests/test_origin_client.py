"""The origin client through httpx's MockTransport: what it makes of origins that answer
oddly, without starting one (the real origins' side is in test_origin_sqld and others)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from pop.hrana.errors import OriginStreamLost, OriginUnavailable, OutcomeUnknown
from pop.origin.client import Dialect, OriginClient

ORIGIN = "http://origin.test"


def _client(answer: Callable[[httpx.Request], httpx.Response]) -> OriginClient:
    return OriginClient(ORIGIN, "secret", 5.0, transport=httpx.MockTransport(answer))


def _v2_only(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v2":
        return httpx.Response(200, text="hello")
    if request.url.path == "/v2/pipeline":
        assert request.headers["authorization"] == "Bearer secret"
        return httpx.Response(200, json={"baton": "b2", "results": [{"type": "ok"}]})
    return httpx.Response(404)


def test_the_dialect_is_what_the_origin_serves() -> None:
    client = _client(_v2_only)
    assert asyncio.run(client.detect()) is Dialect.V2
    baton, results = asyncio.run(client.pipeline(None, [{"type": "close"}]))
    assert (baton, results) == ("b2", [{"type": "ok"}])
    basic = _client(lambda request: httpx.Response(404))
    assert asyncio.run(basic.detect()) is Dialect.BASIC


@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        (httpx.Response(200, text="not json"), OriginUnavailable),
        (httpx.Response(200, json={"baton": None, "results": []}), OriginUnavailable),
    ],
)
def test_answers_that_are_not_hrana_are_the_origin_unavailable(
    answer: httpx.Response, refused: type[Exception]
) -> None:
    def origin(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200) if request.url.path == "/v3" else answer

    with pytest.raises(refused):
        asyncio.run(_client(origin).pipeline(None, [{"type": "close"}]))


def test_a_connection_lost_after_sending_is_an_unknown_outcome() -> None:
    def origin(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3":
            return httpx.Response(200)
        raise httpx.ReadError("connection reset", request=request)

    with pytest.raises(OutcomeUnknown) as unknown:
        asyncio.run(_client(origin).pipeline(None, [{"type": "close"}]))
    assert "secret" not in unknown.value.message


def test_an_origin_that_forgot_the_stream_ends_it() -> None:
    def origin(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v3":
            return httpx.Response(200)
        return httpx.Response(400, json={"message": "stream expired", "code": "STREAM_EXPIRED"})

    with pytest.raises(OriginStreamLost):
        asyncio.run(_client(origin).pipeline("old-baton", [{"type": "close"}]))
