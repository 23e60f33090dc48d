"""Errors in Hrana's own shape, and SQLite's extended error code names.

Clients branch on ``code`` (``@libsql/client`` exposes it as ``LibsqlError.code``), so a
code is SQLite's extended name wherever SQLite has one.
"""

from __future__ import annotations

import re
from typing import Any

# SQLite primary result codes by number, as printed by engines that append "(N)".
PRIMARY_CODES: dict[int, str] = {
    1: "SQLITE_ERROR",
    2: "SQLITE_INTERNAL",
    3: "SQLITE_PERM",
    4: "SQLITE_ABORT",
    5: "SQLITE_BUSY",
    6: "SQLITE_LOCKED",
    7: "SQLITE_NOMEM",
    8: "SQLITE_READONLY",
    9: "SQLITE_INTERRUPT",
    10: "SQLITE_IOERR",
    11: "SQLITE_CORRUPT",
    13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN",
    17: "SQLITE_SCHEMA",
    18: "SQLITE_TOOBIG",
    19: "SQLITE_CONSTRAINT",
    20: "SQLITE_MISMATCH",
    21: "SQLITE_MISUSE",
    23: "SQLITE_AUTH",
    25: "SQLITE_RANGE",
    26: "SQLITE_NOTADB",
}

# Message prefixes SQLite uses for constraint failures, and their extended codes.
_CONSTRAINT_KINDS: tuple[tuple[str, str], ...] = (
    ("UNIQUE constraint failed", "SQLITE_CONSTRAINT_UNIQUE"),
    ("NOT NULL constraint failed", "SQLITE_CONSTRAINT_NOTNULL"),
    ("CHECK constraint failed", "SQLITE_CONSTRAINT_CHECK"),
    ("FOREIGN KEY constraint failed", "SQLITE_CONSTRAINT_FOREIGNKEY"),
    ("PRIMARY KEY constraint failed", "SQLITE_CONSTRAINT_PRIMARYKEY"),
)
_TRAILING_CODE = re.compile(r"\((\d+)\)\s*$")
_UNIQUE_TARGET = re.compile(r"UNIQUE constraint failed: ([^\s,]+)\.([^\s,]+)$")


class HranaError(Exception):
    """An error reported to the client inside a Hrana result (HTTP status stays 200)."""

    def __init__(self, message: str, code: str = "SQLITE_ERROR") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "code": self.code}


class ProtocolError(Exception):
    """A request the server cannot accept at all: answered with a 4xx status."""

    def __init__(self, message: str, code: str = "HRANA_PROTO_ERROR", status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def to_json(self) -> dict[str, Any]:
        return {"error": self.message, "message": self.message, "code": self.code}


class OriginUnavailable(HranaError):
    """The origin could not be reached or answered with something other than Hrana."""

    def __init__(self, origin: str, detail: str) -> None:
        super().__init__(
            f"origin {origin} is unavailable: {detail}; reads are still served from "
            "this POP's replica, but writes need the origin",
            "ORIGIN_UNAVAILABLE",
        )


class OutcomeUnknown(HranaError):
    """The origin got the request (or may have) but its answer never came back."""

    def __init__(self, origin: str, detail: str) -> None:
        super().__init__(
            f"the outcome is unknown: origin {origin} received the request but {detail}; "
            "its statements may or may not have been applied, so check before retrying "
            "a write",
            "ORIGIN_OUTCOME_UNKNOWN",
        )


def error_result(exc: HranaError | ProtocolError) -> dict[str, Any]:
    """A failed request's entry in a pipeline's ``results``."""
    return {"type": "error", "error": {"message": exc.message, "code": exc.code}}


def code_from_message(message: str, primary: str | None = None) -> str:
    """Best SQLite extended code name for an engine message that carries no code.

    Engines such as ``tursodb`` and pyturso report only a message (sometimes with the
    primary code number appended); the extended name is recovered from SQLite's own
    fixed message prefixes.
    """
    for prefix, code in _CONSTRAINT_KINDS:
        if prefix in message:
            return code
    match = _TRAILING_CODE.search(message)
    if match:
        return PRIMARY_CODES.get(int(match.group(1)), primary or "SQLITE_ERROR")
    if "readonly" in message.lower() or "query_only" in message:
        return "SQLITE_READONLY"
    return primary or "SQLITE_ERROR"


def unique_constraint_target(message: str) -> tuple[str, str] | None:
    """``(table, column)`` of a single-column UNIQUE failure message, if it is one."""
    match = _UNIQUE_TARGET.search(_TRAILING_CODE.sub("", message).strip())
    return (match.group(1), match.group(2)) if match else None


def clean_message(message: str) -> str:
    """Drop engine decorations ("Runtime error: ", trailing "(19)") from a message."""
    message = _TRAILING_CODE.sub("", message).strip()
    for prefix in ("Runtime error: ", "Parse error: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message
