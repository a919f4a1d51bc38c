"""Time to the write-ups' accuracy: convlens' fast recipe vs the keras recipe as a plain PyTorch loop, one process.

The reference is the write-ups' Keras recipe written the usual PyTorch way (DataLoader over a TensorDataset, NCHW,
Adam 1e-3, batch 128, 15 epochs, 10% validation), run here on the same machine. Keras itself is not
needed: REFERENCE.md measured Keras at 3,100 img/s against 2,660 img/s for this plain loop on one machine
(Keras = 0.858 x the plain loop's time), so "1/4 of the Keras recipe's time" is checked as
convlens time <= 0.858 / 4 x plain-loop time, measured side by side.

Usage: .venv/bin/python bench/time_to_accuracy.py [--seeds 5] [--recipe fast] [--reference-epochs 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from convlens import create_model
from convlens.config import TrainConfig, resolve_recipe
from convlens.data import load_dataset, to_device
from convlens.runs import run_training
from convlens.training import configure_threads, evaluate

KERAS_OVER_PLAIN = 2660 / 3100  # REFERENCE.md: Keras time / plain-loop time on the same machine
TARGET_ACCURACY = 0.918  # REFERENCE.md: write-up 000's Keras run, 15 epochs


def plain_seed_loop(ds, epochs: int, seed: int) -> tuple[float, float]:
    """The keras recipe as a plain PyTorch loop; returns (train seconds incl. validation, test accuracy)."""
    torch.manual_seed(seed)
    splits = to_device(ds, torch.device("cpu"), val_fraction=0.1, seed=seed)
    model = create_model("cnn-32-64-128")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(splits.x_train, splits.y_train),
                                         batch_size=128, shuffle=True)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for xb, yb in loader:
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()
        evaluate(model, splits.x_val, splits.y_val, 10)  # Keras' fit() validates every epoch too
    seconds = time.perf_counter() - start
    return seconds, evaluate(model, splits.x_test, splits.y_test, 10).accuracy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--recipe", default="fast")
    parser.add_argument("--reference-epochs", type=int, default=15)
    parser.add_argument("--set", action="append", default=[], help="recipe override key=value (repeatable)")
    parser.add_argument("--skip-reference", action="store_true", help="only the convlens recipe (ablations)")
    args = parser.parse_args()
    configure_threads(None)
    ds = load_dataset()
    recipe = resolve_recipe(args.recipe, dict(item.split("=", 1) for item in args.set))
    print(f"recipe: {recipe.model_dump()}", flush=True)

    ref_seconds = keras_equivalent = None
    if not args.skip_reference:
        ref_seconds, ref_acc = plain_seed_loop(ds, args.reference_epochs, seed=0)
        keras_equivalent = ref_seconds * KERAS_OVER_PLAIN * 15 / args.reference_epochs
        print(f"plain PyTorch loop, keras recipe, {args.reference_epochs} epochs: {ref_seconds:.1f} s, "
              f"test accuracy {ref_acc:.2%} (Keras-equivalent for 15 epochs: {keras_equivalent:.1f} s)", flush=True)

    times, accs = [], []
    for seed in range(args.seeds):
        m = run_training(TrainConfig(model="cnn-32-64-128", recipe=recipe, seed=seed), None, dataset=ds).metrics
        times.append(m["train_seconds"])
        accs.append(m["test_accuracy"])
        print(f"  {recipe.name} seed {seed}: {m['test_accuracy']:.2%} in {m['train_seconds']:.1f} s", flush=True)
    acc = np.array(accs) * 100
    print(f"convlens recipe '{recipe.name}' ({recipe.epochs} epochs, batch {recipe.batch_size}), n={args.seeds}: "
          f"test accuracy {acc.mean():.2f} ± {acc.std(ddof=1):.2f}% (min {acc.min():.2f}), "
          f"train time {statistics.fmean(times):.1f} s (range {min(times):.1f}-{max(times):.1f})")
    if ref_seconds is not None:
        print(f"speed-up vs the plain seed loop: {ref_seconds / statistics.fmean(times):.2f}x; "
              f"vs the Keras-equivalent: {keras_equivalent / statistics.fmean(times):.2f}x (target >= 4x); "
              f"mean accuracy {'>=' if acc.mean() >= TARGET_ACCURACY * 100 else '<'} {TARGET_ACCURACY:.1%}")


if __name__ == "__main__":
    main()
