"""How many client connections a POP keeps open, and which one gives way at the limit.

A connection that holds no request being answered (it never sent one, or it waits between
keep-alive requests) costs a file descriptor and nothing else, so at ``MAX_CONNECTIONS`` a
new connection makes room by closing such an idle one: first those that never sent a whole
request (an unauthenticated flood is exactly that), oldest first, then those idle between
requests, longest idle first. Idle connections therefore never keep out a client that
sends a request, or a kubelet probe. Only when every connection is busy is a new one
limited: up to ``PROBE_HEADROOM`` more are kept for the probes (``/health``, ``/ready``,
``/metrics``), and any other request on them is answered 503; beyond that, a new
connection is answered 503 at once.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Protocol

# Connections kept over the limit while every other is busy, for probes only.
PROBE_HEADROOM = 64
PROBE_PATHS = frozenset({"/health", "/ready", "/metrics"})


class Admission(enum.Enum):
    ADMITTED = "admitted"
    PROBES_ONLY = "probes_only"  # over the limit: serve a probe, refuse anything else
    REFUSED = "refused"


class Connection(Protocol):
    """What the budget asks of a connection (the HTTP protocol instance)."""

    def is_busy(self) -> bool:
        """Whether a request of it has arrived and is being answered."""

    def has_served(self) -> bool:
        """Whether it has sent at least one whole request."""

    def shed(self) -> None:
        """Close it to make room."""


class ConnectionBudget:
    """The open connections of one server, in the order they opened. One event loop."""

    def __init__(
        self,
        limit: int,
        on_shed: Callable[[str], None] = lambda reason: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self._on_shed = on_shed
        self._clock = clock
        self._open: dict[Connection, float] = {}  # -> when it last finished a request

    def __len__(self) -> int:
        return len(self._open)

    def admit(self, connection: Connection) -> Admission:
        """Register a new connection; say what it may do."""
        if len(self._open) >= self.limit:
            victim = self._idlest()
            if victim is not None:
                self.release(victim)
                victim.shed()
                self._on_shed("idle")
        if len(self._open) >= self.limit + PROBE_HEADROOM:
            self._on_shed("busy")
            return Admission.REFUSED
        self._open[connection] = self._clock()
        return Admission.ADMITTED if len(self._open) <= self.limit else Admission.PROBES_ONLY

    def count_probes_only(self) -> None:
        """A request other than a probe came on a connection kept for probes only."""
        self._on_shed("probes_only")

    def finished_request(self, connection: Connection) -> None:
        if connection in self._open:
            self._open[connection] = self._clock()

    def release(self, connection: Connection) -> None:
        self._open.pop(connection, None)

    def _idlest(self) -> Connection | None:
        """The connection to close first: never used, oldest; else idle longest."""
        waiting: Connection | None = None
        for connection, finished in self._open.items():  # in order of opening
            if connection.is_busy():
                continue
            if not connection.has_served():
                return connection
            if waiting is None or finished < self._open[waiting]:
                waiting = connection
        return waiting
