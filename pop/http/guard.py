"""Limits at the HTTP layer that uvicorn's fast (httptools) protocol does not have.

Without them one unauthenticated client can grow the POP's memory with an endless header
and hold connections open forever by sending half a request. The protocol here refuses a
request head over a size limit (431) and closes a connection whose request has not fully
arrived within a time limit (408), counting from when the connection opens or the request
starts. Everything else is uvicorn's own behaviour.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


class _GuardedProtocol(HttpToolsProtocol):
    max_head_bytes = 16 * 1024
    read_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._unfinished_head_bytes = 0  # raw bytes read while a head has not ended
        self._parsed_head_bytes = 0  # the current head's URL and headers, as parsed
        self._in_head = True
        self._refused = False
        self._read_deadline: asyncio.TimerHandle | None = None
        self._arm_read_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_deadline()
        super().connection_lost(exc)

    # A head is measured twice, because neither way sees every case: a head that never
    # ends reaches no parser callback (the parser just buffers it), so raw bytes are
    # counted while one is unfinished; a head that arrives whole in one read is parsed to
    # its end before that count can be checked, so its parsed parts are summed as well,
    # and checked before the request is handed to the app.
    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._unfinished_head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._unfinished_head_bytes > self.max_head_bytes:
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._parsed_head_bytes = 0
        self._arm_read_deadline()

    def on_url(self, url: bytes) -> None:
        self._parsed_head_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed_head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._unfinished_head_bytes = 0
        if self._parsed_head_bytes > self.max_head_bytes:
            self._refuse_head()  # before the app sees the request
            return
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        if not self._refused:
            super().handle_websocket_upgrade()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._disarm_read_deadline()
        if not self._refused:
            super().on_message_complete()

    def _arm_read_deadline(self) -> None:
        if self._read_deadline is None:
            self._read_deadline = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _disarm_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.cycle is not None and not self._in_head and not self.cycle.more_body:
            return  # the request arrived in full; the app is answering it
        self._refuse(
            408,
            b"Request Timeout",
            f"request not received within {self.read_timeout:g} s (CLIENT_READ_TIMEOUT)",
        )

    def _refuse_head(self) -> None:
        self._refuse(
            431,
            b"Request Header Fields Too Large",
            f"request head over {self.max_head_bytes} bytes (MAX_HEADER_BYTES)",
        )

    def _refuse(self, status: int, phrase: bytes, message: str) -> None:
        self._refused = True
        if self.transport.is_closing():
            return
        log.info("closing a client connection", extra={"status": status, "reason": message})
        body = message.encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (status, phrase, len(body), body)
        )
        self.transport.close()


def guarded_protocol(max_head_bytes: int, read_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with these limits (pass as ``uvicorn.run(http=...)``)."""
    return type(
        "GuardedHttpToolsProtocol",
        (_GuardedProtocol,),
        {"max_head_bytes": max_head_bytes, "read_timeout": read_timeout},
    )
