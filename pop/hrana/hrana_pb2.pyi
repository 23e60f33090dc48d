from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PipelineReqBody(_message.Message):
    __slots__ = ("baton", "requests")
    BATON_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    baton: str
    requests: _containers.RepeatedCompositeFieldContainer[StreamRequest]
    def __init__(self, baton: _Optional[str] = ..., requests: _Optional[_Iterable[_Union[StreamRequest, _Mapping]]] = ...) -> None: ...

class PipelineRespBody(_message.Message):
    __slots__ = ("baton", "base_url", "results")
    BATON_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    baton: str
    base_url: str
    results: _containers.RepeatedCompositeFieldContainer[StreamResult]
    def __init__(self, baton: _Optional[str] = ..., base_url: _Optional[str] = ..., results: _Optional[_Iterable[_Union[StreamResult, _Mapping]]] = ...) -> None: ...

class StreamResult(_message.Message):
    __slots__ = ("ok", "error")
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ok: StreamResponse
    error: Error
    def __init__(self, ok: _Optional[_Union[StreamResponse, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class CursorReqBody(_message.Message):
    __slots__ = ("baton", "batch")
    BATON_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    baton: str
    batch: Batch
    def __init__(self, baton: _Optional[str] = ..., batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class CursorRespBody(_message.Message):
    __slots__ = ("baton", "base_url")
    BATON_FIELD_NUMBER: _ClassVar[int]
    BASE_URL_FIELD_NUMBER: _ClassVar[int]
    baton: str
    base_url: str
    def __init__(self, baton: _Optional[str] = ..., base_url: _Optional[str] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("close", "execute", "batch", "sequence", "describe", "store_sql", "close_sql", "get_autocommit")
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    EXECUTE_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DESCRIBE_FIELD_NUMBER: _ClassVar[int]
    STORE_SQL_FIELD_NUMBER: _ClassVar[int]
    CLOSE_SQL_FIELD_NUMBER: _ClassVar[int]
    GET_AUTOCOMMIT_FIELD_NUMBER: _ClassVar[int]
    close: CloseStreamReq
    execute: ExecuteStreamReq
    batch: BatchStreamReq
    sequence: SequenceStreamReq
    describe: DescribeStreamReq
    store_sql: StoreSqlStreamReq
    close_sql: CloseSqlStreamReq
    get_autocommit: GetAutocommitStreamReq
    def __init__(self, close: _Optional[_Union[CloseStreamReq, _Mapping]] = ..., execute: _Optional[_Union[ExecuteStreamReq, _Mapping]] = ..., batch: _Optional[_Union[BatchStreamReq, _Mapping]] = ..., sequence: _Optional[_Union[SequenceStreamReq, _Mapping]] = ..., describe: _Optional[_Union[DescribeStreamReq, _Mapping]] = ..., store_sql: _Optional[_Union[StoreSqlStreamReq, _Mapping]] = ..., close_sql: _Optional[_Union[CloseSqlStreamReq, _Mapping]] = ..., get_autocommit: _Optional[_Union[GetAutocommitStreamReq, _Mapping]] = ...) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("close", "execute", "batch", "sequence", "describe", "store_sql", "close_sql", "get_autocommit")
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    EXECUTE_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DESCRIBE_FIELD_NUMBER: _ClassVar[int]
    STORE_SQL_FIELD_NUMBER: _ClassVar[int]
    CLOSE_SQL_FIELD_NUMBER: _ClassVar[int]
    GET_AUTOCOMMIT_FIELD_NUMBER: _ClassVar[int]
    close: CloseStreamResp
    execute: ExecuteStreamResp
    batch: BatchStreamResp
    sequence: SequenceStreamResp
    describe: DescribeStreamResp
    store_sql: StoreSqlStreamResp
    close_sql: CloseSqlStreamResp
    get_autocommit: GetAutocommitStreamResp
    def __init__(self, close: _Optional[_Union[CloseStreamResp, _Mapping]] = ..., execute: _Optional[_Union[ExecuteStreamResp, _Mapping]] = ..., batch: _Optional[_Union[BatchStreamResp, _Mapping]] = ..., sequence: _Optional[_Union[SequenceStreamResp, _Mapping]] = ..., describe: _Optional[_Union[DescribeStreamResp, _Mapping]] = ..., store_sql: _Optional[_Union[StoreSqlStreamResp, _Mapping]] = ..., close_sql: _Optional[_Union[CloseSqlStreamResp, _Mapping]] = ..., get_autocommit: _Optional[_Union[GetAutocommitStreamResp, _Mapping]] = ...) -> None: ...

class CloseStreamReq(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CloseStreamResp(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExecuteStreamReq(_message.Message):
    __slots__ = ("stmt",)
    STMT_FIELD_NUMBER: _ClassVar[int]
    stmt: Stmt
    def __init__(self, stmt: _Optional[_Union[Stmt, _Mapping]] = ...) -> None: ...

class ExecuteStreamResp(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: StmtResult
    def __init__(self, result: _Optional[_Union[StmtResult, _Mapping]] = ...) -> None: ...

class BatchStreamReq(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: Batch
    def __init__(self, batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class BatchStreamResp(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: BatchResult
    def __init__(self, result: _Optional[_Union[BatchResult, _Mapping]] = ...) -> None: ...

class SequenceStreamReq(_message.Message):
    __slots__ = ("sql", "sql_id", "replication_index")
    SQL_FIELD_NUMBER: _ClassVar[int]
    SQL_ID_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_INDEX_FIELD_NUMBER: _ClassVar[int]
    sql: str
    sql_id: int
    replication_index: int
    def __init__(self, sql: _Optional[str] = ..., sql_id: _Optional[int] = ..., replication_index: _Optional[int] = ...) -> None: ...

class SequenceStreamResp(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeStreamReq(_message.Message):
    __slots__ = ("sql", "sql_id", "replication_index")
    SQL_FIELD_NUMBER: _ClassVar[int]
    SQL_ID_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_INDEX_FIELD_NUMBER: _ClassVar[int]
    sql: str
    sql_id: int
    replication_index: int
    def __init__(self, sql: _Optional[str] = ..., sql_id: _Optional[int] = ..., replication_index: _Optional[int] = ...) -> None: ...

class DescribeStreamResp(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: DescribeResult
    def __init__(self, result: _Optional[_Union[DescribeResult, _Mapping]] = ...) -> None: ...

class StoreSqlStreamReq(_message.Message):
    __slots__ = ("sql_id", "sql")
    SQL_ID_FIELD_NUMBER: _ClassVar[int]
    SQL_FIELD_NUMBER: _ClassVar[int]
    sql_id: int
    sql: str
    def __init__(self, sql_id: _Optional[int] = ..., sql: _Optional[str] = ...) -> None: ...

class StoreSqlStreamResp(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CloseSqlStreamReq(_message.Message):
    __slots__ = ("sql_id",)
    SQL_ID_FIELD_NUMBER: _ClassVar[int]
    sql_id: int
    def __init__(self, sql_id: _Optional[int] = ...) -> None: ...

class CloseSqlStreamResp(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAutocommitStreamReq(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAutocommitStreamResp(_message.Message):
    __slots__ = ("is_autocommit",)
    IS_AUTOCOMMIT_FIELD_NUMBER: _ClassVar[int]
    is_autocommit: bool
    def __init__(self, is_autocommit: _Optional[bool] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("message", "code")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    message: str
    code: str
    def __init__(self, message: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class Stmt(_message.Message):
    __slots__ = ("sql", "sql_id", "args", "named_args", "want_rows", "replication_index")
    SQL_FIELD_NUMBER: _ClassVar[int]
    SQL_ID_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    NAMED_ARGS_FIELD_NUMBER: _ClassVar[int]
    WANT_ROWS_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_INDEX_FIELD_NUMBER: _ClassVar[int]
    sql: str
    sql_id: int
    args: _containers.RepeatedCompositeFieldContainer[Value]
    named_args: _containers.RepeatedCompositeFieldContainer[NamedArg]
    want_rows: bool
    replication_index: int
    def __init__(self, sql: _Optional[str] = ..., sql_id: _Optional[int] = ..., args: _Optional[_Iterable[_Union[Value, _Mapping]]] = ..., named_args: _Optional[_Iterable[_Union[NamedArg, _Mapping]]] = ..., want_rows: _Optional[bool] = ..., replication_index: _Optional[int] = ...) -> None: ...

class NamedArg(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: Value
    def __init__(self, name: _Optional[str] = ..., value: _Optional[_Union[Value, _Mapping]] = ...) -> None: ...

class StmtResult(_message.Message):
    __slots__ = ("cols", "rows", "affected_row_count", "last_insert_rowid", "replication_index", "rows_read", "rows_written", "query_duration_ms")
    COLS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    AFFECTED_ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_INSERT_ROWID_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_INDEX_FIELD_NUMBER: _ClassVar[int]
    ROWS_READ_FIELD_NUMBER: _ClassVar[int]
    ROWS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    QUERY_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    cols: _containers.RepeatedCompositeFieldContainer[Col]
    rows: _containers.RepeatedCompositeFieldContainer[Row]
    affected_row_count: int
    last_insert_rowid: int
    replication_index: int
    rows_read: int
    rows_written: int
    query_duration_ms: float
    def __init__(self, cols: _Optional[_Iterable[_Union[Col, _Mapping]]] = ..., rows: _Optional[_Iterable[_Union[Row, _Mapping]]] = ..., affected_row_count: _Optional[int] = ..., last_insert_rowid: _Optional[int] = ..., replication_index: _Optional[int] = ..., rows_read: _Optional[int] = ..., rows_written: _Optional[int] = ..., query_duration_ms: _Optional[float] = ...) -> None: ...

class Col(_message.Message):
    __slots__ = ("name", "decltype")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DECLTYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    decltype: str
    def __init__(self, name: _Optional[str] = ..., decltype: _Optional[str] = ...) -> None: ...

class Row(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("steps", "replication_index")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_INDEX_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[BatchStep]
    replication_index: int
    def __init__(self, steps: _Optional[_Iterable[_Union[BatchStep, _Mapping]]] = ..., replication_index: _Optional[int] = ...) -> None: ...

class BatchStep(_message.Message):
    __slots__ = ("condition", "stmt")
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    STMT_FIELD_NUMBER: _ClassVar[int]
    condition: BatchCond
    stmt: Stmt
    def __init__(self, condition: _Optional[_Union[BatchCond, _Mapping]] = ..., stmt: _Optional[_Union[Stmt, _Mapping]] = ...) -> None: ...

class BatchCond(_message.Message):
    __slots__ = ("step_ok", "step_error", "is_autocommit")
    class CondList(_message.Message):
        __slots__ = ("conds",)
        CONDS_FIELD_NUMBER: _ClassVar[int]
        conds: _containers.RepeatedCompositeFieldContainer[BatchCond]
        def __init__(self, conds: _Optional[_Iterable[_Union[BatchCond, _Mapping]]] = ...) -> None: ...
    class IsAutocommit(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    STEP_OK_FIELD_NUMBER: _ClassVar[int]
    STEP_ERROR_FIELD_NUMBER: _ClassVar[int]
    NOT_FIELD_NUMBER: _ClassVar[int]
    AND_FIELD_NUMBER: _ClassVar[int]
    OR_FIELD_NUMBER: _ClassVar[int]
    IS_AUTOCOMMIT_FIELD_NUMBER: _ClassVar[int]
    step_ok: int
    step_error: int
    is_autocommit: BatchCond.IsAutocommit
    def __init__(self, step_ok: _Optional[int] = ..., step_error: _Optional[int] = ..., is_autocommit: _Optional[_Union[BatchCond.IsAutocommit, _Mapping]] = ..., **kwargs) -> None: ...

class BatchResult(_message.Message):
    __slots__ = ("step_results", "step_errors")
    class StepResultsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: StmtResult
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[StmtResult, _Mapping]] = ...) -> None: ...
    class StepErrorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: Error
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...
    STEP_RESULTS_FIELD_NUMBER: _ClassVar[int]
    STEP_ERRORS_FIELD_NUMBER: _ClassVar[int]
    step_results: _containers.MessageMap[int, StmtResult]
    step_errors: _containers.MessageMap[int, Error]
    def __init__(self, step_results: _Optional[_Mapping[int, StmtResult]] = ..., step_errors: _Optional[_Mapping[int, Error]] = ...) -> None: ...

class CursorEntry(_message.Message):
    __slots__ = ("step_begin", "step_end", "step_error", "row", "error", "replication_index")
    class ReplicationIndex(_message.Message):
        __slots__ = ("value",)
        VALUE_FIELD_NUMBER: _ClassVar[int]
        value: int
        def __init__(self, value: _Optional[int] = ...) -> None: ...
    STEP_BEGIN_FIELD_NUMBER: _ClassVar[int]
    STEP_END_FIELD_NUMBER: _ClassVar[int]
    STEP_ERROR_FIELD_NUMBER: _ClassVar[int]
    ROW_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_INDEX_FIELD_NUMBER: _ClassVar[int]
    step_begin: StepBeginEntry
    step_end: StepEndEntry
    step_error: StepErrorEntry
    row: Row
    error: Error
    replication_index: CursorEntry.ReplicationIndex
    def __init__(self, step_begin: _Optional[_Union[StepBeginEntry, _Mapping]] = ..., step_end: _Optional[_Union[StepEndEntry, _Mapping]] = ..., step_error: _Optional[_Union[StepErrorEntry, _Mapping]] = ..., row: _Optional[_Union[Row, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., replication_index: _Optional[_Union[CursorEntry.ReplicationIndex, _Mapping]] = ...) -> None: ...

class StepBeginEntry(_message.Message):
    __slots__ = ("step", "cols")
    STEP_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    step: int
    cols: _containers.RepeatedCompositeFieldContainer[Col]
    def __init__(self, step: _Optional[int] = ..., cols: _Optional[_Iterable[_Union[Col, _Mapping]]] = ...) -> None: ...

class StepEndEntry(_message.Message):
    __slots__ = ("affected_row_count", "last_insert_rowid")
    AFFECTED_ROW_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_INSERT_ROWID_FIELD_NUMBER: _ClassVar[int]
    affected_row_count: int
    last_insert_rowid: int
    def __init__(self, affected_row_count: _Optional[int] = ..., last_insert_rowid: _Optional[int] = ...) -> None: ...

class StepErrorEntry(_message.Message):
    __slots__ = ("step", "error")
    STEP_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    step: int
    error: Error
    def __init__(self, step: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ...) -> None: ...

class DescribeResult(_message.Message):
    __slots__ = ("params", "cols", "is_explain", "is_readonly")
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    IS_EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    IS_READONLY_FIELD_NUMBER: _ClassVar[int]
    params: _containers.RepeatedCompositeFieldContainer[DescribeParam]
    cols: _containers.RepeatedCompositeFieldContainer[DescribeCol]
    is_explain: bool
    is_readonly: bool
    def __init__(self, params: _Optional[_Iterable[_Union[DescribeParam, _Mapping]]] = ..., cols: _Optional[_Iterable[_Union[DescribeCol, _Mapping]]] = ..., is_explain: _Optional[bool] = ..., is_readonly: _Optional[bool] = ...) -> None: ...

class DescribeParam(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DescribeCol(_message.Message):
    __slots__ = ("name", "decltype")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DECLTYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    decltype: str
    def __init__(self, name: _Optional[str] = ..., decltype: _Optional[str] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("null", "integer", "float", "text", "blob")
    class Null(_message.Message):
        __slots__ = ()
        def __init__(self) -> None: ...
    NULL_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    FLOAT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    BLOB_FIELD_NUMBER: _ClassVar[int]
    null: Value.Null
    integer: int
    float: float
    text: str
    blob: bytes
    def __init__(self, null: _Optional[_Union[Value.Null, _Mapping]] = ..., integer: _Optional[int] = ..., float: _Optional[float] = ..., text: _Optional[str] = ..., blob: _Optional[bytes] = ...) -> None: ...
