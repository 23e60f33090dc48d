"""Small helpers for talking Hrana to a POP in tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pop.devtools.processes import ManagedProcess, PopProcess, loopback_client


@dataclass(frozen=True)
class Target:
    """Where a client under test connects, as a POP would be given: a URL and the token
    (a balancer in front of POPs, or sqld itself, which asks for none)."""

    url: str
    token: str

    def client(self) -> httpx.Client:
        return loopback_client(self.url, headers={"Authorization": f"Bearer {self.token}"})


# A read that never ends by itself: only STATEMENT_TIMEOUT or an interrupt stops it.
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def pipeline(
    client: httpx.Client,
    requests: list[dict[str, Any]],
    *,
    baton: str | None = None,
    version: str = "v2",
) -> dict[str, Any]:
    """POST a pipeline and return the decoded answer (asserting HTTP 200)."""
    response = client.post(f"/{version}/pipeline", json={"baton": baton, "requests": requests})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def execute(sql: str, *args: Any) -> dict[str, Any]:
    from pop.hrana.values import encode_value

    return {"type": "execute", "stmt": {"sql": sql, "args": [encode_value(a) for a in args]}}


def ok_result(answer: dict[str, Any], index: int = 0) -> dict[str, Any]:
    result = answer["results"][index]
    assert result["type"] == "ok", result
    response: dict[str, Any] = result["response"]
    return response


def rows(answer: dict[str, Any], index: int = 0) -> list[list[Any]]:
    result = ok_result(answer, index)["result"]
    return [[cell.get("value", cell.get("base64")) for cell in row] for row in result["rows"]]


# What a POP's answer and sqld's are compared on (tests/test_sqld_parity.py): fields that
# depend on the server's own state are left out, and so is the wording of errors that
# sqld's own parser or argument checker words (their code must agree).
_STATE_FIELDS = frozenset(
    {"replication_index", "rows_read", "rows_written", "query_duration_ms", "baton", "base_url"}
)
_CODES_WITH_OWN_WORDING = frozenset({"SQL_PARSE_ERROR", "SQL_INPUT_ERROR", "ARGS_INVALID"})


def comparable_with_sqld(value: Any) -> Any:
    """``value`` (an answer, JSON or protobuf as a dict) without what may differ from sqld."""
    if isinstance(value, dict):
        if set(value) == {"message", "code"}:
            if value["code"] in _CODES_WITH_OWN_WORDING:
                return {"code": value["code"]}
            return dict(value)
        return {
            key: comparable_with_sqld(item)
            for key, item in value.items()
            if key not in _STATE_FIELDS
        }
    if isinstance(value, list):
        return [comparable_with_sqld(item) for item in value]
    return value


def metric(pop: PopProcess, name: str, **labels: str) -> float:
    """The sum of a POP's samples of ``name`` whose labels include ``labels``."""
    return metric_at(pop.url, name, **labels)


def metric_at(url: str, name: str, **labels: str) -> float:
    """``metric`` for a POP known by its URL only (a pod, say)."""
    total = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=5).text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def routes(pop: PopProcess) -> dict[str, float]:
    """How many ``execute`` requests the POP answered by each route, from its metrics."""
    text = httpx.get(f"{pop.url}/metrics").text
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("edgepop_requests_total{") and 'request_type="execute"' in line:
            route = line.split('route="')[1].split('"')[0]
            counts[route] = counts.get(route, 0) + float(line.rsplit(" ", 1)[1])
    return counts


@contextmanager
def running(*processes: ManagedProcess) -> Iterator[None]:
    """Start the processes in order, each serving before the next; stop them, last first."""
    with ExitStack() as started:
        for process in processes:
            process.start_and_wait()
            started.callback(process.stop)
        yield
