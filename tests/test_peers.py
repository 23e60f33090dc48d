"""Two POPs of one region behind one balancer: an HTTP stream's calls reach the POP that
holds it, whichever POP the balancer picked (``pop.http.peers``).

Real parts: a sqld origin, two ``edge-pop serve`` processes, ``@libsql/client``. The
balancer (tests/balancer.py) is a stand-in for the region's Service, stricter than one:
it alternates POPs on every request. The POPs listen on 127.0.0.2 and 127.0.0.3, the
same port, so that one ``PEER_URL_TEMPLATE`` reaches either, as the headless Service's
per-pod names do in a cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pop.devtools.processes import PopProcess, SqldServer, free_port
from pop.hrana.errors import ProtocolError
from pop.http.endpoint import Call
from pop.http.peers import Peers
from pop.metrics import PopMetrics
from tests.balancer import balancing
from tests.conftest import SCHEMA
from tests.helpers import Target, execute, metric, pipeline, running

PEERS = ("127.0.0.2", "127.0.0.3")
TOKEN = "region-token"


@pytest.fixture(scope="module")
def region(
    sqld: SqldServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[PopProcess]]:
    for sql in SCHEMA:
        sqld.execute(sql)
    port = free_port()
    pops = [
        PopProcess(
            sqld.url,
            tmp_path_factory.mktemp(f"peer-{name}"),
            region="eu",
            engine="libsql",
            token=TOKEN,
            port=port,
            host=name,
            extra_env={"PEER_NAME": name, "PEER_URL_TEMPLATE": f"http://{{peer}}:{port}"},
        )
        for name in PEERS
    ]
    with running(*pops):
        yield pops


def test_write_transactions_commit_across_two_pops_behind_a_round_robin(
    region: list[PopProcess], sqld: SqldServer, node_client: Any
) -> None:
    with balancing([pop.url for pop in region]) as (url, balancer):
        result = node_client("transactionLoop", Target(url, TOKEN), "rr:30")
    committed = [f"rr-{i}" for i in range(30) if i % 3 != 2]
    assert result["committed"] == committed
    assert result["seenInside"] == ["1"] * 30
    assert result["after"] == sorted(committed)
    at_origin = sqld.execute("SELECT k FROM kv WHERE k LIKE 'rr-%' ORDER BY k")["rows"]
    assert [row[0]["value"] for row in at_origin] == sorted(committed)
    # Both POPs got calls, and the calls for a stream the other held were passed on.
    assert all(count > 20 for count in balancer.counts.values()), balancer.counts
    passed_on = [metric(pop, "edgepop_peer_calls_total", outcome="ok") for pop in region]
    assert all(count > 0 for count in passed_on), passed_on
    failed = sum(
        metric(pop, "edgepop_peer_calls_total", outcome=outcome)
        for pop in region
        for outcome in ("unreachable", "outcome_unknown")
    )
    assert failed == 0


def test_a_call_passed_on_once_is_not_passed_on_again(region: list[PopProcess]) -> None:
    first, second = region
    with first.client() as http:
        baton = pipeline(http, [execute("SELECT 1")], version="v3")["baton"]
    assert baton.endswith(f"@{first.host}")
    # Sent to the second POP as if the first had passed it on: answered there, as unknown.
    answer = httpx.post(
        f"{second.url}/v3/pipeline",
        json={"baton": baton, "requests": [execute("SELECT 2")]},
        headers={"Authorization": f"Bearer {TOKEN}", "X-Edge-Pop-Forwarded-By": first.host},
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "STREAM_EXPIRED"
    # The baton still works where its stream is.
    with first.client() as http:
        assert pipeline(http, [execute("SELECT 3")], baton=baton, version="v3")["baton"]


def test_a_baton_naming_a_pop_that_is_gone_ends_the_stream_clearly(
    region: list[PopProcess],
) -> None:
    gone = "127.0.0.4"  # nothing listens there
    answer = httpx.post(
        f"{region[0].url}/v3/pipeline",
        json={"baton": f"s1.x@{gone}", "requests": [execute("SELECT 1")]},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "STREAM_EXPIRED"
    assert gone in answer.json()["message"]
    assert metric(region[0], "edgepop_peer_calls_total", outcome="unreachable") == 1


def _peers(handler: Any) -> Peers:
    template = "http://{peer}.pops.shop.svc:3000"
    return Peers("pop-0", template, 5, PopMetrics(), transport=httpx.MockTransport(handler))


def test_which_calls_are_passed_on_and_where() -> None:
    peers = _peers(lambda request: httpx.Response(200))
    call = Call(b"{}", "v3_pipeline", "/v3/pipeline")
    assert peers.holder("s1.x@pop-1", call) == "http://pop-1.pops.shop.svc:3000"
    assert peers.holder("s1.x@pop-0", call) is None  # its own
    assert peers.holder("s1.x", call) is None  # names no POP: answered here, as unknown
    assert peers.holder(None, call) is None  # a new stream
    for forged in ("s1.x@evil.example:80", "s1.x@pop 1", "s1.x@-pop", "s1.x@a/b", "s1.x@"):
        assert peers.holder(forged, call) is None, forged
    forwarded = Call(b"{}", "v3_pipeline", "/v3/pipeline", forwarded_by="pop-2")
    assert peers.holder("s1.x@pop-1", forwarded) is None


def test_a_call_sent_but_never_answered_has_an_unknown_outcome() -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["x-edge-pop-forwarded-by"] == "pop-0"
        raise httpx.ReadTimeout("no answer", request=request)

    peers = _peers(time_out)
    call = Call(b"{}", "v3_pipeline", "/v3/pipeline", authorization=f"Bearer {TOKEN}")
    with pytest.raises(ProtocolError) as failed:
        asyncio.run(peers.forward("http://pop-1.pops.shop.svc:3000", call))
    assert (failed.value.code, failed.value.status) == ("PEER_OUTCOME_UNKNOWN", 502)
