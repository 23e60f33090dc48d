"""Which PRAGMAs SQLite may compile in the POP's own process, enforced by SQLite itself.

SQLite applies many pragmas while *compiling* them: ``PRAGMA hard_heap_limit=1`` changes
the whole process, ``EXPLAIN PRAGMA query_only=0`` flips a connection's flag. The
inspector never compiles such a statement on purpose (``pop.sql.inspector``), and sqld's
rules refuse quoted names; this is the layer beneath those, which holds however a name is
spelled: an authorizer, given the name as SQLite resolved it (quotes and all removed), that
denies every PRAGMA except those describing one table or index. The inspector's schema
copy and the ``libsql`` engine's reader connections install it.
"""

from __future__ import annotations

import apsw

# Each describes one named object, which the replica holds exactly as the origin does.
OBJECT_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "index_info",
        "index_xinfo",
        "index_list",
        "foreign_key_list",
    }
)


def allows_pragma(code: int, name: str | None) -> bool:
    """Whether an authorizer call lets a statement compile, as far as PRAGMAs go."""
    return code != apsw.SQLITE_PRAGMA or (name or "").lower() in OBJECT_PRAGMAS


def only_object_pragmas(code: int, third: str | None, *_: object) -> int:
    """An apsw authorizer that denies every PRAGMA but ``OBJECT_PRAGMAS``."""
    return apsw.SQLITE_OK if allows_pragma(code, third) else apsw.SQLITE_DENY
