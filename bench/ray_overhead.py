"""The same small sweep on the local backend and on Ray, on this machine: wall time, and Ray's overhead per task.

Sweep: cnn-16-32, kernel 3 vs 5, SEEDS seeds, 1 epoch on the first 6,000 Fashion-MNIST training images (1,000
test). Three ways, each into a fresh directory, in this order:
  local        1 worker, all cores (the default)
  ray 1 x C    Ray tasks of C = all cores each: one at a time, the same threads as local: the difference is Ray's
               cost (start-up of a local Ray, object store, task dispatch, returning the files)
  ray N x 1    tasks of 1 CPU, as many at once as there are cores
Per-run numbers (test accuracy) of `local` and `ray 1 x C` are also compared: they must be equal.
Usage: .venv/bin/python bench/ray_overhead.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

EXE = str(Path(sys.executable).parent / "convlens")


def sweep(spec: Path, out: Path, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([EXE, "experiment", "run", str(spec), "--out", str(out), "--quiet", *args], check=True,
                   capture_output=True)
    return time.perf_counter() - start


def accuracies(out: Path) -> dict[str, float]:
    return {str(p.parent.relative_to(out)): json.loads(p.read_text())["test_accuracy"]
            for p in out.glob("runs/*/*/metrics.json")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(yaml.safe_dump({"name": "ray-bench", "model": "cnn-16-32", "recipe": "fast",
                                        "recipe_set": {"epochs": 1}, "factor": {"name": "kernel_size", "levels": [3, 5]},
                                        "seeds": args.seeds, "train_subset": 6000, "test_subset": 1000}))
        n = 2 * args.seeds
        local = sweep(spec, Path(tmp) / "local")
        ray_all = sweep(spec, Path(tmp) / "ray-all", "--backend", "ray", "--cpus-per-run", str(cores))
        ray_one = sweep(spec, Path(tmp) / "ray-one", "--backend", "ray", "--cpus-per-run", "1")
        same = accuracies(Path(tmp) / "local") == accuracies(Path(tmp) / "ray-all")
    print(f"{n} runs on {cores} cores: local {local:.1f} s; ray 1 x {cores} CPUs {ray_all:.1f} s "
          f"(+{ray_all - local:.1f} s, {(ray_all - local) / n:.2f} s per run); ray {cores} x 1 CPU {ray_one:.1f} s "
          f"({local / ray_one:.2f}x local); per-run accuracies local == ray 1 x {cores}: {same}")


if __name__ == "__main__":
    main()
