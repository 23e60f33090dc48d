"""Probes and a quick read while a flood of idle connections and runaway reads go on.

Issue 21's bound: under a 1,000-connection idle flood and 8 concurrent runaway reads,
``/health`` answers 200 and an authorised ``SELECT 1`` answers within 1 s. One POP
(``edge-pop serve`` with its default limits, real ``tursodb`` origin) is measured twice
in one run: quiet, then under the flood (``--idle`` TCP connections that send nothing,
re-opened as the POP closes them, and ``--runaways`` clients each running an endless
recursive query again as soon as the last one is interrupted). Each sample is a new
connection: the worst case under a flood, as it must make room.

Run: ``uv run python -m bench.flood``; results go to ``bench/results/flood-DATE.md``.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.machine import latency_cells, markdown_table, report
from pop.devtools.processes import PopProcess, TursodbOrigin
from tests.conftest import _ensure
from tests.helpers import ENDLESS, metric_at


def _pipeline(sql: str) -> dict[str, object]:
    return {"baton": None, "requests": [{"type": "execute", "stmt": {"sql": sql}}]}


@contextmanager
def idle_flood(pop: PopProcess, count: int) -> Iterator[list[int]]:
    """``count`` connections that never send anything, each re-opened once the POP closes
    it; yields a one-item list counting the re-openings."""
    stop = threading.Event()
    reopened = [0]
    sockets = [socket.create_connection(("127.0.0.1", pop.port), 5) for _ in range(count)]

    def keep_open() -> None:
        while not stop.is_set():
            closed, _, _ = select.select(sockets, [], [], 0.05)
            for conn in closed:
                if conn.recv(1024):
                    continue  # an answer (a 503 or 408): it closes next
                conn.close()
                sockets[sockets.index(conn)] = socket.create_connection(("127.0.0.1", pop.port), 5)
                reopened[0] += 1

    thread = threading.Thread(target=keep_open, daemon=True)
    thread.start()
    try:
        yield reopened
    finally:
        stop.set()
        thread.join()
        for conn in sockets:
            conn.close()


@contextmanager
def runaway_reads(pop: PopProcess, count: int) -> Iterator[list[int]]:
    """``count`` clients each running ``ENDLESS`` again as soon as it is interrupted;
    yields a one-item list counting the runaways answered."""
    stop = threading.Event()
    answered = [0]

    def run() -> None:
        with pop.client() as http:
            while not stop.is_set():
                http.post("/v2/pipeline", json=_pipeline(ENDLESS), timeout=60)
                answered[0] += 1

    threads = [threading.Thread(target=run, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield answered
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def sample(pop: PopProcess, samples: int) -> dict[str, tuple[list[float], int]]:
    """Latencies (ms) and failures of ``/health`` and ``SELECT 1``, each on a new connection."""
    out: dict[str, tuple[list[float], int]] = {}
    health: list[float] = []
    select_one: list[float] = []
    failed = {"health": 0, "select": 0}
    headers = {"Authorization": f"Bearer {pop.token}"}
    # No keep-alive: every request opens a connection, without a new client's set-up cost.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=pop.url, headers=headers, limits=fresh, timeout=30) as http:
        for _ in range(samples):
            started = time.perf_counter()
            answer = http.get("/health")
            health.append((time.perf_counter() - started) * 1000)
            failed["health"] += answer.status_code != 200
            started = time.perf_counter()
            answer = http.post("/v2/pipeline", json=_pipeline("SELECT 1"))
            select_one.append((time.perf_counter() - started) * 1000)
            ok = answer.status_code == 200 and answer.json()["results"][0]["type"] == "ok"
            failed["select"] += not ok
            time.sleep(0.1)
    out["GET /health"] = (health, failed["health"])
    out["SELECT 1 (authorised)"] = (select_one, failed["select"])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=1000, help="idle connections (1000)")
    parser.add_argument("--runaways", type=int, default=8, help="runaway reads at once (8)")
    parser.add_argument("--samples", type=int, default=50, help="samples per probe (50)")
    parser.add_argument("--no-record", action="store_true", help="print only")
    args = parser.parse_args()
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="edge-pop-flood-") as tmp:
        workdir = Path(tmp)
        origin = TursodbOrigin(_ensure("ensure-tursodb.sh", "EDGE_POP_TURSODB"), workdir)
        origin.start_and_wait()
        (workdir / "pop").mkdir()
        pop = PopProcess(origin.url, workdir / "pop", region="flood")
        pop.start_and_wait()
        try:
            rows += _rows("quiet", sample(pop, args.samples))
            with idle_flood(pop, args.idle) as reopened, runaway_reads(pop, args.runaways) as ran:
                time.sleep(2)  # every runaway running, and turned slow
                flooded = sample(pop, args.samples)
                condition = f"{args.idle:,} idle connections + {args.runaways} runaway reads"
                rows += _rows(condition, flooded)
            shed = metric_at(pop.url, "edgepop_connections_shed_total")
        finally:
            pop.stop()
            origin.stop()
    table = markdown_table(
        ["condition", "probe", "samples", "p50 ms", "p99 ms", "max ms", "failed"], rows
    )
    note = (
        f"One POP with its default limits (`MAX_CONNECTIONS` 1000, `READER_THREADS` 4, "
        f"`SLOW_READER_THREADS` 8, `STATEMENT_TIMEOUT` 10 s). Under the flood the idle "
        f"connections were re-opened {reopened[0]:,} times as the POP closed them to make "
        f"room ({shed:,.0f} connections shed in all) and the runaway clients had "
        f"{ran[0]:,} reads interrupted. Each sample opens a new connection (at the limit it "
        "makes room by closing an idle one, which the flood then re-opens: the churn above); "
        "samples 100 ms apart. Everything shares this machine's cores."
    )
    report("flood", "Probes and a quick read under a flood", table, note, record=not args.no_record)
    return 0


def _rows(condition: str, measured: dict[str, tuple[list[float], int]]) -> list[list[str]]:
    return [
        [condition, probe, str(len(ms)), *latency_cells(ms, (99,)), str(failed)]
        for probe, (ms, failed) in measured.items()
    ]


if __name__ == "__main__":
    sys.exit(main())
