"""Hrana over HTTP in protobuf (``/v3-protobuf/...``), what ``@libsql/client`` speaks to
sqld and Turso: the same protobuf bodies sent to a real sqld and to a POP in front of it
must get the same answers (compared as tests/test_sqld_parity.py compares them).
``@libsql/client`` itself runs over it in tests/test_clients_js.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.unknown_fields import UnknownFieldSet

from pop.devtools import protobuf_codegen
from pop.devtools.processes import PopProcess, SqldServer
from pop.hrana import hrana_pb2 as pb
from tests.conftest import SCHEMA
from tests.helpers import Target, comparable_with_sqld, metric, running

PROTOBUF = {"content-type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def sqld(sqld_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqldServer]:
    origin = SqldServer(sqld_binary, tmp_path_factory.mktemp("pb-origin"))
    with running(origin):
        for sql in SCHEMA:
            origin.execute(sql)
        origin.execute("INSERT INTO kv (k, v) VALUES ('pb-seed', 'seeded')")
        yield origin


@pytest.fixture(scope="module")
def pop(sqld: SqldServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PopProcess]:
    pop = PopProcess(sqld.url, tmp_path_factory.mktemp("pb"), region="eu", engine="libsql")
    with running(pop):
        yield pop


def _stmt(sql: str, *args: pb.Value, **fields: Any) -> pb.Stmt:
    return pb.Stmt(sql=sql, args=list(args), **fields)


def _execute(sql: str, *args: pb.Value, **fields: Any) -> pb.StreamRequest:
    return pb.StreamRequest(execute=pb.ExecuteStreamReq(stmt=_stmt(sql, *args, **fields)))


def _step(sql: str, condition: pb.BatchCond | None = None) -> pb.BatchStep:
    return pb.BatchStep(stmt=_stmt(sql), condition=condition)


def _batch(*steps: pb.BatchStep) -> pb.StreamRequest:
    return pb.StreamRequest(batch=pb.BatchStreamReq(batch=pb.Batch(steps=list(steps))))


def _combined(kind: str, inner: Message) -> pb.BatchCond:
    """A ``not``, ``and`` or ``or`` condition (Python keywords, so no keyword arguments)."""
    cond = pb.BatchCond()
    getattr(cond, kind).CopyFrom(inner)
    return cond


ok0 = pb.BatchCond(step_ok=0)
failed1 = pb.BatchCond(step_error=1)

# Two pipelines on one stream (the second carries the first's baton): every value type
# in and out, named arguments, rows not wanted, a forwarded write and its read, errors of
# each kind, conditions of each kind, stored SQL, describe, a transaction rolled back.
PIPELINES: list[list[pb.StreamRequest]] = [
    [
        _execute(
            "SELECT ?, ?, ?, ?, ?, typeof(?5)",
            pb.Value(integer=-(2**63)),
            pb.Value(float=-0.5),
            pb.Value(text="žluťoučký"),
            pb.Value(blob=b"\x00\xff"),
            pb.Value(null=pb.Value.Null()),
        ),
        pb.StreamRequest(
            execute=pb.ExecuteStreamReq(
                stmt=pb.Stmt(
                    sql="SELECT :a || @b",
                    named_args=[
                        pb.NamedArg(name=":a", value=pb.Value(text="x")),
                        pb.NamedArg(name="@b", value=pb.Value(integer=7)),
                    ],
                )
            )
        ),
        _execute("SELECT k, v FROM kv WHERE k = 'pb-seed'", want_rows=False),
        _execute("UPDATE kv SET v = v WHERE k = ?", pb.Value(text="pb-seed")),
        _execute("SELECT k, v FROM kv WHERE k = 'pb-seed'"),
        _execute("INSERT INTO kv (k, v) VALUES ('pb-seed', 'again')"),
        _execute("SELEC 1"),
        _execute("SELECT * FROM no_such_table"),
        pb.StreamRequest(store_sql=pb.StoreSqlStreamReq(sql_id=3, sql="SELECT count(*) FROM kv")),
        pb.StreamRequest(execute=pb.ExecuteStreamReq(stmt=pb.Stmt(sql_id=3))),
    ],
    [
        _batch(
            _step("SELECT 1"),
            _step("SELECT * FROM no_such_table", ok0),
            _step("SELECT 2", failed1),
            _step("SELECT 3", _combined("not", ok0)),
            _step("SELECT 4", _combined("and", pb.BatchCond.CondList(conds=[ok0, failed1]))),
            _step("SELECT 5", _combined("or", pb.BatchCond.CondList(conds=[ok0]))),
            _step("SELECT 6", pb.BatchCond(is_autocommit=pb.BatchCond.IsAutocommit())),
        ),
        pb.StreamRequest(describe=pb.DescribeStreamReq(sql="SELECT k AS key, ?, :n FROM kv")),
        pb.StreamRequest(sequence=pb.SequenceStreamReq(sql="SELECT 1; SELECT 2")),
        pb.StreamRequest(sequence=pb.SequenceStreamReq(sql_id=3)),
        _execute("BEGIN"),
        _execute("INSERT INTO kv (k, v) VALUES ('pb-rolled-back', 'x')"),
        pb.StreamRequest(get_autocommit=pb.GetAutocommitStreamReq()),
        _execute("SELECT v FROM kv WHERE k = 'pb-rolled-back'"),
        _execute("ROLLBACK"),
        pb.StreamRequest(get_autocommit=pb.GetAutocommitStreamReq()),
        pb.StreamRequest(close_sql=pb.CloseSqlStreamReq(sql_id=3)),
        pb.StreamRequest(close=pb.CloseStreamReq()),
    ],
]


def _post(url: str, path: str, body: bytes, token: str | None) -> httpx.Response:
    headers = {**PROTOBUF, **({"authorization": f"Bearer {token}"} if token else {})}
    return httpx.post(f"{url}{path}", content=body, headers=headers, timeout=30)


def _decoded(kind: type[Message], data: bytes) -> dict[str, Any]:
    message = kind()
    message.ParseFromString(data)
    _assert_known(message)
    decoded: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    comparable: dict[str, Any] = comparable_with_sqld(decoded)
    return comparable


def _assert_known(message: Message) -> None:
    """Every field the answer carries is in the POP's schema (hrana.proto), deep down."""
    assert len(UnknownFieldSet(message)) == 0, message
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            values = list(value.values())
        elif field.is_repeated:
            values = list(value)
        else:
            values = [value]
        for inner in values:
            if isinstance(inner, Message):
                _assert_known(inner)


def _pipelines(url: str, token: str | None) -> list[dict[str, Any]]:
    answers = []
    baton = None
    for requests in PIPELINES:
        body = pb.PipelineReqBody(baton=baton, requests=requests).SerializeToString()
        response = _post(url, "/v3-protobuf/pipeline", body, token)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/x-protobuf"
        answer = pb.PipelineRespBody()
        answer.ParseFromString(response.content)
        baton = answer.baton if answer.HasField("baton") else None
        answers.append(_decoded(pb.PipelineRespBody, response.content))
    return answers


def test_a_pipeline_gets_the_answers_sqld_gives(pop: PopProcess, sqld: SqldServer) -> None:
    with pop.client() as http:
        assert http.post("/sync").json()["ok"]
    from_sqld = _pipelines(sqld.url, None)
    from_pop = _pipelines(pop.url, pop.token)
    for expected, got in zip(from_sqld, from_pop, strict=True):
        for index, (want, have) in enumerate(zip(expected["results"], got["results"], strict=True)):
            assert have == want, f"result {index}"
    assert _served(pop, "v3_protobuf_pipeline") > 0
    # The rolled-back insert reached neither.
    gone = sqld.execute("SELECT count(*) FROM kv WHERE k = 'pb-rolled-back'")
    assert gone["rows"] == [[{"type": "integer", "value": "0"}]]


def _cursor(url: str, token: str | None) -> list[dict[str, Any]]:
    batch = pb.Batch(
        steps=[
            _step("SELECT k, v FROM kv ORDER BY k"),
            _step("SELECT * FROM no_such_table"),
            _step("SELECT 1 AS one", failed1),
            _step("SELECT 2", ok0),
        ]
    )
    body = pb.CursorReqBody(batch=batch).SerializeToString()
    response = _post(url, "/v3-protobuf/cursor", body, token)
    assert response.status_code == 200, response.text
    data = response.content
    head, position = _delimited(data, 0)
    messages = [_decoded(pb.CursorRespBody, head)]
    while position < len(data):
        entry, position = _delimited(data, position)
        messages.append(_decoded(pb.CursorEntry, entry))
    return messages


def _delimited(data: bytes, position: int) -> tuple[bytes, int]:
    length = shift = 0
    while True:
        byte = data[position]
        position += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return data[position : position + length], position + length


def test_a_cursor_gets_the_entries_sqld_sends(pop: PopProcess, sqld: SqldServer) -> None:
    from_sqld = _cursor(sqld.url, None)
    from_pop = _cursor(pop.url, pop.token)
    assert from_pop == from_sqld
    kinds = [next(iter(entry), None) for entry in from_sqld[1:]]
    assert kinds[:2] == ["step_begin", "row"] and "step_error" in kinds, kinds


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\xff\xff\xff", id="not protobuf"),
        pytest.param(b'{"requests": []}', id="json"),
        pytest.param(
            pb.PipelineReqBody(requests=[pb.StreamRequest()]).SerializeToString(),
            id="a request of no type",
        ),
        pytest.param(
            pb.PipelineReqBody(
                requests=[_execute("INSERT INTO kv (k, v) VALUES ('pb-never', ?)", pb.Value())]
            ).SerializeToString(),
            id="a value of no type",
        ),
    ],
)
def test_a_body_sqld_refuses_is_refused_and_nothing_applied(
    pop: PopProcess, sqld: SqldServer, body: bytes
) -> None:
    assert _post(sqld.url, "/v3-protobuf/pipeline", body, None).status_code == 400
    refused = _post(pop.url, "/v3-protobuf/pipeline", body, pop.token)
    assert refused.status_code == 400
    assert refused.json()["message"]
    never = sqld.execute("SELECT count(*) FROM kv WHERE k = 'pb-never'")
    assert never["rows"] == [[{"type": "integer", "value": "0"}]]


def test_hrana_client_speaking_protobuf_gets_what_sqld_gives(
    node_client: Any, pop: PopProcess, sqld: SqldServer
) -> None:
    """The real client: hrana-client asked for protocol 3 probes ``GET /v3-protobuf`` and
    then speaks protobuf to the pipeline and cursor endpoints."""
    served = {e: _served(pop, e) for e in ("v3_protobuf_pipeline", "v3_protobuf_cursor")}
    through_pop = node_client("protobuf", pop)
    direct = node_client("protobuf", Target(sqld.url, ""))
    assert through_pop == direct
    assert through_pop["version"] == 3
    assert through_pop["values"] == ["9223372036854775807", -0.5, "žluťoučký kůň", [0, 255], None]
    assert through_pop["batch"]["failing"]["code"] == "SQLITE_UNKNOWN"
    assert through_pop["batch"]["ran"] == "2" and through_pop["batch"]["skipped"] == "skipped"
    # hrana-client 0.10.0 cannot read the entry sqld ends a cursor with; nor, alike, the POP's.
    assert "unrecognized CursorEntry" in through_pop["cursorBatch"]["message"]
    assert through_pop["inTransaction"] is True and through_pop["afterRollback"] == "0"
    for endpoint, before in served.items():
        assert _served(pop, endpoint) > before, endpoint


def _served(pop: PopProcess, endpoint: str) -> float:
    return metric(pop, "edgepop_requests_total", endpoint=endpoint)


def test_protobuf_is_announced_as_sqld_announces_it(pop: PopProcess, sqld: SqldServer) -> None:
    assert httpx.get(f"{sqld.url}/v3-protobuf").status_code == 200
    assert httpx.get(f"{pop.url}/v3-protobuf").status_code == 200
    unauthorised = _post(pop.url, "/v3-protobuf/pipeline", b"", "wrong")
    assert unauthorised.status_code == 401


def test_the_generated_code_is_what_the_schema_generates() -> None:
    """``hrana_pb2`` is generated from ``hrana.proto``, never edited by hand."""
    generated = protobuf_codegen.generate()
    for name, text in generated.items():
        committed = (protobuf_codegen.SCHEMA.parent / name).read_text()
        assert committed == text, f"{name} drifted: run python -m pop.devtools.protobuf_codegen"
