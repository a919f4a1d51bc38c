"""How many seeds an experiment needs: from the spread its finished runs show, the seeds per level with which
each of its comparisons detects a given effect (80% power, paired t-test), and what that costs in training time
on the machine the runs were timed on."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from convlens.experiments.spec import ExperimentSpec, with_changes
from convlens.stats import ALPHA, POWER, seeds_needed


def seeds_for_effect(summary: dict[str, Any], effect: float, power: float = POWER,
                     alpha: float = ALPHA) -> dict[str, Any]:
    """``summary``: an experiment's analysis (``analyze``); ``effect``: the difference to detect, as a fraction
    (0.002 = 0.2 pp), at alpha divided by the number of comparisons (Holm's strictest step, so the plan holds for
    every comparison of the family). A comparison whose differences show no spread (fewer than 2 paired seeds, or identical
    predictions) cannot say how many seeds it needs and is reported as such."""
    strictest = alpha / max(len(summary["comparisons"]), 1)  # Holm's first step: enough for every comparison
    rows = []
    for c in summary["comparisons"]:
        spread = c.get("std_diff")
        usable = c["n"] >= 2 and spread is not None and not math.isnan(spread) and spread > 0
        n = seeds_needed(effect, spread, strictest, power) if usable else None
        reason = (None if n is not None else "more than 10,000 seeds" if usable
                  else "the same test accuracy on every seed" if c.get("identical")
                  else f"{c['n']} paired seed(s) show no spread")
        rows.append({"label": c["label"], "n": c["n"], "std_diff": spread if usable else None, "seeds_needed": n,
                     "reason": reason})
    needed = [r["seeds_needed"] for r in rows if r["seeds_needed"] is not None]
    seeds = max(needed) if needed else None
    timed = [lv for lv in summary["levels"] if lv["n"] > 0]  # a level with no finished run has no time to go by
    per_seed = sum(lv["train_seconds"]["mean"] for lv in timed)  # one run per level
    return {"effect": effect, "power": power, "alpha": strictest, "family": len(summary["comparisons"]),
            "comparisons": rows, "seeds": seeds,
            "seconds_per_seed": per_seed if needed else None,
            "total_seconds": seeds * per_seed if seeds is not None else None,
            "seeds_done": {lv["label"]: lv["n"] for lv in summary["levels"]},
            "additional_seconds": (sum(max(0, seeds - lv["n"]) * lv["train_seconds"]["mean"] for lv in timed)
                                   if seeds is not None else None),
            "untimed_levels": [lv["label"] for lv in summary["levels"] if lv["n"] == 0],
            "timing": summary["timing"], "levels": len(summary["levels"])}


def plan_experiment(spec: ExperimentSpec, out: Path, effect: float, *, power: float = POWER, pilot_seeds: int = 3,
                    on_pilot: Callable[[int], None] = lambda n: None, data_dir: Path | None = None,
                    **run_events: Any) -> dict[str, Any]:
    """``seeds_for_effect`` from the finished runs in ``out``; when some comparison has fewer than 2 paired seeds
    there, a pilot with ``pilot_seeds`` seeds per level is run first (finished runs are kept), reading the dataset
    from ``data_dir`` when given (not part of the design)."""
    from convlens.data import load_named
    from convlens.experiments.analysis import analyze
    from convlens.experiments.run import execute_plan, plan
    from convlens.experiments.spec import resolve_levels
    from convlens.experiments.store import RunStore, level_records
    store = RunStore(out)
    levels = level_records(resolve_levels(spec))
    store.check_design(spec, levels, fix="give plan the settings it ran with (--epochs, --precision, --train-subset, "
                       "--test-subset, --dataset), or --out a directory of this experiment, or a new one")
    summary = analyze(store) if store.experiment_file.is_file() else None
    same_levels = summary is not None and [lv["label"] for lv in summary["levels"]] == [lv["label"] for lv in levels]
    if not same_levels or any(c["n"] < 2 for c in summary["comparisons"]):  # the spec's levels, each with 2+ seeds
        seeds = max(pilot_seeds, summary["seeds"] if summary else 0)
        # read before the pilot's directory is written: missing data is one line, not a failed run per level and seed
        dataset = load_named(spec.dataset, data_dir)
        dataset.subset(spec.train_subset, spec.test_subset)  # larger than the data: one usage line, as run says
        store.check_data(dataset, fix="give the data they were trained on, or plan in a new --out")
        on_pilot(seeds)
        from convlens.directory_lock import holding
        with holding(out, "the experiment"):  # the pilot's runs: one process at a time
            summary = execute_plan(plan(with_changes(spec, seeds=seeds), out, data_dir=data_dir), dataset=dataset,
                                   **run_events)
    return {"experiment": spec.name, "directory": str(out), **seeds_for_effect(summary, effect, power)}
