"""Log setup: one line per event, with the event's fields, as text or JSON.

Secrets never reach a log line: settings hold them as ``SecretStr`` and no code logs a
header or a URL with credentials; as a last guard, known token values are masked.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and v is not None}


class _Redactor:
    def __init__(self, secrets: list[str]) -> None:
        self._secrets = [s for s in secrets if len(s) >= 4]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


class TextFormatter(logging.Formatter):
    def __init__(self, redact: _Redactor) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        return self._redact(f"{line} {extra}" if extra else line)


class JsonFormatter(logging.Formatter):
    def __init__(self, redact: _Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return self._redact(orjson.dumps(event, default=str).decode())


def setup_logging(level: str, fmt: str, secrets: list[str] | None = None) -> None:
    redact = _Redactor(secrets or [])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redact) if fmt == "json" else TextFormatter(redact))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log repeats what the metrics already count; keep it at warning.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    # libSQL's Rust core logs on its own, to stdout, past this handler: not JSON, not
    # redacted, and repeating what the POP reports itself. Off unless the user sets it.
    os.environ.setdefault("RUST_LOG", "off")
    os.environ.setdefault("NO_COLOR", "1")
