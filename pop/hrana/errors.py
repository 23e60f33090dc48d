"""Errors in Hrana's own shape, with the codes and wording ``sqld`` gives.

Clients branch on ``code`` (``@libsql/client`` exposes it as ``LibsqlError.code``), and
the reference for every code is ``sqld``, the libSQL server: a statement its parser
rejects is ``SQL_PARSE_ERROR``; an error SQLite reports while compiling, at a position
in the text, is ``SQL_INPUT_ERROR``; any other SQLite error is ``SQLITE_`` and the name
of SQLite's *primary* code (constraint violations are ``SQLITE_CONSTRAINT``, never the
extended name), where SQLite's generic ``SQLITE_ERROR`` is called ``SQLITE_UNKNOWN``.
Engines without codes (``tursodb``, pyturso) report only a message; the code is then
recovered from SQLite's own fixed wording.
"""

from __future__ import annotations

import re
from typing import Any

# SQLite's primary result codes, named as sqld names them (after rusqlite's ErrorCode:
# SQLITE_ERROR, the generic one, is "unknown" there).
PRIMARY_CODES: dict[int, str] = {
    1: "SQLITE_UNKNOWN",
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
    12: "SQLITE_NOTFOUND",
    13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN",
    15: "SQLITE_PROTOCOL",
    17: "SQLITE_SCHEMA",
    18: "SQLITE_TOOBIG",
    19: "SQLITE_CONSTRAINT",
    20: "SQLITE_MISMATCH",
    21: "SQLITE_MISUSE",
    22: "SQLITE_NOLFS",
    23: "SQLITE_AUTH",
    25: "SQLITE_RANGE",
    26: "SQLITE_NOTADB",
}
CONSTRAINT = 19
# Codes sqld gives that are not SQLite's; an origin's answer carrying one of these (or
# an SQLITE_ name) is already in sqld's terms.
SQLD_CODES = frozenset(
    {
        "SQL_PARSE_ERROR",
        "SQL_NO_STATEMENT",
        "SQL_MANY_STATEMENTS",
        "SQL_INPUT_ERROR",
        "ARGS_INVALID",
        "ARGS_BOTH_POSITIONAL_AND_NAMED",
        "TRANSACTION_TIMEOUT",
        "TRANSACTION_BUSY",
        "BLOCKED",
        "RESPONSE_TOO_LARGE",
        "PROXY_ERROR",
    }
)

_TRAILING_CODE = re.compile(r"\s*\((\d+)\)\s*$")
# How engines without codes decorate SQLite's message.
_ENGINE_PREFIXES = (
    "Runtime error: ",
    "Parse error: ",
    "Transaction error: ",
    "Invalid argument supplied: ",
    "SQLite error: ",
)
# SQLite's wording for text it cannot parse.
_SYNTAX = re.compile(r"syntax error|unrecognized token|incomplete input|unterminated")
# SQLite's wording for compile errors it reports at a position in the text (sqld: input
# errors). Used only when no offset is known, i.e. for an engine's bare message.
_AT_A_POSITION = re.compile(
    r"^(no such column|no such function|wrong number of arguments to function|"
    r"ambiguous column name|row value misused|table \S+ already exists)"
)
# SQLite's own message for each primary code (sqlite3ErrStr), which engines without codes
# pass on bare: the message names the code.
_CODE_OF_MESSAGE = {
    "database is locked": 5,
    "database table is locked": 6,
    "out of memory": 7,
    "attempt to write a readonly database": 8,
    "interrupted": 9,
    "disk I/O error": 10,
    "database disk image is malformed": 11,
    "database or disk is full": 13,
    "unable to open database file": 14,
    "string or blob too big": 18,
    "datatype mismatch": 20,
    "bad parameter or other API misuse": 21,
    "authorization denied": 23,
    "column index out of range": 25,
    "file is not a database": 26,
}
_CONSTRAINT_WORDING = re.compile(r"constraint failed|^cannot store \w+ value in \w+ column")


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


class OriginStreamLost(ProtocolError):
    """The origin ended a client's stream (it expired there, or it refused the baton).

    sqld answers such a call with an HTTP error for the whole pipeline; the POP passes
    that answer on as it came, and the client's stream ends with it.
    """


class OriginUnavailable(HranaError):
    """The origin could not be reached or answered with something other than Hrana."""

    def __init__(self, origin: str, detail: str) -> None:
        super().__init__(
            f"origin {origin} is unavailable: {detail}; what needs the origin fails until "
            "it is back: writes, transactions that write, and a client's reads while this "
            "POP's replica lacks that client's own last write; other reads are served from "
            "the replica",
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


def write_forbidden() -> ProtocolError:
    """A read-only token's call that holds a write: refused whole (HTTP 403), nothing run."""
    return ProtocolError(
        "Authorization forbidden: Current session doesn't not have Write permission to "
        "namespace default",
        code="AUTH_FORBIDDEN",
        status=403,
    )


def no_statement() -> HranaError:
    return HranaError("SQL string does not contain any statement", "SQL_NO_STATEMENT")


def many_statements() -> HranaError:
    return HranaError("SQL string contains more than one statement", "SQL_MANY_STATEMENTS")


def unsupported_statement(sql: str) -> HranaError:
    return HranaError(
        f"SQL string could not be parsed: unsupported statement: {sql.strip()}",
        "SQL_PARSE_ERROR",
    )


def sqlite_error(message: str, *, primary: int | None = None, offset: int = -1) -> HranaError:
    """An SQLite error as sqld reports it.

    ``message`` is SQLite's message, bare or as an engine decorated it; ``primary`` the
    result code if the engine gave one; ``offset`` where in the SQL text SQLite placed
    the error (``sqlite3_error_offset``; -1 when unknown or none).
    """
    message, appended = bare_message(message)
    primary = primary if primary is not None else appended
    if _SYNTAX.search(message):
        return HranaError(f"SQL string could not be parsed: {message}", "SQL_PARSE_ERROR")
    if offset >= 0:
        return HranaError(f"SQL input error: {message} (at offset {offset})", "SQL_INPUT_ERROR")
    if primary is None and _AT_A_POSITION.search(message):
        return HranaError(f"SQL input error: {message}", "SQL_INPUT_ERROR")
    if primary is None:
        primary = _CODE_OF_MESSAGE.get(message)
    if primary is None:
        if _CONSTRAINT_WORDING.search(message):
            primary = CONSTRAINT
        elif "readonly" in message.lower() or "read-only" in message.lower():
            primary = 8
        elif "interrupted" in message:
            primary = 9
    code = PRIMARY_CODES.get((primary or 1) & 0xFF, "SQLITE_UNKNOWN")
    return HranaError(f"SQLite error: {message}", code)


def bare_message(message: str) -> tuple[str, int | None]:
    """SQLite's message without what an engine added, and the code number it appended."""
    message = message.strip()
    for prefix in _ENGINE_PREFIXES:
        message = message.removeprefix(prefix)
    trailing = _TRAILING_CODE.search(message)
    if trailing is None:
        return message, None
    return message[: trailing.start()], int(trailing.group(1))


def is_sqld_code(code: str) -> bool:
    """Whether ``code`` is already one sqld gives (an origin's answer needs no mapping)."""
    return code in SQLD_CODES or (code.startswith("SQLITE_") and code in PRIMARY_CODES.values())
