"""Shared fixtures: the real dataset (CI installs it from Debian) and tiny IDX datasets written by tests."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import shutil
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from convlens.config import TrainConfig, resolve_recipe
from convlens.data import load_idx_dataset
from convlens.data.dataset import ImageDataset
from convlens.data.idx import IdxFileSpec, encode_idx
from convlens.data.sources import DatasetManifest
from convlens.errors import DataError
from convlens.runs import run_training
from convlens.serving.export import export_run


@pytest.fixture(scope="session")
def fashion() -> ImageDataset:
    """Real Fashion-MNIST, found as the CLI finds it: $CONVLENS_DATA, the user cache, the Debian package, or a
    verified download. A missing copy fails (never skips)."""
    try:
        return load_idx_dataset()
    except DataError as e:
        pytest.fail(f"the tests need real Fashion-MNIST ({e}); run 'make data'")


def fashion_files() -> list[Path]:
    """The real Fashion-MNIST files (.gz), wherever the CLI would find them."""
    located = fashion_source()
    return sorted(located.paths.values())


def fashion_source():
    from convlens.data.sources import locate
    try:
        return locate()
    except DataError as e:
        pytest.fail(f"the tests need real Fashion-MNIST ({e}); run 'make data'")


def write_tiny_dataset(directory: Path, *, n_train: int = 60, n_test: int = 20, gz: bool = True,
                       seed: int = 0, train_labels: np.ndarray | None = None
                       ) -> tuple[DatasetManifest, dict[str, np.ndarray]]:
    """Write a small random MNIST-style dataset; returns its manifest (with true checksums) and the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8) if train_labels is None else train_labels,
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8),
    }
    names = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for role, array in arrays.items():
        data = encode_idx(array)
        files[role] = IdxFileSpec(names[role], len(data), hashlib.md5(data).hexdigest(), array.shape)
        if gz:
            (directory / f"{names[role]}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / names[role]).write_bytes(data)
    manifest = DatasetManifest("tiny", files, tuple(f"class{i}" for i in range(10)), base_url="http://127.0.0.1:9/")
    return manifest, arrays


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a closed network, as root: no sandbox, and none of Chromium's background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Playwright (no browser download). Missing: fail, never skip."""
    if not Path(CHROMIUM).exists():
        pytest.fail("needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def record_page_problems(page) -> list[str]:
    """Collect console errors, page errors, failed loads and HTTP errors of ``page`` into the returned list."""
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"failed load: {req.url}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    return problems


@pytest.fixture(scope="session")
def exported(fashion, tmp_path_factory):
    """A seed-001 CNN trained briefly on real data, exported with ONNX: (model dir, training metrics)."""
    root = tmp_path_factory.mktemp("model")
    cfg = TrainConfig(model="cnn-16-32", recipe=resolve_recipe("fast", {"epochs": 2}), train_subset=6_000,
                      test_subset=1_000)
    result = run_training(cfg, root / "run", dataset=fashion)
    export_run(root / "run", root / "model", onnx=True)
    return root / "model", result.metrics


@pytest.fixture(scope="session")
def mlflow_db(tmp_path_factory):
    """``put(directory)``: an empty, already migrated MLflow SQLite store at directory/mlflow.db (where --mlflow
    looks by default). Migrating a fresh database costs seconds, so it is done once per test run and copied."""
    from mlflow.tracking import MlflowClient
    template = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    MlflowClient(f"sqlite:///{template}").search_experiments()

    def put(directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copyfile(template, directory / "mlflow.db"))
    return put


def skip_notebook_execution(patch: pytest.MonkeyPatch) -> None:
    """report.ipynb is written without outputs, as when the notebook extra is missing: for tests of something
    else, since executing it redraws every figure in a fresh kernel (20-30 s). The notebook itself is tested where
    it is the subject (tests/test_study_datasets.py)."""
    import sys
    patch.setitem(sys.modules, "nbclient", None)  # `from nbclient import ...` raises ImportError


def wait_for_a_finished_run(out: Path, seconds: float = 240) -> None:
    """Until the experiment in ``out`` has a finished run (a metrics.json), for tests that stop a sweep mid-way."""
    import time
    deadline = time.monotonic() + seconds
    while not list(out.glob("runs/*/*/metrics.json")) and time.monotonic() < deadline:
        time.sleep(0.02)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def http_dir(tmp_path):
    """A local HTTP server on 127.0.0.1 serving a directory; yields (directory, base_url)."""
    served = tmp_path / "served"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
