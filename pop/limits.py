"""Size limits on what one Hrana request may ask of the POP.

Checked before anything runs, so a request over a limit is refused whole with a clear
error naming the setting, and never half-applied.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pop.config import Settings
from pop.hrana.errors import HranaError, ProtocolError
from pop.hrana.messages import (
    BatchReq,
    DescribeReq,
    ExecuteReq,
    SequenceReq,
    StoreSqlReq,
    StreamRequest,
)


@dataclass(frozen=True, slots=True)
class Limits:
    max_sql_bytes: int
    max_batch_steps: int
    max_pipeline_requests: int

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Limits:
        """The limits ``settings`` set; without settings (the gateway), the POP's defaults."""
        names = [field.name for field in dataclasses.fields(cls)]
        if settings is None:
            return cls(**{name: Settings.model_fields[name].default for name in names})
        return cls(**{name: getattr(settings, name) for name in names})

    def check_pipeline(self, requests: int) -> None:
        if requests > self.max_pipeline_requests:
            raise ProtocolError(
                f"a pipeline may hold at most {self.max_pipeline_requests} requests "
                f"(MAX_PIPELINE_REQUESTS); this one has {requests}",
                code="PIPELINE_TOO_LARGE",
                status=413,
            )

    def check_request(self, request: StreamRequest) -> None:
        """Raise ``HranaError`` if one request is over a limit."""
        if isinstance(request, BatchReq):
            steps = request.batch.steps
            if len(steps) > self.max_batch_steps:
                raise HranaError(
                    f"a batch may hold at most {self.max_batch_steps} steps "
                    f"(MAX_BATCH_STEPS); this one has {len(steps)}",
                    "BATCH_TOO_LARGE",
                )
            for step in steps:
                self.check_sql(step.stmt.sql)
        elif isinstance(request, ExecuteReq):
            self.check_sql(request.stmt.sql)
        elif isinstance(request, SequenceReq | DescribeReq | StoreSqlReq):
            self.check_sql(request.sql)

    def check_sql(self, sql: str | None) -> None:
        # Counting characters first spares encoding every statement on the hot path.
        if sql is None or len(sql) * 4 <= self.max_sql_bytes:
            return
        size = len(sql.encode("utf-8", "surrogatepass"))
        if size > self.max_sql_bytes:
            raise HranaError(
                f"the SQL text is {size} bytes, over the limit of {self.max_sql_bytes} "
                "(MAX_SQL_BYTES)",
                "SQL_TOO_LARGE",
            )
