"""Sync messages exchanged over Redis pub/sub.

A message tells every POP of one database that the origin changed. It is JSON so that a
receiver can skip it when it is about another database sharing the same Redis, or when the
sender is the receiver itself. The bare string ``sync`` of the original TypeScript program
is still understood and means "sync now, whoever you are".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import orjson

LEGACY_SYNC_MESSAGE = "sync"
MESSAGE_VERSION = 1

SyncReason = Literal["write", "operator", "lagging", "api", "legacy"]


def database_key(origin_url: str) -> str:
    """Identify a database by its origin URL, without credentials, query or scheme quirks.

    ``libsql://`` and ``https://`` name the same origin, and a token passed as a query
    parameter must never end up in a message, so only host, port and path are kept.
    """
    parts = urlsplit(origin_url.strip())
    host = (parts.hostname or "").lower()
    port = f":{parts.port}" if parts.port else ""
    path = parts.path.rstrip("/")
    return f"{host}{port}{path}"


@dataclass(frozen=True, slots=True)
class SyncMessage:
    """One "the origin changed, pull now" notice."""

    database: str | None
    sender: str | None = None
    reason: SyncReason = "write"
    # The origin's replication_index after the change (the frame that holds it), when the
    # sender's engine follows one: a receiver whose replica is at or past it has nothing
    # to pull. ``None`` from engines that do not (turso) and from the operator.
    position: str | None = None
    sent_at: float = 0.0

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": MESSAGE_VERSION,
                "type": "sync",
                "database": self.database,
                "sender": self.sender,
                "reason": self.reason,
                "position": self.position,
                "sent_at": self.sent_at or time.time(),
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> SyncMessage | None:
        """Parse a message; ``None`` when it is not a sync message at all."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        if text.strip() == LEGACY_SYNC_MESSAGE:
            return cls(database=None, reason="legacy")
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(body, dict) or body.get("type") != "sync":
            return None
        database = body.get("database")
        sender = body.get("sender")
        reason = body.get("reason")
        sent_at = body.get("sent_at")
        position = body.get("position")
        return cls(
            database=database if isinstance(database, str) else None,
            sender=sender if isinstance(sender, str) else None,
            reason=reason if reason in ("write", "operator", "lagging", "api") else "write",
            position=str(position) if isinstance(position, str | int) else None,
            sent_at=float(sent_at) if isinstance(sent_at, int | float) else 0.0,
        )

    def concerns(self, database: str) -> bool:
        """Whether a POP serving ``database`` should act on this message."""
        return self.database is None or self.database == database

    @property
    def replication_index(self) -> int | None:
        """The announced change's frame at the origin, when the message names one."""
        return int(self.position) if self.position and self.position.isdigit() else None
