"""All seeds of one configuration as one batched model (``--batch-seeds``) against separate runs, one after the other.

Each setting trains the same seeds of the default CNN (cnn-32-64-128, recipe ``fast``) on the same images; the
figure is the wall time of training (``train_seconds`` summed over the seeds; a batched run records its share of
the batch), with each seed's test accuracy beside it. On a GPU the batched model fills what one small CNN leaves
idle; on the CPU its grouped convolutions are slower per seed, which is why it is off there by default.

Usage:
  .venv/bin/python bench/batched_seeds.py [--seeds 3] [--train-subset 12000] [--epochs 1]
"""

from __future__ import annotations

import argparse
import time

import torch

from convlens.config import TrainConfig, resolve_recipe
from convlens.data.dataset import load_named
from convlens.provenance import device_description
from convlens.runs import run_training, run_training_batched
from convlens.training import pick_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train-subset", type=int, default=12_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--model", default="cnn-32-64-128")
    args = parser.parse_args()
    ds = load_named("fashion-mnist")
    recipe = resolve_recipe("fast", {"epochs": args.epochs})
    cfgs = [TrainConfig(model=args.model, recipe=recipe, seed=s, train_subset=args.train_subset)
            for s in range(args.seeds)]
    device = pick_device("auto")
    name = device_description(device)["name"]
    print(f"{args.seeds} seeds of {args.model}, recipe fast, {args.epochs} epoch(s) on {args.train_subset:,} "
          f"training images; {device.type} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    run_training(cfgs[0].model_copy(update={"train_subset": 1_000}), None, dataset=ds)  # warm-up
    start = time.perf_counter()
    separate = [run_training(c, None, dataset=ds).metrics for c in cfgs]
    separate_wall = time.perf_counter() - start
    start = time.perf_counter()
    batched = [r.metrics for r in run_training_batched(cfgs, [None] * len(cfgs), dataset=ds)]
    batched_wall = time.perf_counter() - start
    print("| | training s (all seeds) | wall s (with evaluation) | test accuracy per seed |\n|---|---:|---:|---|")
    for label, metrics, wall in (("separate runs", separate, separate_wall), ("one batched model", batched,
                                                                            batched_wall)):
        seconds = sum(m["train_seconds"] for m in metrics)
        accuracies = ", ".join(f"{m['test_accuracy']:.2%}" for m in metrics)
        print(f"| {label} | {seconds:.1f} | {wall:.1f} | {accuracies} |")
    ratio = sum(m["train_seconds"] for m in batched) / sum(m["train_seconds"] for m in separate)
    print(f"batched / separate training time: {ratio:.2f}")


if __name__ == "__main__":
    main()
