"""``edge-pop demo``: a local origin, two POPs in two regions, a write seen across them."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from pop.localrun import PopProcess, TursodbOrigin, running

SEED = [
    "CREATE TABLE IF NOT EXISTS greetings ("
    " id INTEGER PRIMARY KEY, region TEXT NOT NULL, message TEXT NOT NULL,"
    " created_at TEXT NOT NULL DEFAULT (datetime('now')))",
    "INSERT INTO greetings (region, message) VALUES ('origin', 'seeded at the origin')",
]


def run_demo(tursodb: str, workdir: str | None, *, keep_running: bool) -> int:
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="edge-pop-demo-"))
    base.mkdir(parents=True, exist_ok=True)
    origin = TursodbOrigin(tursodb, base)
    token = secrets.token_urlsafe(12)  # printed below, so the user can try it
    eu = PopProcess(origin.url, base, region="eu-west", token=token)
    us = PopProcess(origin.url, base, region="us-east", token=token)
    say(f"working folder: {base}")
    with running(origin, eu, us):
        origin.start_and_wait()
        for sql in SEED:
            origin.execute(sql)
        say(f"origin: tursodb --sync-server at {origin.url} (seeded table 'greetings')")
        for pop in (eu, us):
            pop.start_and_wait()
            say(f"POP {pop.region}: {pop.url} (engine turso, replica {pop.replica_path.name})")

        message = f"hello from eu-west at {time.strftime('%H:%M:%S')}"
        with eu.client() as client:
            written = execute(
                client,
                "INSERT INTO greetings (region, message) VALUES (?, ?)",
                ["eu-west", message],
            )
        rowid = written["last_insert_rowid"]
        say(f"wrote through eu-west: row {rowid} {message!r} (forwarded to the origin)")

        with us.client() as client:
            started = time.perf_counter()
            sync = client.post("/sync").json()
            say(
                f"us-east POST /sync: changed={sync['changed']} in {sync['duration_ms']} ms "
                "(with Redis configured this happens by itself within milliseconds)"
            )
            read = execute(
                client, "SELECT id, region, message FROM greetings WHERE id = ?", [int(rowid)]
            )
            elapsed = (time.perf_counter() - started) * 1000
        if not read["rows"]:
            say("FAILED: the row written in eu-west is not readable in us-east")
            return 1
        row = [cell.get("value") for cell in read["rows"][0]]
        say(f"read through us-east (from its local replica): {row} after {elapsed:.1f} ms")
        say("")
        say("Point a client at a POP:")
        say(f"  curl -s {eu.url}/v2/pipeline -H 'Authorization: Bearer {eu.token}' \\")
        say(
            """    -d '{"requests":[{"type":"execute","""
            """"stmt":{"sql":"SELECT * FROM greetings"}},{"type":"close"}]}'"""
        )
        say(
            "  node -e \"require('@libsql/client')"
            f".createClient({{url:'{us.url}',authToken:'{us.token}'}})"
            ".execute('SELECT * FROM greetings').then(r=>console.log(r.rows))\""
        )
        if keep_running:
            say("serving until Ctrl-C ...")
            try:
                while all(p.running for p in (origin, eu, us)):
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
    if not workdir:
        shutil.rmtree(base, ignore_errors=True)
    say("demo finished: a row written in eu-west was read in us-east")
    return 0


def execute(client: httpx.Client, sql: str, args: list[Any]) -> dict[str, Any]:
    from pop.hrana.values import encode_value

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
