"""The HTTP server: the SageMaker inference contract (GET /ping, POST /invocations) plus a small web page.

Client mistakes get a 4xx with a JSON ``{"error": ...}`` body, never a 500: 400 for undecodable or invalid
input, 413 above 6 MB or too many instances, 415 for an unsupported content type. Every answer carries
X-Content-Type-Options: nosniff, the page its Content-Security-Policy (convlens.serving.http_policy); HEAD is
answered for every GET route. Imports no training code.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import anyio
import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from convlens.records import RUN_FORMAT
from convlens.serving.http_policy import COMMON_HEADERS, configured_body_timeout_s, page_headers
from convlens.serving.inputs import (
    CONTENT_TYPES,
    MAX_BODY_BYTES,
    SERVER_LIMITS,
    InputError,
    check_accept,
    decode,
    media_type,
)
from convlens.serving.predictor import Predictor

MODEL_DIR_ENV = "CONVLENS_MODEL_DIR"
INFERENCE_SLOTS = 4  # requests decoded and predicted at once; the rest wait (each may hold ~100 MB while decoding)
# A small body of pixel numbers (a few images) is decoded and predicted on the event loop: well under a millisecond,
# less than the hop to a worker thread and back (bench/README.md, serving). Never PNG/JPEG, in a body or as b64:
# a small compressed file can decode to a large image, and that decoding stays off the loop.
INLINE_BODY_BYTES = 32 * 1024
DRAIN_LIMIT_BYTES = 64 * 2**20  # an oversized body is read and dropped up to this, so the client sees the 413


def _numeric(body: bytes, content_type: str | None) -> bool:
    """Pixel numbers only: an .npy array, or JSON with no base64 image in it (and no escape, which could spell
    the "b64" key another way)."""
    media = media_type(content_type)
    return media == "application/x-npy" or (media == "application/json" and b"b64" not in body
                                            and b"\\" not in body)


def _declared_length(value: str | bytes | None) -> int | None:
    """A Content-Length header as a number; more than 12 digits counts as too large (int() of thousands of digits
    raises, and no body here is near 10^12 bytes)."""
    if value is None or not (value.isascii() and value.isdigit()):  # str.isdigit() takes '²', int() does not
        return None
    return int(value) if len(value) <= 12 else 10**12


async def read_body(request: Request, timeout_s: float) -> bytes:
    """The body, refusing more than MAX_BODY_BYTES whatever Content-Length claimed (a 413 before reading it),
    and a body that takes longer than ``timeout_s`` to arrive (a client trickling bytes holds a connection and
    its buffer for as long as it likes otherwise)."""
    declared = _declared_length(request.headers.get("content-length"))
    if declared is not None and declared > MAX_BODY_BYTES:
        raise InputError(f"payload of {declared:,} bytes exceeds the 6 MB limit ({MAX_BODY_BYTES:,} bytes)",
                         status=413)
    body = bytearray()
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise InputError(f"payload exceeds the 6 MB limit ({MAX_BODY_BYTES:,} bytes)", status=413)
    except TimeoutError:
        raise InputError(f"the request body did not arrive within {timeout_s:g} s", status=408) from None
    return bytes(body)


async def drain(request: Request, timeout_s: float) -> bool:
    """Read and drop what is left of the body, up to DRAIN_LIMIT_BYTES and for at most ``timeout_s``; True when it
    was all read. Not read at all when more than that is declared, or when the client waits for a "100 Continue"
    before sending it (reading would ask for the body the answer refuses)."""
    declared = _declared_length(request.headers.get("content-length"))
    if (declared is not None and declared > DRAIN_LIMIT_BYTES
            or request.headers.get("expect", "").lower() == "100-continue"):
        return False
    seen = 0
    try:
        with anyio.fail_after(timeout_s):  # a client that declares 7 MB and sends nothing: waited for this long
            async for chunk in request.stream():
                seen += len(chunk)
                if seen > DRAIN_LIMIT_BYTES:
                    return False
    except TimeoutError:
        return False
    except Exception:  # already consumed (RuntimeError) or the client went away: nothing left to drain
        return True
    return True


def prediction_body(probabilities: np.ndarray, class_names: list[str]) -> bytes:
    """The /invocations answer, as Starlette's JSONResponse renders it (tested against it)."""
    return json.dumps({"predictions": np.round(probabilities, 6).tolist(), "classes": class_names},
                      ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode("utf-8")


class InlineInvocations:
    """ASGI middleware: POST /invocations with a small body of pixel numbers is answered here, on the event loop,
    without FastAPI's routing, request object and response classes, which cost more than the prediction itself
    for one image (bench/README.md, serving). Everything else, and any body that is not small and numeric, goes to
    the app with the body replayed, so its limits, threads and OpenAPI description stay the one definition.
    Errors are the app's: the same statuses and {"error": ...} bodies (tested on both paths).

    Every answer passed to the app gets COMMON_HEADERS here (a send wrapper: a BaseHTTPMiddleware costs more
    than the prediction), and HEAD is answered as GET without the body, for every GET route (FastAPI's routes
    answered HEAD /ping, what health checkers and `curl -I` send, with 405)."""

    def __init__(self, app, predict: Callable[[bytes, str | None], bytes], body_timeout_s: float):
        self.app, self.predict, self.body_timeout_s = app, predict, body_timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] != "/invocations" or scope["method"] != "POST":
            if scope["method"] == "HEAD":
                return await self.app({**scope, "method": "GET"}, receive, _with_headers(send, head=True))
            return await self.app(scope, receive, _with_headers(send))
        content_type = length = accept = None
        for name, value in scope["headers"]:
            if name == b"content-type" and content_type is None:  # the first, as Starlette reads it
                content_type = value.decode("latin-1")
            elif name == b"content-length" and length is None:
                length = _declared_length(value)
            elif name == b"accept" and accept is None:
                accept = value.decode("latin-1")
        if length is None or length > INLINE_BODY_BYTES:
            return await self.app(scope, receive, _with_headers(send))  # large, chunked or refused: the app's route
        body, more = b"", True
        try:
            with anyio.fail_after(self.body_timeout_s):
                while more and len(body) <= INLINE_BODY_BYTES:
                    message = await receive()
                    if message["type"] != "http.request":  # the client went away
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
        except TimeoutError:
            return await _send_json(send, 408, _error_body(f"the request body did not arrive within "
                                                           f"{self.body_timeout_s:g} s"))
        if more or not _numeric(body, content_type):  # more than declared, or not numbers: the app's route
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": more}
                return await receive()
            return await self.app(scope, replay, _with_headers(send))
        try:
            check_accept(accept)
            status, answer = 200, self.predict(body, content_type)
        except InputError as e:
            status, answer = e.status, _error_body(str(e))
        await _send_json(send, status, answer)


def _with_headers(send, head: bool = False):
    """``send`` adding COMMON_HEADERS to the answer's head, and for a HEAD request dropping its body (the app
    answers it as a GET: the same status and headers, Content-Length included, as RFC 9110 has it)."""
    async def sending(message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *COMMON_HEADERS]}
        elif head and message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)
    return sending


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


_JSON_HEADERS = ((b"content-type", b"application/json"), *COMMON_HEADERS)


async def _send_json(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Prediction(BaseModel):
    predictions: list[list[float]]  # one probability vector per image, summing to 1
    classes: list[str]


class ErrorMessage(BaseModel):
    error: str


# Pixel arrays: numbers nested in arrays; the server checks the shape (see convlens.serving.inputs).
_PIXELS = {"type": "array", "minItems": 1, "items": {"anyOf": [{"type": "number"}, {"type": "array"}]}}
_B64 = {"type": "object", "required": ["b64"], "properties": {"b64": {"type": "string"}}, "additionalProperties": False}
_BODY_SCHEMAS = {
    "application/json": {"schema": {"oneOf": [
        {"type": "object", "required": ["instances"], "properties": {"instances": {
            "type": "array", "minItems": 1, "maxItems": 1000, "items": {"anyOf": [_PIXELS, _B64]}}}},
        _PIXELS]}},
    "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
}


MAX_EXAMPLES_BYTES = 16 * 2**20  # export writes 10 small images; a few MB compressed may decode to gigabytes


def load_examples(model_dir: Path, class_names: list[str]) -> list[dict]:
    """examples.npz (written by export) as [{"label", "png" (base64)}]; [] when absent, unreadable or larger than
    ``MAX_EXAMPLES_BYTES`` decoded."""
    import base64
    import io
    import zipfile

    from PIL import Image

    from convlens.models.checkpoint import model_file
    path = model_file(model_dir, "examples.npz")
    if not path.is_file():
        return []
    try:
        with zipfile.ZipFile(path) as archive:  # the sizes it declares; reading a member stops there
            if sum(info.file_size for info in archive.infolist()) > MAX_EXAMPLES_BYTES:
                return []
        with np.load(path, allow_pickle=False) as data:
            images, labels = data["images"], data["labels"]
        out = []
        for image, label in zip(images[:20], labels[:20]):
            buffer = io.BytesIO()
            Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, format="PNG")
            out.append({"label": class_names[int(label)], "png": base64.b64encode(buffer.getvalue()).decode()})
        return out
    except (OSError, ValueError, KeyError, IndexError, TypeError, EOFError, zipfile.BadZipFile):
        return []  # the page shows no examples; predictions do not depend on them


MAX_METRICS_BYTES = 1_000_000  # a run's metrics.json is a few kilobytes


def model_card(config: dict, model_dir: Path) -> dict:
    """What /model describes: an exported model's config.json as it is; for a run directory (served without
    exporting it), the config its export would write, from the run's config.json and metrics.json."""
    if config.get("format") != RUN_FORMAT:
        return config
    from convlens.errors import UsageError
    from convlens.models.checkpoint import model_file, read_json_object
    from convlens.serving.export import model_config
    try:  # a regular file inside the directory, of a metrics file's size (kilobytes), or no metrics at all
        path = model_file(model_dir, "metrics.json")
        metrics = (read_json_object(path, "") if path.is_file() and path.stat().st_size <= MAX_METRICS_BYTES
                   else None)
    except (UsageError, OSError):
        metrics = None
    return model_config(config, metrics, model_dir)


def create_app(model_dir: str | Path | None = None, body_timeout_s: float | None = None) -> FastAPI:
    """The app for ``model_dir`` (default: $CONVLENS_MODEL_DIR, as set by ``convlens serve``)."""
    model_dir = model_dir or os.environ.get(MODEL_DIR_ENV)
    body_timeout_s = body_timeout_s or configured_body_timeout_s()
    if not model_dir:
        raise RuntimeError(f"no model directory: pass one or set {MODEL_DIR_ENV}")
    predictor = Predictor(model_dir)
    # The class names are not written here: a folder's may hold markup, and API viewers render this as Markdown.
    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN, blank offline; / is the page, and
    # /openapi.json the schema (for any viewer the reader has).
    app = FastAPI(title="convlens model server",
                  description=f"SageMaker inference contract for a convlens model of {len(predictor.class_names)} "
                              "classes (GET /model describes it).",
                  version=predictor.config.get("versions", {}).get("convlens", "0"), docs_url=None, redoc_url=None,
                  # /ping/ was a 307 to http://<the request's Host header>/ping: a redirect anywhere a client's
                  # Host said (poisoned through a cache or a proxy). A trailing slash is a 404, as any unknown path.
                  redirect_slashes=False)
    app.state.predictor = predictor

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 404 / 405 in the same shape as every other error ({"error": ...}), not FastAPI's {"detail": ...}
        headers = exc.headers
        if exc.status_code == 405 and headers and "GET" in headers.get("Allow", "").split(", "):
            headers = {**headers, "Allow": headers["Allow"] + ", HEAD"}  # answered by InlineInvocations
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def server_error(_: Request, exc: Exception) -> JSONResponse:
        # A bug, or the machine out of memory: the same JSON shape as every error, not Starlette's plain text, and
        # no detail of the exception (the log has its traceback). Starlette's ServerErrorMiddleware sends it,
        # outside InlineInvocations, so its headers are given here.
        return JSONResponse({"error": "internal server error"}, status_code=500,
                            headers={name.decode(): value.decode() for name, value in COMMON_HEADERS})

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        headers = {}
        if exc.status == 413:
            # A client that writes the whole body before reading (urllib, requests) gets a connection reset,
            # not this answer, if the server closes with unread bytes: read and drop the rest first (bounded).
            if not await drain(request, body_timeout_s):
                headers["Connection"] = "close"
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)

    @app.get("/ping", summary="Health check: 200 with an empty body once the model is loaded",
             response_class=Response, responses={200: {"description": "The model is loaded", "content": {}}})
    async def ping() -> Response:
        return Response(status_code=200)

    @app.post("/invocations", response_model=Prediction, summary="Class probabilities for one or more images",
              responses={400: {"model": ErrorMessage}, 406: {"model": ErrorMessage}, 408: {"model": ErrorMessage},
                         413: {"model": ErrorMessage}, 415: {"model": ErrorMessage}},
              openapi_extra={"requestBody": {"required": True, "content": _BODY_SCHEMAS}})
    async def invocations(request: Request) -> Response:
        body = await read_body(request, body_timeout_s)  # read first: a client that writes it all before reading
        check_accept(request.headers.get("accept"))  # 406 before any decoding, as the SageMaker handler answers
        content_type = request.headers.get("content-type")
        if len(body) <= INLINE_BODY_BYTES and _numeric(body, content_type):
            return answer(body, content_type)
        # Decoding and inference take up to seconds for a maximal request: off the event loop, so /ping and
        # other clients are answered meanwhile; at most INFERENCE_SLOTS at once, which bounds the memory.
        return await run_in_threadpool_limited(answer, body, content_type)

    def answer_body(body: bytes, content_type: str | None) -> bytes:
        probabilities = predictor.predict(decode(body, content_type, SERVER_LIMITS, predictor.image))
        # Built here, not validated against Prediction again: it is a Prediction by construction (tested).
        return prediction_body(probabilities, predictor.class_names)

    def answer(body: bytes, content_type: str | None) -> Response:
        return Response(answer_body(body, content_type), media_type="application/json")

    app.add_middleware(InlineInvocations, predict=answer_body, body_timeout_s=body_timeout_s)

    limiter = anyio.CapacityLimiter(INFERENCE_SLOTS)

    async def run_in_threadpool_limited(fn, *args):
        return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)

    html = resources.files("convlens.serving").joinpath("page.html").read_text(encoding="utf-8")
    html_headers = page_headers(html)  # its CSP holds the hashes of its inline script and style: computed once
    html_bytes = html.encode("utf-8")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(html_bytes, headers=html_headers)

    examples = load_examples(Path(model_dir), predictor.class_names)

    @app.get("/examples", summary="A few real test images of the model's dataset (PNG, base64) and their labels")
    async def examples_list() -> dict:
        return {"examples": examples}

    card = model_card(predictor.config, Path(model_dir))

    @app.get("/model", summary="What is being served: architecture, classes, input contract, backend")
    async def model_info() -> dict:
        c = card
        source = dict(c.get("source_run") or {}) if isinstance(c.get("source_run"), dict) else {}
        if source.get("directory"):  # the run's name only (POSIX or Windows path): a host path is not for clients
            source["directory"] = re.split(r"[\\/]", str(source["directory"]).rstrip("\\/"))[-1]
        model = c.get("model") if isinstance(c.get("model"), dict) else {}
        dataset = str(c.get("dataset", "fashion-mnist"))
        if dataset.startswith("folder:"):  # the folder's name, not where it is on the host
            dataset = "folder:" + re.split(r"[\\/]", dataset.rstrip("\\/"))[-1]
        return {"name": model.get("name"), "dataset": dataset,
                "params": c.get("params"), "test_accuracy_over_seeds": c.get("test_accuracy_over_seeds"),
                "classes": predictor.class_names, "input": c["input"],
                "backend": predictor.backend, "content_types": list(CONTENT_TYPES), "source_run": source}

    return app
