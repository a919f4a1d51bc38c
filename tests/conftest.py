"""Shared fixtures: the real dataset (CI installs it from Debian) and tiny IDX datasets written by tests."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from convlens.data import load_dataset
from convlens.data.dataset import ImageDataset
from convlens.data.idx import IdxFileSpec, encode_idx
from convlens.data.sources import DatasetManifest
from convlens.errors import DataError


@pytest.fixture(scope="session")
def fashion() -> ImageDataset:
    """Real Fashion-MNIST. A missing copy fails (never skips): `make test` installs or downloads it."""
    try:
        return load_dataset(download=False)
    except DataError as e:
        pytest.fail(f"the tests need real Fashion-MNIST ({e}); run 'make data'")


def write_tiny_dataset(directory: Path, *, n_train: int = 60, n_test: int = 20, gz: bool = True,
                       seed: int = 0) -> tuple[DatasetManifest, dict[str, np.ndarray]]:
    """Write a small random MNIST-style dataset; returns its manifest (with true checksums) and the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
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
