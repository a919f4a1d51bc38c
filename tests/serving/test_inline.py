"""The /invocations fast path (a plain ASGI middleware in front of FastAPI) gives the app's answers byte for byte,
and hands everything it does not answer to the app with the body intact."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.responses import JSONResponse

from convlens.serving.app import INLINE_BODY_BYTES, InlineInvocations, create_app, prediction_body
from convlens.serving.inputs import InputError


@pytest.fixture(scope="module")
def client(exported):
    return TestClient(create_app(exported[0]))


def _chunked(body: bytes):
    """A body without Content-Length (chunked): the middleware passes it to FastAPI's route."""
    yield body[: len(body) // 2]
    yield body[len(body) // 2:]


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_prediction_body_is_what_jsonresponse_renders():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(10), size=3)
    names = ["T-shirt/top", "Trouser", "Ankle boot", "ß", "天", "a\"b", "c\\d", "e", "f", "g"]
    expected = JSONResponse({"predictions": np.round(p, 6).tolist(), "classes": names}).body
    assert prediction_body(p, names) == expected


@pytest.mark.parametrize("make_body, content_type, images", [
    (lambda images: json.dumps((images[:1] / 255).tolist()).encode(), "application/json", 1),
    (lambda images: json.dumps({"instances": images[:2].tolist()}).encode(), "application/json", 2),
    (lambda images: _npy(images[:3]), "application/x-npy", 3),
    (lambda images: b"[]", "application/json", 0),
    (lambda images: b"[[NaN]]", "application/json", 0),
    (lambda images: b'{"instances": [[1, "2"]]}', "application/json", 0),
    (lambda images: b"hello", "text/plain", 0),
])
def test_inline_and_routed_answers_are_identical(client, fashion, make_body, content_type, images):
    body = make_body(fashion.test_images)
    assert len(body) <= INLINE_BODY_BYTES
    inline = client.post("/invocations", content=body, headers={"Content-Type": content_type})
    routed = client.post("/invocations", content=_chunked(body), headers={"Content-Type": content_type})
    assert "content-length" not in routed.request.headers  # it did take the other path
    assert (inline.status_code, inline.content) == (routed.status_code, routed.content)
    assert inline.headers["content-type"].startswith("application/json")
    if images:
        assert inline.status_code == 200 and len(inline.json()["predictions"]) == images
    else:
        assert 400 <= inline.status_code < 500 and inline.json()["error"]


def _drive(middleware, body_messages, headers):
    """Call the middleware as uvicorn would; returns (what it sent, what reached the inner app)."""
    sent, seen = [], {}
    messages = list(body_messages)

    async def receive():
        if messages:
            message = messages.pop(0)
            if message == "slow":
                await asyncio.sleep(10)
            return message
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    async def inner(scope, receive, send):
        seen["path"] = scope["path"]
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        seen["body"] = b"".join(chunks)
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b"inner"})

    middleware.app = inner
    scope = {"type": "http", "method": "POST", "path": "/invocations", "headers": headers}
    asyncio.run(middleware(scope, receive, send))
    return sent, seen


def test_middleware_answers_small_numeric_bodies_itself_and_replays_the_rest():
    calls = []

    def predict(body, content_type):
        calls.append((body, content_type))
        if body == b"[1]":
            raise InputError("bad shape")
        return b'{"ok":1}'
    middleware = InlineInvocations(None, predict=predict, body_timeout_s=0.2)
    json_type = (b"content-type", b"application/json")

    # a small numeric body in two messages: answered here, the inner app never called
    sent, seen = _drive(middleware, [{"type": "http.request", "body": b"[[0.", "more_body": True},
                                     {"type": "http.request", "body": b"5]]"}],
                        [json_type, (b"content-length", b"7")])
    assert calls == [(b"[[0.5]]", "application/json")] and seen == {}
    assert sent[0]["status"] == 200 and sent[1]["body"] == b'{"ok":1}'
    assert dict(sent[0]["headers"])[b"content-length"] == b"8"

    # an input error: its status and message as JSON
    sent, _ = _drive(middleware, [{"type": "http.request", "body": b"[1]"}], [json_type, (b"content-length", b"3")])
    assert sent[0]["status"] == 400 and json.loads(sent[1]["body"]) == {"error": "bad shape"}

    # base64 images (decoded off the loop by the app): the inner app gets the whole body, replayed
    b64 = b'{"instances": [{"b64": "AAAA"}]}'
    sent, seen = _drive(middleware, [{"type": "http.request", "body": b64}],
                        [json_type, (b"content-length", str(len(b64)).encode())])
    assert seen == {"path": "/invocations", "body": b64} and sent[0]["status"] == 299

    # no Content-Length (chunked) or a large one: passed through untouched, the middleware reads nothing
    for headers in ([json_type], [json_type, (b"content-length", str(INLINE_BODY_BYTES + 1).encode())]):
        sent, seen = _drive(middleware, [{"type": "http.request", "body": b"[[0.5]]"}], headers)
        assert seen["body"] == b"[[0.5]]" and sent[0]["status"] == 299
    assert len(calls) == 2

    # a body that does not arrive in time: 408; a client that goes away: nothing is sent
    sent, _ = _drive(middleware, ["slow"], [json_type, (b"content-length", b"7")])
    assert sent[0]["status"] == 408 and "did not arrive within 0.2 s" in json.loads(sent[1]["body"])["error"]
    sent, seen = _drive(middleware, [], [json_type, (b"content-length", b"7")])
    assert sent == [] and seen == {}


def test_escapes_and_odd_headers_take_the_safe_path(client, fashion):
    """A key spelled with escapes is not a number: integer pixels are still divided by 255, and an escaped "b64"
    image is decoded off the event loop; an absurd Content-Length is a 413, not a 500."""
    pixels = fashion.test_images[:1].reshape(1, 784).tolist()
    plain = client.post("/invocations", content=json.dumps({"instances": pixels}).encode(),
                        headers={"Content-Type": "application/json"})
    escaped = client.post("/invocations", content=json.dumps({"i\\u006estances": pixels}).encode().replace(
        b"i\\\\u006e", b"i\\u006e"), headers={"Content-Type": "application/json"})
    assert plain.status_code == escaped.status_code == 200
    assert escaped.json()["predictions"] == plain.json()["predictions"]
    calls = []
    middleware = InlineInvocations(None, predict=lambda body, ct: calls.append(body) or b"{}", body_timeout_s=1)
    for body in (b'{"instances": [{"\\u0062\\u0036\\u0034": "AAAA"}]}', b'[[1, 2]]'):
        sent, seen = _drive(middleware, [{"type": "http.request", "body": body}],
                            [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())])
        assert (seen.get("body") == body) == (b"\\" in body)  # escaped: replayed to the app's route
    assert calls == [b"[[1, 2]]"]
    huge = b"0" * 5000 + b"5"
    sent, seen = _drive(middleware, [{"type": "http.request", "body": b"[[1]]"}],
                        [(b"content-type", b"application/json"), (b"content-length", huge)])
    assert seen["body"] == b"[[1]]"  # too long a number: the app's route, which answers 413 (below)
    response = client.post("/invocations", content=b"[[1]]", headers={"Content-Type": "application/json",
                                                                      "Content-Length": huge.decode()})
    assert response.status_code in (400, 413)
