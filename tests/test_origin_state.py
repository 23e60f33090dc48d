"""No acknowledged write lost through a transaction a request leaves open at the origin,
and read-your-writes decided by what ran, not by which statements were present.

Whether the origin is inside a transaction after a request is asked of the origin itself:
on ``tursodb`` (one shared connection, no streams) a batch step conditioned on
``is_autocommit`` shows it, which is what these tests check directly, after every case.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from pop.devtools.processes import GatewayProcess, PopProcess, TursodbOrigin
from tests.helpers import execute, pipeline, rows, running


def _origin_in_autocommit(origin: TursodbOrigin) -> bool:
    probe = {"stmt": {"sql": "SELECT 1"}, "condition": {"type": "is_autocommit"}}
    body = {"requests": [{"type": "batch", "batch": {"steps": [probe]}}]}
    answer = httpx.post(f"{origin.url}/v2/pipeline", json=body, timeout=10).json()
    return answer["results"][0]["response"]["result"]["step_results"][0] is not None


def _batch(*steps: tuple[str, dict[str, Any] | None]) -> dict[str, Any]:
    return {
        "type": "batch",
        "batch": {
            "steps": [
                {"stmt": {"sql": sql}, **({"condition": cond} if cond else {})}
                for sql, cond in steps
            ]
        },
    }


def _ok(step: int) -> dict[str, Any]:
    return {"type": "ok", "step": step}


LEAVES_OPEN: dict[str, Callable[[str], dict[str, Any]]] = {
    "a batch whose COMMIT was skipped": lambda t: _batch(
        ("BEGIN", None),
        (f"INSERT INTO {t} VALUES (1)", _ok(0)),
        (f"INSERT INTO {t} VALUES (1)", _ok(1)),
        ("COMMIT", _ok(2)),
    ),
    "a batch ending in a SAVEPOINT": lambda t: _batch(
        ("BEGIN", None), ("ROLLBACK", None), ("SAVEPOINT s", None)
    ),
    "a sequence failing after its SAVEPOINT": lambda t: {
        "type": "sequence",
        "sql": "SAVEPOINT sp; INSERT INTO nosuch_table VALUES (1); COMMIT",
    },
}


@pytest.mark.parametrize("case", sorted(LEAVES_OPEN))
def test_no_request_leaves_the_origin_inside_a_transaction(
    case: str, pop: PopProcess, origin: TursodbOrigin
) -> None:
    table = "open_" + "".join(ch for ch in case if ch.isalpha())[:20]
    origin.execute(f"CREATE TABLE {table} (x UNIQUE)")
    with pop.client() as http:
        pipeline(http, [LEAVES_OPEN[case](table)])
        assert _origin_in_autocommit(origin), f"{case}: the origin was left in a transaction"
        # A later write, acknowledged, is committed: not held in a transaction left open.
        written = pipeline(http, [execute(f"INSERT INTO {table} VALUES (42)")])
        assert written["results"][0]["type"] == "ok", written
    assert _origin_in_autocommit(origin)
    at_origin = origin.execute(f"SELECT x FROM {table} ORDER BY x")["rows"]
    assert at_origin == [[{"type": "integer", "value": "42"}]], at_origin


@pytest.fixture(scope="module")
def gateway_pops(
    tursodb_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TursodbOrigin, PopProcess]]:
    workdir = tmp_path_factory.mktemp("origin-state")
    origin = TursodbOrigin(tursodb_binary, workdir)
    gateway = GatewayProcess(origin.url, workdir)
    pop = PopProcess(gateway.url, workdir, region="rw", extra_env={"STREAM_IDLE_TIMEOUT": "2"})
    with running(origin, gateway, pop):
        yield origin, pop


READ_YOUR_WRITES = {
    "a failing savepoint release after a write": "INSERT INTO {t} VALUES (2); "
    "ROLLBACK TO nosuch_sp",
    "a transaction opened after a write": "INSERT INTO {t} VALUES (2); BEGIN",
    "a failing write after a write": "INSERT INTO {t} VALUES (2); INSERT INTO {t} VALUES (2)",
}


@pytest.mark.parametrize("case", sorted(READ_YOUR_WRITES))
def test_writing_pop_reads_what_ran_at_the_origin(
    case: str, gateway_pops: tuple[TursodbOrigin, PopProcess]
) -> None:
    origin, pop = gateway_pops
    table = "ryw_" + "".join(ch for ch in case if ch.isalpha())[:20]
    origin.execute(f"CREATE TABLE {table} (x UNIQUE)")
    origin.execute(f"INSERT INTO {table} VALUES (1)")
    with pop.client() as http:
        http.post("/sync")
        script = READ_YOUR_WRITES[case].format(t=table)
        first = pipeline(http, [{"type": "sequence", "sql": script}])
        baton = first["baton"]
        # A new stream, answered by the replica: the committed insert must be there.
        fresh = pipeline(http, [execute(f"SELECT x FROM {table} ORDER BY x")])
        assert rows(fresh) == [["1"], ["2"]], (case, first, fresh)
        pipeline(http, [{"type": "close"}], baton=baton)
    assert origin.execute(f"SELECT count(*) FROM {table}")["rows"][0][0]["value"] == "2"
