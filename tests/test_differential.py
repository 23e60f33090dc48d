"""Differential testing: generated programs through real POPs, ``sqld`` and plain SQLite.

Every answer a POP gives equals ``sqld``'s answer to the same request; every result (rows,
column names, storage classes, affected rows, inserted rowids, failing or not) equals
SQLite's; after every unit the origin is back in autocommit and the writing POP reads
what the origin holds; and the final content at the origin, at a second POP and at
``sqld`` equals SQLite's. ``tests/differential/`` holds the grammar, the references and
the drivers (raw Hrana with httpx; the real ``@libsql/client`` in Node).

CI runs ``EDGE_POP_DIFFERENTIAL_EXAMPLES`` programs per origin (default 40); the long
mode sets it to 10000 or more (see README, "Differential testing").
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import apsw
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from prometheus_client.parser import text_string_to_metric_families

from pop.devtools.processes import PopProcess, SqldServer, TursodbOrigin
from tests.differential.grammar import Feature, Mode, OriginProfile, Program, Stmt, Unit, programs
from tests.differential.harness import Stack, stack

EXAMPLES = int(os.environ.get("EDGE_POP_DIFFERENTIAL_EXAMPLES", "40"))

# What each origin here lacks, and the answer that shows it. The programs sent to that
# origin leave the feature out; test_named_origin_gaps_still_exist keeps the list honest.
TURSODB_GAPS = {
    Feature.WITHOUT_ROWID: (
        "CREATE TABLE gap_probe (a, b, PRIMARY KEY (a)) WITHOUT ROWID",
        "WITHOUT ROWID tables are an experimental feature",
    ),
}
# Where sqld, the reference for every answer, departs from current SQLite: inside a
# transaction, its SQLite keeps the rows an INSERT OR IGNORE/REPLACE wrote before a later
# row failed at run time (datatype mismatch), where SQLite 3.54 (apsw) and tursodb undo
# the whole statement (Python's own sqlite3, on SQLite 3.40, keeps them too). After that,
# every answer about the table would differ, so no program sends it; the test below shows
# the difference is still there.
SQLD_GAPS = {
    Feature.LATE_ROW_MISMATCH: "sqld keeps the rows written before the failing one",
}
_GAPS = {**{f: why for f, (_, why) in TURSODB_GAPS.items()}, **SQLD_GAPS}
PROFILES = {
    # tursodb keeps no streams: a transaction cannot stay open across requests there.
    "tursodb": OriginProfile("tursodb", keeps_streams=False, gaps=_GAPS),
    "gateway": OriginProfile("edge-pop gateway + tursodb", keeps_streams=True, gaps=_GAPS),
    # The libSQL server itself, with POPs on the libsql engine: only sqld's own gap.
    "sqld": OriginProfile("sqld", keeps_streams=True, gaps=dict(SQLD_GAPS)),
}


@pytest.fixture(scope="module", params=sorted(PROFILES))
def origin_stack(
    request: pytest.FixtureRequest,
    tursodb_binary: str,
    sqld_binary: str,
    node_binary: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    kind = request.param
    workdir = tmp_path_factory.mktemp(f"diff-{kind}")
    with stack(kind, tursodb_binary, sqld_binary, node_binary, workdir, PROFILES[kind]) as s:
        yield s


_IN_TRANSACTION = frozenset({Feature.TRANSACTION_CONTROL})
_REAL_COLUMN = "CREATE TABLE t1 (a INTEGER PRIMARY KEY, b TEXT UNIQUE, c REAL DEFAULT 0)"
# Programs a long run found a difference with, run first every time, and whether they
# need an origin that keeps streams (a bare tursodb refuses a transaction left open).
FOUND_BY_LONG_RUNS = (
    # sqld's legacy answer to BEGIN and then a failing BEGIN is not JSON (``legacy_json``).
    (
        Program(
            (
                Unit(
                    Mode.LEGACY,
                    (
                        Stmt("BEGIN", features=_IN_TRANSACTION),
                        Stmt("BEGIN DEFERRED", features=_IN_TRANSACTION),
                        Stmt("SELECT 1"),
                    ),
                ),
            )
        ),
        True,
    ),
    # RETURNING gives the value after the column's affinity (0.0 for REAL): the reference
    # said 0 while it ran on Python's sqlite3 (SQLite 3.40); it runs on apsw's now.
    (
        Program(
            (
                Unit(Mode.EXECUTE, (Stmt(_REAL_COLUMN),)),
                Unit(
                    Mode.EXECUTE,
                    (
                        Stmt(
                            "INSERT INTO t1 (a, b, c) VALUES (NULL, NULL, 0) RETURNING *",
                            counts_changes=True,
                            inserts=True,
                        ),
                    ),
                ),
            )
        ),
        False,
    ),
    # A table created earlier in the same request is not in the POP's schema yet: the
    # origin's "no such table" about another table is the answer, not the POP's own.
    (
        Program(
            (
                Unit(
                    Mode.LEGACY,
                    (
                        Stmt("CREATE TABLE t2 (a INTEGER PRIMARY KEY, b TEXT)"),
                        Stmt('SELECT x.a, y.b FROM t2 AS x JOIN "odd name" AS y ON x.a = y.a'),
                        Stmt("SELECT 1"),
                    ),
                ),
            )
        ),
        False,
    ),
    # tursodb checks an index's name before its table, SQLite the table first.
    (
        Program(
            (
                Unit(Mode.EXECUTE, (Stmt("CREATE TABLE t1 (a INTEGER PRIMARY KEY, b, c)"),)),
                Unit(Mode.EXECUTE, (Stmt("CREATE INDEX i2 ON t1 (b)"),)),
                Unit(Mode.BATCH, (Stmt("SELECT 1"), Stmt("CREATE UNIQUE INDEX i2 ON t2 (c)"))),
            )
        ),
        False,
    ),
    # A view created earlier in the same request, then created again: the POP's schema
    # lacks it, so only the origin's schema as that request left it words the failure as
    # sqld does ("view v1 already exists", at the name's offset).
    (
        Program(
            (
                Unit(
                    Mode.LEGACY,
                    (
                        Stmt("CREATE TABLE t1 (a INTEGER PRIMARY KEY, b TEXT, c)"),
                        Stmt("CREATE VIEW v1 AS SELECT a, b FROM t1 WHERE c > 0"),
                        Stmt("CREATE VIEW v1 AS SELECT a, b FROM t1 WHERE c > 0"),
                    ),
                ),
            )
        ),
        False,
    ),
)


# Hypothesis runs (and shrinks) many programs within one test: bound it by their number.
@pytest.mark.timeout(240 + 20 * EXAMPLES)
def test_programs_agree_with_sqld_and_sqlite(origin_stack: Stack) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(programs(origin_stack.profile))
    def agree(program: Program) -> None:
        origin_stack.run(program)

    for program, needs_streams in FOUND_BY_LONG_RUNS:
        if origin_stack.profile.keeps_streams or not needs_streams:
            origin_stack.run(program)
    agree()
    for pop in (origin_stack.writer, origin_stack.follower):
        internal = _errors_by_code(pop).get("INTERNAL", 0.0)
        assert internal == 0, f"{pop.name} answered INTERNAL {internal} times:\n{pop.log_tail()}"


def test_named_origin_gaps_still_exist(tursodb_binary: str, tmp_path: Path) -> None:
    """Each gap the programs avoid is still there; when tursodb gains it, drop it here."""
    origin = TursodbOrigin(tursodb_binary, tmp_path)
    origin.start_and_wait()
    try:
        for feature, (probe, message) in TURSODB_GAPS.items():
            with pytest.raises(RuntimeError, match=message):
                origin.execute(probe)
            print(f"tursodb still lacks {feature.value}")
        # Named difference: tursodb lists a table of its own for each AUTOINCREMENT table
        # (SQLite keeps one sqlite_sequence); the programs' catalog reads leave it out.
        origin.execute("CREATE TABLE auto_probe (a INTEGER PRIMARY KEY AUTOINCREMENT)")
        names = origin.execute("SELECT name FROM sqlite_schema")["rows"]
        assert any(row[0]["value"].startswith("__turso_internal") for row in names), names
        print("tursodb still lists __turso_internal tables for AUTOINCREMENT")
    finally:
        origin.stop()


LATE_ROW_PROBE = (
    "CREATE TABLE late_probe (a INTEGER PRIMARY KEY)",
    "BEGIN",
    "INSERT OR IGNORE INTO late_probe VALUES (1), ('no integer')",
    "SELECT count(*) FROM late_probe",
)


def test_sqld_still_keeps_the_rows_of_a_statement_that_failed_part_way(sqld: SqldServer) -> None:
    """The named sqld difference (SQLD_GAPS) is still there, and current SQLite lacks it."""
    answers = httpx.post(
        f"{sqld.url}/v2/pipeline",
        json={"requests": [{"type": "execute", "stmt": {"sql": sql}} for sql in LATE_ROW_PROBE]},
    ).json()["results"]
    assert answers[2]["error"]["code"] == "SQLITE_MISMATCH", answers[2]
    assert answers[3]["response"]["result"]["rows"] == [[{"type": "integer", "value": "1"}]]
    print(f"sqld still shows {Feature.LATE_ROW_MISMATCH.value}: the first row stays")

    sqlite = apsw.Connection(":memory:")
    sqlite.execute(LATE_ROW_PROBE[0])
    sqlite.execute(LATE_ROW_PROBE[1])
    with pytest.raises(apsw.MismatchError):
        sqlite.execute(LATE_ROW_PROBE[2])
    assert list(sqlite.execute(LATE_ROW_PROBE[3])) == [(0,)]


def _errors_by_code(pop: PopProcess) -> dict[str, float]:
    """Error answers the POP has given, by code, from its ``edgepop_errors_total``."""
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{pop.url}/metrics").text):
        if family.name == "edgepop_errors":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    counts[sample.labels["code"]] = sample.value
    return counts
