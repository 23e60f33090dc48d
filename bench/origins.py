"""The origin each replica engine replicates from, for benchmarks that run both:
``tursodb --sync-server`` for the turso engine, ``sqld`` for the libsql engine."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from pop.devtools.processes import HranaServer, SqldServer, TursodbOrigin, find_sqld

REPO = Path(__file__).resolve().parents[1]
ENGINES = ("turso", "libsql")


def tursodb_binary() -> str:
    """``tursodb``, fetched by tools/ensure-tursodb.sh if it is not here yet."""
    found = subprocess.run(
        ["bash", str(REPO / "tools" / "ensure-tursodb.sh")],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.strip().splitlines()[-1]


def origin_makers(engines: list[str]) -> dict[str, Callable[[Path], HranaServer]]:
    """For each engine, how to make its origin in a work directory."""
    makers: dict[str, Callable[[Path], HranaServer]] = {}
    if "turso" in engines:
        tursodb = tursodb_binary()
        makers["turso"] = lambda workdir: TursodbOrigin(tursodb, workdir)
    if "libsql" in engines:
        sqld = find_sqld()
        if sqld is None:
            raise SystemExit("sqld is needed (see DESIGN.md section 5) or set EDGE_POP_SQLD")
        makers["libsql"] = lambda workdir: SqldServer(sqld, workdir)
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise SystemExit(f"unknown engine(s) {sorted(unknown)}: choose from {ENGINES}")
    return makers
