"""Reads during an origin outage that began while a write's catch-up sync ran.

A POP replicates from a real ``sqld`` through a fault link (``pop.devtools.faultlink``):
the link first cuts only replication, so a write reaches the origin and is acknowledged
while the sync after it fails; then the link goes away (the origin is unreachable). The
client that wrote must not read a replica that lacks its write, but every other client
keeps reading the replica; once the origin is back and a sync succeeds, the writer reads
the replica again and sees its write.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from pop.devtools.processes import FaultLinkProcess, PopProcess, SqldServer, loopback_client
from tests.helpers import execute, metric, running

COUNT = "SELECT count(*) FROM notes"


def _count(http: httpx.Client) -> dict[str, object]:
    answer = http.post("/v2/pipeline", json={"requests": [execute(COUNT)]})
    assert answer.status_code == 200, answer.text
    result: dict[str, object] = answer.json()["results"][0]
    return result


def _rows(result: dict[str, object]) -> str:
    assert result["type"] == "ok", result
    return str(result["response"]["result"]["rows"][0][0]["value"])  # type: ignore[index]


def test_only_the_writer_waits_for_its_write_while_the_origin_is_away(
    sqld_binary: str, tmp_path: Path
) -> None:
    sqld = SqldServer(sqld_binary, tmp_path / "sqld")
    link = FaultLinkProcess(sqld.url, tmp_path)
    pop = PopProcess(
        link.url,
        tmp_path,
        region="outage",
        engine="libsql",
        extra_env={
            "SYNC_TIMEOUT": "3",
            "TURSO_SYNC_INTERVAL": "1",
            "READY_MAX_STALENESS": "600",
        },
    )
    with running(sqld):
        sqld.execute("CREATE TABLE notes (body TEXT)")
        sqld.execute("INSERT INTO notes VALUES ('before')")
        with running(link, pop), pop.client() as writer:
            assert _rows(_count(writer)) == "1"
            link.set_mode("hrana-only")
            written = writer.post(
                "/v2/pipeline", json={"requests": [execute("INSERT INTO notes VALUES ('w')")]}
            )
            assert written.json()["results"][0]["type"] == "ok", written.text
            assert sqld.execute(COUNT)["rows"][0][0]["value"] == "2"  # at the origin
            link.stop()  # the origin is gone

            # Everyone else reads the replica, which lacks the write.
            for _ in range(3):
                with pop.client() as other:
                    assert _rows(_count(other)) == "1"
            assert pop.running
            ready = httpx.get(f"{pop.url}/ready")
            assert ready.status_code == 200, ready.text  # one client's write fails no one
            # The writer's reads (its kept-alive connection) need the origin, and say why.
            refused = _count(writer)
            assert refused["type"] == "error", refused
            error = refused["error"]
            assert error["code"] == "ORIGIN_UNAVAILABLE", error  # type: ignore[index]
            assert "lacks that client's own last write" in error["message"]  # type: ignore[index]

            link.start_and_wait()
            link.set_mode("pass")
            syncs = metric(pop, "edgepop_syncs_total", trigger="interval", outcome="ok")
            deadline = time.monotonic() + 30
            while metric(pop, "edgepop_syncs_total", trigger="interval", outcome="ok") <= syncs:
                if time.monotonic() > deadline:
                    pytest.fail(f"no good sync after the origin came back:\n{pop.log_tail()}")
                time.sleep(0.2)
            local_before = metric(pop, "edgepop_requests_total", route="local")
            assert _rows(_count(writer)) == "2"
            assert metric(pop, "edgepop_requests_total", route="local") > local_before
            with loopback_client(pop.url, headers={"Authorization": f"Bearer {pop.token}"}) as b:
                assert _rows(_count(b)) == "2"
