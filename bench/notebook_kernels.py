"""How long report.ipynb takes to execute in 1, 2, ... kernels (convlens.report.notebook.execute_in_parallel), on
a finished study: each repeat writes and executes the notebook of a copy of the study, the kernels started cold
(as `convlens report` does; in `convlens study` they are started early, beside the export). The settings alternate
within each repeat, so a drift in the machine's pace hits all alike.

Usage: .venv/bin/python bench/notebook_kernels.py STUDY_DIR [--kernels 1,2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from convlens.report import notebook
from convlens.study import redraw


def execute_seconds(study: Path, kernels: int, scratch: Path) -> float:
    copy = Path(shutil.copytree(study, scratch / f"k{kernels}", dirs_exist_ok=True))
    results = json.loads((copy / "results.json").read_text())
    drawn = set(redraw.figure_drawers(results, copy, dataset=lambda: None))  # names only, as the study does
    real = notebook.notebook_kernels
    notebook.notebook_kernels = lambda: kernels
    try:
        start = time.perf_counter()
        _, executed = notebook.write_notebook(copy, drawn)
        seconds = time.perf_counter() - start
    finally:
        notebook.notebook_kernels = real
    assert executed, "the notebook extra is not installed"
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path)
    parser.add_argument("--kernels", default="1,2", help="comma-separated kernel counts")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    counts = [int(k) for k in args.kernels.split(",")]
    times: dict[int, list[float]] = {k: [] for k in counts}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for k in counts:
                times[k].append(execute_seconds(args.study, k, Path(tmp)))
    for k in counts:
        print(f"{k} kernel{'s' if k > 1 else ' '}  median {statistics.median(times[k]):6.2f} s   "
              f"all {' '.join(f'{t:.2f}' for t in times[k])}")


if __name__ == "__main__":
    main()
