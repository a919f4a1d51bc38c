"""The server on the SageMaker contract: an exported real model behind FastAPI, and a real uvicorn process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convlens.cli import main
from convlens.serving.app import create_app
from convlens.serving.predictor import Predictor


@pytest.fixture(scope="module")
def client(exported):
    return TestClient(create_app(exported[0]))


def test_onnx_matches_pytorch_on_real_test_images(exported, fashion):
    x = (fashion.test_images[:1000].astype(np.float32) / 255).reshape(-1, 1, 28, 28)
    onnx, torch_ = Predictor(exported[0]), Predictor(exported[0], backend="torch")
    assert onnx.backend == "onnxruntime" and torch_.backend == "torch"
    assert np.abs(onnx.logits(x) - torch_.logits(x)).max() < 1e-4
    accuracy = (onnx.predict(x).argmax(1) == fashion.test_labels[:1000]).mean()
    assert accuracy == pytest.approx(exported[1]["test_accuracy"], abs=1e-3)


def test_exported_config_describes_model_input_and_source(exported, fashion):
    config = json.loads((exported[0] / "config.json").read_text())
    assert config["format"] == "convlens-model/1" and config["model"]["name"] == "cnn-16-32"
    assert config["input"]["range"] == [0.0, 1.0] and len(config["class_names"]) == 10
    assert config["source_run"]["test_accuracy"] == exported[1]["test_accuracy"]
    assert {p.name for p in exported[0].iterdir()} == {"model.safetensors", "config.json", "model.onnx",
                                                       "examples.npz"}
    with np.load(exported[0] / "examples.npz", allow_pickle=False) as examples:
        labels = examples["labels"].tolist()
        assert labels == [int(fashion.test_labels[i]) for i in sorted(
            int(np.flatnonzero(fashion.test_labels == c)[0]) for c in range(10))]  # the first test image per class
        assert np.array_equal(examples["images"][0], fashion.test_images[0])


def test_ping_and_a_write_up_000_style_request(client, fashion):
    ping = client.get("/ping")
    assert ping.status_code == 200 and ping.content == b""
    x = (fashion.test_images[0:1].astype(np.float32) / 255).reshape(1, 28, 28, 1)  # X_test_cnn[0:1]
    response = client.post("/invocations", content=json.dumps(x.tolist()), headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    body = response.json()
    assert body["classes"][9] == "Ankle boot" and len(body["predictions"]) == 1
    assert sum(body["predictions"][0]) == pytest.approx(1.0, abs=1e-5)
    assert int(np.argmax(body["predictions"][0])) == fashion.test_labels[0]  # an ankle boot, classified right


def test_batched_npy_and_tf_serving_rows_agree(client, fashion):
    pixels = fashion.test_images[:64]  # uint8 0-255
    buffer = io.BytesIO()
    np.save(buffer, pixels)
    npy = client.post("/invocations", content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
    rows = client.post("/invocations", json={"instances": (pixels / 255.0).reshape(64, 784).tolist()})
    assert npy.status_code == rows.status_code == 200
    np.testing.assert_allclose(npy.json()["predictions"], rows.json()["predictions"], atol=1e-5)
    # A small body is answered on the event loop, a large one in a worker thread: the same answer, both shaped as
    # the documented Prediction.
    from convlens.serving.app import INLINE_BODY_BYTES, Prediction
    one = io.BytesIO()
    np.save(one, pixels[:1])
    assert len(one.getvalue()) <= INLINE_BODY_BYTES < len(buffer.getvalue())
    single = client.post("/invocations", content=one.getvalue(), headers={"Content-Type": "application/x-npy"})
    assert single.status_code == 200
    assert single.json()["predictions"][0] == npy.json()["predictions"][0]
    for answer in (single, npy, rows):
        assert Prediction.model_validate(answer.json()).classes[9] == "Ankle boot"


@pytest.mark.parametrize("body, content_type, status", [
    (b"[]", "application/json", 400), (b"{}", "application/json", 400), (b"[[NaN]]", "application/json", 400),
    (b"hello", "text/plain", 415), (b"\x00\x01", "image/jpeg", 400), (b"x" * 6_291_457, "application/json", 413),
])
def test_client_mistakes_get_4xx_json(client, body, content_type, status):
    response = client.post("/invocations", content=body, headers={"Content-Type": content_type})
    assert response.status_code == status and response.json()["error"]


@pytest.mark.parametrize("accept, status", [("text/csv", 406), ("image/png, text/html", 406), (None, 200),
                                            ("*/*", 200), ("application/json", 200),
                                            ("text/html, application/json;q=0.9", 200), ("application/*", 200),
                                            ("application/json;q=0, text/csv", 406), ("*/*; q=0.0", 406)])
@pytest.mark.parametrize("images", [1, 64])  # answered on the event loop / in a worker thread
def test_the_accept_header_is_answered_as_the_sagemaker_handler_answers_it(client, fashion, accept, status, images):
    # the handler answered text/csv with 406 where this server said 200 (tests/cloud: the handler's own answers)
    headers = {"Content-Type": "application/json", **({"Accept": accept} if accept else {})}
    response = client.post("/invocations", content=json.dumps((fashion.test_images[:images] / 255).tolist()),
                           headers=headers)
    assert response.status_code == status
    if status == 406:
        assert response.json()["error"] == f"unsupported accept type '{accept}'; this model answers application/json"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=9), inner, max_size=3),
                    max_leaves=30))
def test_arbitrary_json_never_gets_a_500(client, payload):
    body = json.dumps(payload).encode()
    response = client.post("/invocations", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 400, 413), response.text


def test_page_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="pad"' in page.text and "invocations" in page.text
    schema = client.get("/openapi.json").json()
    assert set(schema["paths"]["/invocations"]["post"]["requestBody"]["content"]) == {
        "application/json", "application/x-npy", "image/png", "image/jpeg"}
    model = client.get("/model").json()
    assert model["backend"] == "onnxruntime"
    assert schema["info"]["description"] == ("SageMaker inference contract for a convlens model of "
                                             f"{len(model['classes'])} classes (GET /model describes it).")
    # FastAPI's /docs and /redoc load their scripts from a CDN and were blank offline: not served
    assert client.get("/docs").status_code == client.get("/redoc").status_code == 404
    assert "https://" not in page.text  # the page itself loads nothing from outside


def test_server_imports_no_training_code(exported):
    code = ("import sys; from convlens.serving.app import create_app; create_app(sys.argv[1]); "
            "bad = [m for m in ('convlens.training', 'convlens.runs', 'convlens.experiments') if m in sys.modules]; "
            "assert not bad, bad")
    for served in (exported[0], exported[0].parent / "run"):  # an export, and a run directory served as it is
        subprocess.run([sys.executable, "-c", code, str(served)], check=True, timeout=120)


def test_predict_command_on_png_and_npy(exported, fashion, tmp_path, capsys):
    from PIL import Image
    Image.fromarray(fashion.test_images[1]).save(tmp_path / "pullover.png")  # test image 1: a pullover
    np.save(tmp_path / "batch.npy", fashion.test_images[:3])
    assert main(["predict", str(exported[0]), str(tmp_path / "pullover.png"), str(tmp_path / "batch.npy"),
                 "--json", "--top-k", "2"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["input"] for r in results] == [str(tmp_path / "pullover.png")] + [f"{tmp_path / 'batch.npy'}[{i}]"
                                                                                  for i in range(3)]
    assert results[0]["top"][0]["class"] == results[2]["top"][0]["class"]  # same image, two encodings
    assert len(results[0]["top"]) == 2
    assert main(["predict", str(exported[0]), str(tmp_path / "notes.txt")]) == 2
    capsys.readouterr()
    for k in ("0", "-1"):  # would print no class, or all but the last: refused in one line
        assert main(["predict", str(exported[0]), str(tmp_path / "pullover.png"), "--top-k", k]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.strip() == f"convlens: error: --top-k must be at least 1 (got {k})"


def test_model_card_of_a_served_run_directory_is_what_its_export_says(exported):
    from safetensors.numpy import load_file
    run_dir = exported[0].parent / "run"
    from_run = TestClient(create_app(run_dir)).get("/model").json()
    from_export = TestClient(create_app(exported[0])).get("/model").json()
    assert from_run["backend"] == "torch" and from_export["backend"] == "onnxruntime"  # no model.onnx in a run
    assert {k: v for k, v in from_run.items() if k != "backend"} == \
           {k: v for k, v in from_export.items() if k != "backend"}
    # and against the run itself, read independently: its weights, its metrics, its config
    weights = load_file(run_dir / "model.safetensors")
    assert from_run["params"] == sum(t.size for t in weights.values()) == exported[1]["params"]["total"]
    config = json.loads((run_dir / "config.json").read_text())
    assert from_run["dataset"] == config["data"]["dataset"] == "fashion-mnist"
    assert from_run["source_run"] == {"directory": "run", "seed": config["seed"], "recipe": "fast",
                                      "test_accuracy": exported[1]["test_accuracy"], "n_test": 1_000}


def test_a_run_directory_with_odd_files_is_served_or_refused_in_one_line(exported, tmp_path):
    """/model answers for a run directory whatever the optional parts of its config hold; a metrics.json that is
    not a finished run's (not as convlens writes it, a link out of the directory, a FIFO) is refused in one line,
    never followed and never opened: a pending run's weights may be an earlier run's."""
    import os
    import shutil

    from convlens.errors import UsageError
    run = tmp_path / "run"
    shutil.copytree(exported[0].parent / "run", run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "data": None, "recipe": "fast"}))
    card = TestClient(create_app(run)).get("/model")
    assert card.status_code == 200 and card.json()["dataset"] == "fashion-mnist"
    assert card.json()["source_run"]["recipe"] is None
    assert card.json()["source_run"]["test_accuracy"] == json.loads((run / "metrics.json").read_text())["test_accuracy"]
    (run / "metrics.json").write_text(json.dumps({"params": 5, "test_accuracy": 0.5}))
    with pytest.raises(UsageError, match="metrics.json: status: Field required"):
        create_app(run)
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"status": "done", "params": {"total": 123}, "test_accuracy": 0.99}))
    (run / "metrics.json").unlink()
    (run / "metrics.json").symlink_to(secret)
    with pytest.raises(UsageError, match="is a link to a file outside"):
        create_app(run)
    (run / "metrics.json").unlink()
    os.mkfifo(run / "metrics.json")  # reading it would block the server's start for ever
    with pytest.raises(UsageError, match="metrics.json not found"):
        create_app(run)


def test_serve_refuses_a_port_in_use_in_one_line_before_saying_serving(exported, capsys):
    import socket
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        assert main(["serve", str(exported[0]), "--port", str(port)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no "serving ... on" line for a server that never served
    assert captured.err.strip() == (f"convlens: error: cannot serve on 127.0.0.1:{port}: the port is in use; "
                                    "choose another --port (or stop what holds it)")
    for host, message in (("10.255.255.1", "--host 10.255.255.1 is not an address of this machine"),
                          ("no-such-host.invalid", "--host no-such-host.invalid: cannot resolve it")):
        assert main(["serve", str(exported[0]), "--host", host, "--port", "0"]) == 2
        assert message in capsys.readouterr().err


def test_predict_reads_a_local_file_beyond_the_request_limits(exported, fashion, tmp_path, capsys):
    np.save(tmp_path / "test.npy", fashion.test_images)  # 10,000 images, 7.8 MB: over 6 MB and 1,000 images
    assert (tmp_path / "test.npy").stat().st_size > 6_291_456
    assert main(["predict", str(exported[0]), str(tmp_path / "test.npy"), "--json", "--top-k", "1"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert len(results) == 10_000
    predictor = Predictor(exported[0])
    expected = predictor.predict(fashion.test_images[[0, 9_999]].reshape(2, 1, 28, 28) / np.float32(255))
    for i, probs in zip((0, 9_999), expected):
        assert results[i]["top"][0]["class"] == predictor.class_names[int(probs.argmax())]
        assert results[i]["top"][0]["probability"] == pytest.approx(float(probs.max()), abs=1e-6)


def test_serve_command_runs_a_real_server(live_server, fashion):
    with urllib.request.urlopen(f"{live_server}/ping", timeout=5) as r:
        assert r.status == 200 and r.read() == b""
    body = json.dumps({"instances": [fashion.test_images[0].tolist()]}).encode()  # uint8 pixels as ints
    request = urllib.request.Request(f"{live_server}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert len(json.loads(r.read())["predictions"][0]) == 10


def test_evaluate_accepts_an_exported_model_directory(exported, capsys, fashion):
    assert main(["evaluate", str(exported[0]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["model"] == "cnn-16-32" and result["n_test"] == 10_000 and result["test_accuracy"] > 0.6
