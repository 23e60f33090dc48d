"""Hrana over HTTP in protobuf (``/v3-protobuf/pipeline`` and ``/v3-protobuf/cursor``).

``@libsql/client`` asks ``GET /v3-protobuf`` first and, when it is served, speaks
protobuf from then on. The schema is ``hrana.proto`` (the specification's appendix plus
the fields sqld adds). This module only translates: a request body becomes the JSON shape
the POP already validates (``pop.hrana.messages``), and an answer in the JSON shape
becomes its protobuf twin, as sqld encodes it (proto3 defaults left out, a batch's
results as maps keyed by step, a cursor as length-delimited messages).
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf.message import DecodeError

from pop.hrana import hrana_pb2 as pb
from pop.hrana.errors import ProtocolError
from pop.hrana.values import decode_blob

# What sqld sends: a pipeline's answer as protobuf; a cursor's as a bare byte stream.
PIPELINE_CONTENT_TYPE = b"application/x-protobuf"
CURSOR_CONTENT_TYPE = b"application/octet-stream"

Json = dict[str, Any]


def decode_pipeline(raw: bytes) -> Json:
    """A ``PipelineReqBody`` as the JSON pipeline body it stands for."""
    message = _parse(pb.PipelineReqBody, raw)
    body: Json = {"requests": [_request(request) for request in message.requests]}
    if message.HasField("baton"):
        body["baton"] = message.baton
    return body


def decode_cursor(raw: bytes) -> Json:
    """A ``CursorReqBody`` as the JSON ``/v3/cursor`` body it stands for."""
    message = _parse(pb.CursorReqBody, raw)
    body: Json = {"batch": _batch(message.batch)}
    if message.HasField("baton"):
        body["baton"] = message.baton
    return body


def encode_pipeline(body: Json) -> bytes:
    """A JSON pipeline answer as a ``PipelineRespBody``."""
    message = pb.PipelineRespBody(results=[_result(result) for result in body["results"]])
    _set_optional(message, "baton", body.get("baton"))
    _set_optional(message, "base_url", body.get("base_url"))
    return message.SerializeToString()


def encode_cursor(entries: list[Json]) -> bytes:
    """A cursor (its header, then its entries; see ``pop.http.cursor``) as sqld sends it:
    each message preceded by its length as a varint."""
    header, *rest = entries
    head = pb.CursorRespBody()
    _set_optional(head, "baton", header.get("baton"))
    _set_optional(head, "base_url", header.get("base_url"))
    messages = [head, *(_cursor_entry(entry) for entry in rest)]
    return b"".join(_delimited(message.SerializeToString()) for message in messages)


def _parse(kind: Any, raw: bytes) -> Any:
    message = kind()
    try:
        message.ParseFromString(raw)
    except DecodeError as exc:
        raise ProtocolError(f"could not decode the protobuf request body: {exc}") from None
    return message


def _set_optional(message: Any, field: str, value: Any) -> None:
    if value is not None:
        setattr(message, field, value)


def _delimited(data: bytes) -> bytes:
    length = len(data)
    prefix = bytearray()
    while length >= 0x80:
        prefix.append(length & 0x7F | 0x80)
        length >>= 7
    prefix.append(length)
    return bytes(prefix) + data


# Requests: protobuf -> JSON shapes.


def _request(request: pb.StreamRequest) -> Json:
    kind = request.WhichOneof("request")
    if kind is None:
        raise ProtocolError("a stream request has none of the known request types")
    if kind == "execute":
        return {"type": kind, "stmt": _stmt(request.execute.stmt)}
    if kind == "batch":
        return {"type": kind, "batch": _batch(request.batch.batch)}
    if kind in ("sequence", "describe"):
        ref = getattr(request, kind)
        return {"type": kind, **_sql_ref(ref)}
    if kind == "store_sql":
        return {"type": kind, "sql_id": request.store_sql.sql_id, "sql": request.store_sql.sql}
    if kind == "close_sql":
        return {"type": kind, "sql_id": request.close_sql.sql_id}
    return {"type": kind}  # close, get_autocommit: no fields


def _sql_ref(ref: Any) -> Json:
    found: Json = {}
    for field in ("sql", "sql_id", "replication_index"):
        if ref.HasField(field):
            found[field] = getattr(ref, field)
    return found


def _stmt(stmt: pb.Stmt) -> Json:
    found = _sql_ref(stmt)
    found["args"] = [_value(value) for value in stmt.args]
    found["named_args"] = [
        {"name": arg.name, "value": _value(arg.value)} for arg in stmt.named_args
    ]
    if stmt.HasField("want_rows"):
        found["want_rows"] = stmt.want_rows
    return found


def _batch(batch: pb.Batch) -> Json:
    steps = []
    for step in batch.steps:
        decoded: Json = {"stmt": _stmt(step.stmt)}
        if step.HasField("condition"):
            decoded["condition"] = _cond(step.condition)
        steps.append(decoded)
    found: Json = {"steps": steps}
    if batch.HasField("replication_index"):
        found["replication_index"] = batch.replication_index
    return found


def _cond(cond: pb.BatchCond) -> Json:
    kind = cond.WhichOneof("cond")
    if kind == "step_ok":
        return {"type": "ok", "step": cond.step_ok}
    if kind == "step_error":
        return {"type": "error", "step": cond.step_error}
    if kind == "not":
        return {"type": "not", "cond": _cond(getattr(cond, "not"))}
    if kind in ("and", "or"):
        return {"type": kind, "conds": [_cond(inner) for inner in getattr(cond, kind).conds]}
    if kind == "is_autocommit":
        return {"type": kind}
    raise ProtocolError("a batch condition has none of the known condition types")


def _value(value: pb.Value) -> Json:
    kind = value.WhichOneof("value")
    if kind == "null":
        return {"type": "null"}
    if kind == "integer":
        return {"type": kind, "value": str(value.integer)}
    if kind == "float":
        return {"type": kind, "value": value.float}
    if kind == "text":
        return {"type": kind, "value": value.text}
    if kind == "blob":
        return {"type": kind, "base64": base64.b64encode(value.blob).decode()}
    raise ProtocolError("a value has none of the known value types")


# Answers: JSON shapes -> protobuf.


def _result(result: Json) -> pb.StreamResult:
    if result["type"] == "error":
        return pb.StreamResult(error=_error(result["error"]))
    response = result["response"]
    kind = response["type"]
    if kind == "execute":
        inner: Any = pb.ExecuteStreamResp(result=_stmt_result(response["result"]))
    elif kind == "batch":
        inner = pb.BatchStreamResp(result=_batch_result(response["result"]))
    elif kind == "describe":
        inner = pb.DescribeStreamResp(result=_describe_result(response["result"]))
    elif kind == "get_autocommit":
        inner = pb.GetAutocommitStreamResp(is_autocommit=response["is_autocommit"])
    else:  # close, sequence, store_sql, close_sql: nothing to say
        inner = _EMPTY_RESPONSES[kind]()
    return pb.StreamResult(ok=pb.StreamResponse(**{kind: inner}))


_EMPTY_RESPONSES: dict[str, Any] = {
    "close": pb.CloseStreamResp,
    "sequence": pb.SequenceStreamResp,
    "store_sql": pb.StoreSqlStreamResp,
    "close_sql": pb.CloseSqlStreamResp,
}


def _error(error: Json) -> pb.Error:
    return pb.Error(message=error["message"], code=error.get("code") or "")


def _stmt_result(result: Json) -> pb.StmtResult:
    message = pb.StmtResult(
        cols=[_col(col) for col in result["cols"]],
        rows=[pb.Row(values=[_value_out(value) for value in row]) for row in result["rows"]],
        affected_row_count=result["affected_row_count"],
        rows_read=result.get("rows_read") or 0,
        rows_written=result.get("rows_written") or 0,
        query_duration_ms=result.get("query_duration_ms") or 0.0,
    )
    _set_optional(message, "last_insert_rowid", _integer(result.get("last_insert_rowid")))
    _set_optional(message, "replication_index", _integer(result.get("replication_index")))
    return message


def _batch_result(result: Json) -> pb.BatchResult:
    message = pb.BatchResult()
    for step, ok in enumerate(result["step_results"]):
        if ok is not None:
            message.step_results[step].CopyFrom(_stmt_result(ok))
    for step, error in enumerate(result["step_errors"]):
        if error is not None:
            message.step_errors[step].CopyFrom(_error(error))
    return message


def _describe_result(result: Json) -> pb.DescribeResult:
    params = []
    for param in result["params"]:
        described = pb.DescribeParam()
        _set_optional(described, "name", param.get("name"))
        params.append(described)
    cols = []
    for col in result["cols"]:
        column = pb.DescribeCol(name=col["name"])
        _set_optional(column, "decltype", col.get("decltype"))
        cols.append(column)
    return pb.DescribeResult(
        params=params,
        cols=cols,
        is_explain=result["is_explain"],
        is_readonly=result["is_readonly"],
    )


def _col(col: Json) -> pb.Col:
    message = pb.Col()
    _set_optional(message, "name", col.get("name"))
    _set_optional(message, "decltype", col.get("decltype"))
    return message


def _value_out(value: Json) -> pb.Value:
    kind = value["type"]
    if kind == "null":
        return pb.Value(null=pb.Value.Null())
    if kind == "integer":
        return pb.Value(integer=int(value["value"]))
    if kind == "float":
        return pb.Value(float=value["value"])
    if kind == "text":
        return pb.Value(text=value["value"])
    return pb.Value(blob=decode_blob(value["base64"]))


def _integer(value: Any) -> int | None:
    """An integer the JSON shape carries as a decimal string (or, from some origins, a
    number)."""
    return None if value is None else int(value)


def _cursor_entry(entry: Json) -> pb.CursorEntry:
    kind = entry["type"]
    if kind == "step_begin":
        return pb.CursorEntry(
            step_begin=pb.StepBeginEntry(step=entry["step"], cols=[_col(c) for c in entry["cols"]])
        )
    if kind == "row":
        return pb.CursorEntry(row=pb.Row(values=[_value_out(value) for value in entry["row"]]))
    if kind == "step_end":
        end = pb.StepEndEntry(affected_row_count=entry["affected_row_count"])
        _set_optional(end, "last_insert_rowid", _integer(entry["last_insert_rowid"]))
        return pb.CursorEntry(step_end=end)
    if kind == "step_error":
        return pb.CursorEntry(
            step_error=pb.StepErrorEntry(step=entry["step"], error=_error(entry["error"]))
        )
    if kind == "error":
        return pb.CursorEntry(error=_error(entry["error"]))
    index = _integer(entry["replication_index"])
    if index is None:
        return pb.CursorEntry()  # sqld: an entry with no field when there is no index
    return pb.CursorEntry(replication_index=pb.CursorEntry.ReplicationIndex(value=index))
