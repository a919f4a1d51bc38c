"""uvicorn's HTTP protocols with what the app cannot do itself, for requests it never sees:

* a request they cannot parse (a Content-Length that is not a number, a header line without a colon) is answered
  like every other client mistake, 400 with a JSON ``{"error": ...}`` body, not uvicorn's plain text;
* a request head (request line and headers) above MAX_HEAD_BYTES gets a 431: httptools read any size (a 200 MB
  header, or millions of short ones, all held in memory);
* a head that has not all arrived within the body timeout gets a 408, and a connection that sends nothing is
  closed then: uvicorn waited for ever, so idle connections (slowloris) could take every file descriptor;
* so is one still sending the body of a request already answered (GET /ping with a large Content-Length, a 404),
  or idle once that body is in: each byte put off uvicorn's keep-alive timeout, and the read that ended the body
  left none set, so a byte now and then, or the last byte and then silence, held the connection for ever.

Each answer carries the headers every answer does (convlens.serving.http_policy) and closes the connection.
"""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from convlens.serving.http_policy import COMMON_HEADERS, MAX_HEAD_BYTES, configured_body_timeout_s

try:  # the C parser, when installed (uvicorn's "auto" picks it first, as this module does)
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


def error_body(msg: str) -> bytes:
    return json.dumps({"error": f"not a valid HTTP request ({msg.rstrip('.')})"}).encode()


def error_answer(status: int, body: bytes, default_headers) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection: uvicorn's default headers (the date), JSON."""
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n".encode(),
            *(name + b": " + value + b"\r\n" for name, value in (*default_headers, *COMMON_HEADERS)),
            b"content-type: application/json\r\n", b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n"]
    return b"".join(head) + body


def _message(text: str) -> bytes:
    return json.dumps({"error": text}).encode()


HEAD_TOO_LARGE = _message(f"the request line and headers exceed {MAX_HEAD_BYTES:,} bytes; send smaller headers")


def head_size(target: bytes, headers) -> int:
    """A parsed head's size: its target and each header with its ': ' and CRLF (the method and version aside)."""
    return len(target) + sum(len(name) + len(value) + 4 for name, value in headers)


class _BoundedH11Connection(h11.Connection):
    """h11's connection refusing a head over MAX_HEAD_BYTES however it arrived: h11 bounds only a head still
    incomplete (its buffer), so one that came whole in a single read passed. Notes the refusal for the answer."""

    head_too_large = False

    def next_event(self):
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as e:
            self.head_too_large = e.error_status_hint == 431  # "Receive buffer too long": a head still coming
            raise
        if type(event) is h11.Request and head_size(event.target, event.headers.raw_items()) > MAX_HEAD_BYTES:
            self.head_too_large = True
            raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
        return event


class _HeadGuard:
    """The head's size and time limits, for either parser (mixed in before uvicorn's protocol class). A protocol
    says whether a request head is being read (``_head_pending``) and how many of its bytes are in
    (``_head_size``); this class refuses it past MAX_HEAD_BYTES and times it out, and times out the rest of a body
    sent after its request was answered."""

    _head_timer: asyncio.TimerHandle | None = None
    # uvicorn's protocols set these (named here for type checkers only)
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    server_state: Any

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        self._head_timeout_s = configured_body_timeout_s()
        self._arm_head_timer()  # a connection that never says a word is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _check_head(self) -> None:
        """After each read is parsed: a head still incomplete is refused past the limit, and timed from its first
        bytes; so is the rest of a body once its request is answered. The clock stops once a head is complete,
        and between requests (uvicorn's keep-alive timeout closes an idle connection), except after the read that
        ended the body of a request already answered: every read unsets the keep-alive timer, and uvicorn sets it
        again only as an answer completes, so such a connection was held for ever; the clock closes it instead."""
        if self.transport.is_closing():
            return
        if self._head_pending():
            size = self._head_size()
            if size > MAX_HEAD_BYTES:
                self._refuse(431, HEAD_TOO_LARGE)
            elif not size:
                if (self.cycle is not None and self.cycle.response_complete
                        and getattr(self, "timeout_keep_alive_task", None) is None):
                    if self._head_timer is None:
                        self._arm_head_timer()
                else:
                    self._disarm_head_timer()
            elif self._head_timer is None:
                self._arm_head_timer()
        elif self.cycle is not None and self.cycle.response_complete:  # answered; its body still coming
            if self._head_timer is None:
                self._arm_head_timer()
        else:  # a request's body, read by the app under its own timeout
            self._disarm_head_timer()

    def _head_timed_out(self) -> None:
        self._head_timer = None
        cycle = self.cycle
        if self.transport.is_closing() or cycle is not None and not cycle.response_complete:
            return  # the app is answering: its own timeouts apply
        if self._head_pending() and self._head_size():
            self._refuse(408, _message(f"the request headers did not arrive within {self._head_timeout_s:g} s"))
        else:  # nothing asked, or a body nobody reads any more: nothing to answer
            self.transport.close()

    def _refuse(self, status: int, body: bytes) -> None:
        self._disarm_head_timer()
        self.transport.write(error_answer(status, body, self.server_state.default_headers))
        self.transport.close()

    def _unsupported_upgrade_warning(self) -> None:
        """Silent: the app serves no WebSocket, and a request with an Upgrade header is answered as plain HTTP (as
        RFC 9110 allows). uvicorn logged two warnings per such request, advising to install a WebSocket library:
        any client could fill the log with them."""

    def _head_pending(self) -> bool:
        raise NotImplementedError

    def _head_size(self) -> int:
        raise NotImplementedError


class JsonErrorsH11Protocol(_HeadGuard, H11Protocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the same limit as httptools, in place of h11's 16 KiB
        self.conn = _BoundedH11Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._check_head()

    def _head_pending(self) -> bool:
        return self.conn.their_state is h11.IDLE  # no whole request yet since the last one

    def _head_size(self) -> int:
        return len(self.conn.trailing_data[0])

    def send_400_response(self, msg: str) -> None:
        if self.conn.head_too_large:
            return self._refuse(431, HEAD_TOO_LARGE)
        self._refuse(400, error_body(msg))


if HttpToolsProtocol is not None:
    class JsonErrorsHttpToolsProtocol(_HeadGuard, HttpToolsProtocol):
        # Bytes read toward the head being read; None while none is (a body). Counted per read before parsing, as
        # httptools holds a header until it has all of it, and checked exactly once the head is complete; a head
        # begun in the read that ended the request before it is counted from the next read on, so it may run that
        # read (<= 256 KiB) over the limit.
        _head_bytes: int | None = 0
        _head_too_large = False

        def data_received(self, data: bytes) -> None:
            if self._head_bytes is not None:
                self._head_bytes += len(data)
            super().data_received(data)
            self._check_head()

        def on_headers_complete(self) -> None:
            if (self._head_bytes or 0) > MAX_HEAD_BYTES and head_size(self.url, self.headers) > MAX_HEAD_BYTES:
                # the read that crossed the limit held the rest of the head: refused before the app sees it (an
                # error here stops the parser, and uvicorn answers with send_400_response)
                self._head_too_large = True
                raise ValueError("request head too large")
            self._head_bytes = None
            self._disarm_head_timer()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._head_bytes = 0

        def _head_pending(self) -> bool:
            return self._head_bytes is not None

        def _head_size(self) -> int:
            return self._head_bytes or 0

        def send_400_response(self, msg: str) -> None:
            if self._head_too_large:
                return self._refuse(431, HEAD_TOO_LARGE)
            self._refuse(400, error_body(msg))


def protocol_class() -> type:
    """The protocol ``convlens serve`` runs: httptools' where it is installed, else h11's."""
    return JsonErrorsHttpToolsProtocol if HttpToolsProtocol is not None else JsonErrorsH11Protocol
