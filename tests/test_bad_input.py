"""Bad input: a clear 4xx (or per-request) error, and nothing half-applied."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from pop.devtools.processes import PopProcess, TursodbOrigin
from tests.helpers import execute, pipeline


def _marker_insert(key: str) -> dict[str, Any]:
    return execute("INSERT INTO kv (k, v) VALUES (?, 'must-not-exist')", key)


def _assert_not_written(origin: TursodbOrigin, pop: PopProcess, key: str) -> None:
    count = origin.execute("SELECT count(*) FROM kv WHERE k = ?", [key])["rows"][0][0]["value"]
    assert count == "0", f"{key} reached the origin"
    with pop.client() as http:
        answer = pipeline(http, [execute("SELECT count(*) FROM kv WHERE k = ?", key)])
    assert answer["results"][0]["response"]["result"]["rows"][0][0]["value"] == "0"


def _assert_protocol_error(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["code"], str) and body["code"]
    for word in words:
        assert word in body["message"], body


BAD_REQUESTS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "unknown request type": ({"type": "explode"}, ("does not match any of the expected tags",)),
    "execute without stmt": ({"type": "execute"}, ("stmt", "Field required")),
    "stmt without sql": (
        {"type": "execute", "stmt": {"args": []}},
        ("exactly one of 'sql' and 'sql_id'",),
    ),
    "sql and sql_id both": (
        {"type": "execute", "stmt": {"sql": "SELECT 1", "sql_id": 1}},
        ("exactly one of",),
    ),
    "integer not a number": (
        {
            "type": "execute",
            "stmt": {"sql": "SELECT ?", "args": [{"type": "integer", "value": "12x"}]},
        },
        ("integer value must be a decimal string",),
    ),
    "integer beyond 64 bits": (
        {
            "type": "execute",
            "stmt": {
                "sql": "SELECT ?",
                "args": [{"type": "integer", "value": "9223372036854775808"}],
            },
        },
        ("does not fit in 64 bits",),
    ),
    "float as a string": (
        {
            "type": "execute",
            "stmt": {"sql": "SELECT ?", "args": [{"type": "float", "value": "1.5"}]},
        },
        ("float value must be a JSON number",),
    ),
    "blob with bad base64": (
        {
            "type": "execute",
            "stmt": {"sql": "SELECT ?", "args": [{"type": "blob", "base64": "!!!"}]},
        },
        ("invalid base64",),
    ),
    "unknown value type": (
        {
            "type": "execute",
            "stmt": {"sql": "SELECT ?", "args": [{"type": "decimal", "value": "1"}]},
        },
        ("unknown value type",),
    ),
    "text value not a string": (
        {"type": "execute", "stmt": {"sql": "SELECT ?", "args": [{"type": "text", "value": 5}]}},
        ("text value must be a JSON string",),
    ),
    "condition on a later step": (
        {
            "type": "batch",
            "batch": {
                "steps": [{"stmt": {"sql": "SELECT 1"}, "condition": {"type": "ok", "step": 0}}]
            },
        },
        ("may only refer to earlier steps",),
    ),
    "want_rows not a boolean": (
        {"type": "execute", "stmt": {"sql": "SELECT 1", "want_rows": "yes please"}},
        ("want_rows",),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_malformed_request_refuses_the_whole_pipeline(
    case: str, client: httpx.Client, origin: TursodbOrigin, pop: PopProcess
) -> None:
    bad, words = BAD_REQUESTS[case]
    key = f"bad-{case}"
    response = client.post(
        "/v2/pipeline", json={"baton": None, "requests": [_marker_insert(key), bad]}
    )
    _assert_protocol_error(response, 400, *words)
    _assert_not_written(origin, pop, key)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", ("invalid request body",)),
        (b"", ("body is empty",)),
        (b"[]", ("invalid request body",)),
        (b'{"requests": "execute"}', ("requests",)),
        (b'{"baton": 5, "requests": []}', ("baton",)),
    ],
)
def test_malformed_body(body: bytes, words: tuple[str, ...], client: httpx.Client) -> None:
    response = client.post(
        "/v2/pipeline", content=body, headers={"content-type": "application/json"}
    )
    _assert_protocol_error(response, 400, *words)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "Expected authorization header but none given"),
        ("Bearer wrong", "The token is not this POP's PROXY_AUTH_TOKEN"),
        ("Basic abc", "The authentication scheme in the `Authorization` HTTP header is"),
        ("Bearer", "Auth string does not conform to '<scheme> <token>' form"),
    ],
)
def test_missing_or_wrong_token(
    header: str | None, reason: str, pop: PopProcess, origin: TursodbOrigin
) -> None:
    headers = {"Authorization": header} if header else {}
    key = f"unauth-{header}"
    response = httpx.post(
        f"{pop.url}/v2/pipeline",
        json={"baton": None, "requests": [_marker_insert(key)]},
        headers=headers,
    )
    _assert_protocol_error(response, 401, f"Unauthorized: `{reason}")
    assert pop.token not in response.text
    _assert_not_written(origin, pop, key)


def test_unknown_baton(client: httpx.Client, origin: TursodbOrigin, pop: PopProcess) -> None:
    response = client.post(
        "/v2/pipeline",
        json={"baton": "no-such-stream.abc", "requests": [_marker_insert("unknown-baton")]},
    )
    _assert_protocol_error(response, 400, "baton is unknown")
    assert response.json()["code"] == "STREAM_EXPIRED"
    _assert_not_written(origin, pop, "unknown-baton")


def test_spent_baton_is_refused(client: httpx.Client) -> None:
    first = pipeline(client, [execute("SELECT 1")])
    baton = first["baton"]
    pipeline(client, [execute("SELECT 2")], baton=baton)
    response = client.post("/v2/pipeline", json={"baton": baton, "requests": [execute("SELECT 3")]})
    _assert_protocol_error(response, 400, "already used")


@pytest.fixture(scope="module")
def strict_pop(pop_factory: Callable[..., PopProcess]) -> PopProcess:
    """A POP with a small body limit and a short stream timeout."""
    return pop_factory("strict", extra_env={"MAX_BODY_BYTES": "4096", "STREAM_IDLE_TIMEOUT": "1"})


def test_oversized_body(strict_pop: PopProcess, origin: TursodbOrigin) -> None:
    key = "oversized"
    padding = "x" * 8000
    with strict_pop.client() as http:
        response = http.post(
            "/v2/pipeline",
            json={"baton": None, "requests": [_marker_insert(key), execute("SELECT ?", padding)]},
        )
    _assert_protocol_error(response, 413, "larger than the limit of 4096 bytes")
    _assert_not_written(origin, strict_pop, key)


def test_expired_baton(strict_pop: PopProcess, origin: TursodbOrigin) -> None:
    with strict_pop.client() as http:
        baton = pipeline(http, [execute("BEGIN TRANSACTION READONLY")])["baton"]
        time.sleep(2.5)
        response = http.post(
            "/v2/pipeline",
            json={"baton": baton, "requests": [_marker_insert("expired-baton")]},
        )
    _assert_protocol_error(response, 400, "expired after 1 s")
    _assert_not_written(origin, strict_pop, "expired-baton")


def test_sql_id_not_stored_is_a_per_request_error(client: httpx.Client) -> None:
    answer = pipeline(client, [{"type": "execute", "stmt": {"sql_id": 42}}, execute("SELECT 1")])
    assert answer["results"][0]["type"] == "error"
    assert "sql_id 42 was not stored" in answer["results"][0]["error"]["message"]
    assert answer["results"][1]["type"] == "ok"
