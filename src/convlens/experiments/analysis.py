"""From the run store to statistics: per-level summaries, the design's comparisons (one Holm family), wording.

Reads run files only (never trains). Accuracy is stored as a fraction; the wording shows percentage points.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from typing import Any

import numpy as np

from convlens.atomic_files import atomic_write_json, atomic_write_text
from convlens.errors import DataError, UsageError
from convlens.experiments.comparisons import (
    Predictions,
    comparison_sentence,
    design_comparisons,
    evidence_sentence,
    per_example_evidence,
)
from convlens.experiments.spec import parse_spec
from convlens.experiments.store import LEFT_OUT, NO_WEIGHTS, RunStore, kept_run_problem, status_of
from convlens.models.checkpoint import WEIGHTS_FILE
from convlens.run_files import read_predictions
from convlens.stats import ALPHA, mean_ci, sampling_noise

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


def collect(store: RunStore) -> tuple[dict, list[dict], dict[str, dict[int, dict]], Predictions]:
    """(experiment record, one row per finished run, level -> seed -> metrics of successful runs,
    level -> seed -> (predicted, true) class per test image of the successful runs that stored them)."""
    experiment = store.read_experiment()
    rows, ok, predictions = [], {}, {}
    for level in experiment["levels"]:
        label = level["label"]
        finished = store.finished_runs(label, experiment["spec"]["seeds"])
        ok[label] = {}
        for seed, metrics in finished.items():
            row = {c: metrics.get(c) for c in CSV_COLUMNS}
            row.update(level=label, seed=seed, status=status_of(metrics),
                       params=(metrics.get("params") or {}).get("total"),
                       run_dir=str(store.run_dir(label, seed).relative_to(store.root)))
            if row["status"] == "done":  # counted only while it is its level's run: 'experiment run' refuses others
                problem = kept_run_problem(store.run_dir(label, seed), level["config"], seed)
                if problem:
                    row.update(status=LEFT_OUT, reason=problem)
                else:
                    ok[label][seed] = metrics
                    if not (store.run_dir(label, seed) / WEIGHTS_FILE).is_file():  # deleted to save space
                        row["reason"] = NO_WEIGHTS
            rows.append(row)
        stored = {seed: read_predictions(store.run_dir(label, seed)) for seed in ok[label]}
        predictions[label] = {seed: p for seed, p in stored.items() if p is not None}
    check_same_images(store, experiment["spec"]["name"], ok)
    return experiment, rows, ok, predictions


def recorded_digests(config: dict) -> dict[str, str]:
    """{"train": ..., "test": ...}: the digests of the images a run read, as its config.json recorded them (none
    for runs from before the digests)."""
    data = config.get("data")
    found = data.get("digests") if isinstance(data, dict) else None
    return {k: v for k, v in found.items() if isinstance(v, str)} if isinstance(found, dict) else {}


def check_same_images(store: RunStore, name: str, ok: dict[str, dict[int, dict]]) -> None:
    """One line (DataError) when the counted runs were tested on different images, or a level's seeds trained on
    different ones, by the digests each run recorded: the comparisons pair runs on one test set. Runs trained where
    the data was read anew (Ray tasks, another machine) after a folder dataset changed would otherwise be mixed; a
    local run is checked against the data before it trains (RunStore.check_data)."""
    from convlens.models.checkpoint import read_checked_config
    recorded = {(label, seed): recorded_digests(read_checked_config(store.run_dir(label, seed)))
                for label, runs in ok.items() for seed in runs}
    why = ("the data they read changed between them (a file of the dataset, or for a folder the Pillow that decoded "
           "it); run the experiment again with --force on the data as it is now")
    seen: dict[str, tuple] = {}
    for key, found in recorded.items():  # runs from before the digests are not checked
        if "test" in found:
            seen.setdefault(found["test"], key)
    if len(seen) > 1:
        (a, sa), (b, sb) = list(seen.values())[:2]
        raise DataError(f"the runs of {name} were tested on different images ({a} seed {sa} and {b} seed {sb}): {why}")
    for label in ok:
        seen = {}
        for (level, seed), found in recorded.items():
            if level == label and "train" in found:
                seen.setdefault(found["train"], seed)
        if len(seen) > 1:
            first, second = list(seen.values())[:2]
            raise DataError(f"the seeds of {label} in {name} were trained on different images (seeds {first} and "
                            f"{second}): {why}")


def analyze(store: RunStore, alpha: float = ALPHA) -> dict:
    """The machine-readable summary of an experiment (also written as summary.json)."""
    return build_summary(*collect(store), alpha=alpha)


def correct_counts(metrics: dict) -> tuple[int, int]:
    """(correct, n) test images of a run, from its confusion matrix: integers, so two runs with the same
    predictions have exactly the same accuracy (a float32 mean would differ by noise a t-test calls real)."""
    cm = np.asarray(metrics["confusion_matrix"])
    return int(np.trace(cm)), int(cm.sum())


def exact_accuracy(metrics: dict) -> float:
    correct, n = correct_counts(metrics)
    return correct / n


def level_statistics(runs: dict[int, dict]) -> dict:
    """Over one configuration's successful runs (seed -> metrics): n, params, MACs, n/mean/std/95% CI of each
    summarized metric (test accuracy from counts), the mean per-class accuracy, and the test set's own sampling
    noise for one run. What an experiment's level and a compare group show."""
    first = next(iter(runs.values()), {})
    values = {m: [exact_accuracy(r) if m == "test_accuracy" else r[m] for r in runs.values() if r.get(m) is not None]
              for m in SUMMARIZED}
    # accuracies lie in [0, 1]; seconds, milliseconds and a loss are never negative (2 seeds' t interval of a time
    # can otherwise reach below 0 s)
    summaries = {m: mean_ci(v, bounds=(0, 1) if m in ("test_accuracy", "val_accuracy") else (0, math.inf)).to_dict()
                 for m, v in values.items()}
    if any((r.get("timing") or {}).get("batched_seeds", 1) > 1 for r in runs.values()):
        # seeds trained as one batched model record equal shares of its time: their spread was not measured
        summaries["train_seconds"].update(std=math.nan, ci95=(math.nan, math.nan))
    return {
        "n": len(runs), "params": (first.get("params") or {}).get("total"), "macs": first.get("macs"),
        **summaries,
        "per_class_accuracy": (np.mean([r["per_class_accuracy"] for r in runs.values()], axis=0).tolist()
                               if runs else None),
        # sqrt(p (1 - p) / N): how far one run's accuracy on this finite test set may sit from its accuracy on new
        # images of the same kind. The paired comparisons share the test set, so this is not in their intervals.
        "sampling_noise": (sampling_noise(summaries["test_accuracy"]["mean"], correct_counts(first)[1])
                           if runs else None),
    }


def timing_summary(runs: list[dict]) -> dict:
    """Whether these runs' seconds may be compared: only when every one was measured under the same conditions
    (device, CPU threads, runs sharing the machine). Runs that recorded none count as unknown, so not comparable."""
    conditions = sorted({json.dumps(m.get("timing"), sort_keys=True) for m in runs})
    return {"comparable": len(conditions) == 1 and conditions[0] != "null",
            "conditions": [json.loads(c) for c in conditions]}


def timing_note(timing: dict) -> str | None:
    """The sentence a table of times carries when its times may not be compared."""
    if timing["comparable"] or not timing["conditions"]:
        return None
    shown = "; ".join("unknown" if c is None else f"{c['device']} ({c['device_type']}), {c['threads']} threads, "
                      f"{c['workers']} run(s) at a time" for c in timing["conditions"])
    return f"Train and inference times were measured under different conditions ({shown}), so they are not compared."


def build_summary(experiment: dict, rows: list[dict], ok: dict[str, dict[int, dict]], predictions: Predictions,
                  alpha: float = ALPHA) -> dict:
    spec = parse_spec(experiment["spec"], origin="experiment.json")
    levels = []
    for level in experiment["levels"]:
        label = level["label"]
        levels.append({
            "label": label, "values": level["values"],
            "failed": [{"seed": r["seed"], "reason": r["reason"]} for r in rows
                       if r["level"] == label and r["status"] == "failed"],
            "pending": spec.seeds - sum(1 for r in rows if r["level"] == label),
            "left_out": [{"seed": r["seed"], "reason": r["reason"]} for r in rows
                         if r["level"] == label and r["status"] == LEFT_OUT],
            **level_statistics(ok[label]),
        })
    counts = {label: {seed: correct_counts(m)[0] for seed, m in runs.items()} for label, runs in ok.items()}
    sizes = {correct_counts(m)[1] for runs in ok.values() for m in runs.values()}
    if len(sizes) > 1:  # every cell of one experiment is tested on the same images (the spec's test subset)
        raise UsageError(f"the runs of {spec.name} were tested on different numbers of images ({sorted(sizes)})")
    comparisons = design_comparisons(spec, counts, sizes.pop() if sizes else 1, alpha)
    for c in comparisons:
        if c["kind"] == "effect":
            c["evidence"] = per_example_evidence(predictions.get(c["level"], {}), predictions.get(c["reference"], {}))
    summary = {
        "experiment": spec.name, "description": spec.description, "factors": [f.name for f in spec.factors],
        "reference": experiment["reference"], "metric": "test_accuracy", "alpha": alpha, "seeds": spec.seeds,
        "test": ("paired t-test across seeds (two-sided); the experiment's comparisons form one family, "
                 "Holm-corrected; 95% t intervals"),
        "recipe": experiment["levels"][0]["config"]["recipe"],
        "levels": levels, "comparisons": comparisons,
        "conclusions": conclusions(levels, comparisons), "warnings": warnings(comparisons),
        "timing": timing_summary([m for runs in ok.values() for m in runs.values()]),
    }
    summary["warnings"] += [f"Left out of this analysis: {r['reason']}." for r in rows if r["status"] == LEFT_OUT]
    gone = [f"{r['level']} seed {r['seed']}" for r in rows if r["status"] == "done" and r["reason"] == NO_WEIGHTS]
    if gone:  # counted: what they measured stands
        summary["warnings"].append(f"{', '.join(gone)}: no model.safetensors in the run directory; counted here, but "
                                   "it cannot be exported or probed, and 'experiment run' refuses it until its "
                                   "directory is deleted (it is then trained anew)")
    note = timing_note(summary["timing"])
    summary["warnings"] += [note] if note else []
    unstored = [f"{label} seed {seed}" for label, runs in ok.items() for seed in runs
                if seed not in predictions.get(label, {})]
    if unstored:  # said, not silent: their accuracies are compared, their images are not
        summary["warnings"].append(f"{', '.join(unstored)}: no predictions.npz in the run directory, so left out of "
                                   "the image-by-image comparisons (delete the run's directory and run the experiment "
                                   "again to restore it)")
    summary["warnings"] += uneven_times({label: [m.get("train_seconds") for m in runs.values()]
                                         for label, runs in ok.items()})
    summary["warnings"] += several_precisions({label: [m.get("precision") for m in runs.values()]
                                             for label, runs in ok.items()})
    return without_nan(summary)


UNEVEN_TIMES = 2.0  # seeds of one configuration train within ~1.3x of each other on a quiet machine
# Runs of a fraction of a second differ by more than 2x from start-up alone (threads, first calls): a gap under
# this says nothing about a busy machine
UNEVEN_SECONDS = 1.0


def uneven_times(seconds: dict[str, list[float]]) -> list[str]:
    """A warning per level whose runs' train times differ by more than UNEVEN_TIMES x (and UNEVEN_SECONDS): something
    else used the machine while some of them trained, so their mean time says little (the accuracies are
    unaffected)."""
    lines = []
    for label, secs in seconds.items():
        secs = [s for s in secs if isinstance(s, (int, float)) and s > 0]
        if len(secs) >= 2 and max(secs) > UNEVEN_TIMES * min(secs) and max(secs) - min(secs) >= UNEVEN_SECONDS:
            lines.append(f"The train times of {label} range from {min(secs):.1f} to {max(secs):.1f} s over its seeds "
                         f"({max(secs) / min(secs):.1f}x): the machine was probably busy while some of them ran, so "
                         "compare their times with care (the accuracies are unaffected).")
    return lines


def several_precisions(precisions: dict[str, list[str | None]]) -> list[str]:
    """One warning when the runs trained in more than one precision. ``precision="auto"`` means bf16 only where the
    hardware computes it natively, so a store resumed on another machine (or after a version that changed what auto
    means there) can hold both, and a comparison across them changes the arithmetic as well as the factor. A run
    recorded without the key trained in fp32 (the key came with bf16)."""
    runs: dict[str, dict[str, int]] = {}  # precision -> level -> runs
    for label, values in precisions.items():
        for value in values:
            level_counts = runs.setdefault(value or "fp32", {})
            level_counts[label] = level_counts.get(label, 0) + 1
    if len(runs) < 2:
        return []
    listed = "; ".join(f"{precision}: " + ", ".join(f"{label} ({n} run{'s' * (n > 1)})" for label, n in levels.items())
                       for precision, levels in sorted(runs.items()))
    return [f"The runs trained in more than one precision ({listed}), so a comparison between them changes the "
            "arithmetic as well as the factor: --force retrains them all in this machine's precision, or set one "
            "(experiment run --precision, the spec's recipe_set, or the study's --precision)."]


def conclusions(levels: list[dict], comparisons: list[dict]) -> list[str]:
    """One sentence per comparison, worded by its corrected test; and, when none is significant, that the
    highest mean is no evidence of a better level."""
    lines = []
    for c in comparisons:
        lines += [line for line in (comparison_sentence(c), evidence_sentence(c)) if line]
    done = [lv for lv in levels if lv["n"] > 0]
    tested = all(c["verdict"].startswith(("no significant", "identical")) for c in comparisons)
    if len(done) > 1 and comparisons and tested:
        best = max(lv["test_accuracy"]["mean"] for lv in done)
        tied = [lv["label"] for lv in done if lv["test_accuracy"]["mean"] == best]
        top = tied[0] if len(tied) == 1 else f"{', '.join(tied)}, tied"
        mean, verb = ("highest mean", "is") if len(tied) == 1 else ("highest means", "are")
        # only what was tested is claimed: one factor compares each level with the reference, not with each other
        if all(c.get("within") is None and c["kind"] == "effect" for c in comparisons):
            several = len(comparisons) > 1  # one comparison: nothing to correct, no other level
            lines.append(f"No level differs significantly from the reference ({comparisons[0]['reference']})"
                         + (" after Holm's correction" if several else "")
                         + f", so the {mean} ({top}) {verb} no evidence of a better setting"
                         + ("; the other levels were not compared with each other." if several else "."))
        else:
            lines.append(f"No comparison above is significant after Holm's correction, so the {mean} ({top}) "
                         f"{verb} no evidence of a better setting; cells that differ in "
                         "both factors were not compared.")
    return lines


def warnings(comparisons: list[dict]) -> list[str]:
    """A comparison on exactly two paired seeds (by design or because runs failed) gets the report's warning."""
    few = [c["label"] for c in comparisons if c["n"] == 2]
    if few:
        return [f"n=2 paired seeds ({'; '.join(few)}): each such paired t-test has 1 degree of freedom, so intervals "
                "are very wide and only large effects can be detected; use 3 or more seeds for findings."]
    return []


def write_outputs(store: RunStore) -> dict:
    """Write summary.json and runs.csv beside the runs, once the analysis holds; return the summary. The plots of
    the analysis before are removed first: one stopped before its plots are drawn leaves none of the old ones."""
    experiment, rows, ok, predictions = collect(store)
    summary = build_summary(experiment, rows, ok, predictions)
    plots = store.root / "plots"
    if plots.is_dir() and not plots.is_symlink():
        shutil.rmtree(plots)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(store.root / RUNS_CSV, buffer.getvalue())
    atomic_write_json(store.root / SUMMARY_FILE, summary)
    return summary
