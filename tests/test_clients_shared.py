"""Real clients in four languages run one shared scenario (tests/clients/scenario.py:
reads, writes, a batch, write transactions committed and rolled back, a constraint error,
64-bit integers, blobs, NULLs, a 10,000-row result) through a POP and straight against
sqld, and every client must get what SQLite gives.

For each client: its results through the POP equal its results from sqld (the error's
text included), and, but for that text, equal the scenario's results on Python's
``sqlite3``. What each client sent is read off the POP's own request counter.

Clients: ``@libsql/client`` (npm) over HTTP and WebSocket, ``libsql-client-go`` over HTTP
and WebSocket, the ``libsql`` crate (remote; it has no WebSocket), and the Python bindings
``libsql`` and ``libsql-experimental`` in remote mode. The Go and Rust drivers are built
and cached by tools/ensure-clients.sh.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libsql
import libsql_experimental
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pop.devtools.processes import PopProcess, SqldServer
from tests.clients import scenario
from tests.conftest import JS_DIR
from tests.helpers import running

ROOT = Path(__file__).resolve().parent.parent
# Runs the scenario on one server (URL with the client's scheme, token, table).
Runner = Callable[[str, str, str], dict[str, Any]]


@pytest.fixture(scope="module")
def drivers() -> Path:
    built = subprocess.run(
        [str(ROOT / "tools" / "ensure-clients.sh")], capture_output=True, text=True, timeout=1200
    )
    assert built.returncode == 0, f"building the client drivers failed:\n{built.stderr[-4000:]}"
    return Path(built.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def servers(
    sqld_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PopProcess, SqldServer]]:
    """A POP in front of one sqld, and another sqld the clients talk to directly."""
    workdir = tmp_path_factory.mktemp("clients")
    origin = SqldServer(sqld_binary, workdir / "origin")
    direct = SqldServer(sqld_binary, workdir / "direct")
    with running(origin, direct):
        pop = PopProcess(origin.url, workdir, region="eu", engine="libsql")
        with running(pop):
            yield pop, direct


def _program(argv: list[str], cwd: Path | None = None) -> dict[str, Any]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=cwd)
    assert done.returncode == 0, f"{argv[0]} failed:\n{done.stderr[-3000:]}"
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def _node(node: str) -> Runner:
    def run(url: str, token: str, table: str) -> dict[str, Any]:
        answer = _program([node, str(JS_DIR / "driver.mjs"), "shared", url, token, table], JS_DIR)
        assert answer["ok"], answer
        result: dict[str, Any] = answer["result"]
        return result

    return run


def _python(module: Any) -> Runner:
    def run(url: str, token: str, table: str) -> dict[str, Any]:
        return scenario.run(module.connect(url, auth_token=token, isolation_level=None), table)

    return run


def _binary(path: Path) -> Runner:
    return lambda url, token, table: _program([str(path), url, token, table])


@pytest.fixture(scope="module")
def clients(node_binary: str, drivers: Path) -> dict[str, tuple[str, Runner]]:
    """Each client: the URL scheme it is given, and how to run the scenario with it."""
    return {
        "node-http": ("http", _node(node_binary)),
        "node-ws": ("ws", _node(node_binary)),
        "go-http": ("http", _binary(drivers / "go-client")),
        "go-ws": ("ws", _binary(drivers / "go-client")),
        "rust-http": ("http", _binary(drivers / "rust-client")),
        "python-libsql": ("http", _python(libsql)),
        "python-libsql-experimental": ("http", _python(libsql_experimental)),
    }


def _requests_by_endpoint(pop: PopProcess) -> dict[tuple[str, str], float]:
    import httpx

    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{pop.url}/metrics").text):
        for sample in family.samples:
            if sample.name == "edgepop_requests_total":
                key = (sample.labels["endpoint"], sample.labels["request_type"])
                counts[key] = counts.get(key, 0) + sample.value
    return counts


def _sent(pop: PopProcess, before: dict[tuple[str, str], float]) -> dict[str, list[str]]:
    """What a client sent, as the POP counted it: request types by endpoint."""
    sent: dict[str, set[str]] = {}
    for key, value in _requests_by_endpoint(pop).items():
        if value > before.get(key, 0):
            sent.setdefault(key[0], set()).add(key[1])
    return {endpoint: sorted(types) for endpoint, types in sorted(sent.items())}


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    """The scenario on SQLite itself (the table named as the clients' are)."""
    result = scenario.run(sqlite3.connect(":memory:", isolation_level=None), "shared")
    del result["constraintMessage"]  # each client words its errors its own way
    return result


CLIENTS = [
    "node-http",
    "node-ws",
    "go-http",
    "go-ws",
    "rust-http",
    "python-libsql",
    "python-libsql-experimental",
]


@pytest.mark.parametrize("name", CLIENTS)
def test_every_client_gets_what_sqlite_gives_through_a_pop_as_from_sqld(
    name: str,
    clients: dict[str, tuple[str, Runner]],
    servers: tuple[PopProcess, SqldServer],
    reference: dict[str, Any],
) -> None:
    pop, direct = servers
    scheme, run = clients[name]
    table = f"shared_{name.replace('-', '_')}"
    before = _requests_by_endpoint(pop)
    through_pop = run(pop.url.replace("http", scheme, 1), pop.token, table)
    sent = _sent(pop, before)
    from_sqld = run(direct.url.replace("http", scheme, 1), "unused", table)
    assert through_pop == from_sqld, sent
    result = {k: v for k, v in through_pop.items() if k != "constraintMessage"}
    # The table's name is in no value but the error's text, dropped above.
    assert result == reference
    assert set(sent) == {"websocket"} if scheme == "ws" else "websocket" not in sent, sent
