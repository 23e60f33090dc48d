"""The ``libsql`` Python binding in remote mode (``connect("http://...")``) against a POP.

It speaks Hrana 3 on ``/v3/pipeline`` and starts every statement with ``describe``.
"""

from __future__ import annotations

import httpx
import libsql
import pytest

from pop.devtools.processes import PopProcess, TursodbOrigin


def _describes_on_v3(pop: PopProcess) -> float:
    for line in httpx.get(f"{pop.url}/metrics").text.splitlines():
        if (
            line.startswith("edgepop_requests_total{")
            and 'endpoint="v3_pipeline"' in line
            and ('request_type="describe"' in line)
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_reads_and_autocommit_writes(pop: PopProcess, origin: TursodbOrigin) -> None:
    conn = libsql.connect(pop.url, auth_token=pop.token, isolation_level=None)
    before = _describes_on_v3(pop)
    assert conn.execute("SELECT v FROM kv WHERE k = 'rt'").fetchall() == [("read-tx",)]
    assert _describes_on_v3(pop) > before  # the binding speaks Hrana 3, describe first
    conn.execute(
        "INSERT INTO vals (i, f, t, b, n) VALUES (?, ?, ?, ?, ?)",
        (-42, 0.125, "ünïcode", b"\x00\x01\x00", None),
    )
    got = conn.execute("SELECT i, f, t, b, n FROM vals WHERE t = ?", ("ünïcode",)).fetchall()
    assert got == [(-42, 0.125, "ünïcode", b"\x00\x01\x00", None)]
    at_origin = origin.execute("SELECT i FROM vals WHERE t = 'ünïcode'")["rows"]
    assert at_origin == [[{"type": "integer", "value": "-42"}]]


def test_64_bit_integers_come_back_exact(pop: PopProcess, origin: TursodbOrigin) -> None:
    # Written at the origin: libsql 0.1.11 itself sends Python ints beyond 32 bits as
    # floats (a client-side conversion), so the exact value is put there directly.
    origin.execute("INSERT INTO vals (i, t) VALUES (?, 'max'), (?, 'min')", [2**63 - 1, -(2**63)])
    with pop.client() as http:
        http.post("/sync")
    conn = libsql.connect(pop.url, auth_token=pop.token, isolation_level=None)
    got = conn.execute("SELECT i FROM vals WHERE t IN ('max', 'min') ORDER BY i").fetchall()
    assert got == [(-(2**63),), (2**63 - 1,)]


def test_errors_surface_with_codes(pop: PopProcess) -> None:
    conn = libsql.connect(pop.url, auth_token=pop.token, isolation_level=None)
    conn.execute("INSERT OR IGNORE INTO kv (k, v) VALUES ('py-dup', '1')")
    with pytest.raises(ValueError, match="SQLITE_CONSTRAINT"):
        conn.execute("INSERT INTO kv (k, v) VALUES ('py-dup', '2')")
    with pytest.raises(ValueError, match="no such table"):
        conn.execute("SELECT * FROM missing_table")


def test_default_transaction_mode_needs_an_origin_with_streams(pop: PopProcess) -> None:
    """DB-API mode opens ``BEGIN`` before a write; tursodb cannot hold that open."""
    conn = libsql.connect(pop.url, auth_token=pop.token)
    with pytest.raises(ValueError, match="TRANSACTION_NOT_SUPPORTED"):
        conn.execute("INSERT INTO kv (k, v) VALUES ('py-tx', '1')")
