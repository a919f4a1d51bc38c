"""Experiment figures as PNG, from run files and the summary only.

curves.png: validation accuracy per epoch, mean over seeds with a min-max band; accuracy_vs_params.png and
accuracy_vs_time.png: mean with 95% CI bars; per_class.png: mean per-class test accuracy per level.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.ticker import MaxNLocator, NullLocator

from convlens.experiments.store import RunStore
from convlens.figure_files import plt, save_figure  # pyplot, its backend chosen there for files


def _errorbar(ax, x: list[float], summaries: list[dict], labels: list[str]) -> None:
    for xi, s, label in zip(x, summaries, labels):
        mean = s["mean"] * 100
        lo, hi = s["ci95"]
        yerr = None if lo is None else [[mean - lo * 100], [hi * 100 - mean]]
        ax.errorbar([xi], [mean], yerr=yerr, fmt="o", capsize=4, label=label)


def curves_figure(store: RunStore, summary: dict):
    """Validation accuracy per epoch per level: mean over seeds, band = min-max. Runs without a validation split
    (``val_fraction: 0``, or too few images for one) record none: then the training accuracy, and the title says so."""
    levels = [lv for lv in summary["levels"] if lv["n"] > 0]
    left_out = {(lv["label"], r["seed"]) for lv in levels for r in lv.get("left_out", [])}  # not counted: not drawn
    histories = {lv["label"]: [m["history"] for seed, m in store.done_runs(lv["label"], summary["seeds"]).items()
                               if (lv["label"], seed) not in left_out] for lv in levels}
    validated = all(h["val_accuracy"] is not None for runs in histories.values() for run in runs for h in run)
    key, name = ("val_accuracy", "validation") if validated else ("train_accuracy", "training")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for lv in levels:
        curves = [[h[key] for h in run] for run in histories[lv["label"]]]
        length = min(map(len, curves))  # early stopping may shorten some runs
        arr = np.array([c[:length] for c in curves]) * 100
        epochs = np.arange(1, length + 1)
        line, = ax.plot(epochs, arr.mean(0), marker="o", markersize=3, label=lv["label"])
        ax.fill_between(epochs, arr.min(0), arr.max(0), color=line.get_color(), alpha=0.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel=f"{name} accuracy (%)",
           title=f"{name.capitalize()} accuracy{'' if validated else ' (no validation split)'}: mean, band = "
                 f"min-max ({_n_note(summary)})")
    ax.legend()
    return fig


def accuracy_figure(summary: dict, against: str):
    """Mean test accuracy with 95% CI bars against ``params`` (log axis) or ``train_seconds`` per level."""
    levels = [lv for lv in summary["levels"] if lv["n"] > 0]
    fig, ax = plt.subplots(figsize=(6, 4))
    x = [lv[against]["mean"] if isinstance(lv[against], dict) else lv[against] for lv in levels]
    _errorbar(ax, x, [lv["test_accuracy"] for lv in levels], [lv["label"] for lv in levels])
    if against == "params":
        ax.set_xscale("log")
        # the levels' own counts as the ticks: a log axis's minor labels (2.2x10^5, 2.4x10^5) ran into each other
        counts = sorted(set(x))
        ax.set_xticks(counts, [f"{c:,}" for c in counts], rotation=30, ha="right")
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set(xlabel="parameters (log scale)" if against == "params" else "training time per run (s, mean over seeds)",
           ylabel="test accuracy (%)", title=f"Test accuracy, mean ± 95% CI ({_n_note(summary)})")
    ax.legend(fontsize=8)
    return fig


def per_class_figure(summary: dict, class_names: list[str]):
    """Mean per-class test accuracy, one bar per level."""
    levels = [lv for lv in summary["levels"] if lv["n"] > 0]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(levels), 1)
    for i, lv in enumerate(levels):
        ax.bar(np.arange(len(class_names)) + i * width, np.array(lv["per_class_accuracy"]) * 100, width,
               label=lv["label"])
    ax.set_xticks(np.arange(len(class_names)) + width * (len(levels) - 1) / 2, class_names, rotation=30, ha="right")
    # from 50% as a rule (the classes differ there), lower when a bar is lower: a class at 41% had no bar at all
    lowest = min([float(np.min(lv["per_class_accuracy"])) * 100 for lv in levels] + [100.0])
    bottom = max(0.0, min(50.0, 10 * math.floor((lowest - 5) / 10)))
    ax.set_ylim(bottom, 100)
    # bars that do not start at 0 say so: their lengths are not the accuracies
    ax.set(ylabel="test accuracy (%)" + (f", axis from {bottom:.0f}%" if bottom else ""),
           title=f"Per-class test accuracy, mean over seeds ({_n_note(summary)})")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the bars, not on them
    return fig


def _n_note(summary: dict) -> str:
    """The seeds each level's mean is over: those counted, not the spec's (a run failed, pending or left out)."""
    counted = sorted({lv["n"] for lv in summary["levels"] if lv["n"] > 0}) or [0]
    n = f"{counted[0]}" if len(counted) == 1 else f"{counted[0]}-{counted[-1]}"
    return f"n={n} seed{'s' if counted[-1] != 1 else ''} per level"


def figure(kind: str, store: RunStore, summary: dict, class_names: list[str]):
    """One of ``PLOTS`` as a matplotlib figure."""
    if kind == "curves":
        return curves_figure(store, summary)
    if kind in ("accuracy_vs_params", "accuracy_vs_time"):
        return accuracy_figure(summary, "params" if kind == "accuracy_vs_params" else "train_seconds")
    return per_class_figure(summary, class_names)


PLOTS = ("curves", "accuracy_vs_params", "accuracy_vs_time", "per_class")


def write_plots(store: RunStore, summary: dict, class_names: list[str]) -> list[Path]:
    out = store.root / "plots"
    kinds = list(PLOTS)
    if not summary["timing"]["comparable"]:  # times from different conditions are not put on one axis
        kinds.remove("accuracy_vs_time")
        (out / "accuracy_vs_time.png").unlink(missing_ok=True)
    return [save_figure(figure(kind, store, summary, class_names), out / f"{kind}.png") for kind in kinds]
