"""How long a pool of training workers takes to start: the fork server convlens uses against spawned workers.

Each measurement runs in a fresh interpreter (the fork server is started once per process). In it, two pools run
one after another, each with ``--workers`` workers and one trivial job per worker (no training): the time from
the pool's creation to its last result. The first pool pays for starting the server (and its imports); the second
gets its workers from the running one.

Usage: .venv/bin/python bench/worker_pool.py [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r'''
import json, sys, time
from multiprocessing import get_context
from convlens.config import TrainConfig
from convlens.experiments import local
from convlens.experiments.local import Job, _run_pool

if sys.argv[1] == "spawn":
    local.worker_context = lambda: get_context("spawn")
workers = int(sys.argv[2])
seconds = []
for pool in range(2):
    jobs = [[Job("level", seed, TrainConfig(model="cnn"), ".")] for seed in range(workers)]
    start, results = time.perf_counter(), []
    # local._finished as the job: importable in a worker, cheap (reads no run: there is none), trains nothing
    _run_pool(jobs, workers, 1, (local._finished, None), lambda result: None, results)
    seconds.append(time.perf_counter() - start)
print(json.dumps({"seconds": seconds}))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows: dict[str, list[dict]] = {"spawn": [], "forkserver": []}
    for _ in range(args.repeats):  # interleaved, so a drift in the machine's pace hits both alike
        for kind in rows:
            done = subprocess.run([sys.executable, "-c", CHILD, kind, str(args.workers)], capture_output=True,
                                  text=True, check=True)
            rows[kind].append(json.loads(done.stdout.splitlines()[-1]))
    print(f"{args.workers} workers per pool, one trivial job each; medians of {args.repeats} fresh interpreters")
    print(f"{'workers from':<12} {'1st pool s':>11} {'2nd pool s':>11}   (each: 1st, 2nd)")
    for kind, runs in rows.items():
        first = statistics.median(r["seconds"][0] for r in runs)
        second = statistics.median(r["seconds"][1] for r in runs)
        each = "  ".join(f"{r['seconds'][0]:.2f}/{r['seconds'][1]:.2f}" for r in runs)
        print(f"{kind:<12} {first:>11.2f} {second:>11.2f}   {each}")


if __name__ == "__main__":
    main()
