"""The ``turso`` engine: Turso Sync through pyturso.

``turso.sync.connect`` bootstraps the file on first use and afterwards pulls only what
changed. Reads go through plain ``turso.connect`` connections on the same file, which see
what each pull brought in.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

import turso
import turso.sync

from pop.config import Settings
from pop.engines.base import ReadConnection, SyncResult, replica_size_bytes

log = logging.getLogger(__name__)


class TursoSyncEngine:
    name = "turso"

    def __init__(self, settings: Settings) -> None:
        self.path: Path = settings.replica_path
        self._remote_url = settings.origin_http_url
        token = settings.turso_auth_token
        self._auth_token = token.get_secret_value() if token else None
        self._sync: Any = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existed = self.path.exists() and self.path.stat().st_size > 0
        self._sync = turso.sync.connect(
            str(self.path), self._remote_url, auth_token=self._auth_token, client_name="edge-pop"
        )
        log.info(
            "replica opened",
            extra={
                "engine": self.name,
                "path": str(self.path),
                "bootstrapped": not existed,
                "position": self.position(),
            },
        )

    def sync(self) -> SyncResult:
        changed = bool(self._require_open().pull())
        return SyncResult(changed=changed, position=self.position())

    def position(self) -> str | None:
        if self._sync is None:
            return None
        revision = getattr(self._sync.stats(), "revision", None)
        return str(revision) if revision is not None else None

    def connect_reader(self) -> ReadConnection:
        conn = turso.connect(str(self.path), isolation_level=None)
        conn.execute("PRAGMA query_only=1")
        return cast(ReadConnection, conn)

    def stats(self) -> dict[str, Any]:
        stats = self._require_open().stats()
        return {
            "network_received_bytes": stats.network_received_bytes,
            "network_sent_bytes": stats.network_sent_bytes,
            "last_pull_unix_time": stats.last_pull_unix_time,
            "revision": stats.revision,
            "size_bytes": replica_size_bytes(self.path),
        }

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    def _require_open(self) -> Any:
        if self._sync is None:
            raise RuntimeError("the replica is not open")
        return self._sync
