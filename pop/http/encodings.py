"""The two encodings of Hrana over HTTP: JSON (``/v2/pipeline``, ``/v3/pipeline``,
``/v3/cursor``) and protobuf (``/v3-protobuf/pipeline``, ``/v3-protobuf/cursor``).

An encoding turns a request body into the validated messages of ``pop.hrana.messages``
and an answer (in Hrana's JSON shape, which the rest of the POP speaks) into the reply
sent; the endpoints are the same code for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from pop.hrana import protobuf
from pop.hrana.messages import CursorBody, PipelineBody, parse_body, parse_decoded
from pop.http.endpoint import JSON, TEXT, Reply

Shaped = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Encoding:
    """How one encoding's pipeline and cursor bodies are read and answers written."""

    pipeline_body: Callable[[bytes], PipelineBody]
    pipeline_reply: Callable[[Shaped], Reply]
    cursor_body: Callable[[bytes], CursorBody]
    # A cursor's header, then its entries (``pop.http.cursor.entries``).
    cursor_reply: Callable[[list[Shaped]], Reply]


JSON_ENCODING = Encoding(
    pipeline_body=lambda raw: parse_body(PipelineBody, raw),
    pipeline_reply=lambda answer: (orjson.dumps(answer), 200, JSON),
    cursor_body=lambda raw: parse_body(CursorBody, raw),
    cursor_reply=lambda entries: (
        b"".join(orjson.dumps(entry) + b"\n" for entry in entries),
        200,
        TEXT,
    ),
)

PROTOBUF_ENCODING = Encoding(
    pipeline_body=lambda raw: parse_decoded(PipelineBody, protobuf.decode_pipeline(raw)),
    pipeline_reply=lambda answer: (
        protobuf.encode_pipeline(answer),
        200,
        protobuf.PIPELINE_CONTENT_TYPE,
    ),
    cursor_body=lambda raw: parse_decoded(CursorBody, protobuf.decode_cursor(raw)),
    cursor_reply=lambda entries: (
        protobuf.encode_cursor(entries),
        200,
        protobuf.CURSOR_CONTENT_TYPE,
    ),
)
