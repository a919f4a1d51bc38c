"""The study's figures drawn again, as the study drew them: from results.json, the run stores (curves, confusion
matrices, weights) and the study's images. The study draws its figures with these functions (study/sections.py);
the report notebook draws them again through ``StudyResult.plot`` (report/notebook.py).

Light to import on purpose: a notebook kernel imports this before its first cell, and only the figures that load a
model (first-layer kernels, feature maps) import torch, when they are drawn.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from convlens.data.permutation import permute_pixels, pixel_permutation
from convlens.eda import mean_images
from convlens.experiments.store import RunStore
from convlens.report import figures

if TYPE_CHECKING:
    from convlens.data.dataset import ImageDataset

MLP, CNN = "mlp-128-64", "cnn-32-64-128"  # the two models of the cnn-vs-mlp and locality experiments
MLP_LEVEL, CNN_LEVEL = f"model={MLP}", f"model={CNN}"  # their levels in cnn-vs-mlp
NAMES = {MLP: "MLP", CNN: "CNN"}  # how the report (and results.json's probe keys) call them


def samples_figure(ds: ImageDataset, sample_indices: dict[str, list[int]], path: Path | None = None):
    return figures.image_grid([[ds.train_images[i] for i in sample_indices[n]] for n in ds.class_names],
                              list(ds.class_names), path, title="Random training images per class")


def mean_images_figure(ds: ImageDataset, path: Path | None = None):
    return figures.image_grid([list(mean_images(ds))], ["mean"], path, col_labels=list(ds.class_names),
                              title="Mean training image per class")


def duplicates_figure(ds: ImageDataset, duplicates: dict, path: Path | None = None):
    pairs = duplicates["exact_examples"] + duplicates["near_examples"]
    return figures.image_grid(
        [[ds.test_images[p["test_index"]], ds.train_images[p["train_index"]]] for p in pairs],
        [f"test {p['test_index']} / train {p['train_index']}\nRMS {p['rms']:.3f}" for p in pairs],
        path, col_labels=["test", "train"], title="Test images found in the training set")


def missed_figure(missed: dict, label: str, ds: ImageDataset, path: Path | None = None):
    """The test images ``label`` gets wrong on the most seeds, with their true and most frequent wrong class."""
    names, shown = ds.class_names, missed["images"]
    return figures.flip_gallery(
        [(f"{label}:\nmissed most often", [ds.test_images[m["index"]] for m in shown],
          [f"#{m['index']} {names[m['true']]}\ntaken for {names[m['predicted']]}\nwrong on {m['missed_seeds']}/"
           f"{len(missed['seeds'])} seeds" for m in shown])],
        path, f"{label}: the test images it gets wrong on the most of its {len(missed['seeds'])} seeds")


def permuted_examples_figure(ds: ImageDataset, path: Path | None = None):
    perm = pixel_permutation(ds.test_images.shape[1] * ds.test_images.shape[2])
    examples = ds.test_images[:6]
    return figures.image_grid([list(examples), list(permute_pixels(examples, perm))], ["original", "permuted"], path,
                              title="The same test images, pixels reordered by the one fixed permutation")


def filters_figure(stores: dict[str, RunStore], path: Path | None = None) -> tuple:
    """(figure, its row labels): first-layer kernels of seed 0 per kernel size (the kernel-size experiment if run,
    else the CNN)."""
    if "kernel-size" in stores:
        store = stores["kernel-size"]
        labels_in_order = [lv["label"] for lv in store.read_experiment()["levels"]]
    else:
        store, labels_in_order = stores["cnn-vs-mlp"], [CNN_LEVEL]
    from convlens.models.checkpoint import load_model
    from convlens.probes.activations import first_layer_filters
    rows, labels = [], []
    for label in labels_in_order:
        if store.status(label, 0) != "done":
            continue
        model, _ = load_model(store.run_dir(label, 0))
        weights = first_layer_filters(model)
        rows.append(list(weights[:16]))
        labels.append(f"{label}\n({weights.shape[1]}x{weights.shape[2]})")
    fig = figures.image_grid(rows, labels, path, cmap="RdBu_r", symmetric=True,
                             title="First-layer kernels, seed 0 (first 16 of each; red +, blue -)")
    return fig, labels


def feature_maps_figure(store: RunStore, ds: ImageDataset, index: int, path: Path | None = None) -> tuple:
    """(figure, the maps): test image ``index`` through each conv block of the CNN of seed 0."""
    from convlens.data.dataset import images_to_tensor
    from convlens.models.checkpoint import load_model
    from convlens.probes.activations import feature_maps
    model, _ = load_model(store.run_dir(CNN_LEVEL, 0))
    maps = feature_maps(model, images_to_tensor(ds.test_images[index:index + 1]))
    rows = [[ds.test_images[index]]] + [list(m[:8]) for _, m in maps]
    labels = ["input"] + [f"{name}\n{m.shape[0]}x{m.shape[1]}x{m.shape[2]}" for name, m in maps]
    fig = figures.image_grid(rows, labels, path, cmap="viridis",
                             title=f"Test image {index} ({ds.class_names[int(ds.test_labels[index])]}) through each "
                                   "conv block of the CNN, seed 0 (first 8 channels)")
    return fig, maps


def flip_gallery(comparison: dict, ds: ImageDataset, path: Path | None = None):
    """The test images one side of a comparison gets right and the other wrong on every seed."""
    names, e = ds.class_names, comparison["evidence"]
    rows = []
    for key, who in (("lost_examples", f"{comparison['from']} right,\n{comparison['changed']} wrong"),
                     ("gained_examples", f"{comparison['changed']} right,\n{comparison['from']} wrong")):
        shown = e[key]
        rows.append((who, [ds.test_images[x["index"]] for x in shown],
                     [f"#{x['index']} {names[x['true']]}\n{comparison['from']}: {names[x['reference_predicted']]}\n"
                      f"{comparison['changed']}: {names[x['level_predicted']]}" for x in shown]))
    title = (f"{comparison['label']}: test images lost ({e['lost_every_seed']}) and gained ({e['gained_every_seed']}) "
             f"on every seed; predictions of seed {e['per_seed'][0]['seed']}")
    return figures.flip_gallery(rows, path, title)


def figure_drawers(results: dict, root: Path, dataset: Callable[[], ImageDataset]) -> dict[str, Callable[[], Any]]:
    """Figure name (as in figures/) -> a function that draws it again, as the study drew it: from results.json, from
    the run stores under ``root`` (curves, confusion matrices, weights) and from the study's images (``dataset()``,
    called only when an image figure is drawn). The report notebook rebuilds the report with these
    (``StudyResult.plot``)."""
    stores = {name: RunStore(root / "experiments" / name) for name in results["experiments"]}
    seeds, classes = results["study"]["config"]["seeds"], results["eda"]["class_names"]
    drawers: dict[str, Callable[[], Any]] = {name: partial(draw, results, None)
                                             for name, draw in figures.FROM_RESULTS.items()
                                             if figures.DRAWN_WHEN.get(name, lambda r: True)(results)}
    core = stores["cnn-vs-mlp"]
    for section in ("baseline", "design"):
        model = results[section]["name"]
        key, label, level = figures.model_key(model), NAMES.get(model, model), f"model={model}"
        drawers[f"{key}_curves"] = lambda label=label, level=level: figures.model_curves(
            label, core.done_runs(level, seeds))
        drawers[f"{key}_confusion"] = lambda label=label, level=level: figures.model_confusion(
            label, core.done_runs(level, seeds), classes)
        if results[section]["classification"]["most_missed"]["images"]:
            drawers[f"{key}_missed"] = lambda label=label, missed=results[section]["classification"]["most_missed"]: \
                missed_figure(missed, label, dataset())
    eda = results["eda"]
    drawers["eda_samples"] = lambda: samples_figure(dataset(), eda["sample_indices"])
    drawers["eda_mean_images"] = lambda: mean_images_figure(dataset())
    if eda["duplicates"]["exact_examples"] + eda["duplicates"]["near_examples"]:
        drawers["eda_duplicates"] = lambda: duplicates_figure(dataset(), eda["duplicates"])
    drawers["probe_permuted_examples"] = lambda: permuted_examples_figure(dataset())
    drawers["probe_filters"] = lambda: filters_figure(stores)[0]
    drawers["probe_feature_maps"] = lambda: feature_maps_figure(
        core, dataset(), results["probes"]["feature_maps"]["test_index"])[0]
    for name, summary in results["experiments"].items():
        levels, store = [lv for lv in summary["levels"] if lv["n"] > 0], stores[name]
        if levels:
            drawers[f"experiment_{name}_confusion"] = lambda levels=levels, store=store, summary=summary: \
                figures.level_confusions(levels, {lv["label"]: store.done_runs(lv["label"], summary["seeds"])
                                                  for lv in levels}, classes)
        for i, c in enumerate(summary["comparisons"]):
            if c.get("evidence"):
                drawers[f"experiment_{name}_flips_{i}"] = lambda c=c: flip_gallery(c, dataset())
    return drawers
