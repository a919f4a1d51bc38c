"""What the server and `convlens predict` survive: hostile bodies, oversized images, a blocked event loop, clients
that write the whole body before reading, SIGTERM mid-request, models that cannot answer plain images.

Each case asserts the documented answer (a 4xx with a JSON message, or one line and exit 2) and that nothing
escapes as a 500 or a traceback. The README's reliability table points here.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from convlens.cli import main
from convlens.errors import UsageError
from convlens.serving.app import create_app
from convlens.serving.inputs import (
    CONTENT_TYPES,
    MAX_BODY_BYTES,
    MAX_DECODED_BYTES,
    MAX_IMAGE_PIXELS,
    InputError,
    decode,
)
from tests.serving.conftest import free_port


@pytest.fixture(scope="module")
def client(exported):
    return TestClient(create_app(exported[0]), raise_server_exceptions=False)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height and whose data is one empty deflate block: what a bomb's
    first bytes look like. Nothing may be decoded before the declared size is checked."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def encode(array: np.ndarray, fmt: str, mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).convert(mode).save(out, format=fmt)
    return out.getvalue()


def npy_header(shape: tuple, descr: str = "<f4") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue()


def raw_npy_header(shape_text: str) -> bytes:
    """A version-1.0 header with any shape text (numpy's writer refuses the shapes an attacker would send)."""
    header = ("{'descr': '<f4', 'fortran_order': False, 'shape': " + shape_text + ", }").encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def npy_with_header_text(text: bytes) -> bytes:
    """A version-1.0 .npy whose header is ``text``, padded as numpy pads it (numpy parses it with tokenize + ast)."""
    header = text + b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


GARMENT = np.zeros((28, 28), dtype=np.uint8)
GARMENT[6:22, 8:20] = 200
DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_WITH_NUMBERS = b"[1," * 5_000 + b"1" + b"]" * 5_000  # deep without runs of brackets
HUGE_INT = ('{"instances": [[' + ",".join(["9" * 400] * 784) + "]]}").encode()
HUGE_NPY = npy_header((10**13,)) + b"\0" * 64

# (name, body, content type, status, words the message must contain)
HOSTILE = [
    ("json nested 100,000 deep", DEEP, "application/json", 400, "nested too deeply"),
    ("json nested 5,000 deep with numbers", DEEP_WITH_NUMBERS, "application/json", 400, "nested too deeply"),
    ("400-digit integers", HUGE_INT, "application/json", 400, "out-of-range"),
    ("b64 images in a bare list (not in \"instances\")", b'[{"b64": "iVBORw0KGgo="}]', "application/json", 400,
     'go in an object: {"instances": [{"b64": ...}]}'),
    ("1e400", b"[" + b",".join([b"1e400"] * 784) + b"]", "application/json", 400, "out-of-range"),
    ("float above float32", json.dumps([[1e300] * 784]).encode(), "application/json", 400, "out-of-range"),
    ("NaN token", b"[" + b",".join([b"NaN"] * 784) + b"]", "application/json", 400, "NaN"),
    ("strings", json.dumps([["a"] * 784]).encode(), "application/json", 400, "numeric"),
    ("booleans and nulls", json.dumps([[None, True] * 392]).encode(), "application/json", 400, "numeric"),
    ("a JSON string", b'"hello"', "application/json", 400, "nested list"),
    ("instances and another key", json.dumps({"instances": [[0] * 784], "signature_name": "x"}).encode(),
     "application/json", 400, 'may hold only "instances" (TF-Serving row form); remove "signature_name"'),
    ("\"instances\" twice (json keeps the last, other parsers the first)",
     b'{"instances": [' + json.dumps([0] * 784).encode() + b'], "instances": [' + json.dumps([255] * 784).encode()
     + b']}', "application/json", 400, 'JSON key "instances" is given twice; give it once'),
    ("\"b64\" twice in one instance", b'{"instances": [{"b64": "AA==", "b64": "AQ=="}]}', "application/json", 400,
     'JSON key "b64" is given twice'),
    ("b64 not a string", b'{"instances": [{"b64": 12}]}', "application/json", 400, "must be a string"),
    ("mixed instances", json.dumps({"instances": [[0] * 784, {"b64": "AA=="}]}).encode(), "application/json", 400,
     "all numeric arrays or all"),
    ("invalid UTF-8", b'{"instances": "\xff\xfe"}', "application/json", 400, "not valid JSON"),
    ("an unclosed string of 10,000 escaped quotes", b'"' + b'\\"' * 10_000, "application/json", 400,
     "not valid JSON"),
    ("10,000 small instances", json.dumps({"instances": [[0]] * 10_000}).encode(), "application/json", 413,
     "too many instances"),
    ("npy declaring shape (10**13,)", HUGE_NPY, "application/x-npy", 400, "not an image batch"),
    ("npy with negative dimensions", raw_npy_header("(-1, -784)") + b"\0" * 3136, "application/x-npy", 400,
     "not an image batch"),
    ("npy with 70 dimensions", raw_npy_header("(" + "1, " * 70 + ")") + b"\0" * 4, "application/x-npy", 400,
     "not an image batch"),
    ("npy with a boolean dimension", raw_npy_header("(True, 784)") + b"\0" * 3136, "application/x-npy", 400,
     "not an image batch"),
    ("npy with a zero and a 10**30 dimension", raw_npy_header("(0, " + "1" + "0" * 30 + ")"), "application/x-npy",
     400, "not an image batch"),
    ("UTF-16 JSON", json.dumps([[True] * 784]).encode("utf-16"), "application/json", 400, "not UTF-8"),
    ("numbers as strings", json.dumps([["1"] * 784]).encode(), "application/json", 400, "no strings"),
    ("npy truncated", npy_header((28, 28)) + b"\0" * 100, "application/x-npy", 400, "3,136 bytes"),
    ("npy of strings", npy_header((28, 28), "<U1") + b"\0" * 28 * 28 * 4, "application/x-npy", 400, "not numeric"),
    ("npz archive as npy", b"PK\x03\x04" + b"\0" * 100, "application/x-npy", 400, "not a valid .npy"),
    ("npy header '{' (tokenize fails)", b"\x93NUMPY\x01\x00\x02\x00{\n", "application/x-npy", 400,
     "not a valid .npy"),
    ("npy header an open string", npy_with_header_text(b'"""'), "application/x-npy", 400, "not a valid .npy"),
    ("npy header 9,000 minus signs", npy_with_header_text(b"-" * 9000 + b"1"), "application/x-npy", 400,
     "not a valid .npy"),
    ("npy header 1+1+... 4,900 deep", npy_with_header_text(b"1+" * 4900 + b"1"), "application/x-npy", 400,
     "not a valid .npy"),
    ("npy 1001 images", npy_header((1001, 784), "|u1") + b"\0" * 1001 * 784, "application/x-npy", 413,
     "too many instances"),
    ("png bomb header (100,000 x 100,000)", png_header_only(100_000, 100_000), "image/png", 413, "exceeds the limit"),
    ("png just above the pixel limit", png_header_only(4097, 4096), "image/png", 413, "exceeds the limit"),
    ("PNG sent as image/jpeg", encode(GARMENT, "PNG"), "image/jpeg", 400, "not a JPEG image"),
    ("JPEG sent as image/png", encode(GARMENT, "JPEG"), "image/png", 400, "not a PNG image"),
    ("GIF sent as image/png", encode(GARMENT, "GIF"), "image/png", 400, "not a PNG image"),
    ("TIFF sent as image/png", encode(GARMENT, "TIFF"), "image/png", 400, "not a PNG image"),
    ("BMP in b64", json.dumps({"instances": [{"b64": base64.b64encode(encode(GARMENT, "BMP")).decode()}]}).encode(),
     "application/json", 400, "not a PNG or JPEG image"),
    ("truncated PNG", encode(GARMENT, "PNG")[:60], "image/png", 400, "cannot decode the PNG image"),
    ("invalid base64", b'{"instances": [{"b64": "@@@"}]}', "application/json", 400, "base64"),
    ("unknown content type", b"[1]", "text/csv", 415, "unsupported content type 'text/csv'"),
    ("no content type", b"[1]", "", 415, "unsupported content type 'none'"),
    ("empty body", b"", "application/json", 400, "empty body"),
]


@pytest.mark.parametrize("name, body, content_type, status, words", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_get_a_4xx_with_a_json_message(client, name, body, content_type, status, words):
    response = client.post("/invocations", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["error"]


def test_images_decoding_to_more_than_the_budget_are_refused_before_decoding_the_rest(client):
    side = 4096  # at the per-image limit; RGB: 48 MiB decoded each
    big = base64.b64encode(encode(np.zeros((side, side, 3), dtype=np.uint8), "PNG", mode="RGB")).decode()
    fits = MAX_DECODED_BYTES // (side * side * 3)
    assert side * side <= MAX_IMAGE_PIXELS and fits == 5
    ok = client.post("/invocations", json={"instances": [{"b64": big}] * fits})
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == fits
    over = client.post("/invocations", json={"instances": [{"b64": big}] * (fits + 1)})
    assert over.status_code == 413 and "MiB in all" in over.json()["error"]


def test_model_info_reveals_no_host_path(client, exported, tmp_path):
    text = client.get("/model").text
    assert str(exported[0].parent) not in text and "/tmp" not in text
    assert client.get("/model").json()["source_run"]["directory"] == "run"
    copy = tmp_path / "model"
    shutil.copytree(exported[0], copy)
    config = json.loads((copy / "config.json").read_text())
    config["source_run"]["directory"] = "C:\\Users\\alice\\secret\\runs\\exp1\\"  # exported on Windows
    (copy / "config.json").write_text(json.dumps(config))
    answer = TestClient(create_app(copy)).get("/model")
    assert answer.status_code == 200 and answer.json()["source_run"]["directory"] == "exp1"
    assert "alice" not in answer.text


def test_unknown_paths_and_methods_answer_in_the_same_json_shape(client):
    for response, status in ((client.get("/nope"), 404), (client.get("/invocations"), 405)):
        assert response.status_code == status and set(response.json()) == {"error"}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=2_000) | st.sampled_from([h[1][:3_000] for h in HOSTILE]),
       content_type=st.sampled_from([*CONTENT_TYPES, "text/plain", "", "image/png; x=1", "APPLICATION/JSON"]))
def test_any_bytes_with_any_content_type_decode_or_raise_an_input_error(body, content_type):
    try:
        x = decode(body, content_type)
    except InputError as e:
        assert 400 <= e.status < 500 and str(e)
    else:
        assert x.dtype == np.float32 and x.ndim == 4 and x.shape[1:] == (1, 28, 28)
        assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.integers(min_value=-(10**30), max_value=10**30) | st.floats(allow_nan=True), min_size=784,
                max_size=784))
def test_any_numbers_in_a_row_decode_or_raise_an_input_error(row):
    body = json.dumps({"instances": [row]}).encode()
    # The model takes float32: the contract (finite, within [0, 255]) holds for the values as float32, where
    # -1e-113 is -0.0 and 1e300 is inf.
    with np.errstate(over="ignore"):
        values = np.array(row, dtype=np.float64).astype(np.float32)
    valid = bool(np.isfinite(values).all() and values.min() >= 0 and values.max() <= 255)
    try:
        x = decode(body, "application/json")
    except InputError as e:
        assert e.status == 400 and not valid
    else:
        assert valid
        expected = values / np.float32(255) if values.max() > 1 or all(isinstance(v, int) for v in row) else values
        np.testing.assert_allclose(x.reshape(-1), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name, body, suffix, words", [
    ("json nested 100,000 deep", DEEP, ".json", "nested too deeply"),
    ("400-digit integers", HUGE_INT, ".json", "out-of-range"),
    ("npy declaring shape (10**13,)", HUGE_NPY, ".npy", "not an image batch"),
    ("png bomb header", png_header_only(100_000, 100_000), ".png", "exceeds the limit"),
    ("PNG named .jpg", encode(GARMENT, "PNG"), ".jpg", "not a JPEG image"),
])
def test_predict_command_gives_one_line_on_hostile_files(exported, tmp_path, capsys, name, body, suffix, words):
    path = tmp_path / f"input{suffix}"
    path.write_bytes(body)
    assert main(["predict", str(exported[0]), str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.fixture(scope="module")
def permuted_run(exported, tmp_path_factory) -> Path:
    """A copy of the trained run whose config says it saw pixel-permuted images (the locality probe)."""
    run = tmp_path_factory.mktemp("permuted") / "run"
    shutil.copytree(exported[0].parent / "run", run)
    config = json.loads((run / "config.json").read_text())
    config["data"]["pixels"] = "permuted"
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_permuted_pixel_models_are_refused_by_predict_serve_and_export(permuted_run, tmp_path, capsys):
    np.save(tmp_path / "x.npy", GARMENT)
    for argv in (["predict", str(permuted_run), str(tmp_path / "x.npy")], ["serve", str(permuted_run)],
                 ["export", str(permuted_run), "--out", str(tmp_path / "model")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "pixel-permuted" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "model").exists()
    with pytest.raises(UsageError, match="pixel-permuted"):
        create_app(permuted_run)
    # The same run with plain pixels is served: the refusal is about the pixels, not the copy.
    config = json.loads((permuted_run / "config.json").read_text())
    config["data"]["pixels"] = "original"
    (permuted_run / "config.json").write_text(json.dumps(config))
    assert main(["predict", str(permuted_run), str(tmp_path / "x.npy")]) == 0


def _post(url: str, body: bytes, content_type: str = "application/json", timeout: float = 60):
    """urllib: writes the whole body, then reads the answer (the client that used to see a connection reset)."""
    request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("body", [
    b"[" + b"0," * 3_500_000 + b"0]",  # 7 MB: refused from Content-Length before the body is read
    json.dumps({"instances": [[0] * 784] * 10_000}).encode(),  # 10,000 instances: 15.7 MB
], ids=["7 MB", "10,000 instances"])
def test_clients_that_write_the_whole_body_first_read_the_413(live_server, body):
    assert len(body) > MAX_BODY_BYTES
    status, answer = _post(live_server, body)
    assert status == 413 and "6 MB limit" in answer["error"]
    assert _post(live_server, json.dumps([GARMENT.tolist()]).encode())[0] == 200  # the server is still fine


def test_ping_answers_within_2_s_while_maximal_requests_are_served(live_server):
    side = 4096
    big = base64.b64encode(encode(np.zeros((side, side, 3), dtype=np.uint8), "PNG", mode="RGB")).decode()
    body = json.dumps({"instances": [{"b64": big}] * 5}).encode()  # the most decoding one request may cost
    results: list[int] = []
    workers = [threading.Thread(target=lambda: results.append(_post(live_server, body, timeout=120)[0]))
               for _ in range(8)]
    start = time.monotonic()
    for w in workers:
        w.start()
    pings = []
    while any(w.is_alive() for w in workers):
        t0 = time.monotonic()
        with urllib.request.urlopen(f"{live_server}/ping", timeout=10) as r:
            assert r.status == 200
        pings.append(time.monotonic() - t0)
        time.sleep(0.05)
    for w in workers:
        w.join()
    busy = time.monotonic() - start
    assert results == [200] * 8
    assert busy > 2 and len(pings) >= 10, (busy, len(pings))  # the requests kept the server busy for a while
    assert max(pings) < 2.0, pings


def serve_process(model_dir: Path, *options: str) -> tuple[subprocess.Popen, int]:
    """`convlens serve` in its own process, once its port accepts connections."""
    port = free_port()
    exe = str(Path(sys.executable).parent / "convlens")
    proc = subprocess.Popen([exe, "serve", str(model_dir), "--port", str(port), *options], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.2)


def read_answer(s: socket.socket) -> bytes:
    answer = b""
    while not answer.endswith(b"}") or b"\r\n\r\n" not in answer:
        chunk = s.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


@pytest.mark.parametrize("number, workers", [(signal.SIGTERM, 1), (signal.SIGTERM, 2), (signal.SIGINT, 1)])
def test_a_signal_during_a_request_lets_it_finish_then_exits_with_one_line(exported, number, workers):
    """uvicorn takes the signal, finishes the request and returns as if nothing happened: exit 0, silently, with
    2 workers or after Ctrl-C; the command now says it stopped, 143 for SIGTERM and 130 for Ctrl-C."""
    proc, port = serve_process(exported[0], "--workers", str(workers))
    try:
        body = json.dumps([GARMENT.tolist()]).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:100])
            time.sleep(0.5)  # the request is in flight: headers read, body half sent
            proc.send_signal(number)
            time.sleep(0.5)
            s.sendall(body[100:])
            answer = read_answer(s)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert b'"predictions"' in answer
        t0 = time.monotonic()
        # uvicorn finishes the request and shuts down; convlens' subclasses of its server and supervisor note the
        # signal (SIGTERM with one worker had ended the process silently, -15)
        assert proc.wait(timeout=30) == 128 + number
        assert time.monotonic() - t0 < 30
        assert proc.stderr.read().decode().strip().splitlines()[-1] == "convlens: the server stopped"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_body_that_trickles_in_gets_a_408(exported):
    proc, port = serve_process(exported[0], "--body-timeout", "1")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n[[")  # and then nothing
            t0 = time.monotonic()
            answer = read_answer(s)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"did not arrive within 1 s" in answer and 0.9 < time.monotonic() - t0 < 10
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.kill()


@pytest.mark.parametrize("headers, within", [
    (b"Content-Length: 7000000\r\n", 10),  # declared over the limit, then nothing sent: was never answered
    (b"Content-Length: 7000000\r\nExpect: 100-continue\r\n", 0.9),  # was "100 Continue", then a wait for 7 MB
    (b"Content-Length: 99999999\r\n", 0.9),  # more than is ever drained: refused at once
])
def test_an_oversized_body_that_never_comes_gets_its_413(exported, headers, within):
    proc, port = serve_process(exported[0], "--body-timeout", "1")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            t0 = time.monotonic()
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-npy\r\n" + headers
                      + b"\r\n")
            answer = read_answer(s)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"exceeds the 6 MB limit" in answer and time.monotonic() - t0 < within
        assert b"connection: close" in answer.lower()
    finally:
        proc.kill()


MALFORMED = [b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",  # not a number
             b"POST /invocations HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n"]  # a header line without a colon


def _answer_to(host: str, port: int, request: bytes) -> tuple[bytes, dict, bytes]:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while chunk := s.recv(65536):  # the server closes the connection after a 400 it cannot parse past
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    return lines[0], {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in lines[1:])}, body


def test_a_request_that_is_not_http_gets_a_400_with_a_json_message_from_either_parser(live_server):
    """uvicorn answers what it cannot parse itself, before the app, in plain text; convlens' protocols say it in
    the JSON shape of every other error, with httptools (what `convlens serve` runs) and with h11."""
    import asyncio

    import uvicorn

    from convlens.serving.http_protocol import JsonErrorsH11Protocol, JsonErrorsHttpToolsProtocol, protocol_class
    assert protocol_class() is JsonErrorsHttpToolsProtocol
    servers = [("127.0.0.1", int(live_server.rsplit(":", 1)[1]))]  # the CLI's server
    for protocol in (JsonErrorsH11Protocol, JsonErrorsHttpToolsProtocol):
        async def app(scope, receive, send):  # never reached by a request the parser refuses
            raise AssertionError("the app saw a malformed request")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), http=protocol,
                                               log_level="critical", lifespan="off"))
        server.install_signal_handlers = lambda: None  # not the main thread
        threading.Thread(target=asyncio.run, args=(server.serve(),), daemon=True).start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        servers.append(("127.0.0.1", server.config.port))
    for host, port in servers:
        for request in MALFORMED:
            status, headers, body = _answer_to(host, port, request)
            assert status == b"HTTP/1.1 400 Bad Request", (port, status)
            assert headers[b"content-type"] == b"application/json" and int(headers[b"content-length"]) == len(body)
            assert json.loads(body)["error"].startswith("not a valid HTTP request (")
