"""The ``libsql`` engine: libSQL embedded replicas through the ``libsql`` binding.

``libsql.connect(path, sync_url=..., auth_token=...)`` keeps the replica file and its
replication metadata side by side; ``conn.sync()`` pulls frames from the origin's
replication service (the libSQL server's gRPC API, which ``tursodb`` does not offer).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import libsql

from pop.config import Settings
from pop.engines.base import ReadConnection, SyncResult, replica_size_bytes

log = logging.getLogger(__name__)


class LibsqlEngine:
    name = "libsql"

    def __init__(self, settings: Settings) -> None:
        self.path: Path = settings.replica_path
        self._sync_url = settings.origin_http_url
        token = settings.turso_auth_token
        self._auth_token = token.get_secret_value() if token else ""
        self._sync_conn: Any = None
        self._frame: int | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists() and self.path.stat().st_size > 0
        self._sync_conn = self._connect()
        self.sync()
        log.info(
            "replica opened",
            extra={"engine": self.name, "path": str(self.path), "bootstrapped": not existed},
        )

    def _connect(self) -> Any:
        return libsql.connect(str(self.path), sync_url=self._sync_url, auth_token=self._auth_token)

    def sync(self) -> SyncResult:
        if self._sync_conn is None:
            raise RuntimeError("the replica is not open")
        before = self._frame
        outcome = self._sync_conn.sync()
        frame = outcome if isinstance(outcome, int) else None
        self._frame = frame
        return SyncResult(changed=frame != before, position=self.position())

    def position(self) -> str | None:
        return str(self._frame) if self._frame is not None else None

    def is_bookkeeping(self, name: str) -> bool:
        return False  # libSQL copies the origin's pages; its metadata lives beside the file

    def connect_reader(self) -> ReadConnection:
        conn = self._connect()
        conn.isolation_level = None
        conn.execute("PRAGMA query_only=1")
        return cast(ReadConnection, conn)

    def stats(self) -> dict[str, Any]:
        return {"frame": self._frame, "size_bytes": replica_size_bytes(self.path)}

    def close(self) -> None:
        if self._sync_conn is not None:
            self._sync_conn.close()
            self._sync_conn = None
