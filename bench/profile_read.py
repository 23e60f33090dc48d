"""Where a POP's local read spends its time: ``py-spy`` on a POP under ``wrk`` load.

The setup of ``read_throughput.py --per-core`` (POP pinned to one CPU, ``wrk -t1 -c16``
on the other, the indexed point read over ``/v2/pipeline``); while the load runs,
``py-spy record --gil`` samples the POP's thread holding the GIL, i.e. the Python work,
wherever it runs (event loop or reader thread). Printed: the share of samples in which
each function is on the stack (inclusive) and at its top (self), for the busiest ones.

Run: ``uv run python -m bench.profile_read [--seconds 15]`` (py-spy is fetched with
``uv tool run``; it needs ptrace, i.e. root or CAP_SYS_PTRACE).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from bench.read_throughput import (
    READ_SQL,
    REPO,
    SERVER_CPU,
    Target,
    ensure_wrk,
    pipeline_body,
    run_wrk,
    seed,
    start_pop,
    tursodb_binary,
    wrk_script,
)
from pop.devtools.processes import TursodbOrigin

PY_SPY = "py-spy==0.4.1"
IDLE_WORKER = "concurrent.futures.thread._worker"  # a reader thread waiting for work


def collapsed_profile(pid: int, seconds: int, out: Path) -> None:
    subprocess.run(
        [
            str(REPO / "tools" / "uv.sh"),
            "tool",
            "run",
            "--from",
            PY_SPY,
            "py-spy",
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(seconds),
            "--rate",
            "250",
            "--format",
            "raw",
            "--gil",  # only the thread holding the GIL: the work Python does
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
    )


def frame_name(frame: str) -> str:
    """``function (path:line)`` as ``module.function``, without the line."""
    function, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/pop/", "lib/python3.11/"):
        if marker in path:
            path = (
                path.split(marker, 1)[1] if marker != "/pop/" else "pop/" + path.split(marker, 1)[1]
            )
            break
    return f"{path.removesuffix('.py').replace('/', '.')}.{function}"


def summarize(collapsed: Path, top: int) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [frame_name(frame) for frame in stack.split(";")]
        if not frames or frames[-1] == IDLE_WORKER:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    lines = [
        f"{total:,} samples of the POP's threads at work",
        "",
        "| function | inclusive % | self % |",
        "| --- | ---: | ---: |",
    ]
    for name, count in inclusive.most_common(top):
        lines.append(f"| `{name}` | {100 * count / total:.1f} | {100 * own[name] / total:.1f} |")
    lines += ["", "| busiest on their own (self) | self % |", "| --- | ---: |"]
    for name, count in own.most_common(top):
        lines.append(f"| `{name}` | {100 * count / total:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    load = argparse.Namespace(threads=1, connections=16, per_core=True)
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="edge-pop-profile-") as tmp:
        workdir = Path(tmp)
        origin = TursodbOrigin(tursodb_binary(), workdir)
        origin.argv = ["taskset", "-c", SERVER_CPU, *origin.argv]
        origin.start_and_wait()
        try:
            seed(origin, args.rows)
            pop = start_pop(origin.url, workdir, "profiled", load)
            try:
                target = Target(
                    "c",
                    "POP local read",
                    pop.url,
                    pipeline_body(READ_SQL, close=True),
                    pop.token,
                    pop,
                )
                script = wrk_script(target, args.rows, workdir)
                run_wrk(wrk, script, pop.url, load, 2)  # warm
                loaded = threading.Thread(
                    target=run_wrk, args=(wrk, script, pop.url, load, args.seconds + 4)
                )
                loaded.start()
                assert pop.proc is not None
                collapsed_profile(pop.proc.pid, args.seconds, workdir / "profile.txt")
                loaded.join()
                print(summarize(workdir / "profile.txt", args.top))
            finally:
                pop.stop()
        finally:
            origin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
