"""One client stream's stream at the origin: the origin's baton for it, and whether the
origin holds a transaction open on it.

Only the forwarder changes it, through these methods, from what the origin answered; the
layers above read it. It names no session type, so the origin layer depends on nothing
above it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(eq=False)
class OriginStream:
    name: str  # the client stream's id, for logs
    baton: str | None = None
    in_transaction: bool = False

    def answered(self, baton: str | None) -> None:
        """The origin answered on this stream and named its next baton."""
        self.baton = baton

    def transaction_is(self, open_: bool) -> None:
        """What the origin (or, on Hrana 2, the statements sent) says of its transaction."""
        self.in_transaction = open_

    def ended(self) -> str | None:
        """Nothing is left of it at the origin (closed, lost or rolled back); returns the
        baton it had, to close there if the caller still should."""
        baton, self.baton, self.in_transaction = self.baton, None, False
        return baton
