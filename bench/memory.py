"""Resident memory of one POP: idle, and under the probes that once made it balloon.

Each probe runs against a fresh ``edge-pop serve`` process of each engine (libsql over a
real ``sqld``, turso over a real ``tursodb``), and the POP's RSS (``/proc/PID/status``) is
read before, at its peak while the probe runs (sampled every 20 ms), and after. The
probes are those of issue 8 and of issue 21, item 4:

- 30 distinct SQL texts of 1.5 MB each (just under ``MAX_SQL_BYTES``);
- a 200 MB result asked for on ``/v2/pipeline``, ``/v3/cursor`` and legacy ``POST /``
  (refused past ``MAX_RESULT_BYTES``);
- 1,000 idle Hrana streams (batons kept, never closed), and 1,000 opened, closed, and
  left a minute (its "after" is read then);
- a read load of 8 concurrent clients for a few seconds;
- 275 distinct results of one 5 MB blob each (the largest value sqld makes: the issue's
  7 MB is ``SQLITE_TOOBIG`` there), from one client, and 100 each from four at once;
- eight concurrent requests for a 100 MB blob, and eight for a 12 MB result (refused).

Run: ``uv run python -m bench.memory``; results go to ``bench/results/memory-DATE.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.machine import describe_machine, record_result
from pop.devtools.processes import HranaServer, PopProcess, SqldServer, TursodbOrigin, find_sqld
from tests.conftest import _ensure

MB = 1024 * 1024
BIG_RESULT = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 400000) "
    "SELECT x, printf('%0500d', x) FROM c"
)
TWELVE_MB = "SELECT zeroblob(4000000) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3) AS r{n}"


@dataclass
class Reading:
    probe: str
    before: int
    peak: int
    after: int


def rss(pop: PopProcess) -> int:
    assert pop.proc is not None
    for line in Path(f"/proc/{pop.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


@contextmanager
def sampling(pop: PopProcess) -> Iterator[list[int]]:
    """Sample RSS every 20 ms while the body runs; the list holds the samples."""
    samples = [rss(pop)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            samples.append(rss(pop))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()
        samples.append(rss(pop))


def execute(sql: str) -> dict[str, object]:
    return {"type": "execute", "stmt": {"sql": sql}}


def post(http: httpx.Client, sql: str) -> dict[str, object]:
    """One statement on a stream of its own (closed: sqld runs out of open ones)."""
    requests = [execute(sql), {"type": "close"}]
    answer = http.post("/v2/pipeline", json={"baton": None, "requests": requests})
    answer.raise_for_status()
    result: dict[str, object] = answer.json()["results"][0]
    return result


def concurrently(
    http: httpx.Client, clients: int, work: Callable[[httpx.Client, int], None]
) -> None:
    def client(index: int) -> None:
        with httpx.Client(base_url=http.base_url, headers=http.headers, timeout=120) as own:
            work(own, index)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def distinct_sql_texts(http: httpx.Client) -> None:
    for n in range(30):
        text = f"SELECT {n}, '" + "x" * (3 * MB // 2 - 64) + "'"
        http.post("/v2/pipeline", json={"baton": None, "requests": [execute(text)]})


def big_results(http: httpx.Client) -> None:
    http.post("/v2/pipeline", json={"baton": None, "requests": [execute(BIG_RESULT)]})
    http.post(
        "/v3/cursor", json={"baton": None, "batch": {"steps": [{"stmt": {"sql": BIG_RESULT}}]}}
    )
    http.post("/", json={"statements": [BIG_RESULT]})


def idle_streams(http: httpx.Client) -> None:
    for _ in range(1000):
        http.post("/v2/pipeline", json={"baton": None, "requests": [execute("SELECT 1")]})


def streams_closed(http: httpx.Client) -> None:
    """1,000 streams opened, then closed, then a minute of quiet: what stays after."""
    batons = []
    for _ in range(1000):
        answer = http.post("/v2/pipeline", json={"baton": None, "requests": [execute("SELECT 1")]})
        batons.append(answer.json()["baton"])
    for baton in batons:
        http.post("/v2/pipeline", json={"baton": baton, "requests": [{"type": "close"}]})
    time.sleep(60)


def read_load(http: httpx.Client) -> None:
    deadline = time.monotonic() + 5

    def reads(own: httpx.Client, _: int) -> None:
        while time.monotonic() < deadline:
            own.post(
                "/v2/pipeline",
                json={"baton": None, "requests": [execute("SELECT * FROM t WHERE id = 7")]},
            )

    concurrently(http, 8, reads)


def distinct_blobs(clients: int, each: int) -> Callable[[httpx.Client], None]:
    def probe(http: httpx.Client) -> None:
        def blobs(own: httpx.Client, index: int) -> None:
            for n in range(each):
                result = post(own, f"SELECT zeroblob(5000000) AS e{index}_{n}")
                assert result["type"] == "ok", result

        concurrently(http, clients, blobs)

    return probe


def refused(sql: str) -> Callable[[httpx.Client], None]:
    def probe(http: httpx.Client) -> None:
        def ask(own: httpx.Client, index: int) -> None:
            result = post(own, sql.format(n=index))
            assert result["type"] == "error", result

        concurrently(http, 8, ask)

    return probe


PROBES: dict[str, Callable[[httpx.Client], None]] = {
    "30 distinct 1.5 MB SQL texts": distinct_sql_texts,
    "200 MB result on /v2, /v3/cursor, /": big_results,
    "1,000 idle streams": idle_streams,
    "1,000 streams closed, a minute later": streams_closed,
    "read load, 8 clients, 5 s": read_load,
    "275 distinct 5 MB results": distinct_blobs(1, 275),
    "4 clients x 100 distinct 5 MB results": distinct_blobs(4, 100),
    "8 concurrent 100 MB blobs (refused)": refused("SELECT zeroblob(100000000) AS r{n}"),
    "8 concurrent 12 MB results (refused)": refused(TWELVE_MB),
}


def measure(origin: HranaServer, engine: str, workdir: Path, probe: str) -> Reading:
    pop = PopProcess(
        origin.url, workdir, region=f"mem{len(list(workdir.iterdir()))}", engine=engine
    )
    pop.start_and_wait()
    try:
        with pop.client() as http:
            http.timeout = httpx.Timeout(120)
            http.post("/v2/pipeline", json={"baton": None, "requests": [execute("SELECT 1")]})
            time.sleep(0.5)
            before = rss(pop)
            with sampling(pop) as samples:
                PROBES[probe](http)
            time.sleep(1.0)
            return Reading(f"{engine}: {probe}", before, max(samples), rss(pop))
    finally:
        pop.stop()


@contextmanager
def origin_for(engine: str, workdir: Path) -> Iterator[HranaServer]:
    """The origin each engine replicates: sqld for libsql, tursodb for turso."""
    origin: HranaServer
    if engine == "libsql":
        sqld = find_sqld()
        if sqld is None:
            raise SystemExit("sqld not found (DESIGN.md section 5; or set EDGE_POP_SQLD)")
        origin = SqldServer(sqld, workdir)
    else:
        origin = TursodbOrigin(_ensure("ensure-tursodb.sh", "EDGE_POP_TURSODB"), workdir)
    origin.start_and_wait()
    try:
        origin.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        origin.execute("INSERT INTO t (v) VALUES ('seven')")
        yield origin
    finally:
        origin.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-record", action="store_true", help="print only")
    parser.add_argument("--engine", choices=["libsql", "turso"], action="append")
    args = parser.parse_args()
    info = describe_machine()
    readings: list[Reading] = []
    for engine in args.engine or ["libsql", "turso"]:
        with tempfile.TemporaryDirectory(prefix="edge-pop-mem-") as tmp:
            workdir = Path(tmp)
            with origin_for(engine, workdir) as origin:
                for probe in PROBES:
                    readings.append(measure(origin, engine, workdir, probe))
                    print(readings[-1], flush=True)
    lines = [
        "| probe | RSS before MB | peak MB | after MB |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {r.probe} | {r.before / MB:.0f} | {r.peak / MB:.0f} | {r.after / MB:.0f} |"
            for r in readings
        ),
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in info.items()),
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        record_result(
            "memory", f"# POP memory, {info['date']}\n\n`uv run python -m bench.memory`\n\n{text}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
