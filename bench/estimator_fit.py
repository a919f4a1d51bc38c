"""Time of ConvNetClassifier.fit and .predict_proba (the notebook's scikit-learn estimator) on Fashion-MNIST.

Fits the default CNN with the `fast` recipe on the first N training images (2 epochs by default; 10% of them are
held out for the per-epoch validation, which fit's time includes) and predicts the 10,000 test images; prints
seconds and test accuracy.
Run it at two commits to compare them; the machine is shared, so alternate the two and repeat.

Usage: .venv/bin/python bench/estimator_fit.py [--train 20000] [--epochs 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from convlens import ConvNetClassifier
from convlens.data import load_named


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    ds = load_named("fashion-mnist")
    X, y = ds.train_images[:args.train], ds.train_labels[:args.train]
    for _ in range(args.repeats):
        start = time.perf_counter()
        clf = ConvNetClassifier(epochs=args.epochs, seed=0).fit(X, y)
        fit = time.perf_counter() - start
        start = time.perf_counter()
        predicted = clf.classes_[clf.predict_proba(ds.test_images).argmax(axis=1)]
        predict = time.perf_counter() - start
        print(f"fit {fit:6.2f} s; predict_proba {predict:5.2f} s for {len(ds.test_labels):,} images; "
              f"test accuracy {np.mean(predicted == ds.test_labels):.2%}")


if __name__ == "__main__":
    main()
