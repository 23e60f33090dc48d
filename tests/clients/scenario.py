"""The shared client scenario, for DB-API connections: Python's ``sqlite3`` (the
reference every client's results must equal), and the ``libsql`` and
``libsql_experimental`` bindings in remote mode.

The same steps, the same SQL and the same canonical form of every value are written out
in tests/clients/go/main.go, tests/clients/rust/src/main.rs and the ``shared`` scenario
of tests/js/driver.mjs: integers as decimal strings, reals in shortest round-trip form,
blobs as ``x'…'``, text as itself, NULL as null; the 10,000-row result as its count, last
row and the SHA-256 of its rows, one compact JSON array per line. ``constraint`` is the
duplicate key's error kind; ``constraintMessage`` its text as the client shows it (the
same through a POP as from sqld, for one client; not comparable across clients).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

BIG = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 10000) "
    "SELECT x, x * x, 'row ' || x FROM c"
)


def canon(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError("a bool is not a SQLite value")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)  # shortest round-trip form, as the other languages print it
        return text.removesuffix(".0")
    if isinstance(value, bytes | bytearray | memoryview):
        return f"x'{bytes(value).hex()}'"
    raise TypeError(f"unexpected value {value!r}")


def _rows(conn: Any, sql: str) -> list[list[Any]]:
    return [[canon(v) for v in row] for row in conn.execute(sql).fetchall()]


def _constraint(conn: Any, sql: str) -> tuple[str, str | None]:
    """The error's kind, and its text as the client shows it."""
    try:
        conn.execute(sql)
    except Exception as exc:  # each binding has its own error classes
        text = f"{type(exc).__name__}: {exc}"
        if "SQLITE_CONSTRAINT" in text or "IntegrityError" in text:
            return "SQLITE_CONSTRAINT", text
        return text, text
    return "no error", None


def run(conn: Any, t: str) -> dict[str, Any]:
    """The scenario on ``conn`` (autocommit: ``isolation_level=None``), in table ``t``."""
    out: dict[str, Any] = {}
    conn.execute(f"DROP TABLE IF EXISTS {t}")
    conn.execute(f"CREATE TABLE {t} (id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB)")
    conn.execute(
        f"INSERT INTO {t} VALUES (1, 9223372036854775807, 3.25, 'héllo ✓ 日本', x'0001ff'), "
        "(2, -9223372036854775808, -0.5, '', x''), (3, NULL, NULL, NULL, NULL)"
    )
    insert = f"INSERT INTO {t} (id, i, f, s, b) VALUES (?, ?, ?, ?, ?)"
    conn.execute(insert, (4, 42, 0.125, "param ✓", b"\x00\xff"))
    conn.execute(insert, (5, None, None, None, None))
    out["rows"] = _rows(conn, f"SELECT id, i, f, s, b, typeof(b) FROM {t} ORDER BY id")

    # The client's batch: several statements in one call.
    conn.executescript(
        f"INSERT INTO {t} (id, s) VALUES (6, 'six'); INSERT INTO {t} (id, s) VALUES (7, 'seven')"
    )
    count = f"SELECT count(*) FROM {t}"
    out["afterBatch"] = _rows(conn, count)[0][0]

    out["constraint"], out["constraintMessage"] = _constraint(
        conn, f"INSERT INTO {t} (id) VALUES (1)"
    )

    for name, row, end in (("txCommit", 8, "COMMIT"), ("txRollback", 9, "ROLLBACK")):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"INSERT INTO {t} (id, s) VALUES ({row}, 'in a transaction')")
        inside = _rows(conn, count)[0][0]
        conn.execute(end)
        out[name] = {"inside": inside, "after": _rows(conn, count)[0][0]}

    big = _rows(conn, BIG)
    digest = hashlib.sha256()
    for big_row in big:
        digest.update(json.dumps(big_row, separators=(",", ":"), ensure_ascii=False).encode())
        digest.update(b"\n")
    out["big"] = {"count": len(big), "last": big[-1], "sha256": digest.hexdigest()}
    return out
