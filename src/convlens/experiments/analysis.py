"""From the run store to statistics: per-level summaries, paired comparisons with the reference, wording.

Reads run files only (never trains). Accuracy is stored as a fraction; the wording shows percentage points.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

from convlens.atomic_files import atomic_write_json, atomic_write_text
from convlens.experiments.store import RunStore, status_of
from convlens.stats import ALPHA, holm, mean_ci, p_equals, paired_comparison, verdict

SUMMARY_FILE, RUNS_CSV = "summary.json", "runs.csv"
SUMMARIZED = ("test_accuracy", "test_loss", "val_accuracy", "train_seconds", "inference_ms_per_image",
              "inference_ms_single")
CSV_COLUMNS = ("level", "seed", "status", "test_accuracy", "test_loss", "val_accuracy", "train_seconds",
               "epochs_run", "params", "macs", "inference_ms_per_image", "inference_ms_single", "reason", "run_dir")


def _finite(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def without_nan(obj: Any) -> Any:
    """NaN -> None so summary.json is strict JSON."""
    if isinstance(obj, dict):
        return {k: without_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [without_nan(v) for v in obj]
    return _finite(obj) if isinstance(obj, float) else obj


def collect(store: RunStore) -> tuple[dict, list[dict], dict[str, dict[int, dict]]]:
    """(experiment record, one row per finished run, level -> seed -> metrics of successful runs)."""
    experiment = store.read_experiment()
    rows, ok = [], {}
    for level in experiment["levels"]:
        label = level["label"]
        finished = store.finished_runs(label, experiment["spec"]["seeds"])
        for seed, metrics in finished.items():
            row = {c: metrics.get(c) for c in CSV_COLUMNS}
            row.update(level=label, seed=seed, status=status_of(metrics),
                       params=(metrics.get("params") or {}).get("total"),
                       run_dir=str(store.run_dir(label, seed).relative_to(store.root)))
            rows.append(row)
        ok[label] = {seed: m for seed, m in finished.items() if status_of(m) == "done"}
    return experiment, rows, ok


def analyze(store: RunStore, alpha: float = ALPHA) -> dict:
    """The machine-readable summary of an experiment (also written as summary.json)."""
    return build_summary(*collect(store), alpha=alpha)


def level_statistics(runs: dict[int, dict]) -> dict:
    """Over one configuration's successful runs (seed -> metrics): n, params, MACs, n/mean/std/95% CI of each
    summarized metric, and the mean per-class accuracy. What an experiment's level and a compare group show."""
    first = next(iter(runs.values()), {})
    return {
        "n": len(runs), "params": (first.get("params") or {}).get("total"), "macs": first.get("macs"),
        **{m: mean_ci([r[m] for r in runs.values() if r.get(m) is not None]).to_dict() for m in SUMMARIZED},
        "per_class_accuracy": (np.mean([r["per_class_accuracy"] for r in runs.values()], axis=0).tolist()
                               if runs else None),
    }


def build_summary(experiment: dict, rows: list[dict], ok: dict[str, dict[int, dict]], alpha: float = ALPHA) -> dict:
    reference = experiment["reference"]
    n_seeds = experiment["spec"]["seeds"]
    levels = []
    for level in experiment["levels"]:
        label = level["label"]
        levels.append({
            "label": label, "values": level["values"],
            "failed": [{"seed": r["seed"], "reason": r["reason"]} for r in rows
                       if r["level"] == label and r["status"] == "failed"],
            "pending": n_seeds - sum(1 for r in rows if r["level"] == label),
            **level_statistics(ok[label]),
            "vs_reference": None,
        })

    ref_runs = ok.get(reference, {})
    others = [e for e in levels if e["label"] != reference]
    comparisons = []
    for entry in others:
        seeds = sorted(set(ok[entry["label"]]) & set(ref_runs))  # paired: seeds finished in both
        comparisons.append(paired_comparison([ok[entry["label"]][s]["test_accuracy"] for s in seeds],
                                             [ref_runs[s]["test_accuracy"] for s in seeds]))
    adjusted = holm([c.p_value for c in comparisons])
    for entry, comparison, p_holm in zip(others, comparisons, adjusted):
        entry["vs_reference"] = {**comparison.to_dict(), "p_holm": p_holm,
                                 "verdict": verdict(comparison, p_holm, alpha=alpha)}

    done = [e for e in levels if e["n"] > 0]
    best = {}
    if done:
        best["accuracy"] = max(done, key=lambda e: e["test_accuracy"]["mean"])["label"]
        best["accuracy_per_mparam"] = max(done, key=lambda e: e["test_accuracy"]["mean"] / e["params"] * 1e6)["label"]
        best["accuracy_per_second"] = max(done, key=lambda e: e["test_accuracy"]["mean"]
                                          / e["train_seconds"]["mean"])["label"]
    summary = {
        "experiment": experiment["spec"]["name"], "description": experiment["spec"]["description"],
        "factors": [f["name"] for f in [experiment["spec"]["factor"], experiment["spec"].get("second_factor")] if f],
        "reference": reference, "metric": "test_accuracy", "alpha": alpha, "seeds": n_seeds,
        "test": "paired t-test across seeds (two-sided), Holm-corrected across levels; 95% t intervals",
        "recipe": experiment["levels"][0]["config"]["recipe"],
        "levels": levels, "best": best, "conclusions": conclusions(levels, reference),
    }
    return without_nan(summary)


def conclusions(levels: list[dict], reference: str) -> list[str]:
    """One sentence per level compared with the reference, worded by the test."""
    lines = []
    for e in levels:
        c = e["vs_reference"]
        if c is None:
            continue
        line = f"{e['label']} vs {reference}: test accuracy {c['verdict']}"
        if c["n"] > 0:
            lo, hi = (x * 100 if x is not None and not math.isnan(x) else math.nan for x in c["ci95"])
            interval = f", 95% CI {lo:+.2f} to {hi:+.2f} pp" if not math.isnan(lo) else ""
            line += f"; mean difference {c['diff'] * 100:+.2f} pp{interval}"
            if c["p_value"] is not None and not math.isnan(c["p_value"]) and c["p_holm"] != c["p_value"]:
                line += f"; paired t-test {p_equals(c['p_value'])} before Holm's correction"
        lines.append(line)
    return lines


def write_outputs(store: RunStore) -> dict:
    """Write summary.json and runs.csv beside the runs; return the summary."""
    experiment, rows, ok = collect(store)
    summary = build_summary(experiment, rows, ok)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(store.root / RUNS_CSV, buffer.getvalue())
    atomic_write_json(store.root / SUMMARY_FILE, summary)
    return summary
