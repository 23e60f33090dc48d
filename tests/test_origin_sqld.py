"""``sqld``'s own stream rules, through a POP that forwards to it directly.

sqld keeps each client stream for 10 s without requests, and makes a writer wait at most
5 s for another stream's open transaction, which then ends with ``TRANSACTION_TIMEOUT``.
A client of the POP gets what a client of sqld gets: the same answers, side by side.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from pop.devtools.processes import PopProcess, SqldServer
from pop.hrana.messages import PipelineBody, parse_body
from pop.sql.inspector import SchemaObject, SqlInspector
from tests.helpers import execute, metric, running
from tests.test_placement import pop_session

SQLD_STREAM_IDLE_S = 10  # sqld's own, not configurable from outside


@pytest.fixture(scope="module")
def pair(sqld: SqldServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    # The POP keeps its streams longer than sqld, so sqld's expiry is the one seen.
    pop = PopProcess(
        sqld.url,
        tmp_path_factory.mktemp("pop-sqld"),
        region="eu",
        engine="libsql",
        extra_env={"STREAM_IDLE_TIMEOUT": "60"},
    )
    with running(pop):
        sqld.execute("CREATE TABLE held (who TEXT)")
        with pop.client() as http:
            yield {
                "sqld": httpx.Client(base_url=sqld.url, timeout=60),
                "pop": http,
                "process": pop,
            }


def _post(http: httpx.Client, requests: list[dict[str, Any]], baton: str | None = None) -> Any:
    return http.post("/v2/pipeline", json={"baton": baton, "requests": requests})


def _without_state(answer: httpx.Response) -> tuple[int, Any]:
    body = answer.json()
    if isinstance(body, dict) and "results" in body:
        body = body["results"]
    return answer.status_code, body


@pytest.mark.parametrize("via", ["sqld", "pop"])
def test_an_abandoned_stream_expires_at_sqld(pair: dict[str, Any], via: str) -> None:
    http = pair[via]
    opened = _post(http, [execute("BEGIN"), execute("INSERT INTO held VALUES ('abandoned')")])
    assert [r["type"] for r in opened.json()["results"]] == ["ok", "ok"], opened.text
    time.sleep(SQLD_STREAM_IDLE_S + 1.5)
    late = _post(http, [execute("COMMIT")], baton=opened.json()["baton"])
    status, body = _without_state(late)
    assert status == 400, late.text
    assert body["code"] == "STREAM_EXPIRED", late.text
    assert body["message"] == "The stream has expired due to inactivity", late.text
    after = _post(http, [execute("SELECT count(*) FROM held WHERE who = 'abandoned'")])
    assert after.json()["results"][0]["response"]["result"]["rows"] == [
        [{"type": "integer", "value": "0"}]
    ]


@pytest.mark.parametrize("via", ["sqld", "pop"])
def test_a_held_transaction_times_out_when_another_writer_waits(
    pair: dict[str, Any], via: str
) -> None:
    http = pair[via]
    holder = _post(http, [execute("BEGIN IMMEDIATE"), execute("INSERT INTO held VALUES ('h')")])
    assert [r["type"] for r in holder.json()["results"]] == ["ok", "ok"], holder.text
    with concurrent.futures.ThreadPoolExecutor(1) as other:
        waiting = other.submit(_post, http, [execute("INSERT INTO held VALUES ('w')")])
        written = waiting.result(timeout=60)
    assert written.json()["results"][0]["type"] == "ok", written.text
    late = _post(http, [execute("COMMIT")], baton=holder.json()["baton"])
    status, results = _without_state(late)
    assert status == 200, late.text
    assert results[0]["error"] == {
        "message": "Transaction timed out",
        "code": "TRANSACTION_TIMEOUT",
    }
    kept = _post(http, [execute("SELECT who FROM held WHERE who IN ('h', 'w') ORDER BY who")])
    assert kept.json()["results"][0]["response"]["result"]["rows"][-1] == [
        {"type": "text", "value": "w"}
    ]
    _post(http, [execute("DELETE FROM held")])


def test_read_your_writes_waits_for_the_writes_index_and_no_longer(pair: dict[str, Any]) -> None:
    pop: httpx.Client = pair["pop"]
    process: PopProcess = pair["process"]
    syncs = metric(process, "edgepop_syncs_total", trigger="write")
    written = _post(pop, [execute("INSERT INTO held VALUES ('ryw')")]).json()["results"][0]
    index = written["response"]["result"]["replication_index"]  # passed on, as sqld does
    assert index is not None and index.isdigit(), written
    # The write's facts are the origin's own answer.
    assert written["response"]["result"]["affected_row_count"] == 1, written
    rowid = _post(pair["sqld"], [execute("SELECT max(rowid) FROM held")]).json()["results"][0]
    assert (
        written["response"]["result"]["last_insert_rowid"]
        == (rowid["response"]["result"]["rows"][0][0]["value"])
    )
    assert int(pop.get("/ready").json()["position"]) >= int(index)
    assert metric(process, "edgepop_syncs_total", trigger="write") == syncs + 1
    local = metric(process, "edgepop_requests_total", route="local")
    seen = _post(pop, [execute("SELECT count(*) FROM held WHERE who = 'ryw'")]).json()
    assert seen["results"][0]["response"]["result"]["rows"] == [[{"type": "integer", "value": "1"}]]
    after = metric(process, "edgepop_requests_total", route="local")
    assert after == local + 1, "read-your-writes must not need the origin"

    # A write that writes nothing leaves the index where the replica already is: no sync.
    nothing = _post(pop, [execute("DELETE FROM held WHERE 0")]).json()["results"][0]
    assert (
        nothing["response"]["result"]["replication_index"] == pop.get("/ready").json()["position"]
    )
    assert metric(process, "edgepop_syncs_total", trigger="write") == syncs + 1
    _post(pop, [execute("DELETE FROM held")])


def test_a_pop_restarted_on_its_file_pulls_only_the_frames_written_meanwhile(
    sqld: SqldServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("pop-restarted")

    def pop() -> PopProcess:
        return PopProcess(sqld.url, workdir, region="eu", engine="libsql")

    def position(process: PopProcess) -> int:
        return int(httpx.get(f"{process.url}/ready", timeout=5).json()["position"])

    sqld.execute("CREATE TABLE IF NOT EXISTS restarted (n INTEGER)")
    first = pop()
    with running(first):
        at_stop = position(first)
        # A fresh file pulls the whole log, from frame 1.
        assert metric(first, "edgepop_sync_frames_pulled_total") == at_stop
    for n in range(20):
        sqld.execute("INSERT INTO restarted VALUES (?)", [n])
    second = pop()
    with running(second):
        now = position(second)
        assert now > at_stop
        assert metric(second, "edgepop_sync_frames_pulled_total") == now - at_stop


@pytest.mark.parametrize("via", ["sqld", "pop"])
def test_a_connection_setting_stays_in_the_stream_that_made_it(
    pair: dict[str, Any], via: str
) -> None:
    http = pair[via]

    def foreign_keys(baton: str | None) -> tuple[str, str | None]:
        answer = _post(http, [execute("PRAGMA foreign_keys")], baton).json()
        row = answer["results"][0]["response"]["result"]["rows"][0]
        return row[0]["value"], answer["baton"]

    default, _ = foreign_keys(None)
    flipped = "0" if default == "1" else "1"
    setting = _post(http, [execute(f"PRAGMA foreign_keys = {flipped}")]).json()
    assert setting["results"][0]["type"] == "ok", setting
    assert foreign_keys(setting["baton"])[0] == flipped  # the stream that set it
    assert foreign_keys(None)[0] == default  # every other stream


class _Recorded(httpx.AsyncBaseTransport):
    """A real transport to sqld that notes the requests of each pipeline sent."""

    def __init__(self) -> None:
        self._real = httpx.AsyncHTTPTransport()
        self.pipelines: list[list[str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/pipeline"):
            sent = orjson.loads(await request.aread())["requests"]
            self.pipelines.append([r["type"] for r in sent])
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


def test_a_close_right_after_a_forwarded_request_goes_to_sqld_with_it(sqld: SqldServer) -> None:
    """``@libsql/client`` over HTTP sends every write as [execute, close]: one round trip
    to the origin, not two. A close sent on its own call still closes the origin stream."""
    sqld.execute("CREATE TABLE IF NOT EXISTS rides (v TEXT)")
    origin = _Recorded()
    inspector = SqlInspector()
    inspector.load_schema([SchemaObject("table", "rides", "CREATE TABLE rides (v TEXT)")])
    session, caught_up = pop_session(origin, inspector, sqld.url)

    async def pipeline(baton: str | None, *requests: dict[str, Any]) -> dict[str, Any]:
        body = parse_body(PipelineBody, orjson.dumps({"baton": baton, "requests": requests}))
        answer: dict[str, Any] = (await session.pipeline(body, "v3_pipeline")).body
        assert [r["type"] for r in answer["results"]] == ["ok"] * len(requests), answer
        return answer

    async def calls() -> None:
        await pipeline(None, execute("INSERT INTO rides VALUES ('along')"), {"type": "close"})
        assert origin.pipelines == [["execute", "get_autocommit", "close"]]
        assert len(caught_up) == 1  # the write still made the replica catch up
        origin.pipelines.clear()

        kept = await pipeline(None, execute("INSERT INTO rides VALUES ('apart')"))
        await pipeline(kept["baton"], {"type": "close"})
        assert origin.pipelines == [["execute", "get_autocommit"], ["close"]]
        await origin.aclose()

    asyncio.run(calls())
    rows = sqld.execute("SELECT v FROM rides ORDER BY v")["rows"]
    assert [row[0]["value"] for row in rows] == ["along", "apart"]


@pytest.mark.parametrize("via", ["sqld", "pop"])
def test_a_close_in_the_call_that_opened_a_transaction_rolls_it_back(
    pair: dict[str, Any], via: str
) -> None:
    http = pair[via]
    opened = _post(
        http,
        [execute("BEGIN"), execute("INSERT INTO held VALUES ('undone')"), {"type": "close"}],
    )
    assert [r["type"] for r in opened.json()["results"]] == ["ok"] * 3, opened.text
    counted = _post(http, [execute("SELECT count(*) FROM held WHERE who = 'undone'")]).json()
    assert counted["results"][0]["response"]["result"]["rows"] == [
        [{"type": "integer", "value": "0"}]
    ]
