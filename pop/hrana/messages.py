"""The request bodies of Hrana over HTTP, validated as they are parsed.

A body that does not fit is refused whole before anything runs, so a malformed request
can never leave a pipeline half-applied.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from pop.hrana.errors import ProtocolError
from pop.hrana.values import SqlValue, decode_value

HranaValue = Annotated[SqlValue, BeforeValidator(decode_value)]


class _Message(BaseModel):
    # Unknown fields are ignored: newer clients may send fields this server predates.
    model_config = ConfigDict(extra="ignore", frozen=True)


class NamedArg(_Message):
    name: str
    value: HranaValue


class SqlRef(_Message):
    """Something that carries SQL either inline or by a stored ``sql_id``."""

    sql: str | None = None
    sql_id: int | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> SqlRef:
        if (self.sql is None) == (self.sql_id is None):
            raise ValueError("exactly one of 'sql' and 'sql_id' must be given")
        return self


class Stmt(SqlRef):
    # default_factory: a literal [] default would be deep-copied on every statement.
    args: list[HranaValue] = Field(default_factory=list)
    named_args: list[NamedArg] = Field(default_factory=list)
    want_rows: bool = True
    replication_index: Any = None


class OkCond(_Message):
    type: Literal["ok"]
    step: int = Field(ge=0)


class ErrorCond(_Message):
    type: Literal["error"]
    step: int = Field(ge=0)


class NotCond(_Message):
    type: Literal["not"]
    cond: BatchCond


class AndCond(_Message):
    type: Literal["and"]
    conds: list[BatchCond]


class OrCond(_Message):
    type: Literal["or"]
    conds: list[BatchCond]


class IsAutocommitCond(_Message):
    type: Literal["is_autocommit"]


BatchCond = Annotated[
    OkCond | ErrorCond | NotCond | AndCond | OrCond | IsAutocommitCond,
    Field(discriminator="type"),
]


class BatchStep(_Message):
    stmt: Stmt
    condition: BatchCond | None = None


class Batch(_Message):
    steps: list[BatchStep]

    @model_validator(mode="after")
    def _conditions_look_back(self) -> Batch:
        for index, step in enumerate(self.steps):
            if step.condition is not None:
                for referenced in _referenced_steps(step.condition):
                    if referenced >= index:
                        raise ValueError(
                            f"step {index}: a condition may only refer to earlier steps, "
                            f"not step {referenced}"
                        )
        return self


def _referenced_steps(cond: BatchCond) -> list[int]:
    if isinstance(cond, OkCond | ErrorCond):
        return [cond.step]
    if isinstance(cond, NotCond):
        return _referenced_steps(cond.cond)
    if isinstance(cond, AndCond | OrCond):
        return [step for inner in cond.conds for step in _referenced_steps(inner)]
    return []


class ExecuteReq(_Message):
    type: Literal["execute"]
    stmt: Stmt


class BatchReq(_Message):
    type: Literal["batch"]
    batch: Batch


class SequenceReq(SqlRef):
    type: Literal["sequence"]


class DescribeReq(SqlRef):
    type: Literal["describe"]


class StoreSqlReq(_Message):
    type: Literal["store_sql"]
    sql_id: int
    sql: str


class CloseSqlReq(_Message):
    type: Literal["close_sql"]
    sql_id: int


class CloseReq(_Message):
    type: Literal["close"]


class GetAutocommitReq(_Message):
    type: Literal["get_autocommit"]


StreamRequest = Annotated[
    ExecuteReq
    | BatchReq
    | SequenceReq
    | DescribeReq
    | StoreSqlReq
    | CloseSqlReq
    | CloseReq
    | GetAutocommitReq,
    Field(discriminator="type"),
]


class PipelineBody(_Message):
    baton: str | None = None
    requests: list[StreamRequest]


class CursorBody(_Message):
    baton: str | None = None
    batch: Batch


class LegacyQuery(_Message):
    q: str
    params: list[Any] | dict[str, Any] | None = None


class LegacyBody(_Message):
    statements: list[str | LegacyQuery]


_Body = TypeVar("_Body", bound=BaseModel)


def parse_body(model: type[_Body], raw: bytes, *, unfit_status: int = 400) -> _Body:
    """Validate a JSON body, turning every problem into one readable ``ProtocolError``:
    status 400 for text that is not JSON, ``unfit_status`` for JSON that is not a request."""
    if not raw.strip():
        raise ProtocolError("the request body is empty; expected a JSON object")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        broken = any(error["type"] == "json_invalid" for error in exc.errors())
        status = 400 if broken else unfit_status
        raise ProtocolError(describe_validation_error(exc), status=status) from None


def parse_decoded(model: type[_Body], decoded: dict[str, Any]) -> _Body:
    """Validate a body another encoding (protobuf) decoded into JSON's shape, as
    ``parse_body`` validates JSON."""
    try:
        return model.model_validate(decoded)
    except ValidationError as exc:
        raise ProtocolError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False)[:5]:
        location = ".".join(str(part) for part in error["loc"]) or "body"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"{location}: {message}")
    more = exc.error_count() - len(problems)
    suffix = f" (and {more} more)" if more > 0 else ""
    return "invalid request body: " + "; ".join(problems) + suffix
