"""kill -9 a real sweep at random moments, rerun it each time, and check that nothing finished is redone, lost or
corrupt.

The sweep: `convlens experiment run` on a small real spec (cnn-16-32, kernel 3 vs 5, N seeds, 1 epoch on 8,000
training images). It is started in its own process group and killed with SIGKILL (the whole group: with
--workers 2 the worker processes die too) after a random delay, KILLS times, then run to the end. After every
kill and at the end:
  * every finished run (metrics.json present) keeps its metrics.json byte for byte and its mtime on every later
    attempt: not redone, not lost;
  * every file under a final name parses: metrics.json and experiment.json as JSON, model.safetensors with
    safetensors, predictions.npz with numpy (no pickle); summary.json and runs.csv when present.
At the end every run is done and `experiment status` agrees. Usage:
  .venv/bin/python bench/kill_sweep.py [--kills 10] [--seeds 10] [--workers 1] [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from safetensors.numpy import load_file

EXE = str(Path(sys.executable).parent / "convlens")


def snapshot(out: Path) -> dict[Path, tuple[int, bytes]]:
    return {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("runs/*/*/metrics.json")}


def corrupt_files(out: Path) -> list[str]:
    """Files under their final names that do not parse (temp files are not final names)."""
    bad = []
    for path in out.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".safetensors":
                load_file(str(path))
            elif path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    [z[k] for k in z.files]
            elif path.suffix == ".csv":
                list(csv.DictReader(path.open()))
        except Exception as e:  # noqa: BLE001 - any failure to parse is what this counts
            bad.append(f"{path}: {type(e).__name__}: {e}")
    return bad


def check(out: Path, finished: dict, redone: list, lost: list, corrupt: list) -> dict[Path, tuple[int, bytes]]:
    """Compare the store with the runs finished so far (appending what was redone, lost or corrupt); returns
    the runs finished now."""
    now = snapshot(out)
    for path, before in finished.items():
        if path not in now:
            lost.append(str(path))
        elif now[path] != before:
            redone.append(str(path))
    corrupt += corrupt_files(out)
    return now


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    # The command takes ~3-5 s to start (imports, data) on 2 cores: most kills should land during training.
    parser.add_argument("--min-delay", type=float, default=3.0, help="kill after uniform(min, max) seconds")
    parser.add_argument("--max-delay", type=float, default=10.0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(yaml.safe_dump({
            "name": "kill-sweep", "model": "cnn-16-32", "recipe": "fast", "recipe_set": {"epochs": 1},
            "factor": {"name": "kernel_size", "levels": [3, 5]}, "seeds": args.seeds,
            "train_subset": 8_000, "test_subset": 1_000}))
        out = Path(tmp) / "exp"
        cmd = [EXE, "experiment", "run", str(spec), "--out", str(out), "--workers", str(args.workers), "--quiet"]
        total = 2 * args.seeds
        finished: dict[Path, tuple[int, bytes]] = {}
        redone, lost, corrupt, kills, attempts = [], [], [], [], 0
        started = time.monotonic()
        while len(kills) < args.kills:  # later kills may land in the analysis, after the last run: also a moment
            attempts += 1
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
            delay = rng.uniform(args.min_delay, args.max_delay)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()  # returncode -SIGKILL
                kills.append(round(delay, 2))
            else:
                if proc.returncode != 0:
                    raise SystemExit(f"attempt {attempts} failed: {proc.stderr.read().decode()[-2000:]}")
                if attempts > 3 * args.kills:
                    raise SystemExit("the sweep keeps finishing before the kill: raise --seeds")
            now = check(out, finished, redone, lost, corrupt)
            finished.update(now)
            if proc.returncode == -signal.SIGKILL:
                print(f"kill {len(kills)} after {kills[-1]} s: {len(now)}/{total} runs finished")
        final = subprocess.run(cmd, capture_output=True, text=True)
        if final.returncode != 0:
            raise SystemExit(f"final run failed: {final.stderr[-2000:]}")
        check(out, finished, redone, lost, corrupt)
        status = json.loads(subprocess.run([EXE, "experiment", "status", str(out), "--json"], capture_output=True,
                                           text=True, check=True).stdout)
        done = sum(s == "done" for row in status.values() for s in row.values())
        print(f"{len(kills)} kills at {kills} s over {attempts + 1} attempts, {time.monotonic() - started:.0f} s: "
              f"{done}/{total} runs done; finished runs redone {len(redone)}, lost {len(lost)}; corrupt files "
              f"{len(corrupt)}; temp files left {len(list(out.rglob('*.tmp')))}")
        for line in (redone + lost + corrupt)[:10]:
            print("  ", line)
        if redone or lost or corrupt or done != total:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
