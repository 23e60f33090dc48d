"""The session loop alone, on a recording backend (no replica, no origin, no HTTP).

Both servers run their pipelines through it (the POP's router and ``edge-pop gateway``),
so what it guarantees is checked once here: batons, close, per-request errors, limits,
metrics, and a backend failure that never becomes more than one request's ``INTERNAL``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
import pytest

from pop.engines.base import ReadConnection
from pop.hrana.errors import HranaError, OutcomeUnknown, ProtocolError
from pop.hrana.messages import ExecuteReq, PipelineBody, StreamRequest, parse_body
from pop.limits import Limits
from pop.local.runner import Done
from pop.metrics import PopMetrics
from pop.session import Caller, Handled, Route, Session
from pop.streams import Stream, TxnState, WriteShown

LIMITS = Limits(max_sql_bytes=1024, max_batch_steps=2, max_pipeline_requests=3)


class RecordingBackend:
    """Answers each execute with its SQL; ``fail`` maps SQL texts to what they raise."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.fail = fail or {}
        self.handled: list[tuple[str, str]] = []  # (stream id, request type or SQL)
        self.released: list[str] = []
        self.held: list[str] = []  # "enter s1" / "exit s1"
        self.closing: list[bool] = []  # what each request was told of the close after it

    @contextlib.asynccontextmanager
    async def holding(self, stream: Stream) -> AsyncIterator[None]:
        self.held.append(f"enter {stream.id}")
        try:
            yield
        finally:
            self.held.append(f"exit {stream.id}")

    async def handle(
        self, stream: Stream, request: StreamRequest, *, closing: bool = False
    ) -> Handled:
        sql = getattr(getattr(request, "stmt", None), "sql", None)
        self.handled.append((stream.id, sql or request.type))
        self.closing.append(closing)
        if sql in self.fail:
            raise self.fail[sql]
        return Handled({"type": request.type, "echo": sql}, Route.LOCAL)

    async def release(self, stream: Stream) -> None:
        self.released.append(stream.id)


class RecordingReplica:
    """What the session told the replica's owner: catch-ups (with the origin's index)
    and outcomes unknown."""

    def __init__(self) -> None:
        self.caught_up: list[str | None] = []
        self.unknown_outcomes = 0

    async def catch_up(self, replication_index: str | None) -> WriteShown | None:
        self.caught_up.append(replication_index)
        return None  # the replica shows the write

    def outcome_unknown(self) -> None:
        self.unknown_outcomes += 1


def _session(
    backend: RecordingBackend,
    replica: RecordingReplica | None = None,
    idle_timeout: float = 60.0,
) -> tuple[Session, PopMetrics]:
    metrics = PopMetrics()
    session = Session(
        backend, LIMITS, metrics, idle_timeout=idle_timeout, server="test", replica=replica
    )
    return session, metrics


def _body(baton: str | None, *requests: dict[str, Any]) -> PipelineBody:
    return parse_body(PipelineBody, orjson.dumps({"baton": baton, "requests": list(requests)}))


def _execute(sql: str) -> dict[str, Any]:
    return {"type": "execute", "stmt": {"sql": sql}}


def _run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_pipeline_runs_in_order_and_continues_under_a_fresh_baton() -> None:
    backend = RecordingBackend()
    session, _ = _session(backend)
    first = _run(session.pipeline(_body(None, _execute("a"), _execute("b")), "v3_pipeline"))
    assert [r["response"]["echo"] for r in first.body["results"]] == ["a", "b"]
    assert first.route is Route.LOCAL
    second = _run(session.pipeline(_body(first.body["baton"], _execute("c")), "v3_pipeline"))
    assert second.body["baton"] not in (None, first.body["baton"])
    streams = {stream for stream, _ in backend.handled}
    assert len(streams) == 1, backend.handled  # the baton named the same stream
    with pytest.raises(ProtocolError) as spent:
        _run(session.pipeline(_body(first.body["baton"], _execute("d")), "v3_pipeline"))
    assert spent.value.code == "STREAM_EXPIRED"
    assert backend.held == ["enter s1", "exit s1", "enter s1", "exit s1"]


def test_close_releases_once_and_refuses_what_follows() -> None:
    backend = RecordingBackend()
    session, _ = _session(backend)
    answer = _run(
        session.pipeline(_body(None, _execute("a"), {"type": "close"}, _execute("b")), "v2")
    )
    results = answer.body["results"]
    assert answer.body["baton"] is None
    assert results[1] == {"type": "ok", "response": {"type": "close"}}
    assert results[2]["error"]["code"] == "STREAM_CLOSED"
    assert backend.released == ["s1"]
    assert [sql for _, sql in backend.handled] == ["a"]


def test_a_request_is_told_when_the_close_comes_right_after_it() -> None:
    """So that a forwarded request takes the close to the origin along with it."""
    backend = RecordingBackend()
    session, _ = _session(backend)
    _run(session.pipeline(_body(None, _execute("a"), _execute("b"), {"type": "close"}), "v2"))
    _run(session.pipeline(_body(None, _execute("c")), "v2"))
    assert backend.closing == [False, True, False]
    request = _body(None, _execute("d")).requests[0]
    _run(session.one(None, request, "v3_cursor"))
    _run(session.one(None, request, "legacy", keep=False))
    assert backend.closing[3:] == [False, True]


def test_a_failing_request_is_its_own_error_and_the_rest_still_run() -> None:
    replica = RecordingReplica()
    backend = RecordingBackend(
        fail={
            "bad": HranaError("no such table: t", "SQLITE_ERROR"),
            "bug": RuntimeError("a library misbehaved"),
            "lost": OutcomeUnknown("http://origin", "the connection dropped"),
        }
    )
    session, metrics = _session(backend, replica)
    answer = _run(
        session.pipeline(
            _body(None, _execute("bad"), _execute("bug"), _execute("lost")), "v3_pipeline"
        )
    )
    errors = [r["error"] for r in answer.body["results"]]
    assert errors[0] == {"message": "no such table: t", "code": "SQLITE_ERROR"}
    assert errors[1] == {"message": "internal error in the test; see its log", "code": "INTERNAL"}
    assert "traceback" not in errors[1]["message"].lower()
    assert errors[2]["code"] == "ORIGIN_OUTCOME_UNKNOWN"
    assert replica.unknown_outcomes == 1
    assert answer.route is Route.ORIGIN  # the outcome-unknown request went to the origin
    counted = metrics.registry.get_sample_value("edgepop_errors_total", {"code": "INTERNAL"})
    assert counted == 1.0
    assert answer.body["baton"] is not None  # errors do not end the stream


def test_limits_refuse_before_anything_runs() -> None:
    backend = RecordingBackend()
    session, _ = _session(backend)
    too_many = {"type": "batch", "batch": {"steps": [{"stmt": {"sql": "x"}}] * 3}}
    answer = _run(session.pipeline(_body(None, too_many, _execute("a")), "v3_pipeline"))
    assert answer.body["results"][0]["error"]["code"] == "BATCH_TOO_LARGE"
    assert [sql for _, sql in backend.handled] == ["a"]
    baton = answer.body["baton"]
    with pytest.raises(ProtocolError) as refused:
        _run(session.pipeline(_body(baton, *[_execute("b")] * 4), "v3_pipeline"))
    assert (refused.value.code, refused.value.status) == ("PIPELINE_TOO_LARGE", 413)
    # Refused whole, before the baton was spent: the stream goes on.
    _run(session.pipeline(_body(baton, _execute("c")), "v3_pipeline"))
    assert [sql for _, sql in backend.handled] == ["a", "c"]


def test_one_request_calls_keep_or_release_their_stream() -> None:
    backend = RecordingBackend()
    session, _ = _session(backend)
    request = _body(None, _execute("a")).requests[0]
    baton, result, route = _run(session.one(None, request, "v3_cursor"))
    assert baton is not None and result["response"]["echo"] == "a" and route is Route.LOCAL
    kept_baton, _, _ = _run(session.one(baton, request, "v3_cursor"))
    assert backend.released == []
    none, _, _ = _run(session.one(kept_baton, request, "legacy", keep=False))
    assert none is None
    assert backend.released == ["s1"]
    assert {stream for stream, _ in backend.handled} == {"s1"}


class FakeConnection:
    """Stands in for a replica connection: only whether it is inside a transaction."""

    in_transaction = True


class LocalBackend(RecordingBackend):
    """Reports local work as the router does: ``begin`` leaves a connection inside a
    transaction, ``fail`` fails on it (still inside), ``commit`` ends it."""

    def __init__(self) -> None:
        super().__init__()
        self.states: list[TxnState] = []  # the stream's state as each request found it
        self.given_back: list[object | None] = []
        self.last_stream: Stream | None = None

    async def handle(
        self, stream: Stream, request: StreamRequest, *, closing: bool = False
    ) -> Handled:
        self.states.append(stream.state)
        self.last_stream = stream
        assert isinstance(request, ExecuteReq)
        sql = request.stmt.sql
        conn = stream.local_conn or cast(ReadConnection, FakeConnection())
        if sql == "begin":
            done: Done[Any] = Done("began", None, conn)
        elif sql == "fail":
            done = Done(None, HranaError("no such column: x", "SQLITE_ERROR"), conn)
        else:
            done = Done("committed", None, None)
        return Handled({"type": "execute", "result": done.value}, Route.LOCAL, done)

    async def release(self, stream: Stream) -> None:
        self.given_back.append(stream.local_conn)
        await super().release(stream)


def test_the_session_keeps_what_local_work_left_open_and_frees_it_on_close() -> None:
    backend = LocalBackend()
    session, _ = _session(backend)
    answer = _run(
        session.pipeline(
            _body(None, _execute("begin"), _execute("fail"), _execute("commit")), "v3_pipeline"
        )
    )
    results = answer.body["results"]
    assert results[0]["response"]["result"] == "began"
    assert results[1]["error"] == {"message": "no such column: x", "code": "SQLITE_ERROR"}
    # A failed statement leaves the read transaction open, as SQLite does.
    assert backend.states == [TxnState.AUTOCOMMIT, TxnState.LOCAL_TXN, TxnState.LOCAL_TXN]
    answer = _run(
        session.pipeline(_body(answer.body["baton"], _execute("begin"), {"type": "close"}), "v2")
    )
    assert backend.states[-1] is TxnState.AUTOCOMMIT
    assert len(backend.given_back) == 1 and isinstance(backend.given_back[0], FakeConnection)


def test_an_expired_stream_is_released_and_holds_nothing_after() -> None:
    backend = LocalBackend()
    session, _ = _session(backend, idle_timeout=0.01)

    async def expire_one() -> Stream:
        await session.pipeline(_body(None, _execute("begin")), "v3_pipeline")
        stream = backend.last_stream
        assert stream is not None and stream.state is TxnState.LOCAL_TXN
        await asyncio.sleep(0.05)
        await session.streams.reap()
        return stream

    stream = _run(expire_one())
    assert len(session.streams) == 0
    assert backend.released == [stream.id]
    assert isinstance(backend.given_back[0], FakeConnection)
    assert stream.state is TxnState.AUTOCOMMIT and stream.local_conn is None


class WritingBackend(RecordingBackend):
    """Reports each execute as a possible write at the origin; ``fail`` ones fail after
    applying part of it (a sequence that failed midway)."""

    async def handle(
        self, stream: Stream, request: StreamRequest, *, closing: bool = False
    ) -> Handled:
        assert isinstance(request, ExecuteReq)
        sql = request.stmt.sql
        if sql in self.fail:
            return Handled({}, Route.ORIGIN, wrote=True, failure=self.fail[sql])
        return Handled({"type": "execute"}, Route.ORIGIN, wrote=True, replication_index="7")


def test_a_possible_write_has_the_replica_catch_up_before_the_answer_even_if_it_failed() -> None:
    replica = RecordingReplica()
    backend = WritingBackend(
        fail={"half": HranaError("UNIQUE constraint failed", "SQLITE_CONSTRAINT")}
    )
    session, _ = _session(backend, replica)
    answer = _run(session.pipeline(_body(None, _execute("w"), _execute("half")), "v2"))
    results = answer.body["results"]
    assert results[0]["type"] == "ok"
    assert results[1]["error"]["code"] == "SQLITE_CONSTRAINT"
    assert replica.caught_up == ["7", None]
    assert answer.route is Route.ORIGIN


class ReplicaThatCannotCatchUp(RecordingReplica):
    """Its catch-up sync fails (the origin went away): a write shows only once
    ``synced`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.synced = False

    async def catch_up(self, replication_index: str | None) -> WriteShown | None:
        await super().catch_up(replication_index)
        return lambda: self.synced


class FreshnessBackend(RecordingBackend):
    """Writes on "w"; records, for every other request, whether its stream may read the
    replica (``Stream.replica_shows_its_writes``)."""

    def __init__(self) -> None:
        super().__init__()
        self.local_allowed: list[bool] = []

    async def handle(
        self, stream: Stream, request: StreamRequest, *, closing: bool = False
    ) -> Handled:
        assert isinstance(request, ExecuteReq)
        if request.stmt.sql == "w":
            return Handled({"type": "execute"}, Route.ORIGIN, wrote=True)
        self.local_allowed.append(stream.replica_shows_its_writes)
        return Handled({"type": "execute"}, Route.LOCAL)


def test_a_write_the_replica_lacks_sends_only_its_clients_reads_to_the_origin() -> None:
    replica = ReplicaThatCannotCatchUp()
    backend = FreshnessBackend()
    session, _ = _session(backend, replica)
    writer, other = Caller(connection="10.0.0.1:5000"), Caller(connection="10.0.0.2:6000")

    async def calls() -> None:
        written = await session.pipeline(_body(None, _execute("w"), _execute("r")), "v2", writer)
        assert written.body["results"][0]["type"] == "ok"  # acknowledged all the same
        baton = written.body["baton"]
        await session.pipeline(_body(baton, _execute("r")), "v2", writer)  # same stream
        await session.pipeline(_body(None, _execute("r")), "v2", writer)  # a new one
        await session.pipeline(_body(None, _execute("r")), "v2", other)
        await session.pipeline(_body(None, _execute("r")), "v2")  # connection unknown
        replica.synced = True
        await session.pipeline(_body(None, _execute("r")), "v2", writer)

    _run(calls())
    assert backend.local_allowed == [False, False, False, True, True, True]


class SlowLocalBackend(LocalBackend):
    """``slow`` never finishes: the client leaves while it runs on the replica."""

    async def handle(
        self, stream: Stream, request: StreamRequest, *, closing: bool = False
    ) -> Handled:
        if isinstance(request, ExecuteReq) and request.stmt.sql == "slow":
            self.last_stream = stream
            await asyncio.Event().wait()
        return await super().handle(stream, request)


def test_a_stream_whose_client_left_mid_read_does_not_give_its_connection_back_twice() -> None:
    """The runner gives back the connection of work it interrupted (pop.local.runner);
    the stream must let go of it, or its expiry would lend it out a second time."""
    backend = SlowLocalBackend()
    session, _ = _session(backend, idle_timeout=0.01)

    async def leave_mid_read() -> Stream:
        begun = await session.pipeline(_body(None, _execute("begin")), "v3_pipeline")
        slow = asyncio.ensure_future(
            session.pipeline(_body(begun.body["baton"], _execute("slow")), "v3_pipeline")
        )
        await asyncio.sleep(0.01)
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slow
        await asyncio.sleep(0.05)
        await session.streams.reap()
        stream = backend.last_stream
        assert stream is not None
        return stream

    stream = _run(leave_mid_read())
    assert backend.released == [stream.id]  # expired, and released once
    assert backend.given_back == [None]  # with nothing left to give back
