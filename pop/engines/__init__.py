"""Replica engines: the ways a POP keeps a local copy of the origin database."""

from pop.engines.base import ReplicaEngine, SyncResult, open_engine

__all__ = ["ReplicaEngine", "SyncResult", "open_engine"]
