"""Configuration from the environment (and an optional ``.env`` file).

Variable names are those of the original TypeScript program, so its users switch without
edits. Every setting lives here; nothing else reads the environment.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from pop.hrana.result_size import DEFAULT_MAX_RESULT_BYTES, DEFAULT_MAX_TOTAL_RESULT_BYTES

if TYPE_CHECKING:
    from pop.http.jwt_keys import JwtVerifier

# Named here, where they are settings; pop.contract exports them to the operator.
Engine = Literal["libsql", "turso"]
LogLevel = Literal["debug", "info", "warning", "error"]
# A host name: a baton names its POP with one, so it must never carry a port, path or
# credentials into PEER_URL_TEMPLATE.
PEER_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
ORIGIN_SCHEMES = {"libsql": "https", "https": "https", "http": "http", "wss": "https", "ws": "http"}


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    turso_database_url: str = Field(description="Origin database URL; libsql:// means https://")
    turso_auth_token: SecretStr | None = Field(
        default=None, description="Bearer token for the origin (required for remote origins)"
    )
    _jwt: JwtVerifier | None = PrivateAttr(default=None)
    proxy_auth_token: SecretStr = Field(
        description="Bearer token clients present to the POP (it may read and write)"
    )
    auth_jwt_key_file: Path | None = Field(
        default=None,
        description="File of Ed25519 public keys (PEM, several may be concatenated, or "
        "URL-safe base64) whose EdDSA JWTs clients may present, as sqld's "
        "--auth-jwt-key-file: claim a=ro reads only, a=rw or none reads and writes",
    )
    auth_jwt_key: str | None = Field(
        default=None,
        description="The same keys as AUTH_JWT_KEY_FILE, given in the variable itself",
    )
    turso_sync_interval: float = Field(
        default=60.0, gt=0, description="Seconds between background syncs"
    )
    data_dir: Path = Field(default=Path("data"), description="Folder for the replica file")
    db_filepath: Path | None = Field(
        default=None, description="Local replica file; default DATA_DIR/replica.db"
    )
    replica_engine: Engine = Field(
        default="libsql", description="How the replica is kept: libsql or turso"
    )
    read_your_writes: Literal["position", "sync"] = Field(
        default="position",
        description=(
            "After a forwarded write: wait until the replica holds the write's "
            "replication_index (position; origins that report none get a sync) or for a "
            "whole new sync (sync)"
        ),
    )
    redis_connection_string: SecretStr | None = Field(
        default=None, description="Redis URL; enables pub/sub sync"
    )
    redis_sync_channel: str = Field(default="sync", min_length=1)
    port: int = Field(default=3000, ge=1, le=65535)
    host: str = Field(default="0.0.0.0", description="Address to listen on")  # noqa: S104
    region: str | None = None
    log_level: LogLevel = "info"
    log_format: Literal["text", "json"] = "text"
    pop_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="This POP's name in sync messages and logs",
    )
    peer_name: str = Field(
        default_factory=socket.gethostname,
        description="How the region's other POPs reach this one: written into its batons, "
        "it fills {peer} in PEER_URL_TEMPLATE (the pod's name under Kubernetes)",
    )
    peer_url_template: str | None = Field(
        default=None,
        description="Base URL of a POP of this region, {peer} standing for its PEER_NAME; "
        "HTTP stream calls whose baton names another POP are passed on there (unset: "
        "one POP per region, nothing passed on)",
    )
    peer_timeout: float = Field(
        default=60.0, gt=0, description="Seconds one stream call passed on to a peer may take"
    )
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    stream_idle_timeout: float = Field(
        default=10.0, gt=0, description="Seconds before a quiet Hrana stream expires"
    )
    ws_idle_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a WebSocket connection may stay quiet, with no request in "
        "flight, before the POP closes it (its streams closed, transactions rolled back)",
    )
    origin_timeout: float = Field(default=15.0, gt=0, description="Seconds per origin call")
    # Limits: what one client can make this POP spend. README "Limits" lists them all.
    statement_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds one local statement may run before it is interrupted",
    )
    reader_threads: int = Field(
        default=4, ge=1, le=64, description="Worker threads running local reads"
    )
    slow_reader_threads: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Further worker threads for local reads running longer than 0.2 s, "
        "so that they never hold back quick ones",
    )
    max_sql_bytes: int = Field(
        default=2 * 1024 * 1024, ge=1024, description="Largest SQL text accepted"
    )
    max_result_bytes: int = Field(
        default=DEFAULT_MAX_RESULT_BYTES,
        ge=1024,
        description="Largest local result, a batch's steps together, measured as sqld "
        "measures it (its --max-response-size, 10MB)",
    )
    max_total_result_bytes: int = Field(
        default=DEFAULT_MAX_TOTAL_RESULT_BYTES,
        ge=1024,
        description="Local results in flight, all requests together, from the first value "
        "read until the answer is handed to the client's connection (as sqld's "
        "--max-total-response-size, 32MB)",
    )
    max_pipeline_requests: int = Field(
        default=1000, ge=1, description="Most requests in one pipeline call"
    )
    max_batch_steps: int = Field(default=10_000, ge=1, description="Most steps in one batch")
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest request head (request line + headers)"
    )
    client_read_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a client has to send a whole request"
    )
    client_write_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a client may leave an answer unread (the connection's send "
        "buffer full) before the POP closes its connection",
    )
    max_connections: int = Field(
        default=1000, ge=1, description="Client connections open at once (idle ones give way)"
    )
    sync_timeout: float = Field(
        default=30.0, gt=0, description="Seconds one sync may take before it counts as failed"
    )
    ready_max_staleness: float | None = Field(
        default=None,
        gt=0,
        description="Seconds since the last good sync before /ready says stale; "
        "default 3 x TURSO_SYNC_INTERVAL + SYNC_TIMEOUT",
    )
    watchdog_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds the event loop may stall before the POP dumps its stacks and exits",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _lowercase_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("peer_name")
    @classmethod
    def _host_name(cls, value: str) -> str:
        if not PEER_NAME.fullmatch(value):
            raise ValueError("must be a host name (letters, digits, '.' and '-')")
        return value

    @field_validator("peer_url_template")
    @classmethod
    def _peer_template(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if "{peer}" not in value:
            raise ValueError("must contain {peer}, where a POP's PEER_NAME goes")
        parts = urlsplit(value.replace("{peer}", "peer"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL, e.g. http://{peer}:3000")
        if parts.path or parts.query or parts.username:
            raise ValueError("must be a base URL: no path, query or credentials")
        return value

    @field_validator("turso_database_url")
    @classmethod
    def _valid_origin(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ORIGIN_SCHEMES:
            raise ValueError(
                f"scheme {parts.scheme or '(none)'!r} is not one of libsql, https, http"
            )
        if not parts.hostname:
            raise ValueError("the URL has no host")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError("the URL has an invalid port") from None
        return value.strip()

    @model_validator(mode="after")
    def _token_for_remote_origin(self) -> Settings:
        if self.turso_auth_token is None and not _is_local_origin(self.turso_database_url):
            raise ValueError(
                "TURSO_AUTH_TOKEN is required for a remote origin "
                "(only http:// origins may run without one)"
            )
        return self

    @model_validator(mode="after")
    def _readable_jwt_keys(self) -> Settings:
        self._jwt = self._read_jwt_verifier()
        return self

    def jwt_verifier(self) -> JwtVerifier | None:
        """What checks JWTs against the keys of AUTH_JWT_KEY and AUTH_JWT_KEY_FILE, as read
        once when the settings were (None: no keys, JWTs are not accepted)."""
        return self._jwt

    def _read_jwt_verifier(self) -> JwtVerifier | None:
        texts = []
        if self.auth_jwt_key is not None and self.auth_jwt_key.strip():
            texts.append((self.auth_jwt_key, "AUTH_JWT_KEY"))
        if self.auth_jwt_key_file is not None:
            source = f"AUTH_JWT_KEY_FILE {self.auth_jwt_key_file}"
            try:
                texts.append((self.auth_jwt_key_file.read_text(encoding="utf-8"), source))
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"{source}: cannot be read ({exc})") from None
        if not texts:
            return None
        # Here, not at the top: PyJWT and cryptography are loaded only with keys to check.
        from pop.http.jwt_keys import JwtVerifier, load_jwt_keys

        return JwtVerifier([key for text, source in texts for key in load_jwt_keys(text, source)])

    @property
    def origin_http_url(self) -> str:
        """The origin as an HTTP(S) base URL, without path, query or credentials."""
        parts = urlsplit(self.turso_database_url)
        scheme = ORIGIN_SCHEMES[parts.scheme]
        netloc = parts.hostname or ""
        if ":" in netloc:
            netloc = f"[{netloc}]"
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))

    @property
    def staleness_bound(self) -> float:
        if self.ready_max_staleness is not None:
            return self.ready_max_staleness
        return 3 * self.turso_sync_interval + self.sync_timeout

    @property
    def replica_path(self) -> Path:
        return self.db_filepath or self.data_dir / "replica.db"


def _is_local_origin(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "http":
        return True
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(env_file: str | None = ".env") -> Settings:
    """Read the settings, or raise ``ConfigError`` with one line naming the variable.

    ``env_file`` is read if it exists; ``None`` or ``""`` reads the environment only.
    """
    try:
        return Settings(_env_file=env_file or None)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    field = str(error["loc"][0]) if error["loc"] else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    if not field:  # a cross-field rule; its message already names the variable
        return f"configuration error: {message}"
    variable = field.upper()
    if error["type"] == "missing":
        return f"configuration error: {variable} is required but not set"
    return f"configuration error: {variable} is invalid: {message}"
