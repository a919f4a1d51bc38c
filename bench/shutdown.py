"""How long a convlens process takes to exit once its work is done, with and without the garbage collector's
last pass (convlens.shutdown.skip_the_last_collection, which the console script and the training workers call).

Each row is a fresh interpreter that imports what a finished study has loaded (the study pipeline, the ONNX
exporter, pyplot), writes the wall-clock time as its last statement, and exits; the exit is the time from then
until the process is gone, measured by this script. With --study DIR, also the whole `convlens study --quick
--dataset digits` through `main` (no freeze in the main process) and through `run` (the console script), each in
an empty DIR/..., reporting the command's wall time and the part outside results.json's stages and notebook
(imports, the last rendering and writes, the exit). A CPU study trains in its own process; where it uses a worker
pool (--workers, CUDA), the workers freeze at exit in both rows.

Usage: .venv/bin/python bench/shutdown.py [--repeats 5] [--study DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOADED = ("import convlens.study.pipeline, convlens.batched_seeds, torch.onnx, matplotlib.pyplot\n"
          "try:\n    import onnxscript  # the exporter's (the onnx extra)\nexcept ImportError:\n    pass\n")
FREEZE = "from convlens.shutdown import skip_the_last_collection; skip_the_last_collection()\n"


def exit_seconds(freeze: bool, stamp: Path) -> float:
    code = LOADED + (FREEZE if freeze else "") + f"open({str(stamp)!r}, 'w').write(repr(__import__('time').time()))"
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.time() - float(stamp.read_text())


def study_seconds(entry: str, out: Path) -> tuple[float, float]:
    """(wall seconds of the command, the part of it outside results.json's stages and notebook)."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import sys; from convlens.cli import {entry}; sys.exit({entry}())",
                    "study", "--quick", "--dataset", "digits", "--out", str(out), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    study = json.loads((out / "results.json").read_text())["study"]
    return wall, wall - study["wall_seconds"] - study["notebook"]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--study", type=Path, help="run the digits --quick study twice per repeat, in DIR/...")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stamp = Path(tmp) / "stamp"
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):  # interleaved, so a drift in the machine's pace hits both alike
            for freeze in (False, True):
                times[freeze].append(exit_seconds(freeze, stamp))
    for freeze, label in ((False, "exit, the last collection run"), (True, "exit, skipped (heap frozen at exit)")):
        print(f"{label:<40} median {statistics.median(times[freeze]):5.2f} s   "
              f"all {' '.join(f'{t:.2f}' for t in times[freeze])}")
    if args.study:
        rows: dict[str, list[tuple[float, float]]] = {"main": [], "run": []}
        for _ in range(args.repeats):
            for entry in rows:
                rows[entry].append(study_seconds(entry, args.study / f"digits-{entry}"))
        for entry, label in (("main", "study via main (no freeze here)"), ("run", "study via run (console script)")):
            walls, outside = zip(*rows[entry])
            print(f"{label:<40} wall median {statistics.median(walls):6.2f} s, outside the stages median "
                  f"{statistics.median(outside):5.2f} s   walls {' '.join(f'{w:.1f}' for w in walls)}")


if __name__ == "__main__":
    main()
