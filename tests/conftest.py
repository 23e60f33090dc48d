"""Fixtures starting real components: a ``tursodb`` origin, POP processes, Node clients.

Binaries come from the tool cache (``tools/ensure-*.sh``); a fixture fetches what is
missing instead of skipping, so a test can only pass by running against the real thing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pop.devtools.processes import SQLD_CANDIDATES, PopProcess, SqldServer, TursodbOrigin, find_sqld
from tests.helpers import Target

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "tests" / "js"

SCHEMA = [
    "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)",
    "CREATE TABLE vals (i INTEGER, f REAL, t TEXT, b BLOB, n)",
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE, qty INTEGER CHECK (qty >= 0))",
    "INSERT INTO kv (k, v) VALUES ('rt', 'read-tx')",
    "INSERT INTO items (name, qty) VALUES ('apple', 3), ('pear', 5)",
]


def _ensure(script: str, env_var: str) -> str:
    if os.environ.get(env_var):
        return os.environ[env_var]
    out = subprocess.run(
        ["bash", str(ROOT / "tools" / script)], check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def tursodb_binary() -> str:
    return _ensure("ensure-tursodb.sh", "EDGE_POP_TURSODB")


@pytest.fixture(scope="session")
def helm_binary() -> str:
    return _ensure("ensure-helm.sh", "EDGE_POP_HELM")


@pytest.fixture(scope="session")
def pop_image() -> str:
    """The edge-pop image, built from the Dockerfile by tools/image/build.sh (cached layers)."""
    built = subprocess.run(
        [str(ROOT / "tools" / "image" / "build.sh")],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert built.returncode == 0, f"image build failed:\n{built.stderr[-4000:]}"
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def sqld_binary() -> str:
    binary = find_sqld()
    if binary is None:
        where = ", ".join(str(c) for c in SQLD_CANDIDATES)
        pytest.skip(f"sqld not found: set EDGE_POP_SQLD (looked in {where})")
    return binary


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    assert found, "prometheus is missing: scripts/test installs Debian's prometheus package"
    return found


@pytest.fixture(scope="module")
def sqld(sqld_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqldServer]:
    server = SqldServer(sqld_binary, tmp_path_factory.mktemp("sqld"))
    server.start_and_wait()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def node_binary() -> str:
    """Node.js, with ``tests/js``'s packages (the real ``@libsql/client``) installed."""
    node = shutil.which("node")
    assert node, "Node.js is required for the @libsql/client tests (see README)"
    if not (JS_DIR / "node_modules" / "@libsql" / "client").exists():
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True)
    return node


@pytest.fixture(scope="session")
def node_client(node_binary: str) -> Callable[..., Any]:
    """Run a scenario of ``tests/js/driver.mjs`` with the real ``@libsql/client``."""
    node = node_binary

    def run(scenario: str, pop: PopProcess | Target, arg: str = "", *, scheme: str = "http") -> Any:
        """``scheme="ws"``: Hrana over WebSocket; ``"libsql"``: a ``libsql://…?tls=0`` URL,
        as a Turso user writes it but for TLS (on Node.js the client speaks HTTP for it)."""
        url = pop.url.replace("http://", f"{scheme}://", 1)
        if scheme == "libsql":
            url += "?tls=0"
        done = subprocess.run(
            [node, str(JS_DIR / "driver.mjs"), scenario, url, pop.token, arg],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=JS_DIR,
        )
        assert done.returncode == 0, f"node failed: {done.stderr}"
        answer = json.loads(done.stdout)
        assert answer["ok"], f"scenario {scenario} failed: {answer['error']}\n{answer.get('stack')}"
        return answer["result"]

    return run


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is required: run tools/ensure-apt.sh redis-server=redis-server"
    return binary


@pytest.fixture(scope="module")
def origin(
    tursodb_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TursodbOrigin]:
    workdir = tmp_path_factory.mktemp("origin")
    server = TursodbOrigin(tursodb_binary, workdir)
    server.start_and_wait()
    try:
        for sql in SCHEMA:
            server.execute(sql)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pop_factory(
    origin: TursodbOrigin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., PopProcess]]:
    started: list[PopProcess] = []

    def start(region: str = "eu-west", **kwargs: Any) -> PopProcess:
        workdir = tmp_path_factory.mktemp(f"pop-{region}")
        pop = PopProcess(origin.url, workdir, region=region, **kwargs)
        started.append(pop)
        pop.start_and_wait()
        return pop

    yield start
    for pop in started:
        pop.stop()


@pytest.fixture(scope="module")
def pop(pop_factory: Callable[..., PopProcess]) -> PopProcess:
    return pop_factory("eu-west")


@pytest.fixture()
def client(pop: PopProcess) -> Iterator[httpx.Client]:
    with pop.client() as http:
        yield http
