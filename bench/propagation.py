"""Propagation: from a write through POP A until every other POP returns the row.

For N POPs (default 2, 5, 10) on this machine, each trial writes a fresh row through the
first POP and, from the moment the write is sent, polls all the others until each returns
it; the trial's time is when the last one did. Two modes in one run:

- ``redis``: pub/sub sync (the write's POP publishes, the others sync at once); the
  interval is set to 1 hour so that it cannot help;
- ``interval``: no Redis, interval sync every ``--interval`` seconds; propagation is then
  bounded by the interval (expect about interval/2 on average, at most the interval).

With Redis, each trial is also broken down from the POPs' own log lines (their clock is
this machine's; they carry milliseconds): the write at the origin (the writing POP's
``forwarded to origin``), that POP's catch-up pull before it acknowledges (its ``sync
ok trigger=write``), the time from the origin's acknowledgement until each other POP's
pull starts (publish, Redis, receive), that pull (``sync ok trigger=pubsub``), and from
the last pull's end until the poller saw the row (the first read).

Run: ``uv run python bench/propagation.py`` (``--quick`` for a short smoke run).
``--engine libsql`` runs the POPs on the libsql engine over ``sqld`` instead of the turso
engine over ``tursodb``. Needs that origin and ``redis-server`` (Debian package).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import orjson

from bench.machine import latency_cells, markdown_table, percentile, report
from bench.origins import ENGINES, origin_makers
from pop.devtools.processes import PopProcess, RedisProcess
from pop.hrana.values import encode_value

T = TypeVar("T")


def _insert(key: str) -> dict[str, object]:
    stmt = {"sql": "INSERT INTO p (k) VALUES (?)", "args": [encode_value(key)]}
    return {"baton": None, "requests": [{"type": "execute", "stmt": stmt}, {"type": "close"}]}


def _select(key: str) -> dict[str, object]:
    stmt = {"sql": "SELECT 1 FROM p WHERE k = ?", "args": [encode_value(key)]}
    return {"baton": None, "requests": [{"type": "execute", "stmt": stmt}, {"type": "close"}]}


class _RowPoller:
    """Asks one POP, on one kept-alive HTTP/1.1 connection, whether it returns a row yet.

    A few lines of asyncio rather than httpx: httpx spends ~0.8 ms of CPU on a request,
    and nine pollers asking every millisecond would take the cores the POPs need (they
    all share this machine's). The POP always answers with a ``content-length``.
    """

    def __init__(self, pop: PopProcess) -> None:
        url = httpx.URL(pop.url)
        self._host, self._port, self._token = url.host, url.port, pop.token
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def __aenter__(self) -> _RowPoller:
        self._streams = await asyncio.open_connection(self._host, self._port)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._streams is not None:
            self._streams[1].close()

    def request(self, key: str) -> bytes:
        body = orjson.dumps(_select(key))
        return (
            b"POST /v2/pipeline HTTP/1.1\r\nhost: %s\r\nauthorization: Bearer %s\r\n"
            b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (self._host.encode(), self._token.encode(), len(body), body)
        )

    async def returns_row(self, request: bytes) -> bool:
        assert self._streams is not None, "use as an async context manager"
        reader, writer = self._streams
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if not head.startswith(b"HTTP/1.1 200 ") or length is None:
            raise RuntimeError(f"the POP answered a read with {head!r}")
        answer = orjson.loads(await reader.readexactly(int(length[1])))
        return bool(answer["results"][0]["response"]["result"]["rows"])

    async def seen_after(self, key: str, started: float, give_up: float) -> float:
        """Seconds from ``started`` until the POP returns the row (polled every ~1 ms)."""
        request = self.request(key)
        while time.perf_counter() - started < give_up:
            if await self.returns_row(request):
                return time.perf_counter() - started
            await asyncio.sleep(0.001)
        raise TimeoutError(f"{key} not seen after {give_up}s")


@dataclass
class Trial:
    """One trial's times on this machine's clock (``time.time()``)."""

    sent: float
    acknowledged: float
    seen: float  # by the last of the other POPs


async def _timed(call: Awaitable[T]) -> tuple[T, float]:
    """What ``call`` returns, and when (``time.perf_counter()``)."""
    return await call, time.perf_counter()


async def _trials(pops: list[PopProcess], trials: int, give_up: float, pause: float) -> list[Trial]:
    headers = {"Authorization": f"Bearer {pops[0].token}"}
    times: list[Trial] = []
    async with AsyncExitStack() as stack:
        writer = await stack.enter_async_context(
            httpx.AsyncClient(base_url=pops[0].url, headers=headers, timeout=30)
        )
        pollers = [await stack.enter_async_context(_RowPoller(pop)) for pop in pops[1:]]
        for trial in range(trials):
            key = f"k{time.time_ns()}-{trial}"
            sent, started = time.time(), time.perf_counter()
            write = asyncio.create_task(_timed(writer.post("/v2/pipeline", json=_insert(key))))
            # Polled from the moment the write is sent: the other POPs may have the row
            # before the writer's client hears back.
            seen = await asyncio.gather(
                *(poller.seen_after(key, started, give_up) for poller in pollers)
            )
            answer, answered = await write
            written = answer.json()
            assert written["results"][0]["type"] == "ok", written
            times.append(Trial(sent, sent + answered - started, sent + max(seen)))
            # A random pause, so that trials do not fall into step with interval syncs.
            await asyncio.sleep(random.uniform(0.05, pause))
    return times


_LOG_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+: (?P<event>forwarded to origin"
    r"|sync ok) .*?(?:trigger=(?P<trigger>\w+) .*?)?duration_ms=(?P<ms>[\d.]+)"
)


@dataclass(frozen=True)
class Logged:
    """A timed step from a POP's log: when it ended (``time.time()`` scale) and took."""

    step: str  # "forward", or "sync <trigger>"
    ended: float
    ms: float

    @property
    def started(self) -> float:
        return self.ended - self.ms / 1000


def logged_steps(log: Path) -> list[Logged]:
    steps = []
    for line in log.read_text(errors="replace").splitlines():
        match = _LOG_LINE.match(line)
        if match is None:
            continue
        ended = dt.datetime.strptime(match["time"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
        step = "forward" if match["event"] == "forwarded to origin" else f"sync {match['trigger']}"
        steps.append(Logged(step, ended, float(match["ms"])))
    return steps


# What each breakdown column measures, from one trial's times and its POPs' logged steps.
BREAKDOWN = (
    "origin write ms",
    "writer's pull ms",
    "acknowledged ms",
    "origin ack to pulls ms",
    "pull ms",
    "pull to seen ms",
    "seen ms",
)


def breakdown(trial: Trial, writer: list[Logged], others: list[list[Logged]]) -> list[float]:
    """One trial's times in ms (``BREAKDOWN``), or [] if a step is missing from the logs
    (log times carry milliseconds, so each step is +-1 ms)."""

    def first(steps: list[Logged], step: str, after: float) -> Logged | None:
        return next((s for s in steps if s.step == step and s.ended >= after), None)

    window = trial.sent - 0.002  # the log clock truncates to the millisecond
    forward = first(writer, "forward", window)
    catch_up = first(writer, "sync write", window)
    pulls = [pull for steps in others if (pull := first(steps, "sync pubsub", window))]
    if forward is None or catch_up is None or len(pulls) < len(others):
        return []
    last = max(pulls, key=lambda pull: pull.ended)
    ms = 1000.0
    return [
        forward.ms,
        catch_up.ms,
        (trial.acknowledged - trial.sent) * ms,
        (max(pull.started for pull in pulls) - forward.ended) * ms,
        max(pull.ms for pull in pulls),
        (trial.seen - last.ended) * ms,
        (trial.seen - trial.sent) * ms,
    ]


def breakdown_row(count: int, trials: list[Trial], pops: list[PopProcess]) -> list[str]:
    """The p50 of each step over the trials, and how many trials the logs explained."""
    writer = logged_steps(pops[0].log_path)
    others = [logged_steps(pop.log_path) for pop in pops[1:]]
    rows = [row for trial in trials if (row := breakdown(trial, writer, others))]
    if not rows:
        return [str(count), "0", *("-" for _ in BREAKDOWN)]
    columns = list(zip(*rows, strict=True))
    cells = [f"{statistics.median(column):.1f}" for column in columns]
    cells[-1] += f" (p99 {percentile(list(columns[-1]), 99):.1f})"
    return [str(count), str(len(rows)), *cells]


def run(
    counts: list[int], trials: int, interval_trials: int, interval: float, engine: str
) -> tuple[str, str]:
    make_origin = origin_makers([engine])[engine]
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        raise SystemExit("redis-server is needed: tools/ensure-apt.sh redis-server=redis-server")
    rows: list[list[str]] = []
    explained: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="edge-pop-propagation-") as tmp:
        workdir = Path(tmp)
        for count in counts:
            for mode in ("redis", "interval"):
                with ExitStack() as stack:
                    origin = make_origin(workdir / f"{count}-{mode}")
                    origin.start_and_wait()
                    stack.callback(origin.stop)
                    origin.execute("CREATE TABLE p (k TEXT PRIMARY KEY)")
                    env = {"TURSO_SYNC_INTERVAL": str(interval), "LOG_LEVEL": "warning"}
                    if mode == "redis":
                        redis = RedisProcess(workdir, binary=redis_binary)
                        redis.start_and_wait()
                        stack.callback(redis.stop)
                        env = {
                            "REDIS_CONNECTION_STRING": redis.url,
                            "TURSO_SYNC_INTERVAL": "3600",
                            "LOG_LEVEL": "info",  # the breakdown's timed steps
                        }
                    pops = [
                        PopProcess(
                            origin.url,
                            workdir / f"{count}-{mode}",
                            region=f"r{i}",
                            token="bench",
                            engine=engine,
                            extra_env=env,
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
                    ms = [(t.seen - t.sent) * 1000 for t in times]
                    if mode == "redis":
                        explained.append(breakdown_row(count, times, pops))
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
    return markdown_table(header, rows), markdown_table(["POPs", "trials", *BREAKDOWN], explained)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pops", default="2,5,10", help="comma-separated POP counts")
    parser.add_argument("--trials", type=int, default=100, help="trials per count with Redis")
    parser.add_argument("--interval-trials", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds, interval mode")
    parser.add_argument("--quick", action="store_true", help="2 and 3 POPs, few trials")
    parser.add_argument("--no-record", action="store_true", help="do not write bench/results")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="turso",
        help="the POPs' replica engine, and so the origin: tursodb (turso) or sqld (libsql)",
    )
    args = parser.parse_args()
    counts = [2, 3] if args.quick else [int(n) for n in args.pops.split(",")]
    trials, interval_trials = (10, 5) if args.quick else (args.trials, args.interval_trials)
    table, explained = run(counts, trials, interval_trials, args.interval, args.engine)
    report(
        "propagation",
        "Propagation: write through one POP until every other POP returns the row",
        table,
        "Time is from sending the write to the first POP until the last other POP "
        "returned the row (each polled every ~1 ms over HTTP from the moment the write is "
        "sent, so a POP may show the row before the writer's client hears back). All POPs, "
        "the origin, Redis and the pollers share this machine's cores.\n\n"
        "## Where the time goes (with Redis; p50 of each step over the trials)\n\n"
        + explained
        + "\n\nFrom the POPs' logs (milliseconds, this machine's clock): *origin write*, "
        "the writing POP's call to the origin; *writer's pull*, its catch-up pull before "
        "it acknowledges; *acknowledged*, the write as its client saw it; *origin ack to "
        "pulls*, from the origin's answer until the last other POP's pull began (publish, "
        "Redis, receive; the writer publishes as soon as the origin answers, so these "
        "pulls run beside its own); *pull*, the slowest of those pulls; *pull to seen*, "
        "from its end until the poller saw the row (the first read, up to one 1 ms poll "
        "pause); *seen*, the whole.",
        record=not args.no_record,
        variant="" if args.engine == "turso" else args.engine,
    )


if __name__ == "__main__":
    main()
