"""What a careful user meets at the edges of export, predict and the Accept header: another run's export is not
replaced without --force, input files that are not regular files are refused before they are read, and an Accept
header is read as RFC 9110 has it (parameter names in any case, the most specific range decides)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from convlens.cli import main
from convlens.serving.app import create_app


def _digests(directory) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def two_runs(exported, tmp_path_factory):
    """The exported fixture's run (a), a copy of it in another directory (a-copy: the same run), and another run
    (b: the same files with different weights), written with safetensors independently of convlens."""
    from safetensors.numpy import load_file, save_file
    root = tmp_path_factory.mktemp("runs")
    a = exported[0].parent / "run"
    shutil.copytree(a, root / "a-copy")
    shutil.copytree(a, root / "b")
    weights = load_file(a / "model.safetensors")
    save_file({k: (v + np.float32(0.01)).astype(v.dtype) for k, v in weights.items()},
              str(root / "b" / "model.safetensors"))
    return a, root / "a-copy", root / "b"


def test_export_refuses_another_runs_export_without_force(two_runs, tmp_path, capsys, monkeypatch):
    import convlens.serving.export
    monkeypatch.setattr(convlens.serving.export, "write_examples", lambda *a, **k: False)  # no dataset read: fast
    a, a_copy, b = two_runs
    out = tmp_path / "model"
    assert main(["export", str(a), "--out", str(out)]) == 0
    capsys.readouterr()
    before = _digests(out)
    assert before["model.safetensors"] == hashlib.sha256((a / "model.safetensors").read_bytes()).hexdigest()

    assert main(["export", str(b), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (f"convlens: error: {out} holds the export of another run; nothing was written: "
                                    "choose another directory, or replace it with --force (force=True in Python)")
    assert "Traceback" not in captured.err + captured.out
    assert _digests(out) == before and not [p for p in out.iterdir() if p.name.startswith(".export-")]

    for same in (a, a_copy):  # the same run again, from its own directory or a copy of it: replaced as before
        assert main(["export", str(same), "--out", str(out)]) == 0
        assert _digests(out)["model.safetensors"] == before["model.safetensors"]
    capsys.readouterr()

    assert main(["export", str(b), "--out", str(out), "--force"]) == 0
    assert _digests(out)["model.safetensors"] == hashlib.sha256((b / "model.safetensors").read_bytes()).hexdigest()
    assert json.loads((out / "config.json").read_text())["source_run"]["directory"] == str(b)
    assert main(["export", str(b), "--out", str(out)]) == 0  # now b's own export: exported again without --force

    import convlens  # the Python API alike: Run.export refuses a's export in place of b's unless force=True
    with pytest.raises(convlens.UsageError, match="holds the export of another run"):
        convlens.load_run(a).export(out)
    assert _digests(out)["model.safetensors"] == hashlib.sha256((b / "model.safetensors").read_bytes()).hexdigest()
    convlens.load_run(a).export(out, force=True)
    assert _digests(out)["model.safetensors"] == before["model.safetensors"]


def test_two_runs_named_alike_from_two_working_directories_are_two_runs(two_runs, tmp_path, capsys, monkeypatch):
    """A run directory recorded as typed (runs/k3) is relative to a working directory the export does not record:
    runs/k3 exported from B in place of A's runs/k3 was taken for the same run and replaced it."""
    import convlens.serving.export
    monkeypatch.setattr(convlens.serving.export, "write_examples", lambda *a, **k: False)
    a, _, b = two_runs
    for home, run in (("A", a), ("B", b)):
        shutil.copytree(run, tmp_path / home / "runs" / "k3")
    out = tmp_path / "model"
    monkeypatch.chdir(tmp_path / "A")
    assert main(["export", "runs/k3", "--out", str(out)]) == 0
    before = _digests(out)
    monkeypatch.chdir(tmp_path / "B")
    assert main(["export", "runs/k3", "--out", str(out)]) == 2
    assert "holds the export of another run" in capsys.readouterr().err and _digests(out) == before


@pytest.mark.parametrize("kind", ["link to a device", "fifo"])
def test_predict_refuses_an_input_that_is_not_a_regular_file_before_reading_it(exported, tmp_path, capsys, kind):
    """A link to /dev/zero (its size says 0) was read until memory ran out (the OOM killer, or a MemoryError
    traceback); a FIFO blocked for ever. Both are refused in one line before they are opened. The device here is
    /dev/null, and the FIFO gets a writer that closes it once read, so that reading them as before ends (with
    another answer) instead of exhausting memory or hanging the suite."""
    import threading
    import time
    path = tmp_path / "x.npy"
    done = threading.Event()
    if kind == "link to a device":
        path.symlink_to("/dev/null")
    elif kind == "fifo":
        os.mkfifo(path)

        def unblock() -> None:  # opens the FIFO for writing only once a reader has it open, then closes it
            deadline = time.monotonic() + 5
            while not done.is_set() and time.monotonic() < deadline:
                try:
                    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
                    return
                except OSError:  # ENXIO: no reader (yet)
                    time.sleep(0.05)
        threading.Thread(target=unblock, daemon=True).start()
    try:
        code = main(["predict", str(exported[0]), str(path)])
    finally:
        done.set()
    captured = capsys.readouterr()
    assert captured.err.strip() == (f"convlens: error: {path} is not a regular file; give PNG/JPEG images, .npy "
                                    "arrays or .json bodies") and captured.out == "" and code == 2


@pytest.fixture(scope="module")
def client(exported):
    return TestClient(create_app(exported[0]))


# (Accept header, status): q=0 refuses whatever the case of its name; a more specific range overrides a wildcard
# (RFC 9110 12.5.1): "*/*, application/json;q=0" refuses JSON, "application/*;q=0, application/json" allows it.
@pytest.mark.parametrize("accept, status", [("application/json;Q=0", 406), ("*/*, application/json;q=0", 406),
                                            ("application/json;q=0, */*", 406), ("application/*;q=0, */*", 406),
                                            ("application/*;q=0, application/json", 200),
                                            ("text/csv;q=0, application/json;q=0.001", 200),
                                            ("APPLICATION/JSON;Q=0.5", 200)])
def test_the_most_specific_accept_range_decides(client, accept, status):
    body = json.dumps([[0.5] * 28] * 28)
    for size in (1, 64):  # answered on the event loop / in a worker thread, alike
        response = client.post("/invocations", content=body if size == 1 else json.dumps([[[0.5] * 28] * 28] * size),
                               headers={"Content-Type": "application/json", "Accept": accept})
        assert response.status_code == status, (accept, size)
        if status == 406:
            assert response.json() == {"error": f"unsupported accept type '{accept}'; this model answers "
                                                 "application/json"}


def test_a_base64_image_wrapped_in_lines_is_read_as_the_image(client, exported, fashion):
    """`base64 shirt.png` and base64.encodebytes wrap their output every 76 characters; the line breaks were refused
    ("'b64' must hold a base64-encoded PNG or JPEG"). Now the same prediction as the PNG sent as image/png."""
    import base64
    import io

    from PIL import Image

    from convlens.serving.predictor import Predictor
    buffer = io.BytesIO()
    Image.fromarray(fashion.test_images[0]).resize((60, 60)).save(buffer, format="PNG")  # more than one line
    png = buffer.getvalue()
    wrapped = base64.encodebytes(png).decode()
    assert wrapped.count("\n") > 1
    response = client.post("/invocations", content=json.dumps({"instances": [{"b64": wrapped}]}),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    direct = client.post("/invocations", content=png, headers={"Content-Type": "image/png"}).json()["predictions"]
    assert response.json()["predictions"] == direct
    expected = Predictor(exported[0]).predict(
        np.asarray(Image.open(io.BytesIO(png)).convert("L").resize((28, 28), Image.Resampling.LANCZOS),
                   np.float32).reshape(1, 1, 28, 28) / 255)
    assert np.allclose(response.json()["predictions"], expected, atol=1e-5)
    bad = client.post("/invocations", content=json.dumps({"instances": [{"b64": wrapped.replace("\n", " ! ")}]}),
                      headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json() == {"error": "'b64' must hold a base64-encoded PNG or JPEG"}
