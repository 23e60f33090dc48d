"""MAX_CONNECTIONS against floods: idle connections give way to clients and probes.

Once, 1,000 idle TCP connections that sent nothing made /health and every authorised
request answer 503 (uvicorn's limit counted connections, idle or not), so the kubelet
would have restarted a healthy POP.
"""

from __future__ import annotations

import concurrent.futures
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import httpx

from pop.devtools.processes import PopProcess
from pop.http.budget import PROBE_HEADROOM, Admission, ConnectionBudget
from tests.helpers import ENDLESS, execute, metric


class FakeConnection:
    def __init__(self, *, busy: bool = False, served: bool = False) -> None:
        self.busy, self.served, self.closed = busy, served, False

    def is_busy(self) -> bool:
        return self.busy

    def has_served(self) -> bool:
        return self.served

    def shed(self) -> None:
        self.closed = True


def test_at_the_limit_the_oldest_never_used_connection_gives_way() -> None:
    shed: list[str] = []
    budget = ConnectionBudget(3, on_shed=shed.append)
    waiting, first, second = FakeConnection(served=True), FakeConnection(), FakeConnection()
    for connection in (waiting, first, second):
        assert budget.admit(connection) is Admission.ADMITTED
    newcomer = FakeConnection()
    assert budget.admit(newcomer) is Admission.ADMITTED
    assert (waiting.closed, first.closed, second.closed) == (False, True, False)
    assert shed == ["idle"] and len(budget) == 3


def test_then_the_connection_idle_longest_between_requests() -> None:
    now = [0.0]
    budget = ConnectionBudget(2, clock=lambda: now[0])
    early, late = FakeConnection(served=True), FakeConnection(served=True)
    budget.admit(late)
    budget.admit(early)
    now[0] = 5.0
    budget.finished_request(late)  # late opened first but answered a request since
    budget.admit(FakeConnection())
    assert (early.closed, late.closed) == (True, False)


def test_when_every_connection_is_busy_only_probes_get_more() -> None:
    shed: list[str] = []
    budget = ConnectionBudget(2, on_shed=shed.append)
    busy = [FakeConnection(busy=True) for _ in range(2)]
    for connection in busy:
        budget.admit(connection)
    over = [budget.admit(FakeConnection(busy=True)) for _ in range(PROBE_HEADROOM)]
    assert set(over) == {Admission.PROBES_ONLY}
    assert budget.admit(FakeConnection()) is Admission.REFUSED
    assert shed == ["busy"] and not any(connection.closed for connection in busy)
    budget.release(busy[0])
    assert budget.admit(FakeConnection()) is Admission.PROBES_ONLY  # still over the limit


@contextmanager
def _idle_connections(pop: PopProcess, count: int) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        opened = [
            stack.enter_context(socket.create_connection(("127.0.0.1", pop.port), 5))
            for _ in range(count)
        ]
        yield opened


def _select_one(pop: PopProcess) -> httpx.Response:
    with pop.client() as http:
        return http.post("/v2/pipeline", json={"requests": [execute("SELECT 1")]})


def test_an_idle_flood_keeps_out_neither_probes_nor_clients(
    pop_factory: Callable[..., PopProcess],
) -> None:
    pop = pop_factory("flooded", extra_env={"MAX_CONNECTIONS": "1000"})
    with _idle_connections(pop, 1000):
        assert httpx.get(f"{pop.url}/health", timeout=10).status_code == 200
        assert httpx.get(f"{pop.url}/ready", timeout=10).status_code == 200
        answer = _select_one(pop)
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"][0]["type"] == "ok"
    assert metric(pop, "edgepop_connections_shed_total", reason="idle") >= 1


def test_when_every_connection_is_busy_probes_are_still_answered(
    pop_factory: Callable[..., PopProcess],
) -> None:
    pop = pop_factory(
        "busy",
        extra_env={"MAX_CONNECTIONS": "4", "READER_THREADS": "4", "STATEMENT_TIMEOUT": "4"},
    )
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        runaways = [
            pool.submit(
                lambda: httpx.post(
                    f"{pop.url}/v2/pipeline",
                    json={"requests": [execute(ENDLESS)]},
                    headers={"Authorization": f"Bearer {pop.token}"},
                    timeout=30,
                )
            )
            for _ in range(4)
        ]
        # Nothing else connects until every runaway has sent its read: a connection
        # that has not sent one yet is idle, and may be closed to make room.
        time.sleep(1.0)
        assert not any(runaway.done() for runaway in runaways)
        assert metric(pop, "edgepop_open_connections") == 5  # and this probe's
        assert httpx.get(f"{pop.url}/health", timeout=10).status_code == 200
        refused = _select_one(pop)
        assert refused.status_code == 503, refused.text
        assert "MAX_CONNECTIONS" in refused.text
        for runaway in runaways:
            assert runaway.result().status_code == 200
    assert _select_one(pop).status_code == 200
    assert metric(pop, "edgepop_connections_shed_total", reason="probes_only") >= 1
