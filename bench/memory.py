"""Resident memory of one POP: idle, and under the probes that once made it balloon.

Each probe runs against a fresh ``edge-pop serve`` process (real ``tursodb`` origin), and
the POP's RSS (``/proc/PID/status``) is read before, at its peak while the probe runs
(sampled every 20 ms), and after. The probes are those of issue 8:

- 30 distinct SQL texts of 1.5 MB each (just under ``MAX_SQL_BYTES``);
- a 200 MB result asked for on ``/v2/pipeline``, ``/v3/cursor`` and legacy ``POST /``
  (refused past ``MAX_RESULT_BYTES``);
- 1,000 idle Hrana streams (batons kept, never closed);
- a read load of 8 concurrent clients for a few seconds.

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
from pop.devtools.processes import PopProcess, TursodbOrigin
from tests.conftest import _ensure

MB = 1024 * 1024
BIG_RESULT = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 400000) "
    "SELECT x, printf('%0500d', x) FROM c"
)


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


def read_load(http: httpx.Client) -> None:
    deadline = time.monotonic() + 5

    def client() -> None:
        with httpx.Client(base_url=http.base_url, headers=http.headers) as own:
            while time.monotonic() < deadline:
                own.post(
                    "/v2/pipeline",
                    json={"baton": None, "requests": [execute("SELECT * FROM t WHERE id = 7")]},
                )

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


PROBES: dict[str, Callable[[httpx.Client], None]] = {
    "30 distinct 1.5 MB SQL texts": distinct_sql_texts,
    "200 MB result on /v2, /v3/cursor, /": big_results,
    "1,000 idle streams": idle_streams,
    "read load, 8 clients, 5 s": read_load,
}


def measure(origin: TursodbOrigin, workdir: Path, probe: str) -> Reading:
    pop = PopProcess(origin.url, workdir, region=f"mem{len(list(workdir.iterdir()))}")
    pop.start_and_wait()
    try:
        with pop.client() as http:
            http.post("/v2/pipeline", json={"baton": None, "requests": [execute("SELECT 1")]})
            time.sleep(0.5)
            before = rss(pop)
            with sampling(pop) as samples:
                PROBES[probe](http)
            time.sleep(1.0)
            return Reading(probe, before, max(samples), rss(pop))
    finally:
        pop.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    info = describe_machine()
    with tempfile.TemporaryDirectory(prefix="edge-pop-mem-") as tmp:
        workdir = Path(tmp)
        origin = TursodbOrigin(_ensure("ensure-tursodb.sh", "EDGE_POP_TURSODB"), workdir)
        origin.start_and_wait()
        try:
            origin.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            origin.execute("INSERT INTO t (v) VALUES ('seven')")
            readings = [measure(origin, workdir, probe) for probe in PROBES]
        finally:
            origin.stop()
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
