"""uvicorn's HTTP protocols with one change: a request they cannot parse (a Content-Length that is not a number,
a header line without a colon) is answered like every other client mistake, 400 with a JSON ``{"error": ...}``
body, not uvicorn's plain text. The app never sees such a request, so its error handlers cannot word it."""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

try:  # the C parser, when installed (uvicorn's "auto" picks it first, as this module does)
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools comes with uvicorn[standard]
    HttpToolsProtocol = None  # type: ignore[assignment,misc]


def error_body(msg: str) -> bytes:
    return json.dumps({"error": f"not a valid HTTP request ({msg.rstrip('.')})"}).encode()


class JsonErrorsH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        body = error_body(msg)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"), h11.Data(data=body),
                      h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()


if HttpToolsProtocol is not None:
    class JsonErrorsHttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            body = error_body(msg)
            head = [b"HTTP/1.1 400 Bad Request\r\n", *(name + b": " + value + b"\r\n"
                                                      for name, value in self.server_state.default_headers),
                    b"content-type: application/json\r\n", b"content-length: " + str(len(body)).encode() + b"\r\n",
                    b"connection: close\r\n\r\n"]
            self.transport.write(b"".join(head) + body)
            self.transport.close()


def protocol_class() -> type:
    """The protocol ``convlens serve`` runs: httptools' where it is installed, else h11's."""
    return JsonErrorsHttpToolsProtocol if HttpToolsProtocol is not None else JsonErrorsH11Protocol
