"""Which is faster on this machine for a sweep: 1 worker with all cores, or N workers with cores/N each?

Runs the same small sweep (4 runs of the default CNN on real data) through `convlens experiment run` with
--workers 1 and --workers 2, alternating, in fresh directories, and prints the wall times and their ratio.

Usage: .venv/bin/python bench/workers.py [--repeats 2] [--train-subset 12000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CONVLENS = str(Path(sys.executable).parent / "convlens")


def sweep_seconds(workers: int, spec: Path) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([CONVLENS, "experiment", "run", str(spec), "--out", out, "--workers", str(workers), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train-subset", type=int, default=12_000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "bench.yaml"
        spec.write_text(yaml.safe_dump({
            "name": "bench-workers", "model": "cnn-32-64-128", "recipe_set": {"epochs": args.epochs},
            "factor": {"name": "recipe.label_smoothing", "levels": [0.0, 0.1]}, "seeds": 2,
            "train_subset": args.train_subset, "test_subset": 2_000}))
        times: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeats):
            for workers in (1, 2):  # alternate so drift hits both alike
                times[workers].append(sweep_seconds(workers, spec))
    for workers, ts in times.items():
        print(f"--workers {workers}: {statistics.median(ts):6.1f} s median of {len(ts)} ({', '.join(f'{t:.1f}' for t in ts)})")
    print(f"2 workers x 1 thread / 1 worker x 2 threads: {statistics.median(times[2]) / statistics.median(times[1]):.2f}")


if __name__ == "__main__":
    main()
