"""How large a result is, measured as ``sqld`` measures it, and the limits sqld sets on it.

sqld (0.24.33, its Hrana result builder) refuses a statement's result, or a batch's
results taken together, once its estimate passes ``--max-response-size`` (``10MB``, that
is 10,000,000 bytes): a blob counts its raw bytes, any other value the JSON sqld writes
for it, and each column its description. The request then fails whole with
``RESPONSE_TOO_LARGE`` ("Response is too large"), a batch included. A ``sequence`` keeps
no rows, so nothing is counted there.

Its SQLite also makes no string or blob longer than 5,000,000 bytes (measured: one byte
more is ``SQLITE_TOOBIG``, even inside ``length(...)``), which bounds a single value.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from pop.hrana.errors import HranaError
from pop.hrana.values import SqlValue

# sqld's longest string or blob (its SQLITE_LIMIT_LENGTH), measured on 0.24.33.
MAX_VALUE_BYTES = 5_000_000
# sqld's --max-response-size and --max-total-response-size defaults, "10MB" and "32MB"
# (decimal megabytes).
DEFAULT_MAX_RESULT_BYTES = 10_000_000
DEFAULT_MAX_TOTAL_RESULT_BYTES = 32_000_000

# The fixed part of the JSON sqld's estimate writes for each kind of value.
_NULL = len('{"type":"null"}')
_INTEGER = len('{"type":"integer","value":""}')
_FLOAT = len('{"type":"float","value":"}')  # sic: sqld's estimate has the stray quote
_TEXT = len('{"type":"text","value":""}')
_COLUMN = len('{"name":"","decltype":""}')


class ResponseTooLarge(HranaError):
    """A result past the limit. It fails the whole request it happens in, a batch too."""

    def __init__(self) -> None:
        super().__init__("Response is too large", "RESPONSE_TOO_LARGE")


def too_big() -> HranaError:
    """A value longer than ``MAX_VALUE_BYTES``, as sqld's SQLite refuses it."""
    return HranaError("SQLite error: string or blob too big", "SQLITE_TOOBIG")


def text_bytes(text: str) -> int:
    """The length of ``text`` in UTF-8, without encoding it when it is ASCII."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def value_size(value: SqlValue) -> int:
    """The value's size in sqld's estimate. One longer than sqld's SQLite makes is refused
    as it refuses it (the libsql engine's readers never make one; the turso engine's may)."""
    if value is None:
        return _NULL
    if isinstance(value, bytes):
        if len(value) > MAX_VALUE_BYTES:
            raise too_big()
        return len(value)
    if isinstance(value, str):
        length = text_bytes(value)
        if length > MAX_VALUE_BYTES:
            raise too_big()
        return _TEXT + length
    if isinstance(value, int):
        return _INTEGER + len(str(value))
    return _FLOAT + len(_float_as_rust_displays_it(value))


def column_size(name: str, decltype: str | None) -> int:
    return _COLUMN + text_bytes(name) + len(decltype or "null")


class ResultMeter:
    """One request's results counted against the limit (a batch's steps count together),
    and against the budget of all results in flight, through the call's account."""

    def __init__(self, limit: int, account: ResultAccount | None) -> None:
        self.limit = limit
        self.used = 0
        self._account = account

    def add(self, size: int) -> None:
        if self.used + size > self.limit:
            raise ResponseTooLarge()
        if self._account is not None:
            self._account.take(size)
        self.used += size

    def rewind(self) -> None:
        """Forget everything counted so far: the work that counted it starts again."""
        if self._account is not None:
            self._account.give_back(self.used)
        self.used = 0


def _float_as_rust_displays_it(value: float) -> str:
    """sqld writes floats with Rust's ``Display``: shortest digits, never an exponent,
    no ``.0`` on whole numbers."""
    text = repr(value)
    if text in ("inf", "-inf", "nan"):
        return "NaN" if text == "nan" else text
    if "e" in text:
        return format(Decimal(text), "f")
    return text.removesuffix(".0")


class ResultBudget:
    """The results in flight, all requests together: sqld's ``--max-total-response-size``
    (32MB). Thread-safe: results are counted on the reader threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_flight = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self._in_flight + size > self.limit:
                return False
            self._in_flight += size
            return True

    def give_back(self, size: int) -> None:
        with self._lock:
            self._in_flight -= size


class ResultAccount:
    """What one call's answer holds of the budget: from its first value read until the
    answer is handed to the client's connection (used as a context manager, through
    ``held_for_the_answer``), or, for a WebSocket cursor, until its entries are fetched
    or it is closed.

    It takes from the budget a few KiB at a time (most answers need one), so that a value
    read costs no lock; what it took and did not use goes back when it closes.
    """

    RESERVE_BYTES = 4096

    def __init__(self, budget: ResultBudget) -> None:
        self._budget = budget
        self.held = 0
        self._reserved = 0
        self._token: contextvars.Token[ResultAccount | None] | None = None

    def take(self, size: int) -> None:
        held = self.held + size
        if held > self._reserved:
            self._reserve(held - self._reserved)
        self.held = held

    def _reserve(self, wanted: int) -> None:
        for size in (max(wanted, self.RESERVE_BYTES), wanted):
            if self._budget.take(size):
                self._reserved += size
                return
        raise ResponseTooLarge()

    def give_back(self, size: int) -> None:
        self.held -= size

    def close(self) -> None:
        self._budget.give_back(self._reserved)
        self.held = self._reserved = 0

    @contextmanager
    def counting(self) -> Iterator[None]:
        """Results counted in this block are this account's (until it is closed)."""
        token = current_account.set(self)
        try:
            yield
        finally:
            current_account.reset(token)

    def __enter__(self) -> ResultAccount:
        self._token = current_account.set(self)
        return self

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            current_account.reset(self._token)
        self.close()


# Set where an answer is made and sent (pop.http.endpoint, pop.http.websocket); results
# counted outside one (tests, tools) are held to MAX_RESULT_BYTES only.
current_account: contextvars.ContextVar[ResultAccount | None] = contextvars.ContextVar(
    "current_account", default=None
)


def held_for_the_answer(budget: ResultBudget) -> ResultAccount:
    """``with held_for_the_answer(budget):`` results counted in the block are held in the
    budget until it ends."""
    return ResultAccount(budget)
