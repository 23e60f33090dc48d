"""Quick local reads never queue behind slow ones (pop.local.runner's two lanes).

Once, with READER_THREADS (4) runaway reads running, a ``SELECT 1`` waited 9.5 s, and
with 8, 19.7 s: every worker was held until the statement time limit.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

from pop.devtools.processes import PopProcess
from tests.helpers import ENDLESS, execute


def _read(pop: PopProcess, sql: str) -> dict[str, Any]:
    with pop.client() as http:
        answer = http.post("/v2/pipeline", json={"requests": [execute(sql)]}, timeout=60)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()["results"][0]
    return result


def _runaways(
    pop: PopProcess, pool: concurrent.futures.ThreadPoolExecutor, count: int
) -> list[concurrent.futures.Future[dict[str, Any]]]:
    started = [pool.submit(_read, pop, ENDLESS) for _ in range(count)]
    time.sleep(1.0)  # let every one of them start and turn slow
    return started


def test_a_quick_read_is_answered_while_slow_ones_hold_every_fast_worker(
    pop_factory: Callable[..., PopProcess],
) -> None:
    pop = pop_factory(
        "lanes",
        extra_env={"READER_THREADS": "2", "SLOW_READER_THREADS": "4", "STATEMENT_TIMEOUT": "8"},
    )
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        runaways = _runaways(pop, pool, 4)
        quick = _read(pop, "SELECT 1")
        assert quick["type"] == "ok", quick
        still_running = [not runaway.done() for runaway in runaways]
        outcomes = [runaway.result() for runaway in runaways]
    assert all(still_running), "the quick read waited for a slow one to end"
    for outcome in outcomes:
        assert outcome["type"] == "error", outcome
        assert "STATEMENT_TIMEOUT" in outcome["error"]["message"]


def test_a_read_that_turns_slow_when_the_slow_lane_is_full_is_interrupted(
    pop_factory: Callable[..., PopProcess],
) -> None:
    pop = pop_factory(
        "full-lane",
        extra_env={"READER_THREADS": "1", "SLOW_READER_THREADS": "1", "STATEMENT_TIMEOUT": "8"},
    )
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        runaways = _runaways(pop, pool, 3)
        assert _read(pop, "SELECT 1")["type"] == "ok"
        outcomes = [runaway.result() for runaway in runaways]
    messages = sorted(outcome["error"]["message"] for outcome in outcomes)
    assert sum("STATEMENT_TIMEOUT" in message for message in messages) == 1, messages
    assert sum("SLOW_READER_THREADS" in message for message in messages) == 2, messages
    assert {outcome["error"]["code"] for outcome in outcomes} == {"SQLITE_INTERRUPT"}
