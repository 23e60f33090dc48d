"""One program, run through a POP, through ``sqld`` and through SQLite, compared unit by unit.

A *stack* is a real origin, a writing POP, a second POP that learns of changes only by
syncing, and a ``sqld`` beside them. Before each program the origin and ``sqld`` are
emptied (every object dropped), so the same names come and go across programs, and both
POPs must follow.

Two references, two rules:
- ``sqld`` (the libSQL server): every answer of the POP, whole, equals ``sqld``'s to the
  same request (``normalized_answer`` says what is left out); for ``@libsql/client``
  units, the client's results and error codes are equal.
- SQLite (``reference.Reference``): what each statement produced (rows, types, counts,
  failed or not) is what plain SQLite produces.
After every unit the origin's one connection must be back in autocommit, and the writing
POP's replica must hold what the origin holds (read-your-writes); at the end, the second
POP and ``sqld`` must hold it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from pop.devtools.processes import (
    GatewayProcess,
    HranaServer,
    PopProcess,
    SqldServer,
    TursodbOrigin,
    loopback_client,
)
from tests.differential.grammar import Mode, OriginProfile, Program
from tests.differential.outcome import Dump, Failed, Outcome, Row, quote_identifier
from tests.differential.reference import Reference, dump_with
from tests.differential.through_pop import NodeClient, RawHrana, local_reads, pop_query

_CLIENT_MODES = frozenset(
    {Mode.CLIENT_EXECUTE, Mode.CLIENT_BATCH, Mode.CLIENT_MULTIPLE, Mode.CLIENT_TRANSACTION}
)
_DROP_ORDER = {"trigger": 0, "view": 1, "index": 2, "table": 3}


class Divergence(AssertionError):
    pass


def _without_codes(outcomes: list[Outcome]) -> list[Outcome]:
    """SQLite names codes its own way (extended names); against it, failing is what counts."""
    return [o.without_code() if isinstance(o, Failed) else o for o in outcomes]


@dataclass
class Stack:
    profile: OriginProfile
    writer: PopProcess
    follower: PopProcess
    node: NodeClient
    origin: httpx.Client  # what the POPs call the origin (tursodb, or the gateway before it)
    # tursodb itself, whose one connection every request shares; None for sqld, which
    # gives every stream a connection of its own (one left open would show instead as a
    # later write that waits, then fails, which the programs would see).
    database: httpx.Client | None
    sqld: SqldServer
    sqld_http: httpx.Client

    def empty(self, http: httpx.Client, *, close: bool = True) -> None:
        _, objects = pop_query(
            http,
            "SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' "
            "AND type IN ('trigger', 'view', 'index', 'table')",
            close=close,
        )
        drops = [
            f"DROP {kind[1].upper()} IF EXISTS {quote_identifier(str(name[1]))}"
            for kind, name in sorted(objects, key=lambda row: _DROP_ORDER[str(row[0][1])])
        ]
        _, sequence = pop_query(
            http, "SELECT count(*) FROM sqlite_schema WHERE name = 'sqlite_sequence'", close=close
        )
        drops += ["DELETE FROM sqlite_sequence"] if sequence[0][0][1] else []
        statements = [*drops, "PRAGMA user_version = 0"]
        requests = [{"type": "execute", "stmt": {"sql": sql}} for sql in statements]
        if close:
            requests.append({"type": "close"})
        answer = http.post("/v2/pipeline", json={"requests": requests}).json()
        for sql, result in zip(statements, answer["results"], strict=False):
            assert result["type"] == "ok", (sql, answer)

    def origin_in_autocommit(self) -> bool:
        """Whether tursodb's one connection is outside any transaction, asked of it."""
        if self.database is None:
            return True
        probe = {"stmt": {"sql": "SELECT 1"}, "condition": {"type": "is_autocommit"}}
        body = {"requests": [{"type": "batch", "batch": {"steps": [probe]}}]}
        answer = self.database.post("/v2/pipeline", json=body).json()
        return answer["results"][0]["response"]["result"]["step_results"][0] is not None

    def sync(self, pop: PopProcess) -> None:
        with pop.client() as http:
            response = http.post("/sync")
            assert response.status_code == 200, f"/sync on {pop.name}: {response.text}"

    def pop_dump(self, pop: PopProcess) -> Dump:
        """What ``pop`` holds, every table's and view's rows read from its own replica."""
        with pop.client() as http:
            read_here = 0

            def content(sql: str) -> tuple[tuple[str, ...], list[Row]]:
                nonlocal read_here
                answer = pop_query(http, sql)
                read_here += 1
                return answer

            before = local_reads(http)
            dump = dump_with(lambda sql: pop_query(http, sql), content)
            answered = local_reads(http) - before
            assert answered == read_here, (
                f"{pop.name} answered {answered:g} of {read_here} content reads from its "
                "replica; the others went to the origin (the replica lacks what they read)"
            )
            return dump

    def origin_dump(self) -> Dump:
        closes = self.profile.keeps_streams
        return dump_with(lambda sql: pop_query(self.origin, sql, close=closes))

    def run(self, program: Program) -> None:
        """Run ``program`` all three ways; raise ``Divergence`` at the first difference."""
        self.empty(self.origin, close=self.profile.keeps_streams)
        self.empty(self.sqld_http)
        self.sync(self.writer)
        self.sync(self.follower)
        reference = Reference()
        through_pop = RawHrana(self.writer.client())
        through_sqld = RawHrana(loopback_client(self.sqld.url))
        try:
            for index, unit in enumerate(program.units):
                where = f"unit {index} ({unit.mode.value})"
                expected = reference.run(unit)
                if unit.mode in _CLIENT_MODES:
                    got = self.node.run(self.writer.url, self.writer.token, unit)
                    at_sqld = self.node.run(self.sqld.url, "", unit)
                    self._check(got == at_sqld, where, "POP", got, "sqld", at_sqld, program)
                else:
                    got, answers = through_pop.answers(unit)
                    _, sqld_answers = through_sqld.answers(unit)
                    same = answers == sqld_answers
                    self._check(same, where, "POP", answers, "sqld", sqld_answers, program)
                got, expected = _without_codes(got), _without_codes(expected)
                self._check(got == expected, where, "POP", got, "SQLite", expected, program)
                self._check_origin_state(where, program)
            want = reference.dump()
            self.sync(self.follower)
            for place, dump in (
                ("origin", self.origin_dump()),
                ("second POP", self.pop_dump(self.follower)),
                ("sqld", dump_with(lambda sql: pop_query(self.sqld_http, sql))),
            ):
                difference = want.difference(dump)
                if difference:
                    raise Divergence(
                        f"final content at the {place} differs from SQLite's: {difference}\n"
                        f"program:\n{program.describe()}"
                    )
        finally:
            through_pop.close()
            through_sqld.close()
            reference.close()

    def _check_origin_state(self, where: str, program: Program) -> None:
        if not self.origin_in_autocommit():
            raise Divergence(
                f"after {where} the origin is inside a transaction\nprogram:\n{program.describe()}"
            )
        at_origin, at_writer = self.origin_dump(), self.pop_dump(self.writer)
        difference = at_origin.difference(at_writer)
        if difference:
            raise Divergence(
                f"after {where} the writing POP's replica differs from the origin "
                f"(read-your-writes): {difference}\nprogram:\n{program.describe()}"
            )

    @staticmethod
    def _check(
        same: bool, where: str, name: str, got: object, other: str, want: object, program: Program
    ) -> None:
        if not same:
            raise Divergence(
                f"{where} differs\n  {name}: {got}\n  {other}: {want}\n"
                f"program:\n{program.describe()}"
            )


@contextmanager
def stack(
    kind: str, tursodb: str, sqld: str, node: str, workdir: Path, profile: OriginProfile
) -> Iterator[Stack]:
    """Origin ``kind``, two POPs, sqld and a Node client.

    ``kind``: "tursodb"; "gateway" (edge-pop gateway before tursodb), with POPs on the
    ``turso`` engine; or "sqld", a second sqld as the origin with POPs on their default
    engine, ``libsql``.
    """
    with ExitStack() as cleanup:
        database: HranaServer
        if kind == "sqld":
            (workdir / "origin").mkdir()
            database = SqldServer(sqld, workdir / "origin")
        else:
            database = TursodbOrigin(tursodb, workdir)
        database.start_and_wait()
        cleanup.callback(database.stop)
        origin_url = database.url
        if kind == "gateway":
            gateway = GatewayProcess(database.url, workdir)
            gateway.start_and_wait()
            cleanup.callback(gateway.stop)
            origin_url = gateway.url
        reference_server = SqldServer(sqld, workdir)
        reference_server.start_and_wait()
        cleanup.callback(reference_server.stop)
        # A long interval: the follower must learn of changes only from the syncs asked here.
        quiet = {"TURSO_SYNC_INTERVAL": "3600", "LOG_LEVEL": "warning"}
        engine = "libsql" if kind == "sqld" else "turso"
        writer = PopProcess(origin_url, workdir, region="writer", engine=engine, extra_env=quiet)
        follower = PopProcess(
            origin_url,
            workdir,
            region="follower",
            token=writer.token,
            engine=engine,
            extra_env=quiet,
        )
        for pop in (writer, follower):
            pop.start_and_wait()
            cleanup.callback(pop.stop)
        client = NodeClient(node)
        cleanup.callback(client.close)
        clients = [
            cleanup.enter_context(loopback_client(url))
            for url in (origin_url, database.url, reference_server.url)
        ]
        origin_http, database_http, sqld_http = clients
        yield Stack(
            profile,
            writer,
            follower,
            client,
            origin_http,
            None if kind == "sqld" else database_http,
            reference_server,
            sqld_http,
        )
