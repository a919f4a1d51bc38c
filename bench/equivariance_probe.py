"""The equivariance probe as the study runs it (the default CNN's seeds of a finished study, its first 256 test
images on 64 x 64 canvases), with the canvases in chunks of CANVAS_CHUNK images (what it does on a CPU) and all 256
at once (what it did before), alternating; prints the seconds of each round and the largest difference between the
two figures.

Usage:
  .venv/bin/python bench/equivariance_probe.py runs/study [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from convlens.data.dataset import load_named
from convlens.experiments.store import RunStore
from convlens.probes.equivariance import CANVAS_CHUNK, equivariance
from convlens.study.sections import CNN_LEVEL, PROBE_IMAGES, probe_seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", type=Path, help="a finished study's directory (convlens study --out)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    store = RunStore(args.study / "experiments" / "cnn-vs-mlp")
    dataset = load_named(store.read_experiment()["spec"]["dataset"])
    seeds = store.read_experiment()["spec"]["seeds"]
    seconds: dict[int, list[float]] = {CANVAS_CHUNK: [], PROBE_IMAGES: []}
    figures = {}
    for _ in range(args.rounds):
        for chunk in seconds:
            start = time.perf_counter()
            figures[chunk] = probe_seeds(store, CNN_LEVEL, seeds, dataset,
                                         lambda model, x, y: equivariance(model, x, 4, chunk=chunk),
                                         images=PROBE_IMAGES)
            seconds[chunk].append(time.perf_counter() - start)
    for chunk, times in seconds.items():
        print(f"chunks of {chunk:>3} canvases: {statistics.median(times):.2f} s median for {len(figures[chunk])} seeds "
              f"(rounds: {', '.join(f'{t:.2f}' for t in times)})")
    difference = max(abs(a - b) for seed in figures[CANVAS_CHUNK]
                     for rows_a, rows_b in zip(figures[CANVAS_CHUNK][seed]["similarity"],
                                               figures[PROBE_IMAGES][seed]["similarity"])
                     for a, b in zip(rows_a, rows_b))
    print(f"largest difference between the two figures: {difference:.1e}")


if __name__ == "__main__":
    main()
