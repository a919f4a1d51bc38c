"""The report's sections, assembled: numbers from the dataset and the run stores, statistics from probes/,
figures from report/figures.py and study/redraw.py, sentences from report/findings.py, all into the dict that
becomes results.json.

Training happened before (the experiment stage); here models are only loaded and evaluated.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Any, Callable

import numpy as np

from convlens.config import TrainConfig, model_spec
from convlens.data.dataset import ImageDataset
from convlens.eda import explore
from convlens.experiments.store import RunStore
from convlens.figure_files import figures_in
from convlens.models.checkpoint import WEIGHTS_FILE
from convlens.models.network import Network
from convlens.models.presets import PRESETS
from convlens.models.summary import summarize
from convlens.probes.confusion import most_confused_pairs, most_missed, report_over_seeds
from convlens.probes.efficiency import efficiency_points
from convlens.probes.equivariance import equivariance, equivariance_over_seeds
from convlens.probes.receptive_field import effective_receptive_fields, erf_summary, kernel_size_effects
from convlens.probes.shift import shift_effects, shift_loss_comparisons, shift_robustness
from convlens.report import figures, findings
from convlens.run_files import read_predictions
from convlens.runs import load_with_test_set
from convlens.stats import mean_ci
from convlens.study import redraw
from convlens.study.config import StudyConfig
from convlens.study.redraw import CNN, CNN_LEVEL, MLP, MLP_LEVEL, NAMES
from convlens.training import pick_device


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


# 1. Dataset & EDA ---------------------------------------------------------------------------------------------

def eda_section(ds: ImageDataset, fig_dir: Path) -> dict:
    eda = explore(ds)
    drawn = {"eda": eda}  # the figures drawn from numbers alone, as the notebook rebuilds them from results.json
    figs = {
        "class_balance": figures.FROM_RESULTS["eda_class_balance"](drawn, fig_dir / "eda_class_balance.png"),
        "samples": redraw.samples_figure(ds, eda["sample_indices"], fig_dir / "eda_samples.png"),
        "mean_images": redraw.mean_images_figure(ds, fig_dir / "eda_mean_images.png"),
        "pixel_histogram": figures.FROM_RESULTS["eda_pixel_histogram"](drawn, fig_dir / "eda_pixel_histogram.png"),
        "brightness": figures.FROM_RESULTS["eda_brightness"](drawn, fig_dir / "eda_brightness.png"),
    }
    if eda["duplicates"]["exact_examples"] + eda["duplicates"]["near_examples"]:
        figs["duplicates"] = redraw.duplicates_figure(ds, eda["duplicates"], fig_dir / "eda_duplicates.png")
    eda["figures"] = {k: _rel(v, fig_dir.parent) for k, v in figs.items()}
    eda["findings"] = findings.eda_findings(eda)
    return eda


# 2. Baseline (MLP) and 3. CNN design ------------------------------------------------------------------------

def model_section(name: str, runs: dict[int, dict], level: dict, names: list[str], fig_dir: Path, root: Path,
                  dataset: str = "fashion-mnist") -> dict:
    """Architecture summary, curves, test metrics, per-class accuracy, confusion of one model over its seeds."""
    summary = summarize(Network(model_spec(TrainConfig(model=name, dataset=dataset))), name).to_dict()
    confusion = np.sum([r["confusion_matrix"] for r in runs.values()], axis=0)
    per_class = level["per_class_accuracy"]
    key = figures.model_key(name)
    figs = {"curves": figures.model_curves(NAMES[name], runs, fig_dir / f"{key}_curves.png"),
            "confusion": figures.model_confusion(NAMES[name], runs, names, fig_dir / f"{key}_confusion.png")}
    worst, best = int(np.argmin(per_class)), int(np.argmax(per_class))
    return {
        "name": name, "summary": summary, "n": len(runs),
        "write_ups": [r.write_up for r in PRESETS[name].reproduces],  # which reference write-ups built it
        "test_accuracy": level["test_accuracy"], "test_loss": level["test_loss"],
        "train_seconds": level["train_seconds"], "inference_ms_per_image": level["inference_ms_per_image"],
        "per_class_accuracy": dict(zip(names, per_class)),
        "hardest_class": {"class": names[worst], "accuracy": per_class[worst]},
        "easiest_class": {"class": names[best], "accuracy": per_class[best]},
        "most_confused": most_confused_pairs(confusion, names),
        # last epoch, both in eval mode: a fixed training subset the size of the validation split vs validation
        "overfit_gap": mean_ci([r["history"][-1]["train_eval_accuracy"] - r["history"][-1]["val_accuracy"]
                                for r in runs.values() if r["history"][-1].get("train_eval_accuracy") is not None],
                               bounds=(-1, 1)).to_dict(),
        "figures": {k: _rel(v, root) for k, v in figs.items()},
    }


def classification_section(name: str, store: RunStore, seeds: int, ds: ImageDataset, fig_dir: Path,
                           root: Path) -> dict:
    """Precision, recall and F1 per class and their macro average over the seeds of one model (scikit-learn's
    classification report), and the test images it misses on the most seeds."""
    level = f"model={name}"
    runs = store.done_runs(level, seeds)
    stored = {seed: read_predictions(store.run_dir(level, seed)) for seed in runs}
    missed = most_missed({seed: p for seed, p in stored.items() if p is not None})
    report = report_over_seeds([np.asarray(r["confusion_matrix"]) for r in runs.values()], list(ds.class_names))
    result = {"report": report, "most_missed": missed, "findings": findings.classification_findings(report, missed,
                                                                                                     ds.class_names)}
    if missed["images"]:
        fig = redraw.missed_figure(missed, NAMES.get(name, name), ds, fig_dir / f"{figures.model_key(name)}_missed.png")
        result["figures"] = {"missed": _rel(fig, root)}
    else:
        result["figures"] = {}
    return result


# 5. Interpretation probes -------------------------------------------------------------------------------------

def shift_section(store: RunStore, seeds: int, ds: ImageDataset, max_shift: int, fig_dir: Path, root: Path) -> dict:
    device = pick_device("auto")
    per_seed: dict[str, dict[int, list[float]]] = {}
    mismatch, n_images = 0.0, len(ds.test_labels)  # shift 0 must reproduce each run's recorded test accuracy
    for model_name, label in ((MLP, MLP_LEVEL), (CNN, CNN_LEVEL)):
        per_seed[NAMES[model_name]] = {}
        for seed, metrics in store.done_runs(label, seeds).items():
            model, _, x, y = load_with_test_set(store.run_dir(label, seed), ds, device)
            n_images = len(y)
            per_seed[NAMES[model_name]][seed] = shift_robustness(model, x, y, max_shift)
            mismatch = max(mismatch, abs(per_seed[NAMES[model_name]][seed][0] - metrics["test_accuracy"]))
    effects = shift_effects(per_seed, max_shift, n_images)
    fig = figures.shift_figure(effects, fig_dir / "probe_shift.png")
    return {**effects, "per_seed": {n: {str(k): v for k, v in d.items()} for n, d in per_seed.items()},
            "findings": findings.shift_findings(effects),
            "shift0_max_abs_difference_from_test_accuracy": mismatch, "figures": {"shift": _rel(fig, root)}}


def probe_seeds(store: RunStore, label: str, seeds: int, ds: ImageDataset, probe: Callable[..., Any],
                images: int | None = None) -> dict[int, Any]:
    """seed -> ``probe(model, x, y)`` for each finished run of ``label``, reloaded on the device with its test
    images (the first ``images`` of them, when given)."""
    device = pick_device("auto")
    results = {}
    for seed in store.done_runs(label, seeds):
        model, _, x, y = load_with_test_set(store.run_dir(label, seed), ds, device)
        results[seed] = probe(model, x[:images].contiguous(), y[:images]) if images else probe(model, x, y)
    return results


AUGMENTED = "shift:2"  # the augmentation experiment's augmented level


def augmentation_section(store: RunStore, summary: dict, seeds: int, ds: ImageDataset, max_shift: int,
                         fig_dir: Path, root: Path, shift: dict) -> dict:
    """The augmentation grid under the shift probe: accuracy against shift for MLP and CNN trained without and with
    random shifts; per shift, paired tests of each accuracy loss against another's (one family, Holm); the clean
    accuracy and the training time each augmentation costs (the experiment's own comparisons and timings)."""
    cells = {"MLP": (MLP, "none"), "MLP + shift aug": (MLP, AUGMENTED), "CNN": (CNN, "none"),
             "CNN + shift aug": (CNN, AUGMENTED)}
    sizes: set[int] = set()  # test images each run was evaluated on (its test subset)

    def curve(model: Network, x, y) -> list[float]:
        sizes.add(len(y))
        return shift_robustness(model, x, y, max_shift)
    per_seed = {name: probe_seeds(store, f"model={model_name} recipe.augment={augment}", seeds, ds, curve)
                for name, (model_name, augment) in cells.items()}
    n_images = sizes.pop() if len(sizes) == 1 else len(ds.test_labels)
    if any(not runs for runs in per_seed.values()):
        return {"complete": False, "missing": [name for name, runs in per_seed.items() if not runs]}
    # Each pair changes one factor, the augmentation. CNN vs MLP is the shift probe's own test (the same runs):
    # cited from there, not tested twice. The augmented MLP against the plain CNN would change both: not compared.
    pairs = [("MLP + shift aug", "MLP"), ("CNN + shift aug", "CNN")]
    result = shift_loss_comparisons(per_seed, pairs, n_images)
    levels = {(lv["values"]["model"], lv["values"]["recipe.augment"]): lv for lv in summary["levels"]}
    clean = {NAMES[m]: next(c for c in summary["comparisons"] if c["kind"] == "effect"
                            and c["factor"] == "recipe.augment" and c["within"] == f"model={m}") for m in (MLP, CNN)}
    result.update(complete=True, clean=clean, experiment_family=len(summary["comparisons"]),
                  seconds={name: levels[cell]["train_seconds"] for name, cell in cells.items()},
                  timing=summary["timing"], augment=AUGMENTED,
                  per_seed={n: {str(k): v for k, v in d.items()} for n, d in per_seed.items()})
    result["findings"] = findings.augmentation_findings(result, shift)
    fig = figures.FROM_RESULTS["probe_augmentation"]({"probes": {"augmentation": result}},
                                                     fig_dir / "probe_augmentation.png")
    result["figures"] = {"shift": _rel(fig, root)}
    return result


def locality_section(summary: dict, ds: ImageDataset, fig_dir: Path, root: Path) -> dict:
    """The locality experiment's grid, read from its summary: each model on original and permuted pixels, the
    change permuting causes within each model, and the interaction (the CNN's change minus the MLP's)."""
    cells = {(lv["values"]["model"], lv["values"]["pixels"]): lv for lv in summary["levels"]}
    models = {}
    for model in (MLP, CNN):
        change = next(c for c in summary["comparisons"]
                      if c["kind"] == "effect" and c["factor"] == "pixels" and c["within"] == f"model={model}")
        models[NAMES[model]] = {"original": cells[model, "original"]["test_accuracy"],
                                "permuted": cells[model, "permuted"]["test_accuracy"], "change": change}
    interaction = next(c for c in summary["comparisons"] if c["kind"] == "interaction")
    on_permuted = next(c for c in summary["comparisons"]
                       if c["kind"] == "effect" and c["factor"] == "model" and c["within"] == "pixels=permuted")
    effects = {"models": models, "interaction": interaction, "on_permuted": on_permuted,
               "family": len(summary["comparisons"])}
    fig = figures.locality_figure(effects, fig_dir / "probe_locality.png")
    example_fig = redraw.permuted_examples_figure(ds, fig_dir / "probe_permuted_examples.png")
    return {**effects, "findings": findings.locality_findings(effects),
            "figures": {"locality": _rel(fig, root), "examples": _rel(example_fig, root)}}


LCN = "lcn-32-64-128"  # the CNN locally connected: the weight-sharing experiment's middle level
PROBE_IMAGES = 256  # test images the equivariance and receptive-field probes average over (the first ones); 500 took
# 2x the time (12 s of a 5 min study) for confidence intervals over seeds that were already ~0.01 wide


def _turned(c: dict, label: str) -> dict:
    """Comparison ``c`` (level minus reference) read the other way round: reference minus level."""
    swap = {"higher": "lower", "lower": "higher"}
    verdict = " ".join(swap.get(w, w) for w in c["verdict"].split(" ")) if c["verdict"].startswith("significantly") \
        else c["verdict"]
    ci = [None if v is None else -v for v in reversed(c["ci95"])]
    return {"label": label, "n": c["n"], "diff": None if c["diff"] is None else -c["diff"], "ci95": ci,
            "t": None if c.get("t") is None else -c["t"], "p_value": c["p_value"], "p_holm": c["p_holm"],
            "identical": c["identical"], "verdict": verdict, "family": c.get("family", 1)}


def weight_sharing_section(summary: dict) -> dict:
    """The weight-sharing grid, read from its summary: cells (accuracy, parameters, train time) and the two parts of
    the CNN's advantage over the MLP on each pixel order, locality (LCN - MLP) and weight sharing (CNN - LCN),
    which are two of the experiment's comparisons (one Holm family). Incomplete when a cell has no finished run."""
    cells = {(lv["values"]["model"], lv["values"]["pixels"]): lv for lv in summary["levels"]}
    models = {"MLP": MLP, "LCN": LCN, "CNN": CNN}
    if any(lv["n"] == 0 for lv in cells.values()):
        return {"complete": False, "missing": sorted(lv["label"] for lv in cells.values() if lv["n"] == 0)}

    def effect(level: str, pixels: str) -> dict:
        return next(c for c in summary["comparisons"] if c["kind"] == "effect" and c["factor"] == "model"
                    and c["level"] == f"model={level} pixels={pixels}")
    parts = {}
    for pixels in ("original", "permuted"):
        # the reference is the LCN, so MLP vs LCN is read the other way round: locality = LCN - MLP
        parts[pixels] = {"locality": _turned(effect(MLP, pixels), f"model={LCN} vs model={MLP} at pixels={pixels}"),
                         "sharing": effect(CNN, pixels)}
    return {"complete": True,
            "cells": {name: {pixels: {k: cells[m, pixels][k] for k in ("test_accuracy", "train_seconds", "params", "n")}
                             for pixels in ("original", "permuted")} for name, m in models.items()},
            "parts": parts, "family": len(summary["comparisons"]), "timing": summary["timing"]}


def equivariance_section(store: RunStore, seeds: int, ds: ImageDataset, max_shift: int) -> dict:
    """Per conv/pool stage of the CNN and shift 1 .. max_shift: feature-map cosine similarity, over seeds."""
    per_seed = probe_seeds(store, CNN_LEVEL, seeds, ds, lambda model, x, y: equivariance(model, x, max_shift),
                           images=PROBE_IMAGES)
    return {**equivariance_over_seeds(per_seed), "images": min(PROBE_IMAGES, len(ds.test_labels))}


def _erf_of_level(store: RunStore, label: str, seeds: int, ds: ImageDataset, seen: dict) -> dict | None:
    # The study trains a run once and copies it into every experiment that has it (the kernel-size experiment's
    # 3x3 level is the CNN of cnn-vs-mlp): runs with the same weights, byte for byte, are probed once.
    key = tuple(hashlib.sha256((store.run_dir(label, seed) / WEIGHTS_FILE).read_bytes()).hexdigest()
                for seed in store.done_runs(label, seeds))
    if key not in seen:
        per_seed = probe_seeds(store, label, seeds, ds, lambda model, x, y: effective_receptive_fields(model, x),
                               images=PROBE_IMAGES)
        seen[key] = erf_summary(per_seed) if per_seed else None
    return seen[key]


def receptive_field_section(stores: dict[str, RunStore], seeds: int, ds: ImageDataset) -> dict:
    """The CNN's effective receptive field per block and, when the kernel-size experiment ran, each kernel size's,
    with the paired differences against its reference level."""
    seen: dict = {}
    result = {"cnn": _erf_of_level(stores["cnn-vs-mlp"], CNN_LEVEL, seeds, ds, seen),
              "images": min(PROBE_IMAGES, len(ds.test_labels)), "kernel_sizes": None}
    if "kernel-size" in stores:
        record = stores["kernel-size"].read_experiment()
        levels = {lv["label"]: _erf_of_level(stores["kernel-size"], lv["label"], seeds, ds, seen)
                  for lv in record["levels"]}
        levels = {k: v for k, v in levels.items() if v is not None}
        if record["reference"] in levels and len(levels) > 1:
            result["kernel_sizes"] = {"levels": {k: {"seeds": v["seeds"], "blocks": [
                {key: b[key] for key in b if key != "erf"} for b in v["blocks"]]} for k, v in levels.items()},
                **kernel_size_effects(levels, record["reference"])}
    return result


def assumptions_section(config: StudyConfig, stores: dict[str, RunStore], summaries: dict[str, dict],
                        ds: ImageDataset, fig_dir: Path, root: Path, shift: dict) -> dict:
    """What convolution assumes, taken apart: weight sharing vs locality (when its experiment ran), where
    equivariance is lost along the network, and how much of its receptive field each block uses."""
    section = {"weight_sharing": (weight_sharing_section(summaries["weight-sharing"])
                                  if "weight-sharing" in summaries else None),
               "equivariance": equivariance_section(stores["cnn-vs-mlp"], config.seeds, ds, config.shift_max),
               "receptive_field": receptive_field_section(stores, config.seeds, ds)}
    result = {**section, "findings": findings.assumption_findings(section)}
    drawn = {"probes": {"assumptions": result, "shift": shift}}  # as the notebook draws them, from results.json
    figs = {name: figures.FROM_RESULTS[f"probe_{name}"](drawn, fig_dir / f"probe_{name}.png")
            for name in ("weight_sharing", "equivariance", "receptive_field")
            if figures.DRAWN_WHEN.get(f"probe_{name}", lambda r: True)(drawn)}
    return {**result, "figures": {k: _rel(v, root) for k, v in figs.items()}}


def filters_section(stores: dict[str, RunStore], fig_dir: Path, root: Path) -> dict:
    fig, labels = redraw.filters_figure(stores, fig_dir / "probe_filters.png")
    return {"levels": labels, "figures": {"filters": _rel(fig, root)}}


def feature_map_section(store: RunStore, ds: ImageDataset, fig_dir: Path, root: Path, index: int = 0) -> dict:
    fig, maps = redraw.feature_maps_figure(store, ds, index, fig_dir / "probe_feature_maps.png")
    blocks = [{"name": n, "shape": list(m.shape)} for n, m in maps]
    return {"test_index": index, "class": ds.class_names[int(ds.test_labels[index])], "blocks": blocks,
            "finding": findings.feature_map_finding(blocks), "figures": {"feature_maps": _rel(fig, root)}}


def efficiency_section(summaries: dict[str, dict], seeds: int, fig_dir: Path, root: Path) -> dict:
    """Every distinct configuration trained on original pixels: accuracy against parameters and compute."""
    probe = {"points": efficiency_points(summaries), "seeds": seeds}
    fig = figures.efficiency_figure(probe, fig_dir / "probe_efficiency.png")
    return {**probe, "findings": findings.efficiency_findings(probe["points"]),
            "figures": {"efficiency": _rel(fig, root)}}


def experiment_figures(stores: dict[str, RunStore], summaries: dict[str, dict], ds: ImageDataset, fig_dir: Path,
                       root: Path) -> dict[str, dict]:
    """Per experiment: the one-factor diff, its plots, confusion matrices per level (summed over seeds), and a
    gallery of the images each comparison flips on every seed."""
    names = list(ds.class_names)
    details = {}
    for name, store in stores.items():
        summary = summaries[name]
        levels = [lv for lv in summary["levels"] if lv["n"] > 0]
        figs = {p.stem: _rel(p, root) for p in figures_in(store.root / "plots")}
        if levels:
            runs = {lv["label"]: store.done_runs(lv["label"], summary["seeds"]) for lv in levels}
            figs["confusion"] = _rel(figures.level_confusions(levels, runs, names,
                                                              fig_dir / f"experiment_{name}_confusion.png"), root)
        galleries = {}
        for i, c in enumerate(summary["comparisons"]):
            if c.get("evidence"):
                galleries[str(i)] = _rel(redraw.flip_gallery(c, ds, fig_dir / f"experiment_{name}_flips_{i}.png"), root)
        details[name] = {"diff": store.read_experiment()["diff"], "figures": figs, "galleries": galleries}
    return details


def analysis_sections(config: StudyConfig, stores: dict[str, RunStore], summaries: dict[str, dict],
                      ds: ImageDataset, fig_dir: Path) -> dict:
    root, names, seeds = fig_dir.parent, list(ds.class_names), config.seeds
    core = stores["cnn-vs-mlp"]
    levels = {lv["label"]: lv for lv in summaries["cnn-vs-mlp"]["levels"]}
    mlp = model_section(MLP, core.done_runs(MLP_LEVEL, seeds), levels[MLP_LEVEL], names, fig_dir, root, ds.name)
    cnn = model_section(CNN, core.done_runs(CNN_LEVEL, seeds), levels[CNN_LEVEL], names, fig_dir, root, ds.name)
    mlp["findings"] = findings.baseline_findings(mlp, ds.name)
    cnn["findings"] = findings.design_findings(cnn, mlp, ds.name)
    for section, name in ((mlp, MLP), (cnn, CNN)):
        section["classification"] = classification_section(name, core, seeds, ds, fig_dir, root)
    shift = shift_section(core, seeds, ds, config.shift_max, fig_dir, root)
    return {
        "baseline": mlp,
        "design": cnn,
        "experiment_details": experiment_figures(stores, summaries, ds, fig_dir, root),
        "probes": {
            "shift": shift,
            "locality": locality_section(summaries["locality"], ds, fig_dir, root),
            "augmentation": (augmentation_section(stores["augmentation"], summaries["augmentation"], seeds, ds,
                                                  config.shift_max, fig_dir, root, shift)
                             if "augmentation" in stores else None),
            "filters": filters_section(stores, fig_dir, root),
            "feature_maps": feature_map_section(core, ds, fig_dir, root),
            "efficiency": efficiency_section(summaries, seeds, fig_dir, root),
            "assumptions": assumptions_section(config, stores, summaries, ds, fig_dir, root, shift),
        },
    }


# 6. Deployment -----------------------------------------------------------------------------------------------

def onnx_export_skipped(config: StudyConfig) -> str | None:
    """Why the study writes no model.onnx (None: it writes one)."""
    if not config.onnx:
        return "model.onnx not asked for (onnx: false)"
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return "model.onnx not written: install the onnx extra (pip install 'convlens[onnx]')"
    return None


def sagemaker_dataset_args(dataset: str) -> str:
    """What `convlens sagemaker train` needs to train on ``dataset`` (its default is Fashion-MNIST): the dataset
    hyperparameter, and for a folder the folder to upload (the container's channel is the folder)."""
    if dataset == "fashion-mnist":
        return ""
    if dataset.startswith("folder:"):
        return f" --hp dataset=folder --data-dir {shlex.quote(dataset[len('folder:'):])}"
    return f" --hp dataset={dataset}"


def export_section(config: StudyConfig, store: RunStore, out: Path, summary_levels: list[dict] | None = None,
                   dataset: ImageDataset | None = None) -> dict:
    """Export the reference CNN (seed 0) to out/model; ``dataset``: the study's dataset, already loaded (the
    exported examples come from it)."""
    from convlens.serving.export import export_run
    source = store.run_dir(CNN_LEVEL, 0)
    metrics = store.metrics(CNN_LEVEL, 0)
    if store.status(CNN_LEVEL, 0) != "done":
        return {"exported": False, "reason": "the reference CNN (seed 0) did not finish"}
    skipped = onnx_export_skipped(config)
    onnx, note = skipped is None, (skipped if config.onnx else None)
    level = next((lv for lv in summary_levels if lv["label"] == CNN_LEVEL), None) if summary_levels else None
    over_seeds = {k: level["test_accuracy"][k] for k in ("n", "mean", "std", "ci95")} if level else None
    rel = export_run(source, out / "model", onnx=onnx, over_seeds=over_seeds, dataset=dataset)
    return {"exported": True, "model_dir": str(rel), "onnx": onnx, "note": note,
            "source_run": _rel(source, out), "test_accuracy": metrics["test_accuracy"],
            "commands": {
                "predict": f"convlens predict {shlex.quote(str(rel))} image.png",  # pasted into a shell
                "serve": f"convlens serve {shlex.quote(str(rel))}  # http://127.0.0.1:8080/ : web page; POST "
                         "/invocations; GET /ping",
                "sagemaker_train": "convlens sagemaker train --role-arn ARN --bucket BUCKET"
                                   f"{sagemaker_dataset_args(config.dataset)} --dry-run",
                "sagemaker_deploy": "convlens sagemaker deploy --role-arn ARN --bucket BUCKET --job-name JOB "
                                    "--endpoint NAME --dry-run",
                "sagemaker_invoke": "convlens sagemaker invoke --endpoint NAME image.png",
                "sagemaker_delete": "convlens sagemaker delete --endpoint NAME"}}
