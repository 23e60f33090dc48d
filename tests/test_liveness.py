"""Health and readiness that mean something (issue 8, scope 4).

``/ready`` must stop sending traffic to a POP whose replica is stale, and the process must
not hang forever when its event loop stalls: real processes, real origin.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from pop.devtools.processes import PopProcess, TursodbOrigin


def _wait_for_status(url: str, status: int, timeout: float) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url, timeout=5)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_ready_says_stale_past_its_bound_and_recovers(tursodb_binary: str, tmp_path: Path) -> None:
    origin = TursodbOrigin(tursodb_binary, tmp_path)
    origin.start_and_wait()
    pop = PopProcess(
        origin.url,
        tmp_path,
        region="stale",
        extra_env={
            "TURSO_SYNC_INTERVAL": "0.3",
            "READY_MAX_STALENESS": "1.5",
            "SYNC_TIMEOUT": "1",
        },
    )
    pop.start_and_wait()
    try:
        assert httpx.get(f"{pop.url}/ready").status_code == 200
        origin.stop()
        stale = _wait_for_status(f"{pop.url}/ready", 503, timeout=10)
        assert stale.status_code == 503, stale.text
        reason = stale.json()["reason"]
        assert "stale" in reason and "READY_MAX_STALENESS" in reason
        assert httpx.get(f"{pop.url}/health").status_code == 200  # stale is not wedged
        origin.start_and_wait()
        fresh = _wait_for_status(f"{pop.url}/ready", 200, timeout=10)
        assert fresh.status_code == 200, fresh.text
    finally:
        pop.stop()
        origin.stop()


def test_a_stalled_event_loop_ends_the_process_with_its_stacks(tmp_path: Path) -> None:
    # The watchdog as the POP runs it, in a process whose loop then blocks for good.
    program = (
        "import asyncio, time\n"
        "from pop.watchdog import LoopWatchdog\n"
        "async def main():\n"
        "    LoopWatchdog(1.0).start()\n"
        "    await asyncio.sleep(0.2)\n"
        "    time.sleep(60)  # blocks the loop, as a deadlock would\n"
        "asyncio.run(main())\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 70, done.stderr
    assert time.monotonic() - started < 20
    assert "time.sleep(60)" in done.stderr or "<string>" in done.stderr  # the stack dump
    assert "Thread" in done.stderr
