"""The study's figures as PNG files (matplotlib, Agg). Each function draws from arrays and numbers it is given;
nothing here trains or evaluates. Accuracies arrive as fractions and are drawn in percent. With ``path=None`` a
function returns the figure instead (a notebook shows it). ``FROM_RESULTS``: the figures drawn from results.json
alone; study/redraw.py ``figure_drawers`` adds those drawn from the run store and the images."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.collections import PolyCollection

from convlens.figure_files import plt, save_figure


def class_balance(counts: dict[str, list[int]], class_names: list[str], path: Path | None):
    fig, ax = plt.subplots(figsize=(8, 3.6))
    x, width = np.arange(len(class_names)), 0.4
    for i, (split, values) in enumerate(counts.items()):
        ax.bar(x + (i - 0.5) * width, values, width, label=f"{split} (n={sum(values):,})")
    ax.set_xticks(x, class_names, rotation=30, ha="right")
    ax.set(ylabel="images", title="Images per class")
    # right of the axes: inside them it covered the bars of balanced classes, which all reach the top
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return save_figure(fig, path)


def _rgba_tile(img: np.ndarray, size: int, cmap: str, symmetric: bool) -> np.ndarray:
    """One image as a (size, size, 4) RGBA tile, centred, transparent around it. A 2-D image is coloured by
    ``cmap`` over its own range, as imshow does on its own axes ([min, max], or [-|max|, |max|] when
    ``symmetric``; NaN and inf left out of the range and transparent, as imshow masks them); an RGB(A) image
    (H, W, 3 or 4) is shown as is (integers 0..255, floats 0..1). Smaller images are enlarged by a whole factor
    (nearest)."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:
        rgb = np.clip(img.astype(np.float32) / (255.0 if np.issubdtype(img.dtype, np.integer) else 1.0), 0, 1)
        rgba = rgb if rgb.shape[2] == 4 else np.concatenate([rgb, np.ones((*rgb.shape[:2], 1), np.float32)], axis=2)
        rgba = np.nan_to_num(rgba)
    else:
        values = img.astype(np.float32)
        finite = np.isfinite(values)
        shown = values[finite]
        if symmetric:
            lim = float(np.abs(shown).max()) if shown.size else 0.0
            values = (values / (lim or 1.0) + 1) / 2
        else:
            lo, hi = (float(shown.min()), float(shown.max())) if shown.size else (0.0, 0.0)
            values = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
        rgba = matplotlib.colormaps[cmap](np.where(finite, values, 0)).astype(np.float32)
        rgba[~finite] = 0  # transparent
    k = max(1, size // max(rgba.shape[:2]))
    rgba = rgba.repeat(k, axis=0).repeat(k, axis=1)
    tile = np.zeros((size, size, 4), np.float32)
    h, w = rgba.shape[:2]
    top, left = (size - h) // 2, (size - w) // 2
    tile[top:top + h, left:left + w] = rgba
    return tile


def _mosaic(ax, rows: list[list[np.ndarray]], *, cmap: str, symmetric: bool = False, caption_space: float = 0.0,
            column_space: float = 0.0) -> tuple[int, list[float], list[float]]:
    """Draw ``rows`` of images as one picture on ``ax`` (one imshow, not an axes per image: with dozens of images,
    creating and drawing the axes cost more than the pixels), each image framed like a small axes.

    ``caption_space`` and ``column_space``: room above each row and beside each column, as fractions of a tile.
    Returns (tile side, the column centres, the row centres) in the picture's pixels; callers put them on the
    axes' ticks, so a tile can be found again from the figure alone.
    """
    sides = {int(max(np.asarray(img).shape[:2])) for row in rows for img in row} or {1}
    size = math.lcm(*sides)  # every image fills its tile (3x3 and 5x5 kernels, 28 px and 3 px feature maps)
    size = size if size <= 4 * max(sides) else max(sides)  # else whole factors leave a margin of a few pixels
    gap = max(2, size // 10)
    pitch_x, pitch_y = (size + gap + round((size + gap) * column_space),
                        size + gap + round((size + gap) * caption_space))
    n_cols = max([len(row) for row in rows] + [1])
    tops = [r * pitch_y + (pitch_y - size - gap // 2) for r in range(len(rows))]  # room for captions above
    lefts = [c * pitch_x + (pitch_x - size) // 2 for c in range(n_cols)]
    canvas = np.zeros((len(rows) * pitch_y, n_cols * pitch_x, 4), np.float32)  # transparent
    frames = []
    for top, row in zip(tops, rows):
        for left, img in zip(lefts, row):
            canvas[top:top + size, left:left + size] = _rgba_tile(img, size, cmap, symmetric)
            frames.append([(left - 0.5, top - 0.5), (left + size - 0.5, top - 0.5),
                           (left + size - 0.5, top + size - 0.5), (left - 0.5, top + size - 0.5)])
    ax.imshow(canvas, interpolation="nearest")
    ax.add_collection(PolyCollection(frames, facecolors="none", edgecolors="black", linewidths=0.6))
    ax.set_xlim(-0.5, canvas.shape[1] - 0.5)
    ax.set_ylim(canvas.shape[0] - 0.5, -0.5)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0)
    return size, [left + (size - 1) / 2 for left in lefts], [top + (size - 1) / 2 for top in tops]


def _fit(labels: list[str], n: int) -> list[str]:
    """``n`` tick labels: the first ``n`` given, blanks for the rest."""
    return [*labels[:n], *[""] * (n - len(labels[:n]))]


def image_grid(rows: list[list[np.ndarray]], row_labels: list[str], path: Path | None, *, title: str = "",
               col_labels: list[str] | None = None, cmap: str = "gray_r", symmetric: bool = False):
    """A grid of small images, one row per label; ``symmetric`` colours around 0 (weights, activations). Each
    image is coloured over its own range."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, ax = plt.subplots(figsize=(n_cols * 0.9 + 1.6, n_rows * 0.9 + 0.5))
    _, cols, centres = _mosaic(ax, rows, cmap=cmap, symmetric=symmetric)
    ax.set_yticks(centres, _fit(row_labels, len(centres)), fontsize=8)
    ax.set_xticks(cols, _fit(col_labels or [], len(cols)), fontsize=7)
    if col_labels:
        ax.xaxis.tick_top()
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path)


def flip_gallery(rows: list[tuple[str, list[np.ndarray], list[str]]], path: Path | None, title: str):
    """Rows of test images, each with its own caption (true and predicted classes); an empty row says so."""
    n_cols = max([len(images) for _, images, _ in rows] + [1])
    # Each column as wide as its longest caption line (6-pt text, ~0.6 em a character) and the tile's 1.1 in, so
    # captions such as "model=cnn-32-64-128: T-shirt/top" do not run into the next column's.
    longest = max([len(line) for _, images, captions in rows for c in captions[:len(images)]
                   for line in c.splitlines()] + [1])
    column = max(1.6, longest * 0.6 * 6 / 72 + 0.25)
    fig, ax = plt.subplots(figsize=(n_cols * column + 1.8, len(rows) * 1.55 + 0.6))
    size, cols, centres = _mosaic(ax, [images for _, images, _ in rows], cmap="gray_r", caption_space=0.45,
                                  column_space=max(0.45, column / 1.1 - 1))
    for (_, images, captions), y in zip(rows, centres):
        for x, caption in zip(cols, captions[:len(images)]):
            ax.text(x, y - size / 2 - 1, caption, ha="center", va="bottom", fontsize=6)
    ax.set_yticks(centres, [label if images else f"{label}\n(none)" for label, images, _ in rows], fontsize=8)
    ax.set_xticks(cols, _fit([], len(cols)))  # unlabelled: each tile's place stays readable from the axes
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def pixel_histogram(histogram: list[int], path: Path | None):
    fig, ax = plt.subplots(figsize=(7, 3.4))
    # one outline, not 256 bars; empty grey levels drop to the bottom of the log axis
    ax.stairs(histogram, np.arange(len(histogram) + 1) - 0.5, fill=True, color="tab:gray", baseline=0.5)
    ax.set_yscale("log")
    ax.set(xlabel="grey level (0 = background)", ylabel="pixels (log scale)",
           title=f"Pixel intensities, training images (n={sum(histogram):,} pixels)")
    return save_figure(fig, path)


def brightness_per_class(per_class: list[dict], path: Path | None):
    fig, ax = plt.subplots(figsize=(8, 3.6))
    names = [c["class"] for c in per_class]
    # on the 0-1 scale the models see (pixel / 255), as the EDA table and its sentences give it
    ax.bar(names, [c["mean_brightness"] for c in per_class], yerr=[c["brightness_std"] for c in per_class],
           capsize=3, color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set(ylabel="mean pixel value (pixel / 255, 0-1)",
           title="Mean brightness per class (error bar: ± std of the images' mean brightness)")
    return save_figure(fig, path)


def training_curves(histories: list[list[dict]], title: str, path: Path | None):
    """Accuracy per epoch, mean over runs, band = min-max: training subset and validation both in eval mode (like
    with like), and the running training accuracy (dropout on, before each update) dashed for reference."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    length = min(len(h) for h in histories)
    epochs = np.arange(1, length + 1)
    for key, label, style in (("train_eval_accuracy", "train (eval mode, fixed subset)", "-"),
                              ("val_accuracy", "validation (eval mode)", "-"),
                              ("train_accuracy", "train (running, dropout on)", "--")):
        if any(r.get(key) is None for h in histories for r in h[:length]):
            continue
        arr = np.array([[r[key] for r in h[:length]] for h in histories]) * 100
        line, = ax.plot(epochs, arr.mean(0), style, marker="o", markersize=3, label=label)
        if style == "-":
            ax.fill_between(epochs, arr.min(0), arr.max(0), color=line.get_color(), alpha=0.2)
    ax.set(xlabel="epoch", ylabel="accuracy (%)", title=f"{title} (n={len(histories)} seeds; band = min-max)")
    ax.set_xticks(epochs)
    ax.legend()
    return save_figure(fig, path)


def confusion_matrices(matrices: list[np.ndarray], titles: list[str], class_names: list[str], path: Path | None):
    """Row-normalised confusion matrices (% of each true class), side by side, sharing the true classes' axis."""
    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.8), squeeze=False)
    for k, (ax, m, title) in enumerate(zip(axes[0], matrices, titles)):
        pct = 100 * m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
        for i in range(len(class_names)):
            for j in range(len(class_names)):
                text = f"{pct[i, j]:.0f}"
                if text != "0":  # 0.5% rounds to "0" (half to even): a blank cell says under 1% already
                    ax.text(j, i, text, ha="center", va="center", fontsize=6,
                            color="white" if pct[i, j] > 60 else "black")
        ax.set_xticks(range(len(class_names)), class_names, rotation=60, ha="right", fontsize=7)
        # the class names and "true" once, on the left: beside a panel they ran into the one before it
        ax.set_yticks(range(len(class_names)), class_names if k == 0 else [], fontsize=7)
        ax.set(xlabel="predicted", ylabel="true" if k == 0 else "", title=title)
    fig.suptitle("% of each true class's test images (each row sums to 100; blank: under 0.5%)", fontsize=8,
                 y=1.0, va="bottom")  # above the panels' titles (savefig's tight box takes it in)
    return save_figure(fig, path)


def with_ci(ax, x, summaries: list[dict], label: str, **kwargs) -> None:
    mean = np.array([s["mean"] for s in summaries]) * 100
    lo = np.array([s["ci95"][0] if s["ci95"][0] is not None else s["mean"] for s in summaries]) * 100
    hi = np.array([s["ci95"][1] if s["ci95"][1] is not None else s["mean"] for s in summaries]) * 100
    line, = ax.plot(x, mean, marker="o", label=label, **kwargs)
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)


def shift_curves(shifts: list[int], curves: dict[str, list[dict]], n: int, path: Path | None):
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, summaries in curves.items():
        with_ci(ax, shifts, summaries, label)
    ax.set_xticks(shifts)
    ax.set(xlabel="shift (px, each image in one of 4 directions)", ylabel="test accuracy (%)",
           title=f"Shift robustness: mean, band = 95% CI (n={n} seeds)")
    ax.legend()
    return save_figure(fig, path)


def grouped_bars(groups: list[str], series: dict[str, list[dict]], n: int, title: str, path: Path | None):
    """Bars of mean accuracy with 95% CI error bars: one group per entry of ``groups``, one bar per series. The
    axis runs from 0 to 100% (a bar's length is its accuracy: an axis from just below the lowest bar made a gap of
    a few pp look like a factor of two), and each bar carries its mean, so differences of a few pp stay readable."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    x, width = np.arange(len(groups)), 0.8 / max(len(series), 1)
    for i, (label, summaries) in enumerate(series.items()):
        mean = np.array([s["mean"] for s in summaries]) * 100
        # an end cut to 0 (convlens.stats.mean_ci's bounds) is falsy: only a missing end falls back to the mean
        end = lambda s, side: s["ci95"][side] if s["ci95"][side] is not None else s["mean"]  # noqa: E731
        err = np.array([[m - end(s, 0) * 100, end(s, 1) * 100 - m] for m, s in zip(mean, summaries)]).T
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, mean, width, yerr=err, capsize=4, label=label)
        ax.bar_label(bars, [f"{m:.2f}" for m in mean], label_type="center", color="white", fontsize=8)
    ax.set_xticks(x, groups)
    ax.set(ylabel="test accuracy (%, axis from 0)", title=f"{title} (mean ± 95% CI, n={n} seeds)")
    ax.set_ylim(0, 100)
    # beside the axes: bars near 100% reach the top, where a legend inside the axes sat on them
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return save_figure(fig, path)


def efficiency(points: list[dict], n: int, path: Path | None):
    """Test accuracy (mean, 95% CI) against parameters and against multiply-adds, log scale, one point per
    configuration; the frontier of each panel (no point both cheaper and more accurate) joined by a line."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
    for ax, cost, label in zip(axes, ("params", "macs"), ("parameters", "multiply-adds per image")):
        for p in points:
            acc = p["test_accuracy"]
            mean = acc["mean"] * 100
            yerr = None if acc["ci95"][0] is None else [[mean - acc["ci95"][0] * 100], [acc["ci95"][1] * 100 - mean]]
            ax.errorbar([p[cost]], [mean], yerr=yerr, fmt="o", capsize=4, label=p["name"])
        on = sorted((p for p in points if p[f"frontier_{cost}"]), key=lambda p: p[cost])
        ax.plot([p[cost] for p in on], [p["test_accuracy"]["mean"] * 100 for p in on], "k--", lw=1, label="frontier")
        ax.set_xscale("log")
        ax.set(xlabel=f"{label} (log scale)", title=f"Accuracy vs {label}")
    axes[0].set_ylabel(f"test accuracy (%, mean ± 95% CI, n={n} seeds)")
    axes[1].legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def shift_figure(shift: dict, path: Path | None = None):
    """The shift probe's curves from its results (``results["probes"]["shift"]``)."""
    return shift_curves(shift["shifts"], shift["curves"], len(shift["seeds"]), path)


def locality_figure(locality: dict, path: Path | None = None):
    """The locality probe's bars from its results (``results["probes"]["locality"]``)."""
    models = locality["models"]
    return grouped_bars(["original pixels", "permuted pixels"], {m: [e["original"], e["permuted"]]
                                                                 for m, e in models.items()},
                        min(m["change"]["n"] for m in models.values()), "Locality probe", path)


def weight_sharing_figure(ws: dict, path: Path | None = None):
    """MLP, locally connected and CNN on original and permuted pixels (``probes.assumptions.weight_sharing``)."""
    series = {f"{name} ({cells['original']['params'] / 1e6:.2f} M params)": [cells["original"]["test_accuracy"],
                                                                          cells["permuted"]["test_accuracy"]]
              for name, cells in ws["cells"].items()}
    n = min(c["n"] for cells in ws["cells"].values() for c in cells.values())
    return grouped_bars(["original pixels", "permuted pixels"], series, n, "Locality vs weight sharing", path)


def equivariance_figure(eq: dict, shift: dict, path: Path | None = None):
    """Left: feature-map cosine similarity per stage of the CNN, one line per shift; right: the shift probe's
    accuracy curves (``probes.assumptions.equivariance``, ``probes.shift``)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    x = np.arange(len(eq["stages"]))
    for j, k in enumerate(eq["shifts"]):
        summaries = [stage[j] for stage in eq["similarity"]]
        mean = np.array([s["mean"] for s in summaries])
        lo = np.array([s["ci95"][0] if s["ci95"][0] is not None else s["mean"] for s in summaries])
        hi = np.array([s["ci95"][1] if s["ci95"][1] is not None else s["mean"] for s in summaries])
        line, = left.plot(x, mean, marker="osD^v<>"[j % 7], ls=("-", "--", "-.", ":")[j % 4], label=f"shift {k} px")
        left.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2)
    if eq.get("unrelated"):  # two different test images' maps: the floor the text reads the curves against
        left.plot(x, [u["mean"] for u in eq["unrelated"]], color="grey", ls=(0, (1, 1)), marker="x",
                  label="two different images (floor)")
    left.set_xticks(x, [f"{s}\n(jump {j})" if j else f"{s}\n(no space)" for s, j in zip(eq["stages"], eq["jumps"])],
                    fontsize=7)
    left.set(ylabel="cosine similarity to the shifted original",
             title=f"Where equivariance is lost (n={len(eq['seeds'])} seeds, {eq['images']} images)")
    left.legend(fontsize=8)
    for label, summaries in shift["curves"].items():
        with_ci(right, shift["shifts"], summaries, label)
    right.set_xticks(shift["shifts"])
    right.set(xlabel="shift (px)", ylabel="test accuracy (%)", title="Accuracy under shift (95% CI)")
    right.legend()
    return save_figure(fig, path)


def receptive_field_figure(rf: dict, path: Path | None = None):
    """The CNN's effective receptive field per block (mean |gradient| of the central unit, theoretical window
    dashed, the 90% square solid) and, when measured, the 90% side per block for each kernel size."""
    blocks, sizes = rf["cnn"]["blocks"], rf["kernel_sizes"]
    panels = len(blocks) + (1 if sizes else 0)
    fig, axes = plt.subplots(1, panels, figsize=(3.4 * panels, 3.8))
    axes = np.atleast_1d(axes)
    for ax, block in zip(axes, blocks):
        erf = np.asarray(block["erf"])
        ax.imshow(erf, cmap="magma")
        (top, bottom), (lft, rgt) = block["theoretical_window"]
        ax.add_patch(plt.Rectangle((lft - 0.5, top - 0.5), rgt - lft + 1, bottom - top + 1, fill=False, ls="--",
                                   color="cyan", lw=1.2))
        side, (cy, cx) = round(block["side90"]["mean"]), block["centre"]
        ax.add_patch(plt.Rectangle((cx - side / 2, cy - side / 2), side, side, fill=False, color="white", lw=1.2))
        ax.set_title(f"{block['block']}: theoretical {block['theoretical_size']} px\n90% of gradient in "
                     f"{block['side90']['mean']:.1f} px", fontsize=8)
        ax.axis("off")
    if sizes:
        ax = axes[-1]
        names = [b["block"] for b in blocks]
        for label, level in sizes["levels"].items():
            means = [b["side90"]["mean"] for b in level["blocks"]]
            err = [[m - (b["side90"]["ci95"][0] if b["side90"]["ci95"][0] is not None else m) for m, b in
                    zip(means, level["blocks"])],
                   [(b["side90"]["ci95"][1] if b["side90"]["ci95"][1] is not None else m) - m for m, b in
                    zip(means, level["blocks"])]]
            line = ax.errorbar(range(len(means)), means, yerr=err, marker="o", capsize=3, label=f"{label}: 90% ERF")
            ax.plot(range(len(means)), [b["theoretical_visible"][0] for b in level["blocks"]], ls="--",
                    color=line[0].get_color(), label=f"{label}: theoretical")
        ax.set_xticks(range(len(names)), names)
        ax.set(ylabel="side (px)", title="Effective vs theoretical, per kernel size")
        ax.legend(fontsize=7)
    fig.suptitle(f"Effective receptive field of each block's central unit (n={len(rf['cnn']['seeds'])} seeds, "
                 f"{rf['images']} test images; brighter = larger mean |gradient|)\ndashed cyan square: theoretical "
                 "receptive field; solid white square: the centred square holding 90% of the gradient", fontsize=9,
                 y=1.0, va="bottom")  # above the panels' titles
    return save_figure(fig, path)


def efficiency_figure(probe: dict, path: Path | None = None):
    """Accuracy against parameters and multiply-adds from the efficiency probe's results."""
    return efficiency(probe["points"], probe["seeds"], path)


def model_curves(label: str, runs: dict[int, dict], path: Path | None = None):
    """Training curves of one model over its seeds (its runs' metrics)."""
    return training_curves([r["history"] for r in runs.values()], label, path)


def model_confusion(label: str, runs: dict[int, dict], class_names: list[str], path: Path | None = None):
    """One model's confusion matrix on the test set, summed over its seeds."""
    confusion = np.sum([r["confusion_matrix"] for r in runs.values()], axis=0)
    return confusion_matrices([confusion], [f"{label}, test set, summed over n={len(runs)} seeds"], class_names,
                              path)


def level_confusions(levels: list[dict], runs: dict[str, dict[int, dict]], class_names: list[str],
                     path: Path | None = None):
    """An experiment's confusion matrices, one per level that has runs, each summed over its seeds."""
    matrices = [np.sum([m["confusion_matrix"] for m in runs[lv["label"]].values()], axis=0) for lv in levels]
    return confusion_matrices(matrices, [f"{lv['label']} (n={lv['n']})" for lv in levels], class_names, path)


FROM_RESULTS = {
    "eda_class_balance": lambda r, path: class_balance(r["eda"]["class_counts"], r["eda"]["class_names"], path),
    "eda_pixel_histogram": lambda r, path: pixel_histogram(r["eda"]["pixel_histogram"], path),
    "eda_brightness": lambda r, path: brightness_per_class(r["eda"]["per_class"], path),
    "probe_shift": lambda r, path: shift_figure(r["probes"]["shift"], path),
    "probe_locality": lambda r, path: locality_figure(r["probes"]["locality"], path),
    "probe_efficiency": lambda r, path: efficiency_figure(r["probes"]["efficiency"], path),
    "probe_augmentation": lambda r, path: shift_curves(
        r["probes"]["augmentation"]["shifts"], r["probes"]["augmentation"]["curves"],
        min(t["n"] for t in r["probes"]["augmentation"]["tests"]), path),
    "probe_weight_sharing": lambda r, path: weight_sharing_figure(r["probes"]["assumptions"]["weight_sharing"], path),
    "probe_equivariance": lambda r, path: equivariance_figure(r["probes"]["assumptions"]["equivariance"],
                                                              r["probes"]["shift"], path),
    "probe_receptive_field": lambda r, path: receptive_field_figure(r["probes"]["assumptions"]["receptive_field"],
                                                                    path),
}


# Figures of sections a study may leave out: drawn only when this says the section is there.
DRAWN_WHEN = {"probe_augmentation": lambda r: bool((r["probes"].get("augmentation") or {}).get("complete")),
              "probe_weight_sharing": lambda r: bool((r["probes"]["assumptions"]["weight_sharing"] or {})
                                                     .get("complete"))}


def model_key(model: str) -> str:
    """How a model's figures are named: ``cnn-32-64-128`` -> ``cnn_32_64_128`` (_curves.png, _confusion.png)."""
    return model.replace("-", "_")
