"""Limits at the HTTP layer that uvicorn's fast (httptools) protocol does not have.

Without them one unauthenticated client can grow the POP's memory with an endless header
and hold connections open forever by sending half a request. The protocol here refuses a
request head over a size limit (431) and closes a connection whose request has not fully
arrived within a time limit (408), counting from when the connection opens or the request
starts, and one whose client leaves an answer unread (the send buffer full) for a time
limit. It also keeps the number of open connections to ``MAX_CONNECTIONS`` by the rules
of ``pop.http.budget`` (idle connections give way; probes are answered when everything
else is busy). Everything else is uvicorn's own behaviour.
"""

from __future__ import annotations

import asyncio
import logging

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from pop.http.budget import PROBE_PATHS, Admission, ConnectionBudget

log = logging.getLogger(__name__)


class _GuardedProtocol(HttpToolsProtocol):
    max_head_bytes = 16 * 1024
    read_timeout = 10.0
    write_timeout = 30.0
    budget = ConnectionBudget(1000)  # replaced per server by guarded_protocol()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._unfinished_head_bytes = 0  # raw bytes read while a head has not ended
        self._parsed_head_bytes = 0  # the current head's URL and headers, as parsed
        self._in_head = True
        self._refused = False
        self._requests_received = 0
        self._read_deadline: asyncio.TimerHandle | None = None
        self._write_deadline: asyncio.TimerHandle | None = None
        self._arm_read_deadline()
        self._admission = self.budget.admit(self)
        if self._admission is Admission.REFUSED:
            self._refuse_busy("every connection is busy")

    def connection_lost(self, exc: Exception | None) -> None:
        self.budget.release(self)
        self._disarm_read_deadline()
        self.resume_writing()
        super().connection_lost(exc)

    # A client that stops reading its answer fills the socket's buffer, and the answer
    # (counted in MAX_TOTAL_RESULT_BYTES) waits for it: not for longer than this.
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_deadline is None:
            self._write_deadline = self.loop.call_later(self.write_timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None
        super().resume_writing()

    def _write_timed_out(self) -> None:
        self._write_deadline = None
        log.info(
            "closing a client connection",
            extra={
                "reason": f"the client left its answer unread for {self.write_timeout:g} s "
                "(CLIENT_WRITE_TIMEOUT)"
            },
        )
        self._refused = True
        self.transport.abort()  # what is buffered for it is dropped

    # What the connection budget asks of a connection (pop.http.budget.Connection).
    def is_busy(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def has_served(self) -> bool:
        return self._requests_received > 0

    def shed(self) -> None:
        self._refused = True
        self.transport.close()

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
        if self._admission is Admission.PROBES_ONLY and not self._asks_for_a_probe():
            self.budget.count_probes_only()
            self._refuse_busy("every other connection is busy; this one serves probes only")
            return
        self._requests_received += 1
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        self.budget.finished_request(self)
        super().on_response_complete()

    def _asks_for_a_probe(self) -> bool:
        try:
            return httptools.parse_url(self.url).path.decode("ascii") in PROBE_PATHS
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return False

    def handle_websocket_upgrade(self) -> None:
        if not self._refused:
            self.budget.release(self)  # from here on the connection is the app's WebSocket
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

    def _refuse_busy(self, why: str) -> None:
        self._refuse(
            503,
            b"Service Unavailable",
            f"{why}: {self.budget.limit} client connections are open (MAX_CONNECTIONS); retry",
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


def guarded_protocol(
    max_head_bytes: int, read_timeout: float, write_timeout: float, budget: ConnectionBudget
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with these limits (pass as ``uvicorn.run(http=...)``),
    in place of uvicorn's ``limit_concurrency``, which counts idle connections as busy."""
    return type(
        "GuardedHttpToolsProtocol",
        (_GuardedProtocol,),
        {
            "max_head_bytes": max_head_bytes,
            "read_timeout": read_timeout,
            "write_timeout": write_timeout,
            "budget": budget,
        },
    )
