"""The server read as an attacker and an operator would: the headers on every answer (nosniff everywhere, a
Content-Security-Policy on the page that a browser enforces), HEAD answered like GET, 405s that name every allowed
method, no redirect built from the Host header, a 500 in the JSON shape; and, with either HTTP parser, the request
head bounded in size and time, a body sent after its answer not holding the connection, no log line per Upgrade
header. Expected values are written here, not taken from the server's own code."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import socket
import threading
import time
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from convlens.serving.app import _declared_length, create_app
from tests.conftest import record_page_problems
from tests.serving.conftest import free_port

IMAGE = json.dumps([[0.5] * 28] * 28).encode()  # one image as numbers: answered on the inline fast path
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def client(exported):
    return TestClient(create_app(exported[0]), raise_server_exceptions=False, follow_redirects=False)


def _chunked(body: bytes):
    yield body  # no Content-Length: the app's route, not the fast path


CHUNKED = object()  # in ANSWERS: IMAGE, sent without a Content-Length
ANSWERS = {  # name: (method, path, keyword arguments, status)
    "GET /ping": ("GET", "/ping", {}, 200),
    "HEAD /ping": ("HEAD", "/ping", {}, 200),
    "GET /": ("GET", "/", {}, 200),
    "HEAD /": ("HEAD", "/", {}, 200),
    "GET /model": ("GET", "/model", {}, 200),
    "GET /examples": ("GET", "/examples", {}, 200),
    "GET /openapi.json": ("GET", "/openapi.json", {}, 200),
    "404": ("GET", "/nope", {}, 404),
    "405": ("PUT", "/ping", {}, 405),
    "inline 200": ("POST", "/invocations", {"content": IMAGE, "headers": JSON}, 200),
    "inline 400": ("POST", "/invocations", {"content": b"[[1]]", "headers": JSON}, 400),
    "inline 406": ("POST", "/invocations", {"content": IMAGE, "headers": {**JSON, "Accept": "text/csv"}}, 406),
    "routed 200": ("POST", "/invocations", {"content": CHUNKED, "headers": JSON}, 200),
    "routed 415": ("POST", "/invocations", {"content": b"[[1]]", "headers": {"Content-Type": "text/plain"}}, 415),
    "routed 413": ("POST", "/invocations", {"content": b"[" + b"0," * 3_200_000 + b"0]", "headers": JSON}, 413),
}


@pytest.mark.parametrize("name", ANSWERS)
def test_every_answer_says_nosniff_once(client, name):
    method, path, kwargs, status = ANSWERS[name]
    if kwargs.get("content") is CHUNKED:
        kwargs = {**kwargs, "content": _chunked(IMAGE)}
    response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


class _PageParts(HTMLParser):
    """The page's inline script and style blocks, and any attribute a CSP without 'unsafe-inline' would block."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: dict[str, list[str]] = {"script": [], "style": []}
        self.inline_attributes: list[str] = []
        self.external: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        for name, _ in attrs:
            if name == "style" or name.startswith("on"):
                self.inline_attributes.append(f"<{tag} {name}>")
            if name == "src" and tag == "script":
                self.external.append(tag)
        if tag in self.blocks:
            self._in = tag
            self.blocks[tag].append("")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in:
            self.blocks[self._in][-1] += data


def _hash_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def test_the_page_has_a_csp_allowing_only_its_own_script_style_images_and_fetches(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    parts = _PageParts()
    parts.feed(page.text)
    assert parts.inline_attributes == [] and parts.external == []  # nothing that needs 'unsafe-inline'
    assert len(parts.blocks["script"]) == len(parts.blocks["style"]) == 1
    directives: dict[str, list[str]] = {}
    for directive in page.headers["content-security-policy"].split(";"):
        name, *values = directive.split()
        assert name not in directives, name  # a browser reads the first of two alike and ignores the second
        directives[name] = values
    assert directives == {
        "default-src": ["'none'"],
        "script-src": [_hash_source(parts.blocks["script"][0])],
        "style-src": [_hash_source(parts.blocks["style"][0])],
        "img-src": ["data:"],  # the examples (base64 PNG) and the empty favicon
        "connect-src": ["'self'"],  # fetch of model, examples, invocations
        "base-uri": ["'none'"], "form-action": ["'none'"], "frame-ancestors": ["'none'"]}
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
    head = client.head("/")
    assert head.status_code == 200 and head.content == b""
    assert {k: v for k, v in head.headers.items() if k != "date"} == \
           {k: v for k, v in page.headers.items() if k != "date"}  # Content-Length of the page included


def test_a_browser_enforces_the_csp_and_the_page_still_works_under_it(browser, live_server):
    """The page works (tests/serving/test_page_browser.py drives it, with no console error, which a blocked script,
    style or fetch would be); here, a script injected into it is refused by Chromium, as an XSS payload would be."""
    page = browser.new_page()
    problems = record_page_problems(page)
    page.goto(f"{live_server}/")
    page.wait_for_function("() => document.querySelectorAll('#examples img').length === 10")
    assert problems == []
    ran = page.evaluate("""() => {
        const s = document.createElement("script"); s.textContent = "window.injected = true";
        document.body.append(s); return window.injected === true; }""")
    assert ran is False
    deadline = time.monotonic() + 5  # and said so on the console (the message may come after evaluate returns)
    while not any("Content Security Policy" in p for p in problems) and time.monotonic() < deadline:
        page.wait_for_timeout(50)
    assert any("Content Security Policy" in p for p in problems), problems
    page.close()


def test_head_is_answered_like_get_for_every_get_route(client):
    for path in ("/ping", "/model", "/examples", "/openapi.json"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200 and head.content == b"", path
        assert head.headers["content-length"] == str(len(get.content)), path
    assert client.head("/ping").headers["content-length"] == "0"
    head = client.head("/invocations")  # a POST route: refused as GET is
    assert head.status_code == 405 and head.headers["allow"] == "POST"


@pytest.mark.parametrize("method, path, allow", [("PUT", "/ping", "GET, HEAD"), ("DELETE", "/", "GET, HEAD"),
                                                 ("POST", "/model", "GET, HEAD"), ("GET", "/invocations", "POST"),
                                                 ("OPTIONS", "/invocations", "POST")])
def test_a_405_names_every_method_the_path_answers(client, method, path, allow):
    response = client.request(method, path)
    assert response.status_code == 405 and response.headers["allow"] == allow
    assert response.json() == {"error": "Method Not Allowed"}


@pytest.mark.parametrize("method, path", [("GET", "/ping/"), ("GET", "/model/"), ("POST", "/invocations/")])
def test_a_trailing_slash_is_a_404_not_a_redirect_to_the_host_header(client, method, path):
    """It was a 307 to http://<Host>/ping: whatever host the request named."""
    response = client.request(method, path, headers={"Host": "evil.example"}, content=b"[[1]]")
    assert response.status_code == 404 and "location" not in response.headers
    assert response.json() == {"error": "Not Found"}


@pytest.mark.parametrize("chunked", [False, True], ids=["inline", "routed"])
def test_an_unexpected_exception_is_a_json_500_that_names_nothing(exported, chunked):
    app = create_app(exported[0])

    def broken(x):
        raise RuntimeError("/home/alice/secret went wrong")
    app.state.predictor.predict = broken  # the object create_app's routes call
    response = TestClient(app, raise_server_exceptions=False).post(
        "/invocations", content=_chunked(IMAGE) if chunked else IMAGE, headers=JSON)
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "internal server error"} and "alice" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_content_length_of_unicode_digits_is_no_number():
    assert _declared_length("²") is None and _declared_length("١٢") is None  # str.isdigit() says True; int() raises
    assert _declared_length("12") == 12 and _declared_length(b"12") == 12


def _exchange(port: int, request: bytes, timeout: float = 10, pieces: bool = False) -> bytes:
    """``request`` sent on one connection (at once, or in pieces of 8 KB read one by one); everything the server
    answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            for start in range(0, len(request), 8192) if pieces else (0,):
                s.sendall(request[start:start + 8192] if pieces else request)
                if pieces:
                    time.sleep(0.002)
        except (BrokenPipeError, ConnectionResetError):  # refused before it was all sent: read the answer
            pass
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except ConnectionResetError:  # closed with unread bytes of ours: what was answered before counts
            pass
    return answer


def _status_headers(answer: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    return lines[0], {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in lines[1:])}, body


def test_the_real_server_answers_head_without_a_body_and_without_naming_itself(live_server):
    port = int(live_server.rsplit(":", 1)[1])
    page = _exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    _, _, page_body = _status_headers(page)
    # HEAD, then a GET on the same connection: the second answer must follow the first's head at once
    answer = _exchange(port, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET /ping HTTP/1.1\r\nHost: x\r\nConnection: "
                             b"close\r\n\r\n")
    status, headers, rest = _status_headers(answer)
    assert status == b"HTTP/1.1 200 OK" and int(headers[b"content-length"]) == len(page_body) > 1000
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest[:100]
    assert b"content-security-policy" in headers and headers[b"x-content-type-options"] == b"nosniff"
    ping_status, ping_headers, ping_body = _status_headers(rest)
    assert ping_body == b"" and ping_headers[b"content-length"] == b"0"
    assert b"server" not in headers and b"server" not in ping_headers  # was "server: uvicorn"
    status, headers, body = _status_headers(_exchange(port, b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: "
                                                            + b"a" * 100_000 + b"\r\n\r\n"))
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large" and b"65,536 bytes" in body


# The two protocols `convlens serve` may run (httptools' where installed, else h11's), in-process, in front of an
# app that answers after ?delay=seconds.
async def _slow_app(scope, receive, send):
    if scope["type"] != "http":
        return
    delay = float(scope["query_string"].decode().partition("=")[2] or 0)
    await asyncio.sleep(delay)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(params=["httptools", "h11"])
def protocol_server(request, monkeypatch):
    import uvicorn

    from convlens.serving.http_protocol import JsonErrorsH11Protocol, JsonErrorsHttpToolsProtocol
    monkeypatch.setenv("CONVLENS_BODY_TIMEOUT_S", "1")  # `convlens serve --body-timeout 1`
    protocol = JsonErrorsHttpToolsProtocol if request.param == "httptools" else JsonErrorsH11Protocol
    server = uvicorn.Server(uvicorn.Config(_slow_app, host="127.0.0.1", port=free_port(), http=protocol,
                                           log_config=None, lifespan="off"))
    server.install_signal_handlers = lambda: None  # not the main thread
    thread = threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield server.config.port
    server.should_exit = True
    thread.join(timeout=10)


def _json_error(answer: bytes, status: bytes) -> str:
    line, headers, body = _status_headers(answer)
    assert line == b"HTTP/1.1 " + status, answer[:300]
    assert headers[b"content-type"] == b"application/json" and int(headers[b"content-length"]) == len(body)
    assert headers[b"connection"] == b"close" and headers[b"x-content-type-options"] == b"nosniff"
    return json.loads(body)["error"]


def test_a_head_under_64_kib_is_served_and_one_over_it_gets_a_431(protocol_server):
    ok = _exchange(protocol_server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + b"a" * 60_000
                   + b"\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200") and ok.endswith(b"ok")  # h11 refused anything over 16 KiB
    for head in (b"X-Big: " + b"a" * 100_000 + b"\r\n", b"X-A: b\r\n" * 20_000,  # one long header, many short
                 b"X-A: " + b"a" * 10_000_000 + b"\r\n"):  # httptools read this one whole, and any size
        request = b"GET / HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n"
        # at once (the server may read the whole head at a time) and in pieces (its size grows read by read)
        for answer in (_exchange(protocol_server, request), _exchange(protocol_server, request, pieces=True)):
            error = _json_error(answer, b"431 Request Header Fields Too Large")
            assert error == "the request line and headers exceed 65,536 bytes; send smaller headers"


def test_a_head_that_does_not_arrive_in_time_gets_a_408_and_a_silent_connection_is_closed(protocol_server):
    t0 = time.monotonic()
    error = _json_error(_exchange(protocol_server, b"GET / HTTP/1.1\r\nHost: x\r\n"),  # and then nothing
                        b"408 Request Timeout")
    assert error == "the request headers did not arrive within 1 s" and 0.9 < time.monotonic() - t0 < 5
    t0 = time.monotonic()
    assert _exchange(protocol_server, b"") == b""  # connected, said nothing: closed (it was held for ever)
    assert 0.9 < time.monotonic() - t0 < 5


def test_a_body_trickling_in_after_its_answer_does_not_hold_the_connection(protocol_server):
    """GET with a large Content-Length is answered without its body; a byte of it now and then put off uvicorn's
    keep-alive timeout, and the connection was held for ever. Now closed once the body timeout (1 s) passes."""
    with socket.create_connection(("127.0.0.1", protocol_server), timeout=1) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        answer, t0, closed = b"", time.monotonic(), False
        while not closed and time.monotonic() - t0 < 8:
            try:
                s.sendall(b"x")
                chunk = s.recv(65536)
                closed, answer = not chunk, answer + chunk
            except socket.timeout:
                pass
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            time.sleep(0.3)
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"ok")
    assert closed and time.monotonic() - t0 < 6


def test_a_connection_idle_after_a_late_body_ends_is_closed(protocol_server):
    """GET with a 5-byte body answered before the body came; the body then arrives whole and the client says
    nothing more. That read unset uvicorn's keep-alive timer (every read does) and none was set again: the idle
    connection was held for ever. Closed now within the body timeout (1 s), as a connection that never spoke is."""
    with socket.create_connection(("127.0.0.1", protocol_server), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        answer = b""
        while not answer.endswith((b"ok", b"(closed)")):
            answer += s.recv(65536) or b"(closed)"
        time.sleep(0.2)  # answered; the body comes after its answer
        s.sendall(b"hello")
        t0 = time.monotonic()
        s.settimeout(8)
        try:
            rest = s.recv(65536)
        except socket.timeout:
            rest = b"(still open)"
        except ConnectionResetError:
            rest = b""
    assert answer.startswith(b"HTTP/1.1 200 OK") and rest == b"", rest
    assert time.monotonic() - t0 < 4  # the body timeout, not uvicorn's 5 s keep-alive nor for ever


@pytest.mark.parametrize("pipelined", [False, True])
def test_an_answer_slower_than_the_head_timeout_is_not_cut(protocol_server, pipelined):
    """The head's clock stops once the head is in: a request answered after 1.5 s (the timeout is 1 s) gets its
    answer, and the connection serves the next request, sent after the answer or with the first."""
    slow = b"GET /?delay=1.5 HTTP/1.1\r\nHost: x\r\n\r\n"
    then = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    if pipelined:
        answer = _exchange(protocol_server, slow + then)
    else:
        with socket.create_connection(("127.0.0.1", protocol_server), timeout=10) as s:
            s.sendall(slow)
            answer = b""
            while not answer.endswith(b"ok"):
                answer += s.recv(65536) or b"(closed)"
            s.sendall(then)
            while chunk := s.recv(65536):
                answer += chunk
    assert answer.count(b"HTTP/1.1 200 OK") == 2 and answer.endswith(b"ok"), answer


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_an_upgrade_header_is_answered_without_a_warning_in_the_log(protocol_server):
    """uvicorn logged two warnings for each (advising to install a WebSocket library): any client could fill the
    log with them. Read on uvicorn's own logger (its logging config stops propagation to the root's)."""
    logger, records = logging.getLogger("uvicorn.error"), _Records()
    saved = logger.level, logger.disabled
    logger.setLevel(logging.DEBUG)
    logger.disabled = False
    logger.addHandler(records)
    try:
        answer = _exchange(protocol_server, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\n"
                                            b"Upgrade: websocket\r\n\r\n")
        malformed = _exchange(protocol_server, b"GET / HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n")
    finally:
        logger.removeHandler(records)
        logger.setLevel(saved[0])
        logger.disabled = saved[1]
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
    assert malformed.startswith(b"HTTP/1.1 400")
    assert records.messages == ["Invalid HTTP request received."]  # the handler sees warnings; none for Upgrade
