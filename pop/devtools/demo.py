"""``edge-pop demo``: a local origin, POPs in three regions, a write seen across them."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from pop.devtools.processes import PopProcess, RedisProcess, TursodbOrigin
from pop.hrana.values import encode_value

SEED = [
    "CREATE TABLE IF NOT EXISTS greetings ("
    " id INTEGER PRIMARY KEY, region TEXT NOT NULL, message TEXT NOT NULL,"
    " created_at TEXT NOT NULL DEFAULT (datetime('now')))",
    "INSERT INTO greetings (region, message) VALUES ('origin', 'seeded at the origin')",
]
REGIONS = ("eu-west", "us-east", "ap-south")


def run_demo(tursodb: str, workdir: str | None, *, keep_running: bool) -> int:
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="edge-pop-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    say(f"working folder: {base}")
    with ExitStack() as stack:
        origin = TursodbOrigin(tursodb, base)
        origin.start_and_wait()
        stack.callback(origin.stop)
        for sql in SEED:
            origin.execute(sql)
        say(f"origin: tursodb --sync-server at {origin.url} (seeded table 'greetings')")

        env = {"TURSO_SYNC_INTERVAL": "60", "LOG_LEVEL": "warning"}
        redis_binary = shutil.which("redis-server")
        if redis_binary:
            redis = RedisProcess(base, binary=redis_binary)
            redis.start_and_wait()
            stack.callback(redis.stop)
            env["REDIS_CONNECTION_STRING"] = redis.url
            say(f"redis: {redis.url} (pub/sub: a write in one region makes the others sync)")
        else:
            say("redis-server not found: POPs will sync on their 60 s interval only")

        token = secrets.token_urlsafe(12)  # printed below, so the user can try it
        pops = [PopProcess(origin.url, base, region=r, token=token, extra_env=env) for r in REGIONS]
        for pop in pops:
            pop.start_and_wait()
            stack.callback(pop.stop)
            say(f"POP {pop.region}: {pop.url} (engine turso, replica {pop.replica_path.name})")
        if redis_binary:
            time.sleep(0.5)  # let every POP subscribe

        writer, readers = pops[0], pops[1:]
        message = f"hello from {writer.region} at {time.strftime('%H:%M:%S')}"
        with writer.client() as client:
            written = execute(
                client,
                "INSERT INTO greetings (region, message) VALUES (?, ?)",
                [writer.region, message],
            )
        rowid = int(written["last_insert_rowid"])
        say(f"wrote through {writer.region}: row {rowid} {message!r} (forwarded to the origin)")
        started = time.perf_counter()
        for reader in readers:
            row = wait_for_row(reader, rowid, deadline=started + 75)
            if row is None:
                say(
                    f"FAILED: the row written in {writer.region} is not readable in {reader.region}"
                )
                return 1
            elapsed = (time.perf_counter() - started) * 1000
            say(
                f"read through {reader.region} (its local replica): {row}, "
                f"{elapsed:.0f} ms after the write returned"
            )
        say("")
        say("Point a client at a POP:")
        say(f"  curl -s {writer.url}/v2/pipeline -H 'Authorization: Bearer {token}' \\")
        say(
            """    -d '{"requests":[{"type":"execute","""
            """"stmt":{"sql":"SELECT * FROM greetings"}},{"type":"close"}]}'"""
        )
        say(
            "  node -e \"require('@libsql/client')"
            f".createClient({{url:'{readers[0].url}',authToken:'{token}'}})"
            ".execute('SELECT * FROM greetings').then(r=>console.log(r.rows))\""
        )
        if keep_running:
            say("serving until Ctrl-C ...")
            try:
                while origin.running and all(p.running for p in pops):
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    if not workdir:
        shutil.rmtree(base, ignore_errors=True)
    say(f"demo finished: a row written in {REGIONS[0]} was read in {', '.join(REGIONS[1:])}")
    return 0


def wait_for_row(pop: PopProcess, rowid: int, deadline: float) -> list[Any] | None:
    with pop.client() as client:
        while time.perf_counter() < deadline:
            found = execute(
                client, "SELECT id, region, message FROM greetings WHERE id = ?", [rowid]
            )
            if found["rows"]:
                return [cell.get("value") for cell in found["rows"][0]]
            time.sleep(0.005)
    return None


def execute(client: httpx.Client, sql: str, args: list[Any]) -> dict[str, Any]:
    body = {
        "baton": None,
        "requests": [
            {"type": "execute", "stmt": {"sql": sql, "args": [encode_value(a) for a in args]}},
            {"type": "close"},
        ],
    }
    response = client.post("/v2/pipeline", json=body)
    response.raise_for_status()
    result = response.json()["results"][0]
    if result["type"] != "ok":
        raise RuntimeError(f"{sql!r} failed: {result['error']}")
    return dict(result["response"]["result"])


def say(line: str) -> None:
    print(line, flush=True)
