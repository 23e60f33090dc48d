"""Which calls a read-only token may not make: those holding a statement ``sqld`` takes
for a write (``SqldVerdict.needs_write``: INSERT, CREATE, REINDEX, most PRAGMAs, ...).

``sqld`` refuses such a call whole, before it runs anything, with HTTP 403; a statement
it cannot parse is not a write there but that statement's error, and so here. Stored SQL
is followed as the calls would use it: ``store_sql`` earlier in the same call counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from pop.hrana.errors import write_forbidden
from pop.hrana.messages import (
    BatchReq,
    CloseSqlReq,
    ExecuteReq,
    SequenceReq,
    SqlRef,
    StoreSqlReq,
    StreamRequest,
)
from pop.sql.inspector import Kind, StatementInfo
from pop.sql.script import split_script


class WriteCheck:
    """Refuses a read-only caller's requests that would write."""

    def __init__(self, inspect: Callable[[str], StatementInfo]) -> None:
        self._inspect = inspect

    def refuse(self, requests: Iterable[StreamRequest], stored: Mapping[int, str]) -> None:
        """Raise sqld's 403 if any of ``requests`` (in order, with ``stored`` the SQL
        texts stored before them) would run a statement that needs write permission."""
        stored_here: dict[int, str | None] = {}

        def text(ref: SqlRef) -> str | None:
            if ref.sql is not None:
                return ref.sql
            assert ref.sql_id is not None  # exactly one of them (SqlRef)
            if ref.sql_id in stored_here:
                return stored_here[ref.sql_id]
            return stored.get(ref.sql_id)  # unknown: that request's own error

        for request in requests:
            if isinstance(request, StoreSqlReq):
                stored_here[request.sql_id] = request.sql
            elif isinstance(request, CloseSqlReq):
                stored_here[request.sql_id] = None
            elif isinstance(request, ExecuteReq):
                self._check(text(request.stmt))
            elif isinstance(request, BatchReq):
                for step in request.batch.steps:
                    self._check(text(step.stmt))
            elif isinstance(request, SequenceReq):
                self._check_script(text(request))

    def _check(self, sql: str | None) -> None:
        if sql is not None and self._inspect(sql).sqld.needs_write:
            raise write_forbidden()

    def _check_script(self, sql: str | None) -> None:
        # sqld parses a whole sequence first: one statement it refuses is the answer.
        infos = [self._inspect(statement) for statement in split_script(sql or "")]
        if any(info.kind is Kind.REFUSED for info in infos):
            return
        if any(info.sqld.needs_write for info in infos):
            raise write_forbidden()
