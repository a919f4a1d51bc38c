"""The write-ups' Keras code, run as written: the benchmark's reference (runs in bench/.venv-keras, not convlens').

Seed 000's CNN (Conv 32-64-128, 3x3 'same', max-pool after each, Dense 128, Dropout 0.3, softmax), Adam 1e-3,
categorical cross-entropy, batch 128, 15 epochs, ``validation_split=0.1`` (validated every epoch), pixels / 255.
The data are read from the same idx files convlens reads (no download). Prints one JSON line: the fit time (as the
write-ups timed it: ``model.fit`` with its per-epoch validation), test accuracy, TensorFlow's version and threads.

Usage: bench/.venv-keras/bin/python bench/keras_reference.py [--seed 42] [--epochs 15] [--data DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np

DATA_DIRS = [os.environ.get("CONVLENS_DATA", ""), "/usr/share/datasets/fashion-mnist",
             str(Path.home() / ".cache" / "convlens" / "fashion-mnist")]


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzipped or not): the header's dimensions, then unsigned bytes."""
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(directory: str | None, stem: str) -> Path:
    for d in ([directory] if directory else DATA_DIRS):
        for name in (stem, f"{stem}.gz"):
            if d and (Path(d) / name).is_file():
                return Path(d) / name
    raise SystemExit(f"keras_reference: {stem} not found in {directory or DATA_DIRS}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=42)  # the write-up's seed
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--data", default=None)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from tensorflow import keras
    from tensorflow.keras import layers, models
    from tensorflow.keras.utils import to_categorical

    np.random.seed(args.seed)
    tf.random.set_seed(args.seed)
    x_train = read_idx(find(args.data, "train-images-idx3-ubyte")).astype("float32")[..., None] / 255.0
    y_train = to_categorical(read_idx(find(args.data, "train-labels-idx1-ubyte")), 10)
    x_test = read_idx(find(args.data, "t10k-images-idx3-ubyte")).astype("float32")[..., None] / 255.0
    y_test = to_categorical(read_idx(find(args.data, "t10k-labels-idx1-ubyte")), 10)

    k = 3
    model = models.Sequential([
        layers.Input(shape=(28, 28, 1)),
        layers.Conv2D(32, (k, k), activation="relu", padding="same"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(64, (k, k), activation="relu", padding="same"), layers.MaxPooling2D((2, 2)),
        layers.Conv2D(128, (k, k), activation="relu", padding="same"), layers.MaxPooling2D((2, 2)),
        layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.3),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    start = time.time()
    history = model.fit(x_train, y_train, validation_split=0.1, epochs=args.epochs, batch_size=128, verbose=0)
    fit_seconds = time.time() - start
    _, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(json.dumps({"fit_seconds": fit_seconds, "test_accuracy": float(test_accuracy),
                      "val_accuracy": float(history.history["val_accuracy"][-1]), "epochs": args.epochs,
                      "seed": args.seed, "params": model.count_params(), "tensorflow": tf.__version__,
                      "keras": keras.__version__,
                      "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                                  "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}))


if __name__ == "__main__":
    main()
