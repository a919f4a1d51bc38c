"""The report's sections as numbers (and figures), computed from the dataset and the run stores.

Training happened before (the experiment stage); here models are only loaded and evaluated. Every sentence
that states a result is built from the numbers beside it and worded by the statistical test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from convlens.data.dataset import ImageDataset, images_to_tensor
from convlens.data.permutation import permute_pixels, pixel_permutation
from convlens.eda import explore, mean_images
from convlens.experiments.store import RunStore, status_of
from convlens.models.checkpoint import load_model
from convlens.models.registry import create_model
from convlens.models.summary import summarize
from convlens.probes.activations import feature_maps, first_layer_filters
from convlens.probes.locality import locality_conclusions, locality_effects
from convlens.probes.shift import shift_robustness
from convlens.report import figures
from convlens.stats import mean_ci, paired_comparison, verdict
from convlens.study.config import StudyConfig
from convlens.training import pick_device, uses_channels_last

MLP, CNN = "seed000-mlp", "seed000-cnn"
MLP_LEVEL, CNN_LEVEL = f"model={MLP}", f"model={CNN}"  # levels of the cnn-vs-mlp experiment
NAMES = {MLP: "MLP", CNN: "CNN"}


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _done_runs(store: RunStore, label: str, seeds: int) -> dict[int, dict]:
    runs = {}
    for seed in range(seeds):
        metrics = store.metrics(label, seed)
        if status_of(metrics) == "done":
            runs[seed] = metrics
    return runs


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


# 1. Dataset & EDA ---------------------------------------------------------------------------------------------

def eda_section(ds: ImageDataset, fig_dir: Path) -> dict:
    eda = explore(ds)
    names = list(ds.class_names)
    root = fig_dir.parent
    figs = {
        "class_balance": figures.class_balance(eda["class_counts"], names, fig_dir / "eda_class_balance.png"),
        "samples": figures.image_grid([[ds.train_images[i] for i in eda["sample_indices"][n]] for n in names], names,
                                      fig_dir / "eda_samples.png", title="Random training images per class"),
        "mean_images": figures.image_grid([list(mean_images(ds))], ["mean"], fig_dir / "eda_mean_images.png",
                                          col_labels=names, title="Mean training image per class"),
        "pixel_histogram": figures.pixel_histogram(eda["pixel_histogram"], fig_dir / "eda_pixel_histogram.png"),
        "brightness": figures.brightness_per_class(eda["per_class"], fig_dir / "eda_brightness.png"),
    }
    pairs = eda["duplicates"]["exact_examples"] + eda["duplicates"]["near_examples"]
    if pairs:
        figs["duplicates"] = figures.image_grid(
            [[ds.test_images[p["test_index"]], ds.train_images[p["train_index"]]] for p in pairs],
            [f"test {p['test_index']} / train {p['train_index']}\nRMS {p['rms']:.3f}" for p in pairs],
            fig_dir / "eda_duplicates.png", col_labels=["test", "train"], title="Test images found in the training set")
    eda["figures"] = {k: _rel(v, root) for k, v in figs.items()}
    brightest = max(eda["per_class"], key=lambda c: c["mean_brightness"])
    darkest = min(eda["per_class"], key=lambda c: c["mean_brightness"])
    dup = eda["duplicates"]
    eda["findings"] = [
        f"{eda['train']['n']:,} training and {eda['test']['n']:,} test images of {eda['train']['shape'][0]}x"
        f"{eda['train']['shape'][1]} px, {eda['dtype']}, grey levels {eda['pixel_range']['train'][0]}-"
        f"{eda['pixel_range']['train'][1]}; {len(names)} classes.",
        ("Classes are exactly balanced" if eda["imbalance_ratio"]["train"] == 1 else
         f"The largest class has {eda['imbalance_ratio']['train']:.2f}x the images of the smallest") +
        f" in the training set ({min(eda['class_counts']['train']):,}-{max(eda['class_counts']['train']):,} per class),"
        f" so accuracy is a fair summary metric.",
        f"{eda['zero_pixel_fraction'] * 100:.1f}% of training pixels are pure background (0); mean pixel "
        f"{eda['normalisation']['train_mean']:.4f}, std {eda['normalisation']['train_std']:.4f} after scaling by 1/255.",
        f"{brightest['class']} is the brightest class ({brightest['mean_brightness'] * 100:.1f}% of 255 on average), "
        f"{darkest['class']} the darkest ({darkest['mean_brightness'] * 100:.1f}%): brightness alone separates some "
        "classes, which an MLP can use without any notion of shape.",
        f"{dup['exact']} test images are byte-identical to a training image and {dup['near']} more are near "
        f"duplicates (RMS difference <= {dup['max_rms']}); "
        + ("test accuracy is therefore slightly optimistic for those." if dup["exact"] + dup["near"] else
           "the test set is clean of them."),
    ]
    return eda


# 2. Baseline (MLP) and 3. CNN design ------------------------------------------------------------------------

def _most_confused(confusion: np.ndarray, names: list[str], top: int = 3) -> list[dict]:
    """Class pairs by the share of their test images mistaken for each other (both directions)."""
    pairs = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            mistaken = confusion[i, j] + confusion[j, i]
            pairs.append({"pair": [names[i], names[j]], "mistaken": int(mistaken),
                          "share": float(mistaken / max(confusion[i].sum() + confusion[j].sum(), 1))})
    return sorted(pairs, key=lambda p: -p["share"])[:top]


def model_section(name: str, runs: dict[int, dict], level: dict, names: list[str], fig_dir: Path, root: Path) -> dict:
    """Architecture summary, curves, test metrics, per-class accuracy, confusion of one model over its seeds."""
    summary = summarize(create_model(name), name).to_dict()
    confusion = np.sum([r["confusion_matrix"] for r in runs.values()], axis=0)
    per_class = level["per_class_accuracy"]
    key = name.replace("-", "_")
    figs = {"curves": figures.training_curves([r["history"] for r in runs.values()], f"{NAMES.get(name, name)}",
                                              fig_dir / f"{key}_curves.png"),
            "confusion": figures.confusion_matrices([confusion], [f"{NAMES.get(name, name)}, test set, "
                                                                  f"summed over n={len(runs)} seeds"],
                                                    names, fig_dir / f"{key}_confusion.png")}
    worst, best = int(np.argmin(per_class)), int(np.argmax(per_class))
    return {
        "name": name, "summary": summary, "n": len(runs),
        "test_accuracy": level["test_accuracy"], "test_loss": level["test_loss"],
        "train_seconds": level["train_seconds"], "inference_ms_per_image": level["inference_ms_per_image"],
        "per_class_accuracy": dict(zip(names, per_class)),
        "hardest_class": {"class": names[worst], "accuracy": per_class[worst]},
        "easiest_class": {"class": names[best], "accuracy": per_class[best]},
        "most_confused": _most_confused(confusion, names),
        "overfit_gap": mean_ci([r["history"][-1]["train_accuracy"] - r["history"][-1]["val_accuracy"]
                                for r in runs.values()]).to_dict(),
        "figures": {k: _rel(v, root) for k, v in figs.items()},
    }


def baseline_findings(mlp: dict) -> list[str]:
    conf = mlp["most_confused"]
    return [
        f"Test accuracy {_pct(mlp['test_accuracy']['mean'])} ± {mlp['test_accuracy']['std'] * 100:.2f} pp "
        f"(mean ± std, n={mlp['n']} seeds) with {mlp['summary']['params']['total']:,} parameters.",
        f"Per-class accuracy ranges from {_pct(mlp['hardest_class']['accuracy'])} ({mlp['hardest_class']['class']}) to "
        f"{_pct(mlp['easiest_class']['accuracy'])} ({mlp['easiest_class']['class']}).",
        "Most confused pairs: " + "; ".join(f"{p['pair'][0]} / {p['pair'][1]} ({p['share'] * 100:.1f}% of their "
                                            f"test images mistaken for each other)" for p in conf) + ".",
        "Its limitation is structural: the first layer flattens the image, so every weight belongs to one "
        "fixed pixel position. Nothing it learns about a collar at one place transfers to the next pixel; the "
        "shift probe below measures what that costs.",
    ]


def design_findings(cnn: dict, mlp: dict) -> list[str]:
    layers = cnn["summary"]["layers"]
    convs = [lay for lay in layers if lay["layer"].startswith("Conv2D")]
    last_conv = convs[-1]
    last_rf = [lay for lay in layers if lay["receptive_field"] is not None][-1]
    size = cnn["summary"]["input_shape"][0]
    total, macs = cnn["summary"]["params"]["total"], cnn["summary"]["macs"]
    conv_params = sum(lay["params_trainable"] for lay in convs)
    conv_macs = sum(lay["macs"] for lay in convs)
    block_macs = [c["macs"] for c in convs]
    even = len(block_macs) > 2 and max(block_macs[1:]) <= 1.05 * min(block_macs[1:])
    lines = [
        f"{len(convs)} convolution blocks with {', '.join(str(c['output_shape'][-1]) for c in convs)} filters, "
        f"costing {', '.join(f'{m / 1e6:.2f}' for m in block_macs)} M multiply-adds per image"
        + (": after the first block (a single input channel), doubling the channels while pooling halves the "
           "resolution keeps the cost per block constant, trading space for features." if even else "."),
        f"Receptive field: the first convolution sees {convs[0]['receptive_field']}x{convs[0]['receptive_field']} px; "
        f"the last one sees {last_conv['receptive_field']}x{last_conv['receptive_field']} px of the {size}x{size} "
        f"image, and after the last pooling each unit covers {last_rf['receptive_field']}x{last_rf['receptive_field']}"
        " px: deep enough to relate distant parts of a garment (sleeve to collar) before the dense head.",
        f"Convolutions hold {conv_params / total * 100:.1f}% of the {total:,} parameters but do "
        f"{conv_macs / macs * 100:.1f}% of the {macs / 1e6:.1f} M multiply-adds per image: weight sharing makes "
        "them cheap in parameters and expensive in compute; the dense head is the opposite.",
        f"Against the MLP baseline ({mlp['summary']['params']['total']:,} parameters, "
        f"{mlp['summary']['macs'] / 1e6:.2f} M multiply-adds): {total / mlp['summary']['params']['total']:.1f}x the "
        f"parameters and {macs / mlp['summary']['macs']:.0f}x the compute per image.",
    ]
    return lines


# 5. Interpretation probes -------------------------------------------------------------------------------------

def _test_tensors(ds: ImageDataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = images_to_tensor(ds.test_images, device, uses_channels_last(device))
    return x, torch.as_tensor(ds.test_labels.astype(np.int64), device=device)


def shift_section(store: RunStore, seeds: int, ds: ImageDataset, max_shift: int, fig_dir: Path, root: Path) -> dict:
    device = pick_device("auto")
    x, y = _test_tensors(ds, device)
    per_seed: dict[str, dict[int, list[float]]] = {}
    mismatch = 0.0
    for name, label in ((MLP, MLP_LEVEL), (CNN, CNN_LEVEL)):
        per_seed[name] = {}
        for seed, metrics in _done_runs(store, label, seeds).items():
            model, _ = load_model(store.run_dir(label, seed), device)
            if uses_channels_last(device):
                model = model.to(memory_format=torch.channels_last)
            per_seed[name][seed] = shift_robustness(model, x, y, max_shift)
            mismatch = max(mismatch, abs(per_seed[name][seed][0] - metrics["test_accuracy"]))
    shifts = list(range(max_shift + 1))
    curves = {name: [mean_ci([acc[s] for acc in per_seed[name].values()]).to_dict() for s in shifts]
              for name in per_seed}
    seeds_both = sorted(set(per_seed[MLP]) & set(per_seed[CNN]))
    tests = []
    for s in shifts[1:]:  # per shift: the CNN's loss vs the MLP's loss, paired by seed
        loss = {n: [per_seed[n][k][s] - per_seed[n][k][0] for k in seeds_both] for n in per_seed}
        c = paired_comparison(loss[CNN], loss[MLP])
        tests.append({"shift": s, **c.to_dict(), "verdict": verdict(c, c.p_value, higher="smaller loss for the CNN",
                                                                     lower="larger loss for the CNN")})
    fig = figures.shift_curves(shifts, {NAMES[n]: curves[n] for n in curves}, len(seeds_both),
                               fig_dir / "probe_shift.png")
    findings = []
    for t in tests:
        m, c = curves[MLP][t["shift"]]["mean"], curves[CNN][t["shift"]]["mean"]
        findings.append(f"Shift {t['shift']} px: CNN {_pct(c)} (change {(c - curves[CNN][0]['mean']) * 100:+.2f} pp), "
                        f"MLP {_pct(m)} (change {(m - curves[MLP][0]['mean']) * 100:+.2f} pp); CNN loss minus "
                        f"MLP loss {t['diff'] * 100:+.2f} pp: {t['verdict']}.")
    return {"shifts": shifts, "per_seed": {n: {str(k): v for k, v in d.items()} for n, d in per_seed.items()},
            "curves": curves, "tests": tests, "findings": findings,
            "shift0_max_abs_difference_from_test_accuracy": mismatch,
            "figures": {"shift": _rel(fig, root)}}


def locality_section(store: RunStore, seeds: int, ds: ImageDataset, fig_dir: Path, root: Path) -> dict:
    record = store.read_experiment()
    accuracy: dict[str, dict[str, dict[int, float]]] = {}
    for level in record["levels"]:
        model, pixels = level["values"]["model"], level["values"]["pixels"]
        accuracy.setdefault(model, {})[pixels] = {s: m["test_accuracy"]
                                                  for s, m in _done_runs(store, level["label"], seeds).items()}
    effects = locality_effects(accuracy)
    n = min(len(e["seeds"]) for e in effects["models"].values())
    fig = figures.grouped_bars(["original pixels", "permuted pixels"],
                               {NAMES.get(m, m): [e["original"], e["permuted"]] for m, e in effects["models"].items()},
                               n, "Locality probe", fig_dir / "probe_locality.png")
    perm = pixel_permutation(ds.test_images.shape[1] * ds.test_images.shape[2])
    examples = ds.test_images[:6]
    example_fig = figures.image_grid([list(examples), list(permute_pixels(examples, perm))], ["original", "permuted"],
                                     fig_dir / "probe_permuted_examples.png",
                                     title="The same test images, pixels reordered by the one fixed permutation")
    return {**effects, "findings": locality_conclusions(effects, NAMES),
            "figures": {"locality": _rel(fig, root), "examples": _rel(example_fig, root)}}


def filters_section(stores: dict[str, RunStore], fig_dir: Path, root: Path) -> dict:
    """First-layer kernels of seed 0 per kernel size (the kernel-size experiment if run, else the CNN)."""
    if "kernel-size" in stores:
        store = stores["kernel-size"]
        labels_in_order = [lv["label"] for lv in store.read_experiment()["levels"]]
    else:
        store, labels_in_order = stores["cnn-vs-mlp"], [CNN_LEVEL]
    rows, labels = [], []
    for label in labels_in_order:
        if store.status(label, 0) != "done":
            continue
        model, _ = load_model(store.run_dir(label, 0))
        weights = first_layer_filters(model)
        rows.append(list(weights[:16]))
        labels.append(f"{label}\n({weights.shape[1]}x{weights.shape[2]})")
    fig = figures.image_grid(rows, labels, fig_dir / "probe_filters.png", cmap="RdBu_r", symmetric=True,
                             title="First-layer kernels, seed 0 (first 16 of each; red +, blue -)")
    return {"levels": labels, "figures": {"filters": _rel(fig, root)}}


def feature_map_section(store: RunStore, ds: ImageDataset, fig_dir: Path, root: Path, index: int = 0) -> dict:
    model, _ = load_model(store.run_dir(CNN_LEVEL, 0))
    image = images_to_tensor(ds.test_images[index:index + 1])
    maps = feature_maps(model, image)
    rows = [[ds.test_images[index]]] + [list(m[:8]) for _, m in maps]
    labels = ["input"] + [f"{name}\n{m.shape[0]}x{m.shape[1]}x{m.shape[2]}" for name, m in maps]
    fig = figures.image_grid(rows, labels, fig_dir / "probe_feature_maps.png", cmap="viridis",
                             title=f"Test image {index} ({ds.class_names[int(ds.test_labels[index])]}) through each "
                                   "conv block of the CNN, seed 0 (first 8 channels)")
    return {"test_index": index, "class": ds.class_names[int(ds.test_labels[index])],
            "blocks": [{"name": n, "shape": list(m.shape)} for n, m in maps], "figures": {"feature_maps": _rel(fig, root)}}


def efficiency_section(summaries: dict[str, dict], seeds: int, fig_dir: Path, root: Path) -> dict:
    """Every distinct configuration trained on original pixels: accuracy against parameters and compute."""
    points, seen = [], set()
    for name, summary in summaries.items():
        for level in summary["levels"]:
            if level["n"] == 0 or level["values"].get("pixels") == "permuted":
                continue
            key = (level["params"], level["macs"], round(level["test_accuracy"]["mean"], 6))
            if key in seen:  # the same runs reached through another experiment
                continue
            seen.add(key)
            points.append({"name": f"{name}: {level['label']}", "params": level["params"], "macs": level["macs"],
                           "test_accuracy": level["test_accuracy"], "train_seconds": level["train_seconds"],
                           "n": level["n"],
                           "errors_per_mparam": (1 - level["test_accuracy"]["mean"]) / level["params"] * 1e6})
    points.sort(key=lambda p: p["params"])
    best = max(points, key=lambda p: p["test_accuracy"]["mean"])
    smallest_close = min((p for p in points if best["test_accuracy"]["mean"] - p["test_accuracy"]["mean"] <= 0.005),
                         key=lambda p: p["params"])  # means only: the experiment tables above carry the tests
    fig = figures.efficiency(points, seeds, fig_dir / "probe_efficiency.png")
    findings = [f"Highest mean accuracy: {best['name']}, {_pct(best['test_accuracy']['mean'])} with {best['params']:,} "
                f"parameters and {best['macs'] / 1e6:.1f} M multiply-adds per image.",
                f"Fewest parameters within 0.5 pp of that mean: {smallest_close['name']} ({smallest_close['params']:,} "
                f"parameters, {_pct(smallest_close['test_accuracy']['mean'])})."]
    return {"points": points, "findings": findings, "figures": {"efficiency": _rel(fig, root)}}


def experiment_figures(stores: dict[str, RunStore], summaries: dict[str, dict], names: list[str], fig_dir: Path,
                       root: Path) -> dict[str, dict]:
    """Per experiment: the one-factor diff, its plots, and confusion matrices per level (summed over seeds)."""
    details = {}
    for name, store in stores.items():
        summary = summaries[name]
        levels = [lv for lv in summary["levels"] if lv["n"] > 0]
        matrices = [np.sum([m["confusion_matrix"] for m in _done_runs(store, lv["label"], summary["seeds"]).values()],
                           axis=0) for lv in levels]
        figs = {p.stem: _rel(p, root) for p in sorted((store.root / "plots").glob("*.png"))}
        if levels:
            figs["confusion"] = _rel(figures.confusion_matrices(matrices, [f"{lv['label']} (n={lv['n']})" for lv in levels],
                                                                names, fig_dir / f"experiment_{name}_confusion.png"), root)
        details[name] = {"diff": store.read_experiment()["diff"], "figures": figs}
    return details


def analysis_sections(config: StudyConfig, stores: dict[str, RunStore], summaries: dict[str, dict],
                      ds: ImageDataset, fig_dir: Path) -> dict:
    root, names, seeds = fig_dir.parent, list(ds.class_names), config.seeds
    core = stores["cnn-vs-mlp"]
    levels = {lv["label"]: lv for lv in summaries["cnn-vs-mlp"]["levels"]}
    mlp = model_section(MLP, _done_runs(core, MLP_LEVEL, seeds), levels[MLP_LEVEL], names, fig_dir, root)
    cnn = model_section(CNN, _done_runs(core, CNN_LEVEL, seeds), levels[CNN_LEVEL], names, fig_dir, root)
    mlp["findings"], cnn["findings"] = baseline_findings(mlp), design_findings(cnn, mlp)
    return {
        "baseline": mlp,
        "design": cnn,
        "experiment_details": experiment_figures(stores, summaries, names, fig_dir, root),
        "probes": {
            "shift": shift_section(core, seeds, ds, config.shift_max, fig_dir, root),
            "locality": locality_section(stores["locality"], seeds, ds, fig_dir, root),
            "filters": filters_section(stores, fig_dir, root),
            "feature_maps": feature_map_section(core, ds, fig_dir, root),
            "efficiency": efficiency_section(summaries, seeds, fig_dir, root),
        },
    }


# 6. Deployment -----------------------------------------------------------------------------------------------

def export_section(config: StudyConfig, store: RunStore, out: Path) -> dict:
    from convlens.serving.export import export_run
    source = store.run_dir(CNN_LEVEL, 0)
    metrics = store.metrics(CNN_LEVEL, 0)
    if status_of(metrics) != "done":
        return {"exported": False, "reason": "the reference CNN (seed 0) did not finish"}
    onnx, note = config.onnx, None
    if onnx:
        try:
            import onnx as _onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError:
            onnx, note = False, "model.onnx not written: install the onnx extra (pip install 'convlens[onnx]')"
    rel = export_run(source, out / "model", onnx=onnx)
    return {"exported": True, "model_dir": str(rel), "onnx": onnx, "note": note,
            "source_run": _rel(source, out), "test_accuracy": metrics["test_accuracy"],
            "commands": {
                "predict": f"convlens predict {rel} image.png",
                "serve": f"convlens serve {rel}  # http://127.0.0.1:8080/ : web page; POST /invocations; GET /ping",
                "sagemaker_train": "convlens sagemaker train --role-arn ARN --bucket BUCKET --dry-run",
                "sagemaker_deploy": "convlens sagemaker deploy --role-arn ARN --bucket BUCKET --job-name JOB "
                                    "--endpoint NAME --dry-run",
                "sagemaker_invoke": "convlens sagemaker invoke --endpoint NAME image.png",
                "sagemaker_delete": "convlens sagemaker delete --endpoint NAME"}}
