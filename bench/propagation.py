"""Propagation: from a write through POP A until every other POP returns the row.

For N POPs (default 2, 5, 10) on this machine, each trial writes a fresh row through the
first POP and polls all the others until each returns it; the trial's time is when the
last one did. Two modes in one run:

- ``redis``: pub/sub sync (the write's POP publishes, the others sync at once); the
  interval is set to 1 hour so that it cannot help;
- ``interval``: no Redis, interval sync every ``--interval`` seconds; propagation is then
  bounded by the interval (expect about interval/2 on average, at most the interval).

Run: ``uv run python bench/propagation.py`` (``--quick`` for a short smoke run).
Needs ``tursodb`` (tools/ensure-tursodb.sh) and ``redis-server`` (Debian package).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

from bench.machine import latency_cells, markdown_table, report
from pop.devtools.processes import PopProcess, RedisProcess, TursodbOrigin
from pop.hrana.values import encode_value

REPO = Path(__file__).resolve().parents[1]


def _insert(key: str) -> dict[str, object]:
    stmt = {"sql": "INSERT INTO p (k) VALUES (?)", "args": [encode_value(key)]}
    return {"baton": None, "requests": [{"type": "execute", "stmt": stmt}, {"type": "close"}]}


def _select(key: str) -> dict[str, object]:
    stmt = {"sql": "SELECT 1 FROM p WHERE k = ?", "args": [encode_value(key)]}
    return {"baton": None, "requests": [{"type": "execute", "stmt": stmt}, {"type": "close"}]}


async def _seen_after(client: httpx.AsyncClient, key: str, started: float, give_up: float) -> float:
    body = _select(key)
    while time.perf_counter() - started < give_up:
        answer = (await client.post("/v2/pipeline", json=body)).json()
        if answer["results"][0]["response"]["result"]["rows"]:
            return time.perf_counter() - started
        await asyncio.sleep(0.001)
    raise TimeoutError(f"{key} not seen after {give_up}s")


async def _trials(pops: list[PopProcess], trials: int, give_up: float, pause: float) -> list[float]:
    headers = {"Authorization": f"Bearer {pops[0].token}"}
    clients = [httpx.AsyncClient(base_url=p.url, headers=headers, timeout=30) for p in pops]
    times: list[float] = []
    try:
        for trial in range(trials):
            key = f"k{time.time_ns()}-{trial}"
            started = time.perf_counter()
            written = (await clients[0].post("/v2/pipeline", json=_insert(key))).json()
            assert written["results"][0]["type"] == "ok", written
            seen = await asyncio.gather(
                *(_seen_after(c, key, started, give_up) for c in clients[1:])
            )
            times.append(max(seen))
            # A random pause, so that trials do not fall into step with interval syncs.
            await asyncio.sleep(random.uniform(0.05, pause))
    finally:
        for client in clients:
            await client.aclose()
    return times


def run(counts: list[int], trials: int, interval_trials: int, interval: float) -> str:
    tursodb = (
        subprocess.run(
            ["bash", str(REPO / "tools" / "ensure-tursodb.sh")],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        raise SystemExit("redis-server is needed: tools/ensure-apt.sh redis-server=redis-server")
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="edge-pop-propagation-") as tmp:
        workdir = Path(tmp)
        for count in counts:
            for mode in ("redis", "interval"):
                with ExitStack() as stack:
                    origin = TursodbOrigin(tursodb, workdir / f"{count}-{mode}")
                    origin.start_and_wait()
                    stack.callback(origin.stop)
                    origin.execute("CREATE TABLE p (k TEXT PRIMARY KEY)")
                    env = {"TURSO_SYNC_INTERVAL": str(interval), "LOG_LEVEL": "warning"}
                    if mode == "redis":
                        redis = RedisProcess(workdir, binary=redis_binary)
                        redis.start_and_wait()
                        stack.callback(redis.stop)
                        env = {"REDIS_CONNECTION_STRING": redis.url, "TURSO_SYNC_INTERVAL": "3600"}
                    pops = [
                        PopProcess(
                            origin.url,
                            workdir / f"{count}-{mode}",
                            region=f"r{i}",
                            token="bench",
                            extra_env={**env, "LOG_LEVEL": "warning"},
                        )
                        for i in range(count)
                    ]
                    for pop in pops:
                        pop.start_and_wait()
                        stack.callback(pop.stop)
                    if mode == "redis":
                        time.sleep(1)  # let every subscriber connect
                    n = trials if mode == "redis" else interval_trials
                    pause = interval if mode == "interval" else 0.1
                    times = asyncio.run(_trials(pops, n, interval * 3 + 10, pause))
                    ms = [t * 1000 for t in times]
                    rows.append(
                        [
                            str(count),
                            mode if mode == "redis" else f"interval {interval:g} s",
                            str(n),
                            *latency_cells(ms, (95, 99)),
                        ]
                    )
                    print(" | ".join(rows[-1]), flush=True)
    header = ["POPs", "sync by", "trials", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pops", default="2,5,10", help="comma-separated POP counts")
    parser.add_argument("--trials", type=int, default=100, help="trials per count with Redis")
    parser.add_argument("--interval-trials", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds, interval mode")
    parser.add_argument("--quick", action="store_true", help="2 and 3 POPs, few trials")
    parser.add_argument("--no-record", action="store_true", help="do not write bench/results")
    args = parser.parse_args()
    counts = [2, 3] if args.quick else [int(n) for n in args.pops.split(",")]
    trials, interval_trials = (10, 5) if args.quick else (args.trials, args.interval_trials)
    report(
        "propagation",
        "Propagation: write through one POP until every other POP returns the row",
        run(counts, trials, interval_trials, args.interval),
        "Time is from sending the write to the first POP until the last other POP "
        "returned the row (each polled every ~1 ms over HTTP). All POPs, the origin, Redis "
        "and the pollers share this machine's cores.",
        record=not args.no_record,
    )


if __name__ == "__main__":
    main()
