"""Restart instead of hanging: a thread that watches the event loop's heartbeat.

If the loop stops turning (a call that blocks it, a deadlock with a library's lock), no
request is answered, ``/health`` included, and SIGTERM is never handled, because signal
handling runs on the loop too. The watchdog then writes every thread's stack to stderr,
so the cause is in the pod's log, and ends the process; the kubelet (or whoever runs it)
starts a fresh one.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import sys
import threading
import time

log = logging.getLogger(__name__)

EXIT_CODE = 70  # EX_SOFTWARE


class LoopWatchdog:
    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._beat = time.monotonic()
        self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="watchdog-beat")
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.cancel()

    async def _tick(self) -> None:
        interval = min(1.0, self._timeout / 4)
        while True:
            self._beat = time.monotonic()
            await asyncio.sleep(interval)

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self._timeout / 4)):
            stalled = time.monotonic() - self._beat
            if stalled > self._timeout:
                log.critical(
                    "event loop stalled; dumping thread stacks and exiting so that the POP "
                    "is restarted",
                    extra={"stalled_s": round(stalled, 1), "exit_code": EXIT_CODE},
                )
                faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
                os._exit(EXIT_CODE)
