"""A statement prepared once: its text resolved, what SQLite says it does, its arguments.

The router makes one per statement of a request; placement, the local executor and the
forwarder all read the same value, so nothing along the request path inspects a statement
again (the inspector is SQLite compiling it, the costliest step before running it).
"""

from __future__ import annotations

from dataclasses import dataclass

from pop.hrana.messages import Stmt
from pop.sql.inspector import SqlInspector, StatementInfo


@dataclass(frozen=True, slots=True)
class Prepared:
    stmt: Stmt  # as the client sent it: arguments, want_rows (its sql may be an sql_id)
    info: StatementInfo  # what SQLite says of its resolved text

    @property
    def sql(self) -> str:
        """The statement's text, resolved from ``sql_id`` if it came by one."""
        return self.info.sql

    @classmethod
    def of(cls, inspector: SqlInspector, stmt: Stmt, sql: str) -> Prepared:
        """``stmt``, whose resolved text is ``sql``, inspected."""
        return cls(stmt, inspector.inspect(sql))

    @classmethod
    def script(cls, inspector: SqlInspector, statements: list[str]) -> list[Prepared]:
        """The statements of a ``sequence``: no arguments, no rows wanted."""
        return [cls(Stmt(sql=sql, want_rows=False), inspector.inspect(sql)) for sql in statements]
