"""Forwarded-write latency: read-your-writes by a blind sync vs by the write's position.

One ``sqld`` origin and two POPs on the ``libsql`` engine, the same in all but
``READ_YOUR_WRITES``: ``sync`` (after each forwarded write, wait for a whole new sync) and
``position`` (wait until the replica holds the write's ``replication_index``; a sync
already under way or done may have brought it). Each round sends a burst of inserts from
``W`` concurrent writers to one POP, then the same to the other, so both see the same
machine at the same time. Latency is from sending the insert to its answer: the answer
comes once the writer's POP can read the row. An insert the POP answers with an error is
counted, by code, not fatal: under 16 writers ``sqld`` itself (0.24.33) now and then
answers ``SQLITE_BUSY`` or stalls for seconds while replicas pull (reproduced with no POP
in between; libSQL's checkpoint starvation, tursodatabase/libsql#1955), and the POP
passes on what its origin answers.

Run: ``uv run python -m bench.forwarded_write`` (``--quick`` for a short smoke run).
Needs ``sqld`` ($EDGE_POP_SQLD or ../shared/tools/sqld/sqld).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.machine import latency_cells, markdown_table, report
from pop.devtools.processes import PopProcess, SqldServer, find_sqld
from pop.hrana.values import encode_value

MODES = ("sync", "position")


# Each insert's latency (seconds) and, if it failed, the error code the POP answered.
Outcome = tuple[float, str | None]


async def _writer(client: httpx.AsyncClient, name: str, writes: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for i in range(writes):
        stmt = {"sql": "INSERT INTO w (k) VALUES (?)", "args": [encode_value(f"{name}-{i}")]}
        # Closed in the same call, as @libsql/client does: sqld keeps a connection for
        # every stream left open (for 10 s), and refuses more (HTTP 429) past ~127.
        execute = {"type": "execute", "stmt": stmt}
        body = {"baton": None, "requests": [execute, {"type": "close"}]}
        started = time.perf_counter()
        answer = (await client.post("/v2/pipeline", json=body)).json()
        result = answer["results"][0]
        failed = None if result["type"] == "ok" else str(result["error"].get("code"))
        outcomes.append((time.perf_counter() - started, failed))
    return outcomes


async def _burst(pop: PopProcess, tag: str, writers: int, writes: int) -> list[Outcome]:
    headers = {"Authorization": f"Bearer {pop.token}"}
    async with httpx.AsyncClient(base_url=pop.url, headers=headers, timeout=60) as client:
        done = await asyncio.gather(
            *(_writer(client, f"{tag}-{n}", writes) for n in range(writers))
        )
    return [outcome for outcomes in done for outcome in outcomes]


def _write_syncs(pop: PopProcess) -> float:
    total = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{pop.url}/metrics").text):
        for sample in family.samples:
            if sample.name == "edgepop_syncs_total" and sample.labels["trigger"] == "write":
                total += sample.value
    return total


def run(writer_counts: list[int], rounds: int, writes: int) -> str:
    sqld_binary = find_sqld()
    if sqld_binary is None:
        raise SystemExit("sqld is needed: set EDGE_POP_SQLD")
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="edge-pop-fwrite-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        origin = SqldServer(sqld_binary, workdir / "sqld")
        origin.start_and_wait()
        stack.callback(origin.stop)
        origin.execute("CREATE TABLE w (k TEXT PRIMARY KEY)")
        pops = {}
        for mode in MODES:
            pop = PopProcess(
                origin.url,
                workdir / mode,
                region=mode,
                engine="libsql",
                extra_env={
                    "READ_YOUR_WRITES": mode,
                    "TURSO_SYNC_INTERVAL": "3600",
                    "LOG_LEVEL": "warning",
                },
            )
            pop.start_and_wait()
            stack.callback(pop.stop)
            pops[mode] = pop
        for writers in writer_counts:
            outcomes: dict[str, list[Outcome]] = {mode: [] for mode in MODES}
            syncs_before = {mode: _write_syncs(pops[mode]) for mode in MODES}
            for round_no in range(rounds):
                for mode in MODES if round_no % 2 == 0 else reversed(MODES):
                    tag = f"{mode}-{writers}-{round_no}"
                    outcomes[mode] += asyncio.run(_burst(pops[mode], tag, writers, writes))
            for mode in MODES:
                ms = [seconds * 1000 for seconds, _ in outcomes[mode]]
                failed = Counter(code for _, code in outcomes[mode] if code is not None)
                syncs = _write_syncs(pops[mode]) - syncs_before[mode]
                rows.append(
                    [
                        mode,
                        str(writers),
                        str(len(ms)),
                        *latency_cells(ms, (99,)),
                        f"{syncs / len(ms):.2f}",
                        ", ".join(f"{n} {code}" for code, n in sorted(failed.items())) or "0",
                    ]
                )
                print(" | ".join(rows[-1]), flush=True)
    header = [
        "read-your-writes",
        "writers",
        "writes",
        "p50 ms",
        "p99 ms",
        "max ms",
        "syncs/write",
        "failed",
    ]
    return markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--writers", default="1,4,16", help="comma-separated writer counts")
    parser.add_argument("--rounds", type=int, default=10, help="bursts per mode and count")
    parser.add_argument("--writes", type=int, default=20, help="inserts per writer per burst")
    parser.add_argument("--quick", action="store_true", help="1 and 4 writers, few writes")
    parser.add_argument("--no-record", action="store_true", help="do not write bench/results")
    args = parser.parse_args()
    counts = [1, 4] if args.quick else [int(n) for n in args.writers.split(",")]
    rounds, writes = (2, 5) if args.quick else (args.rounds, args.writes)
    report(
        "forwarded_write",
        "Forwarded-write latency: blind sync vs the write's position",
        run(counts, rounds, writes),
        "One `sqld`, two `libsql` POPs differing only in `READ_YOUR_WRITES`, bursts "
        "alternating between them. Latency is from sending an insert to its answer, which "
        "comes once the POP can read the row; `syncs/write` counts the syncs forwarded "
        "writes asked for; `failed`, the inserts answered with an error, by code (latency "
        "counts them too). Everything shares this machine's cores.",
        record=not args.no_record,
    )


if __name__ == "__main__":
    main()
