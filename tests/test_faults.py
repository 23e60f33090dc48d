"""Faults injected into real processes, with the invariant checked every time.

A real ``sqld`` origin, a real Redis and two POPs (libsql engine, pub/sub on) take writes
from concurrent clients while faults are injected on a schedule drawn from a fixed seed:
the origin stalled (SIGSTOP/SIGCONT) and killed and restarted, Redis stalled and
restarted, a POP killed (``kill -9``) and restarted, a POP's replica volume full (each
volume is a small tmpfs, filled to the last byte for a while: this needs root), clients
that go away mid-request; ``/ready`` is polled throughout. Then everything is healed and
the invariant checked:

- every acknowledged write is at the origin exactly once; every write the POP said surely
  did not happen (``ORIGIN_UNAVAILABLE``, 503) is not there; one whose outcome is unknown
  (``ORIGIN_OUTCOME_UNKNOWN``, or the client gave up) is there at most once;
- every replica equals the origin (rows and a content hash);
- no ``/ready`` poll went unanswered (nothing deadlocked).

``EDGE_POP_FAULT_SECONDS`` (default 40) sets how long faults are injected and
``EDGE_POP_FAULT_SEED`` (default 20261204) the schedule; ``scripts/faults-long`` runs the
long mode (README "Fault injection").
"""

from __future__ import annotations

import collections
import errno
import functools
import hashlib
import os
import random
import signal
import subprocess
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from pop.devtools.processes import (
    ManagedProcess,
    PopProcess,
    RedisProcess,
    SqldServer,
    loopback_client,
)

SECONDS = float(os.environ.get("EDGE_POP_FAULT_SECONDS", "40"))
SEED = int(os.environ.get("EDGE_POP_FAULT_SEED", "20261204"))
WRITERS = 4
VOLUME_BYTES = 32 * 1024 * 1024  # each POP's replica volume
LEDGER = "SELECT token, pop FROM ledger ORDER BY token, pop"


@dataclass
class Outcomes:
    """What each write's client was told, by token."""

    acknowledged: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)  # surely not applied
    unknown: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, token: str, outcome: str) -> None:
        with self.lock:
            getattr(self, outcome).add(token)


def _write(pop: PopProcess, token: str, give_up_after: float) -> str:
    """One INSERT through ``pop``: acknowledged, refused, or unknown."""
    body = {
        "requests": [
            {
                "type": "execute",
                "stmt": {
                    "sql": "INSERT INTO ledger VALUES (?, ?)",
                    "args": [
                        {"type": "text", "value": token},
                        {"type": "text", "value": pop.region},
                    ],
                },
            }
        ]
    }
    try:
        with loopback_client(pop.url, headers={"Authorization": f"Bearer {pop.token}"}) as http:
            answer = http.post("/v2/pipeline", json=body, timeout=give_up_after)
    except httpx.ConnectError:
        return "refused"  # nothing was sent
    except httpx.HTTPError:
        return "unknown"  # sent, and no answer came back
    if answer.status_code != 200:
        return "refused"  # refused whole before anything ran (503 not serving, budget)
    result = answer.json()["results"][0]
    if result["type"] == "ok":
        return "acknowledged"
    if result["error"]["code"] == "ORIGIN_OUTCOME_UNKNOWN":
        return "unknown"
    return "refused"  # the statement failed: nothing of it applied


class Cluster:
    """The origin, Redis and the POPs, with the faults that can be done to them."""

    def __init__(self, sqld_binary: str, workdir: Path) -> None:
        self.origin = SqldServer(sqld_binary, workdir / "sqld")
        self.redis = RedisProcess(workdir)
        env = {
            "REDIS_CONNECTION_STRING": self.redis.url,
            "ORIGIN_TIMEOUT": "5",
            "SYNC_TIMEOUT": "5",
            "TURSO_SYNC_INTERVAL": "2",
        }
        token = uuid.uuid4().hex
        names = ("pop-a", "pop-b")
        self.volumes = {name: workdir / name / "volume" for name in names}
        self.pops = [
            PopProcess(
                self.origin.url,
                workdir / name,
                region=name,
                engine="libsql",
                token=token,
                extra_env={**env, "DB_FILEPATH": str(self.volumes[name] / "replica.db")},
            )
            for name in names
        ]

    def processes(self) -> list[ManagedProcess]:
        return [self.origin, self.redis, *self.pops]

    def mount_volumes(self) -> None:
        for volume in self.volumes.values():
            volume.mkdir(parents=True)
            mounted = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={VOLUME_BYTES}", "tmpfs", str(volume)],
                capture_output=True,
                text=True,
            )
            assert mounted.returncode == 0, (
                f"the disk-full fault needs root to mount a tmpfs volume: {mounted.stderr}"
            )

    def unmount_volumes(self) -> None:
        for volume in self.volumes.values():
            subprocess.run(["umount", "-l", str(volume)], capture_output=True)


def _pause(process: ManagedProcess, seconds: float) -> None:
    assert process.proc is not None
    process.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        process.proc.send_signal(signal.SIGCONT)


def _restart(process: ManagedProcess, seconds: float, *, hard: bool) -> None:
    assert process.proc is not None
    if hard:
        process.proc.kill()
        process.proc.wait(10)
    else:
        process.stop()
    time.sleep(seconds)
    process.start_and_wait(60)


def _fill(volume: Path, seconds: float) -> None:
    """The volume full to its last byte for ``seconds``, then the room given back."""
    filler = volume / "filler"
    with filler.open("wb") as out:
        size = 0
        for _ in range(100):  # the POP may take some of the room between two calls
            stats = os.statvfs(volume)
            free = stats.f_bavail * stats.f_frsize
            if free == 0:
                break
            try:
                os.posix_fallocate(out.fileno(), size, free)
                size += free
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    try:
        time.sleep(seconds)
    finally:
        filler.unlink()


def _faults(cluster: Cluster) -> dict[str, Callable[[random.Random], None]]:
    def pop_of(rng: random.Random) -> PopProcess:
        return rng.choice(cluster.pops)

    return {
        "origin stalled": lambda rng: _pause(cluster.origin, rng.uniform(1, 4)),
        "origin killed and restarted": lambda rng: _restart(
            cluster.origin, rng.uniform(0.5, 3), hard=True
        ),
        "redis stalled": lambda rng: _pause(cluster.redis, rng.uniform(1, 8)),
        "redis restarted": lambda rng: _restart(cluster.redis, rng.uniform(0.5, 3), hard=False),
        "pop killed mid-work and restarted": lambda rng: _restart(
            pop_of(rng), rng.uniform(0.2, 2), hard=True
        ),
        "pop volume full": lambda rng: _fill(
            cluster.volumes[pop_of(rng).region], rng.uniform(1, 6)
        ),
    }


@pytest.fixture
def cluster(sqld_binary: str, tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(sqld_binary, tmp_path)
    try:
        cluster.mount_volumes()
        cluster.origin.start_and_wait()
        cluster.origin.execute("CREATE TABLE ledger (token TEXT, pop TEXT)")
        for process in cluster.processes()[1:]:
            process.start_and_wait(60)
        yield cluster
    finally:
        for process in reversed(cluster.processes()):
            process.stop()
        cluster.unmount_volumes()


def _rows_at(url: str, token: str | None) -> list[tuple[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = {"requests": [{"type": "execute", "stmt": {"sql": LEDGER}}]}
    deadline = time.monotonic() + 60
    with loopback_client(url, headers=headers) as http:
        # sqld just after a fault may answer 429 "Timed out while opening database
        # connection" for a while: asked again until it answers.
        while (answer := http.post("/v2/pipeline", json=body)).status_code == 429:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.5)
    assert answer.status_code == 200 and "results" in answer.json(), answer.text
    result = answer.json()["results"][0]
    assert result["type"] == "ok", result
    return [(row[0]["value"], row[1]["value"]) for row in result["response"]["result"]["rows"]]


def _digest(rows: list[tuple[str, str]]) -> str:
    return hashlib.sha256("\n".join(f"{t}\t{p}" for t, p in rows).encode()).hexdigest()


def test_no_acknowledged_write_is_lost_or_doubled_and_replicas_equal_the_origin(
    cluster: Cluster,
) -> None:
    rng = random.Random(SEED)
    outcomes = Outcomes()
    stop = threading.Event()
    unanswered_polls: list[str] = []
    cut_polls = [0]  # polls whose connection a POP's kill refused or reset

    def writer(number: int) -> None:
        own = random.Random(SEED * 100 + number)
        while not stop.is_set():
            pop = own.choice(cluster.pops)
            token = f"w{number}-{uuid.UUID(int=own.getrandbits(128)).hex[:16]}"
            # One write in ten is from a client that gives up almost at once.
            give_up = 0.005 if own.random() < 0.1 else 30.0
            outcomes.record(token, _write(pop, token, give_up))

    def poll_ready() -> None:
        while not stop.is_set():
            for pop in cluster.pops:
                try:
                    httpx.get(f"{pop.url}/ready", timeout=10)
                except httpx.TimeoutException as exc:  # a POP that hangs: the failure
                    unanswered_polls.append(f"{pop.region}: {type(exc).__name__}")
                except httpx.TransportError:
                    cut_polls[0] += 1  # refused or reset: that POP was just killed
            time.sleep(0.2)

    crashed: list[str] = []

    def guarded(work: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except Exception:
                crashed.append(traceback.format_exc())
                stop.set()

        return threading.Thread(target=run)

    threads = [guarded(functools.partial(writer, n)) for n in range(WRITERS)]
    threads.append(guarded(poll_ready))
    for thread in threads:
        thread.start()
    injected: collections.Counter[str] = collections.Counter()
    faults = _faults(cluster)
    try:
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            name = rng.choice(sorted(faults))
            faults[name](rng)
            injected[name] += 1
            time.sleep(rng.uniform(0.5, 2))
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)

    assert not crashed, crashed[0]
    # Healed: every process runs; each replica syncs until it equals the origin.
    for process in cluster.processes():
        assert process.running, f"{process.name} is not running:\n{process.log_tail()}"
    at_origin = _rows_at(cluster.origin.url, None)
    counts = collections.Counter(token for token, _ in at_origin)
    lost = [t for t in outcomes.acknowledged if counts[t] != 1]
    doubled = [t for t in outcomes.unknown if counts[t] > 1]
    applied_anyway = [t for t in outcomes.refused if counts[t]]
    strangers = [t for t in counts if t not in outcomes.acknowledged | outcomes.unknown]
    print(
        f"\nfault suite, seed {SEED}, {SECONDS:g} s: faults {dict(injected)}; writes "
        f"acknowledged {len(outcomes.acknowledged)}, unknown {len(outcomes.unknown)} "
        f"({sum(counts[t] for t in outcomes.unknown)} applied), refused "
        f"{len(outcomes.refused)}; origin rows {len(at_origin)}; /ready polls cut by a "
        f"kill {cut_polls[0]}, unanswered {len(unanswered_polls)}"
    )
    assert not lost, f"acknowledged writes not at the origin exactly once: {lost[:5]}"
    assert not doubled, f"writes applied twice: {doubled[:5]}"
    assert not applied_anyway, f"writes said to be refused but applied: {applied_anyway[:5]}"
    assert not strangers, f"rows no client wrote: {strangers[:5]}"
    assert outcomes.acknowledged, "no write was acknowledged at all"
    assert not unanswered_polls, f"/ready went unanswered: {unanswered_polls[:5]}"
    for pop in cluster.pops:
        deadline = time.monotonic() + 60
        while True:
            with loopback_client(pop.url, headers={"Authorization": f"Bearer {pop.token}"}) as http:
                http.post("/sync", timeout=30)
            at_pop = _rows_at(pop.url, pop.token)
            if at_pop == at_origin:
                break
            assert time.monotonic() < deadline, (
                f"{pop.region} differs from the origin: {len(at_pop)} rows "
                f"({_digest(at_pop)[:12]}) vs {len(at_origin)} ({_digest(at_origin)[:12]})"
                f"\n{pop.log_tail()}"
            )
            time.sleep(0.5)


def test_a_full_replica_volume_stops_syncs_not_service_and_says_why(
    sqld_binary: str, tmp_path: Path
) -> None:
    """The volume full: writes still go through and reads are still served (from the
    replica as it stands), a sync fails saying the volume is full; with room again the
    replica catches up and equals the origin."""
    cluster = Cluster(sqld_binary, tmp_path)
    pop = cluster.pops[0]
    volume = cluster.volumes[pop.region]
    try:
        cluster.mount_volumes()
        cluster.origin.start_and_wait()
        cluster.origin.execute("CREATE TABLE ledger (token TEXT, pop TEXT)")
        cluster.redis.start_and_wait()
        pop.start_and_wait(60)
        filled = threading.Thread(target=_fill, args=(volume, 6.0))
        filled.start()
        time.sleep(0.5)
        with loopback_client(pop.url, headers={"Authorization": f"Bearer {pop.token}"}) as http:
            assert _write(pop, "while-full", give_up_after=30) == "acknowledged"
            synced = http.post("/sync", timeout=30)
            assert synced.status_code == 502, synced.text
            assert "volume" in synced.json()["error"] and "full" in synced.json()["error"]
            assert _rows_at(pop.url, pop.token) is not None  # reads still answered
            filled.join()
            deadline = time.monotonic() + 30
            while http.post("/sync", timeout=30).status_code != 200:
                assert time.monotonic() < deadline, pop.log_tail()
                time.sleep(0.5)
        assert _rows_at(pop.url, pop.token) == _rows_at(cluster.origin.url, None)
        assert ("while-full", pop.region) in _rows_at(pop.url, pop.token)
    finally:
        for process in reversed(cluster.processes()):
            process.stop()
        cluster.unmount_volumes()
