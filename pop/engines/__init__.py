"""Replica engines: the ways a POP keeps a local copy of the origin database.

``base`` defines what an engine is; ``turso`` and ``libsql`` are the two there are. Only
this package picks one, so the engines import the base and nothing imports back.
"""

from pop.config import Settings
from pop.engines.base import ReplicaEngine, SyncResult

__all__ = ["ReplicaEngine", "SyncResult", "open_engine"]


def open_engine(settings: Settings) -> ReplicaEngine:
    """Build the engine ``REPLICA_ENGINE`` names. Does not open it yet."""
    # Imported when chosen: each engine loads its own native library.
    if settings.replica_engine == "turso":
        from pop.engines.turso import TursoSyncEngine

        return TursoSyncEngine(settings)
    from pop.engines.libsql import LibsqlEngine

    return LibsqlEngine(settings)
