"""Where a request runs: the replica or the origin.

A pure function of the request's prepared statements, where the stream's transaction
lives, and what the replica and the origin can do; no I/O, so every rule is unit-tested
(``tests/test_placement.py``). Reads run on the replica; anything that writes, or a
transaction that may write, runs on the origin; a transaction never runs half here and
half there.
"""

from __future__ import annotations

from collections.abc import Sequence

from pop.hrana.errors import HranaError
from pop.local.binding import args_refusal
from pop.session import Route
from pop.sql.inspector import Kind, StatementInfo
from pop.sql.prepared import Prepared
from pop.streams import TxnState

# A lone statement may start a local transaction only if it says READONLY; a batch shows
# all its statements up front, so a deferred transaction of reads can stay local too.
# A statement that surely fails (Kind.FAILS) fails here as it would there, touching nothing.
_LOCAL_ALONE = frozenset({Kind.READ, Kind.BEGIN_READ, Kind.END_TRANSACTION, Kind.FAILS})
_LOCAL_IN_BATCH = _LOCAL_ALONE | {Kind.BEGIN_DEFERRED}
_OPENS_TRANSACTION = frozenset(
    {Kind.BEGIN_READ, Kind.BEGIN_DEFERRED, Kind.BEGIN_WRITE, Kind.SAVEPOINT}
)


def place(
    statements: Sequence[StatementInfo],
    state: TxnState,
    *,
    alone: bool,
    replica_shows_its_writes: bool,
) -> Route:
    """Where a request of ``statements`` runs (``alone``: one statement by itself, not a
    batch or script). Raises the error SQLite gives a write inside a read transaction.

    ``replica_shows_its_writes`` is false while the replica lacks a write the stream's
    client made (its catch-up sync failed): its reads then go to the origin, so
    read-your-writes holds for it, while other clients read the replica.
    """
    if state is TxnState.ORIGIN_TXN:
        return Route.ORIGIN
    if state is TxnState.LOCAL_TXN:
        for info in statements:
            if info.kind not in _LOCAL_IN_BATCH:
                raise _not_in_read_transaction(info)
        return Route.LOCAL
    local_kinds = _LOCAL_ALONE if alone else _LOCAL_IN_BATCH
    if (
        all(info.kind in local_kinds for info in statements)
        and not _leaves_deferred_open(statements)
        and replica_shows_its_writes
    ):
        return Route.LOCAL
    return Route.ORIGIN


def origin_refusal(
    statements: Sequence[StatementInfo], *, keeps_streams: bool, whole: bool, origin: str
) -> HranaError | None:
    """Why these statements are not sent to the origin, if they are not.

    A statement that surely fails at sqld (``Kind.FAILS``) is never sent, so an origin
    with more features (``tursodb`` has ``sqlite_dbpage``) does not run it: it fails here
    as it would at sqld (a batch or script holding one fails whole, where sqld would fail
    only that step). On an origin without streams, a transaction must begin and end in
    one request (``whole``: a batch or script, not one statement), and connection state
    cannot be set: its one connection is every client's.
    """
    failing = next((info.fails() for info in statements if info.kind is Kind.FAILS), None)
    if failing is not None:
        return failing
    if keeps_streams:
        return None
    stateful = next((info for info in statements if info.sets_connection_state), None)
    if stateful is not None:
        return HranaError(
            f"the origin {origin} does not keep streams: it runs every client's statements "
            "on one shared connection, so a connection setting would apply to every client "
            f"of every POP; the POP does not send it there ({stateful.error}). Use an origin "
            "that keeps streams (sqld, Turso) to set it per connection",
            "CONNECTION_STATE_NOT_SUPPORTED",
        )
    opens = any(info.kind in _OPENS_TRANSACTION for info in statements)
    ends = any(info.kind is Kind.END_TRANSACTION for info in statements)
    if opens and not (whole and ends):
        return HranaError(
            f"the origin {origin} does not keep streams, so a write transaction cannot stay "
            "open across requests there; send it as one batch (e.g. client.batch([...], "
            "'write')) or use an origin that keeps streams",
            "TRANSACTION_NOT_SUPPORTED",
        )
    return None


def sqld_refusal(prepared: Prepared) -> HranaError | None:
    """The error sqld gives a statement before it runs anything, if any."""
    return prepared.info.refused() or args_refusal(prepared.stmt)


def may_have_committed(
    statements: Sequence[StatementInfo], was_in_transaction: bool, is_in_transaction: bool
) -> bool:
    """Whether a forwarded request may have committed a write at the origin.

    Whether the stream is inside a transaction there, before and after, is what the
    origin said (the forwarder asks it), not what the statements suggest: only writes
    made wholly inside a transaction that was open before and is still open after are
    surely not visible yet. (``INSERT ...; BEGIN`` committed its insert and left a
    transaction open.)
    """
    if not any(not info.is_read for info in statements):
        return False
    ends = any(info.kind in (Kind.END_TRANSACTION, Kind.RELEASE) for info in statements)
    return ends or not (was_in_transaction and is_in_transaction)


def _leaves_deferred_open(statements: Sequence[StatementInfo]) -> bool:
    """A deferred transaction still open after the request may write later: origin."""
    open_deferred = False
    for info in statements:
        if info.kind is Kind.BEGIN_DEFERRED:
            open_deferred = True
        elif info.kind is Kind.END_TRANSACTION:
            open_deferred = False
    return open_deferred


def _not_in_read_transaction(info: StatementInfo) -> HranaError:
    if info.kind is Kind.UNKNOWN:
        return HranaError(
            f"cannot run this statement inside a read-only transaction: {info.error}",
            "SQLITE_ERROR",
        )
    return HranaError(
        "attempt to write inside a read-only transaction (BEGIN ... READONLY); "
        "commit it first, then write",
        "SQLITE_READONLY",
    )
