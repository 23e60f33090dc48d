"""Read throughput: the HTTP floor, tursodb itself, a POP's local read and a forwarded call.

One run, one seeded table, one ``wrk`` setting for every row, so the rows compare:

(a) bare Starlette on uvicorn answering a fixed Hrana body: the HTTP-stack floor
(b) ``tursodb --sync-server`` answering the point read itself: the origin
(c) a POP answering the point read from its replica
(d) a POP forwarding a statement to the origin (a write that changes nothing, so it pays
    what every forwarded statement pays: the call to the origin plus the replica sync
    that gives read-your-writes)
(e) with ``--delay-ms`` > 0: (b), (c) and (d) again with a delay between them and the
    origin, as a client far from the origin sees them

With ``--per-core`` (each server on one CPU, issue 22), (a)-(c) and instead of (d)-(e):

(f) the Python floor: a bare ASGI app (orjson, stdlib sqlite3) on uvicorn, as the POP runs
(g) the same floor on granian (a Rust HTTP server for ASGI)
(h) the POP's local read on granian (without its uvicorn-only HTTP-layer limits)

Run: ``uv run python bench/read_throughput.py`` (``--quick`` for a 3 s smoke run).
See ``bench/README.md`` for what the numbers mean.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from bench.machine import describe_machine, record_result
from pop import __version__ as pop_version
from pop.devtools.processes import ManagedProcess, PopProcess, TursodbOrigin, free_port

REPO = Path(__file__).resolve().parents[1]
READ_SQL = "SELECT id, v FROM t WHERE id = ?"
FORWARD_SQL = "UPDATE t SET v = v WHERE id = ? AND 0"  # compiles as a write, changes nothing
ID_MARK = "__ID__"  # replaced by a random id in wrk's Lua script
SAMPLE_ID = 42
SERVER_CPU, LOAD_CPU = "0", "1"  # --per-core: the server under test, and wrk
PER_CORE_CONNECTIONS = (1, 16, 64)
PER_CORE_NOTE = (
    f"\nPer core: each server under test pinned to CPU {SERVER_CPU} with `taskset`, "
    f"`wrk -t1` pinned to CPU {LOAD_CPU}; the POP row is the whole POP process (its reader "
    "threads share the one core).\n"
)


# -- what is measured --------------------------------------------------------------------


@dataclass
class Target:
    key: str
    label: str
    url: str  # base URL of the server under test
    body: str  # JSON request body with ID_MARK where the id goes
    token: str | None = None
    pop: PopProcess | None = None  # for reading the POP's own counters around the run


@dataclass
class Measurement:
    target: Target
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    http_errors: int
    pop_counters: dict[str, float] = field(default_factory=dict)
    rps_range: tuple[float, float] | None = None  # lowest and highest over the rounds


def median_run(runs: list[Measurement]) -> Measurement:
    """The round with the median req/s, with the range and every round's errors."""
    ordered = sorted(runs, key=lambda m: m.rps)
    errors = sum(m.http_errors + int(m.pop_counters.get("errors", 0)) for m in runs)
    middle = ordered[len(ordered) // 2]
    counters = middle.pop_counters | ({"errors": 0.0} if middle.pop_counters else {})
    return replace(
        middle,
        http_errors=errors,
        pop_counters=counters,
        rps_range=(ordered[0].rps, ordered[-1].rps),
    )


def pipeline_body(sql: str, *, close: bool) -> str:
    stmt = {"sql": sql, "args": [{"type": "integer", "value": ID_MARK}]}
    requests: list[dict[str, object]] = [{"type": "execute", "stmt": stmt}]
    if close:  # what @libsql/client sends; tursodb's own endpoint refuses "close"
        requests.append({"type": "close"})
    return json.dumps({"baton": None, "requests": requests}, separators=(",", ":"))


# -- wrk ---------------------------------------------------------------------------------

LUA = """
local path, token, template, rows = {path}, {token}, {template}, {rows}
local prepared, n, i = {{}}, 1000, 0
function init(args)
  local headers = {{["Content-Type"] = "application/json"}}
  if token ~= "" then headers["Authorization"] = "Bearer " .. token end
  for k = 1, n do
    local body = (string.gsub(template, "{mark}", tostring(math.random(1, rows))))
    prepared[k] = wrk.format("POST", path, headers, body)
  end
end
function request()
  i = i % n + 1
  return prepared[i]
end
"""


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def wrk_script(target: Target, rows: int, workdir: Path) -> Path:
    path = workdir / f"wrk-{target.key}.lua"
    path.write_text(
        LUA.format(
            path=lua_string("/v2/pipeline"),
            token=lua_string(target.token or ""),
            template=lua_string(target.body),
            rows=rows,
            mark=ID_MARK,
        )
    )
    return path


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk with apt-get ...", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        found = shutil.which("wrk")
    if not found:
        sys.exit("read_throughput: wrk is needed: sudo apt-get install -y wrk")
    return found


_DURATION = re.compile(r"([\d.]+)(us|ms|s)\b")
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"unexpected wrk duration {text!r}")
    return float(match[1]) * _UNIT_MS[match[2]]


def run_wrk(wrk: str, script: Path, url: str, args: argparse.Namespace, seconds: int) -> str:
    argv = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency"]
    if args.per_core:
        argv = ["taskset", "-c", LOAD_CPU, *argv]
    done = subprocess.run(
        [*argv, "-s", str(script), f"{url}/v2/pipeline"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _find(pattern: str, text: str) -> str:
    match = re.search(pattern, text)
    if match is None:
        raise ValueError(f"no {pattern!r} in wrk's output:\n{text}")
    return match[1]


def parse_wrk(output: str) -> tuple[float, float, float, int, int]:
    """requests/s, p50 ms, p99 ms, requests, non-2xx responses + socket errors."""
    rps = float(_find(r"Requests/sec:\s+([\d.]+)", output))
    p50 = _ms(_find(r"\s50%\s+(\S+)", output))
    p99 = _ms(_find(r"\s99%\s+(\S+)", output))
    requests = int(_find(r"(\d+) requests in", output))
    errors = 0
    if found := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(found[1])
    if found := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(n) for n in found.groups())
    return rps, p50, p99, requests, errors


# -- the servers -------------------------------------------------------------------------


def serve_bare(port: int, body_file: Path) -> None:
    """The floor: Starlette on uvicorn, set up as ``pop.server`` sets up the POP."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = body_file.read_bytes()

    async def pipeline(request: Request) -> Response:
        await request.body()
        return Response(body, media_type="application/json")

    async def health(_: Request) -> Response:
        return Response(b"ok")

    app = Starlette(
        routes=[
            Route("/v2/pipeline", pipeline, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)


def python_floor_app(database: Path) -> Any:
    """The Python floor: the least any Python server of this protocol does per request. A
    bare ASGI app, no framework: decode the Hrana body with orjson, run each statement on
    stdlib ``sqlite3`` over the same rows, encode the same answer with orjson. No auth,
    limits, streams, metrics or checks."""
    import sqlite3

    import orjson

    conn = sqlite3.connect(database, check_same_thread=False, isolation_level=None)

    def value(cell: object) -> dict[str, object]:
        if cell is None:
            return {"type": "null"}
        if isinstance(cell, int):
            return {"type": "integer", "value": str(cell)}
        return {"type": "text", "value": cell}

    def execute(stmt: dict[str, Any]) -> dict[str, object]:
        args = [int(a["value"]) if a["type"] == "integer" else a.get("value") for a in stmt["args"]]
        cursor = conn.execute(str(stmt["sql"]), args)
        rows = [[value(cell) for cell in row] for row in cursor]
        result = {
            "cols": [{"name": column[0], "decltype": None} for column in cursor.description],
            "rows": rows,
            "affected_row_count": 0,
            "last_insert_rowid": None,
            "replication_index": None,
            "rows_read": len(rows),
            "rows_written": 0,
            "query_duration_ms": 0.0,
        }
        return {"type": "ok", "response": {"type": "execute", "result": result}}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"] == "/health":
            answer = b"ok"
        else:
            results = [
                execute(request["stmt"])
                if request["type"] == "execute"
                else {"type": "ok", "response": {"type": "close"}}
                for request in orjson.loads(body)["requests"]
            ]
            answer = orjson.dumps({"baton": None, "base_url": None, "results": results})
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    return app


def serve_python_floor(port: int, database: Path) -> None:
    """The Python floor on uvicorn (httptools, uvloop, as the POP runs)."""
    import uvicorn

    uvicorn.run(
        python_floor_app(database),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        http="httptools",
    )


FLOOR_DATABASE_ENV = "EDGE_POP_BENCH_FLOOR_DB"


def python_floor_from_env() -> Any:
    """The Python floor for ``granian --factory`` (its database from the environment)."""
    return python_floor_app(Path(os.environ[FLOOR_DATABASE_ENV]))


def granian_argv(factory: str, port: int) -> list[str]:
    """``granian`` serving an app factory as the POP is served by uvicorn: one process,
    uvloop, HTTP/1.1, one runtime thread."""
    return [
        str(Path(sys.executable).with_name("granian")),
        "--interface",
        "asgi",
        "--factory",
        factory,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--runtime-threads",
        "1",
        "--loop",
        "uvloop",
        "--http",
        "1",
        "--no-ws",
        "--log-level",
        "warning",
    ]


class DelayProxy:
    """A TCP proxy on loopback that holds every chunk ``delay`` seconds in each direction.

    A new connection waits one round trip before its first byte moves (the TCP handshake).
    Bandwidth and TLS are not modelled. Runs its own event loop in a daemon thread.
    """

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port = target_port
        self.delay = delay
        self.port = 0
        self._started = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True).start()
        self._started.wait(10)

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        async with server:
            await server.serve_forever()

    async def _connection(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        await asyncio.sleep(2 * self.delay)
        try:
            origin_r, origin_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            self._pipe(client_r, origin_w), self._pipe(origin_r, client_w), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        delivering = asyncio.create_task(deliver())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + self.delay, data))
        finally:
            queue.put_nowait((loop.time() + self.delay, b""))
            await delivering


def tursodb_binary() -> str:
    if found := os.environ.get("EDGE_POP_TURSODB"):
        return found
    done = subprocess.run(
        [str(REPO / "tools" / "ensure-tursodb.sh")], capture_output=True, text=True, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def seed(origin: TursodbOrigin, rows: int) -> None:
    origin.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    origin.execute(
        "INSERT INTO t (id, v) WITH RECURSIVE n(x) AS "
        f"(SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {int(rows)}) "
        "SELECT x, 'value-' || x FROM n"
    )


def seed_sqlite(path: Path, rows: int) -> None:
    """The seeded rows again, in a plain SQLite file (the Python floor's)."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        conn.executemany(
            "INSERT INTO t (id, v) VALUES (?, ?)", ((x, f"value-{x}") for x in range(1, rows + 1))
        )


def pinned(process: ManagedProcess, args: argparse.Namespace) -> ManagedProcess:
    """With ``--per-core``, the server under test runs on SERVER_CPU only."""
    if args.per_core:
        process.argv = ["taskset", "-c", SERVER_CPU, *process.argv]
    return process


def start_pop(origin_url: str, workdir: Path, region: str, args: argparse.Namespace) -> PopProcess:
    # No interval sync during a run: only the syncs a request causes.
    pop = PopProcess(origin_url, workdir, region=region, extra_env={"TURSO_SYNC_INTERVAL": "3600"})
    pinned(pop, args).start_and_wait()
    return pop


def sample(target: Target) -> bytes:
    """One request with the sample id; fails loudly unless every result is ok."""
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    body = target.body.replace(ID_MARK, str(SAMPLE_ID))
    response = httpx.post(
        f"{target.url}/v2/pipeline",
        content=body,
        headers={**headers, "Content-Type": "application/json"},
        timeout=30,
    )
    response.raise_for_status()
    for result in response.json()["results"]:
        if result["type"] != "ok":
            raise RuntimeError(f"{target.label}: {result}")
    return response.content


def pop_counters(pop: PopProcess) -> dict[str, float]:
    """The POP's request and sync counters, from ``/metrics``."""
    wanted = {
        'request_type="execute",route="local"': "local",
        'request_type="execute",route="origin"': "origin",
        "edgepop_sync_duration_seconds_count": "syncs",
        "edgepop_sync_duration_seconds_sum": "sync_seconds",
    }
    counters = dict.fromkeys(wanted.values(), 0.0) | {"errors": 0.0}
    for line in httpx.get(f"{pop.url}/metrics", timeout=10).text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("edgepop_requests_total") and 'outcome="error"' in name:
            counters["errors"] += float(value)
        for needle, key in wanted.items():
            if needle in name and ('outcome="ok"' in name or "sync_duration" in name):
                counters[key] += float(value)
    return counters


# -- a run -------------------------------------------------------------------------------


def measure(wrk: str, target: Target, args: argparse.Namespace, workdir: Path) -> Measurement:
    sample(target)
    script = wrk_script(target, args.rows, workdir)
    run_wrk(wrk, script, target.url, args, args.warmup)
    before = pop_counters(target.pop) if target.pop else {}
    output = run_wrk(wrk, script, target.url, args, args.duration)
    after = pop_counters(target.pop) if target.pop else {}
    rps, p50, p99, requests, errors = parse_wrk(output)
    delta = {key: after[key] - before[key] for key in after}
    return Measurement(target, rps, p50, p99, requests, errors, delta)


@contextmanager
def servers(args: argparse.Namespace, workdir: Path) -> Iterator[list[Target]]:
    """Start everything, seed the data, and yield the targets in table order."""
    with ExitStack() as stack:
        origin = TursodbOrigin(tursodb_binary(), workdir)
        stack.callback(origin.stop)
        pinned(origin, args).start_and_wait()
        seed(origin, args.rows)

        pop = start_pop(origin.url, workdir, "near", args)
        stack.callback(pop.stop)
        read = pipeline_body(READ_SQL, close=True)
        forward = pipeline_body(FORWARD_SQL, close=True)
        local = Target("c", "POP local read", pop.url, read, pop.token, pop)

        body_file = workdir / "bare-body.json"
        body_file.write_bytes(sample(local))  # the floor answers what the POP answers
        port = free_port()
        argv = [sys.executable, __file__, "--serve-bare", str(port), str(body_file)]
        bare = ManagedProcess("bare ASGI", argv, workdir / "bare.log", os.environ, port)
        stack.callback(bare.stop)
        pinned(bare, args).start_and_wait()  # polls /health

        floor_db = workdir / "floor.db"
        seed_sqlite(floor_db, args.rows)
        floor_port = free_port()
        floor_argv = [sys.executable, __file__, "--serve-floor", str(floor_port), str(floor_db)]
        floor = ManagedProcess(
            "Python floor", floor_argv, workdir / "floor.log", os.environ, floor_port
        )
        stack.callback(floor.stop)
        pinned(floor, args).start_and_wait()  # polls /health

        targets = [
            Target("a", "bare Starlette/uvicorn, fixed body", bare.url, read),
            Target("b", "tursodb /v2/pipeline", origin.url, pipeline_body(READ_SQL, close=False)),
            local,
            Target("d", "POP forward + sync (no-op write)", pop.url, forward, pop.token, pop),
        ]
        if args.per_core:
            # The read path only: the HTTP floor, tursodb, the POP, the Python floor, and
            # the POP and the floor on granian instead of uvicorn.
            floor_env = {**os.environ, FLOOR_DATABASE_ENV: str(floor_db)}
            floor_port = free_port()
            granian_floor = ManagedProcess(
                "Python floor on granian",
                granian_argv("bench.read_throughput:python_floor_from_env", floor_port),
                workdir / "granian-floor.log",
                floor_env,
                floor_port,
            )
            stack.callback(granian_floor.stop)
            pinned(granian_floor, args).start_and_wait()
            granian_pop = PopProcess(
                origin.url,
                workdir,
                region="granian",
                extra_env={"TURSO_SYNC_INTERVAL": "3600"},
            )
            granian_pop.argv = granian_argv("bench.granian_pop:app", granian_pop.port)
            stack.callback(granian_pop.stop)
            pinned(granian_pop, args).start_and_wait()
            targets = [
                *targets[:3],
                Target("f", "Python floor: ASGI, orjson, sqlite3", floor.url, read),
                Target("g", "Python floor on granian", granian_floor.url, read),
                Target(
                    "h",
                    "POP local read on granian (no HTTP-layer limits)",
                    granian_pop.url,
                    read,
                    granian_pop.token,
                    granian_pop,
                ),
            ]
        elif args.delay_ms > 0:
            proxy = DelayProxy(origin.port, args.delay_ms / 1000)
            proxy.start()
            far = start_pop(proxy.url, workdir, "far", args)
            stack.callback(far.stop)
            rtt = f"{2 * args.delay_ms:g} ms RTT"
            targets += [
                Target(
                    "e1",
                    f"tursodb via {rtt} (no POP)",
                    proxy.url,
                    pipeline_body(READ_SQL, close=False),
                ),
                Target("e2", f"POP local read, origin {rtt} away", far.url, read, far.token, far),
                Target("e3", f"POP forward + sync, {rtt}", far.url, forward, far.token, far),
            ]
        yield targets


# -- reporting ---------------------------------------------------------------------------


def machine(wrk: str) -> dict[str, str]:
    import starlette
    import uvicorn

    tursodb = subprocess.run([tursodb_binary(), "--version"], capture_output=True, text=True)
    wrk_version = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    return describe_machine(
        {
            "uvicorn": uvicorn.__version__,
            "starlette": starlette.__version__,
            "tursodb": tursodb.stdout.strip(),
            "wrk": (wrk_version.stdout + wrk_version.stderr).split("Copyright")[0].strip(),
            "edge-pop": pop_version,
            "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        }
    )


def ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}" if base else "-"


def per_core_table(results: list[Measurement], connections: int) -> str:
    by_key = {m.target.key: m for m in results}
    origin, floor = by_key.get("b"), by_key.get("f")

    def p99_vs(m: Measurement, base: Measurement | None) -> str:
        return f"{m.p99_ms / base.p99_ms:.2f}" if base and base.p99_ms else "-"

    lines = [
        f"### {connections} connection{'s' * (connections != 1)}",
        "",
        "| | what | req/s | p50 ms | p99 ms | req/s vs (b) | p99 vs (b) | req/s vs (f) "
        "| p99 vs (f) | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in results:
        lines.append(
            f"| ({m.target.key}) | {m.target.label} | {m.rps:,.0f} | {m.p50_ms:.2f} | "
            f"{m.p99_ms:.2f} | {ratio(m.rps, origin.rps if origin else None)} | "
            f"{p99_vs(m, origin)} | {ratio(m.rps, floor.rps if floor else None)} | "
            f"{p99_vs(m, floor)} | "
            f"{m.http_errors + int(m.pop_counters.get('errors', 0))} |"
        )
    return "\n".join(lines) + "\n"


def report(results: list[Measurement], info: dict[str, str], args: argparse.Namespace) -> str:
    by_key = {m.target.key: m.rps for m in results}
    lines = [
        "| | what | req/s | req/s range | p50 ms | p99 ms | vs (a) | vs (b) | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in results:
        errors = m.http_errors + int(m.pop_counters.get("errors", 0))
        low, high = m.rps_range or (m.rps, m.rps)
        lines.append(
            f"| ({m.target.key}) | {m.target.label} | {m.rps:,.0f} | {low:,.0f}-{high:,.0f} | "
            f"{m.p50_ms:.2f} | "
            f"{m.p99_ms:.2f} | {ratio(m.rps, by_key.get('a'))} | "
            f"{ratio(m.rps, by_key.get('b'))} | {errors} |"
        )
    lines += [
        "",
        "What the POP itself counted during each measured run (from its `/metrics`):",
        "",
        "| | executes local | executes at origin | replica syncs | mean sync ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for m in results:
        c = m.pop_counters
        if c:
            mean = 1000 * c["sync_seconds"] / c["syncs"] if c["syncs"] else 0.0
            lines.append(
                f"| ({m.target.key}) | {c['local']:,.0f} | {c['origin']:,.0f} | "
                f"{c['syncs']:,.0f} | {mean:.1f} |"
            )
    cores = info["cores"]
    lines += [
        "",
        "(a) the HTTP-stack floor: the POP's own answer as fixed bytes. "
        "(b) `tursodb` answers `Connection: close`, so every request to it opens a new TCP "
        "connection (the POP's forwards and syncs too). (d)/(e3) every forwarded statement is "
        "followed by a replica sync before the answer (read-your-writes); concurrent requests "
        "share syncs."
        + (
            f" (e) a proxy in the benchmark delays each chunk {args.delay_ms:g} ms each way "
            "and a new connection by one round trip."
            if args.delay_ms > 0
            else ""
        ),
        "",
        f"`wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency` after a "
        f"{args.warmup} s warm-up, {args.rounds} round(s) of all targets in turn; each row "
        "shows the round with the median req/s (its latencies and POP counters), the range "
        f"over the rounds, and the errors of all rounds. A table of {args.rows:,} rows "
        "(`id INTEGER PRIMARY KEY`), "
        f"each request for a random id. Read: `{READ_SQL}`. Forwarded: `{FORWARD_SQL}`.",
        "",
        f"**wrk, the server under test and (for POP rows) `tursodb` all share the same "
        f"{cores} cores**: the absolute numbers are lower than with a separate load generator; "
        "compare the ratios.",
        "",
        *machine_table(info),
    ]
    return "\n".join(lines) + "\n"


def machine_table(info: dict[str, str]) -> list[str]:
    return ["| machine | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in info.items())]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per target")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument(
        "--rounds", type=int, default=3, help="measure every target this many times, in turn"
    )
    parser.add_argument("--rows", type=int, default=10_000, help="rows in the seeded table")
    parser.add_argument(
        "--delay-ms", type=float, default=20, help="one-way POP-origin delay for (e); 0 skips"
    )
    parser.add_argument(
        "--quick", action="store_true", help="one round of 3 s runs, results not recorded"
    )
    parser.add_argument(
        "--per-core",
        action="store_true",
        help=f"servers pinned to CPU {SERVER_CPU}, wrk -t1 to CPU {LOAD_CPU}; "
        "rows (a)-(c) and (f)-(h) at 1, 16 and 64 connections",
    )
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "BODY_FILE"), help="internal")
    parser.add_argument("--serve-floor", nargs=2, metavar=("PORT", "DATABASE"), help="internal")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.rounds = 3, 1, 1
    if args.per_core:
        args.threads = 1
    return args


def main() -> int:
    args = parse_args()
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), Path(args.serve_bare[1]))
        return 0
    if args.serve_floor:
        serve_python_floor(int(args.serve_floor[0]), Path(args.serve_floor[1]))
        return 0
    wrk = ensure_wrk()
    info = machine(wrk)
    connections = PER_CORE_CONNECTIONS if args.per_core else (args.connections,)
    sections: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="edge-pop-bench-") as tmp,
        servers(args, Path(tmp)) as targets,
    ):
        for count in connections:
            args.connections = count
            runs: dict[str, list[Measurement]] = {}
            for round_ in range(1, args.rounds + 1):
                for target in targets:
                    print(
                        f"-c{count} round {round_}/{args.rounds}: ({target.key}) {target.label}",
                        file=sys.stderr,
                    )
                    runs.setdefault(target.key, []).append(measure(wrk, target, args, Path(tmp)))
            results = [median_run(target_runs) for target_runs in runs.values()]
            sections.append(per_core_table(results, count) if args.per_core else "")
    info["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.per_core:
        text = "\n".join([*sections, PER_CORE_NOTE, *machine_table(info)]) + "\n"
    else:
        text = report(results, info, args)
    print(text)
    if not args.quick:
        record_result(
            "read_per_core" if args.per_core else "read_throughput",
            f"# Read throughput{' per core' * args.per_core}, {info['date']}\n\n{text}",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
