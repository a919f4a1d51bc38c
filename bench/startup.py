"""How long the CLI takes to answer before any work: `--help`, a usage error, reading a run store, with the
import of torch timed alone in the same invocation as the reference (what a command pays once it needs torch).

Usage: .venv/bin/python bench/startup.py [--repeats 5] [--experiment DIR]   (DIR: an experiment directory of a
study, e.g. runs/study/experiments/kernel-size, for `experiment status`, `experiment table` and `compare` of the
first level's seeds 0 and 1)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONVLENS = str(Path(sys.executable).parent / "convlens")


def seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # a usage error exits 2: timed too
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--experiment", type=Path, help="an experiment directory (else those rows are skipped)")
    args = parser.parse_args()
    commands = {
        "python -c 'import torch' (the reference)": [sys.executable, "-c", "import torch"],
        "python -c 'pass'": [sys.executable, "-c", "pass"],
        "convlens --help": [CONVLENS, "--help"],
        "convlens experiment list": [CONVLENS, "experiment", "list"],
        "convlens train --model nope (a usage error)": [CONVLENS, "train", "--model", "nope"],
        "convlens models list (counts parameters: torch)": [CONVLENS, "models", "list"],
    }
    if args.experiment:
        commands["convlens experiment status DIR"] = [CONVLENS, "experiment", "status", str(args.experiment)]
        commands["convlens experiment table DIR"] = [CONVLENS, "experiment", "table", str(args.experiment)]
        level = sorted((args.experiment / "runs").iterdir())[0]
        commands["convlens compare RUN RUN (seeds 0, 1 of a level)"] = [CONVLENS, "compare", str(level / "seed0"),
                                                                         str(level / "seed1")]
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):  # interleaved, so drift hits every command alike
        for name, argv in commands.items():
            times[name].append(seconds(argv))
    for name, ts in times.items():
        print(f"{name:52s} {statistics.median(ts):5.2f} s median of {len(ts)} "
              f"({min(ts):.2f}-{max(ts):.2f})")


if __name__ == "__main__":
    main()
