"""Hrana values <-> Python values.

Integers travel as decimal strings so that 64-bit values survive JSON; floats as JSON
numbers; blobs as base64. Python's ``int``/``float``/``str``/``bytes``/``None`` map 1:1
onto SQLite's storage classes, which is what both replica engines hand back.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any

SqlValue = None | int | float | str | bytes

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_DECIMAL = re.compile(r"[+-]?[0-9]+")


def decode_value(raw: Any) -> SqlValue:
    """Turn one Hrana JSON value into a Python value, or raise ``ValueError``."""
    if not isinstance(raw, dict):
        raise ValueError(f"a value must be an object with a 'type', got {_kind(raw)}")
    kind = raw.get("type")
    if kind == "null":
        return None
    if kind == "integer":
        return _decode_integer(raw.get("value"))
    if kind == "float":
        value = raw.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"a float value must be a JSON number, got {_kind(value)}")
        return float(value)
    if kind == "text":
        value = raw.get("value")
        if not isinstance(value, str):
            raise ValueError(f"a text value must be a JSON string, got {_kind(value)}")
        return value
    if kind == "blob":
        encoded = raw.get("base64")
        if not isinstance(encoded, str):
            raise ValueError("a blob value needs 'base64' as a string")
        return decode_blob(encoded)
    raise ValueError(f"unknown value type {kind!r}; expected null, integer, float, text or blob")


def _decode_integer(value: Any) -> int:
    # sqld reads only a string of ASCII digits with an optional sign: no JSON number, no
    # spaces, no "1_000" and no other script's digits, all of which Python's int() takes.
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        shown = repr(value[:40]) if isinstance(value, str) else _kind(value)
        raise ValueError(f"an integer value must be a decimal string, got {shown}")
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(f"integer value {value} does not fit in 64 bits")
    return number


def decode_blob(encoded: str, *, padding: bool = True) -> bytes:
    """A blob's base64. Hrana takes it padded or not (clients differ, and sqld takes
    both); sqld's legacy API takes it only unpadded (``padding=False``)."""
    if not padding and encoded.endswith("="):
        raise ValueError("a blob value has invalid base64: padding is not allowed here")
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"a blob value has invalid base64: {exc}") from None


def encode_value(value: SqlValue) -> dict[str, Any]:
    """Turn a Python value from the engine into a Hrana JSON value."""
    if value is None:
        return {"type": "null"}
    if isinstance(value, bool):
        return {"type": "integer", "value": str(int(value))}
    if isinstance(value, int):
        return {"type": "integer", "value": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"type": "null"}
        return {"type": "float", "value": value}
    if isinstance(value, str):
        return {"type": "text", "value": value}
    if isinstance(value, bytes | bytearray | memoryview):
        # Without padding, as sqld sends blobs.
        encoded = base64.b64encode(bytes(value)).rstrip(b"=").decode("ascii")
        return {"type": "blob", "base64": encoded}
    raise TypeError(f"engine returned an unsupported value type {type(value).__name__}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
