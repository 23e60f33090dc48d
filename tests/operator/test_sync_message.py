"""The operator's sync message is the POPs' own format, scoped to the EdgePop's database."""

from __future__ import annotations

from pop.sync.messages import SyncMessage, database_key
from pop_operator.synctrigger import SENDER, sync_message
from tests.operator.samples import example_spec


def test_message_decodes_as_a_pop_sync_message_for_this_database() -> None:
    spec = example_spec()
    decoded = SyncMessage.decode(sync_message(spec, "operator"))
    assert decoded is not None
    assert decoded.reason == "operator"
    assert decoded.sender == SENDER
    assert decoded.concerns(database_key("libsql://shop-acme.turso.io"))
    assert not decoded.concerns(database_key("libsql://other-acme.turso.io"))


def test_lagging_reason_survives_the_round_trip() -> None:
    decoded = SyncMessage.decode(sync_message(example_spec(), "lagging"))
    assert decoded is not None and decoded.reason == "lagging"
