"""Experiment figures as PNG, from run files and the summary only.

curves.png: validation accuracy per epoch, mean over seeds with a min-max band; accuracy_vs_params.png and
accuracy_vs_time.png: mean with 95% CI bars; per_class.png: mean per-class test accuracy per level.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed (and none on servers)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from convlens.experiments.store import RunStore  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)  # atomic: a reader never sees half a PNG
    return path


def _errorbar(ax, x: list[float], summaries: list[dict], labels: list[str]) -> None:
    for xi, s, label in zip(x, summaries, labels):
        mean = s["mean"] * 100
        lo, hi = s["ci95"]
        yerr = None if lo is None else [[mean - lo * 100], [hi * 100 - mean]]
        ax.errorbar([xi], [mean], yerr=yerr, fmt="o", capsize=4, label=label)


def write_plots(store: RunStore, summary: dict, class_names: list[str]) -> list[Path]:
    out = store.root / "plots"
    levels = [lv for lv in summary["levels"] if lv["n"] > 0]
    labels = [lv["label"] for lv in levels]
    n_note = f"n={summary['seeds']} seeds per level"
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for lv in levels:
        curves = [[h["val_accuracy"] for h in m["history"]] for m in store.done_runs(lv["label"], summary["seeds"]).values()]
        length = min(map(len, curves))  # early stopping may shorten some runs
        arr = np.array([c[:length] for c in curves]) * 100
        epochs = np.arange(1, length + 1)
        line, = ax.plot(epochs, arr.mean(0), marker="o", markersize=3, label=lv["label"])
        ax.fill_between(epochs, arr.min(0), arr.max(0), color=line.get_color(), alpha=0.2)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title=f"Validation accuracy: mean, band = min-max ({n_note})")
    ax.legend()
    paths.append(save_figure(fig, out / "curves.png"))

    charts = [("accuracy_vs_params.png", "params", "parameters", True)]
    if summary["timing"]["comparable"]:  # times from different conditions are not put on one axis
        charts.append(("accuracy_vs_time.png", "train_seconds", "train time (s, mean)", False))
    else:
        (out / "accuracy_vs_time.png").unlink(missing_ok=True)
    for name, key, xlabel, log in charts:
        fig, ax = plt.subplots(figsize=(6, 4))
        x = [lv[key]["mean"] if isinstance(lv[key], dict) else lv[key] for lv in levels]
        _errorbar(ax, x, [lv["test_accuracy"] for lv in levels], labels)
        if log:
            ax.set_xscale("log")
        ax.set(xlabel=xlabel, ylabel="test accuracy (%)", title=f"Test accuracy, mean ± 95% CI ({n_note})")
        ax.legend(fontsize=8)
        paths.append(save_figure(fig, out / name))

    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(levels), 1)
    for i, lv in enumerate(levels):
        ax.bar(np.arange(len(class_names)) + i * width, np.array(lv["per_class_accuracy"]) * 100, width,
               label=lv["label"])
    ax.set_xticks(np.arange(len(class_names)) + width * (len(levels) - 1) / 2, class_names, rotation=30, ha="right")
    ax.set(ylabel="test accuracy (%)", title=f"Per-class test accuracy, mean over seeds ({n_note})")
    ax.set_ylim(50, 100)
    ax.legend(fontsize=8)
    paths.append(save_figure(fig, out / "per_class.png"))
    return paths
