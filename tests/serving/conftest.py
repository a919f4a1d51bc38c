"""Shared serving fixtures: a real model trained briefly and exported (with ONNX), and a live server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from convlens.config import TrainConfig, resolve_recipe
from convlens.runs import run_training
from convlens.serving.export import export_run


@pytest.fixture(scope="session")
def exported(fashion, tmp_path_factory):
    """A seed-001 CNN trained briefly on real data, exported with ONNX: (model dir, training metrics)."""
    root = tmp_path_factory.mktemp("model")
    cfg = TrainConfig(model="cnn-16-32", recipe=resolve_recipe("fast", {"epochs": 2}), train_subset=6_000,
                      test_subset=1_000)
    result = run_training(cfg, root / "run", dataset=fashion)
    export_run(root / "run", root / "model", onnx=True)
    return root / "model", result.metrics


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(exported):
    """`convlens serve` on 127.0.0.1 in its own process; yields the base URL once /ping answers."""
    port = free_port()
    exe = str(Path(sys.executable).parent / "convlens")
    proc = subprocess.Popen([exe, "serve", str(exported[0]), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"convlens serve did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
