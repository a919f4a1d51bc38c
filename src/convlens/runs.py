"""One training run end to end, and its directory: config.json, model.safetensors, metrics.json.

Files are written atomically; metrics.json is written last, so its presence means the run finished
(``status`` "done") or failed with a recorded reason (``status`` "failed").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from convlens.atomic_files import atomic_write_json
from convlens.config import TrainConfig, check_before_training, model_spec
from convlens.data.catalog import FOLDER_PREFIX
from convlens.data.dataset import (
    PIXEL_SCALE,
    DeviceSplits,
    ImageDataset,
    data_checksums,
    images_to_tensor,
    load_named,
    to_device,
)
from convlens.data.permutation import PERMUTATION_SEED
from convlens.errors import DataError, TrainingDiverged, UsageError
from convlens.models.checkpoint import (
    CONFIG_FILE,
    MODEL_FORMAT,
    WEIGHTS_FILE,
    dataset_of,
    load_model,
    read_checked_config,
    save_weights,
    stored_format,
)
from convlens.models.network import Network, check_size, device_memory
from convlens.models.spec import CNNSpec, MLPSpec
from convlens.models.summary import count_params, flops_per_image
from convlens.provenance import provenance
from convlens.records import RUN_FORMAT
from convlens.run_files import METRICS_FILE, PREDICTIONS_FILE, check_finished, check_same_data, write_predictions
from convlens.training import (
    ProgressCallback,
    TrainingOutcome,
    configure_threads,
    evaluate,
    measure_inference_ms,
    pick_device,
    seed_everything,
    train,
    uses_channels_last,
)

# What the model expects; serving and export read this from config.json.
INPUT_CONTRACT = {"shape": [1, 28, 28], "layout": "NCHW", "dtype": "float32",
                  "scale": f"pixel / {PIXEL_SCALE:g}", "range": [0.0, 1.0]}


def input_contract(ds: ImageDataset) -> dict:
    """The input contract for models trained on ``ds``: its (C, H, W), and whether an uploaded image should be
    inverted when its border is light (datasets of light shapes on black: the MNIST family)."""
    from convlens.data.catalog import BUILTIN_DATASETS
    known = BUILTIN_DATASETS.get(ds.name)
    return {**INPUT_CONTRACT, "shape": list(ds.input_shape),
            "invert_light_background": known is not None and known.light_on_dark}


@dataclass(frozen=True)
class RunResult:
    directory: Path | None
    config: dict
    metrics: dict
    model: Network


def _dataset_for(cfg: TrainConfig, dataset: ImageDataset | None) -> tuple[ImageDataset, ImageDataset]:
    """The run's data: (as read, its subsets taken; as the network sees it, in its pixel order)."""
    ds = dataset if dataset is not None else load_named(cfg.dataset, cfg.data_dir)
    if cfg.train_subset is not None or cfg.test_subset is not None:
        ds = ds.subset(cfg.train_subset, cfg.test_subset)
    return ds, ds.with_permuted_pixels() if cfg.pixels == "permuted" else ds


@dataclass
class _PreparedRun:
    """A run up to its training: the model built and seeded, the data on the device, config.json written."""

    cfg: TrainConfig
    out_dir: Path | None
    spec: MLPSpec | CNNSpec
    splits: DeviceSplits
    model: Network
    config: dict
    base_metrics: dict


def _check_run_directory(out_dir: Path) -> None:
    """A run rewrites config.json and removes metrics.json in ``out_dir``: only where they are a convlens run's."""
    config, metrics = out_dir / CONFIG_FILE, out_dir / METRICS_FILE
    if not (config.exists() or metrics.exists()):
        return
    if stored_format(config) != RUN_FORMAT:
        raise UsageError(f"{out_dir} holds a {CONFIG_FILE} or {METRICS_FILE} that is not a convlens run's; nothing "
                         "was written: choose another --out")


def _prepare_run(cfg: TrainConfig, out_dir: Path | None, dataset: ImageDataset | None,
                 timing: dict | None = None) -> _PreparedRun:
    spec = model_spec(cfg)  # validate before any expensive work (loading data)
    if out_dir is not None:
        _check_run_directory(Path(out_dir))
    check_before_training(cfg, len(dataset.train_labels) if dataset is not None else None)
    device = pick_device(cfg.device)
    check_size(spec, training=True, memory=device_memory(device))
    threads = configure_threads(cfg.threads)
    read, ds = _dataset_for(cfg, dataset)
    if ds.input_shape != (spec.in_channels, spec.image_size, spec.image_size) or len(ds.class_names) != spec.num_classes:
        raise UsageError(f"the data ({ds.name}: {ds.input_shape}, {len(ds.class_names)} classes) does not fit the "
                         f"model ({spec.in_channels}, {spec.image_size}, {spec.image_size}; {spec.num_classes} "
                         f"classes); pass the dataset's name with --dataset")
    channels_last = uses_channels_last(device)
    splits = to_device(ds, device, val_fraction=cfg.recipe.val_fraction, seed=cfg.seed, channels_last=channels_last)
    seed_everything(cfg.seed)
    model = Network(spec).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

    trainable, non_trainable = count_params(model)
    input_shape = (spec.in_channels, spec.image_size, spec.image_size)
    config = {
        "format": RUN_FORMAT,
        "model": {"name": cfg.model, "overrides": dict(cfg.overrides), "spec": spec.model_dump(mode="json")},
        "recipe": cfg.recipe.model_dump(mode="json"),
        "seed": cfg.seed,
        "data": {"dataset": ds.name, "origin": ds.source.origin, "directory": str(ds.source.directory),
                 "checksums": data_checksums(ds), "digests": {split: read.digest(split) for split in ("train", "test")},
                 "n_train": len(splits.y_train), "n_val": len(splits.y_val), "n_test": len(splits.y_test),
                 "train_subset": read.subsets[0], "test_subset": read.subsets[1], "pixels": cfg.pixels,
                 **({"permutation_seed": PERMUTATION_SEED} if cfg.pixels == "permuted" else {})},
        "input": input_contract(ds),
        "class_names": list(ds.class_names),
        "provenance": {**provenance(device), "threads": threads},
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        (out_dir / METRICS_FILE).unlink(missing_ok=True)  # a rerun into the same directory starts unfinished
        atomic_write_json(out_dir / CONFIG_FILE, config)

    # FLOPs are counted on a fresh CPU copy: the training model may live on CUDA and in channels_last.
    base_metrics = {"params": {"trainable": trainable, "non_trainable": non_trainable,
                               "total": trainable + non_trainable},
                    "macs": flops_per_image(Network(spec), input_shape)[0] // 2,
                    "timing": {**timing_conditions(config["provenance"]["device"], threads, cfg.workers),
                               **(timing or {})}}
    return _PreparedRun(cfg, out_dir, spec, splits, model, config, base_metrics)


def _record_divergence(run: _PreparedRun, e: TrainingDiverged) -> None:
    if run.out_dir is not None:
        atomic_write_json(run.out_dir / METRICS_FILE, {"status": "failed", "reason": str(e), "epoch": e.epoch,
                                                       "step": e.step, **run.base_metrics})


def _finish_run(run: _PreparedRun, outcome: TrainingOutcome) -> RunResult:
    """Evaluate the trained model on the test set (and its validation, in fp32), write metrics and weights."""
    model, splits, spec, cfg = run.model, run.splits, run.spec, run.cfg
    test = evaluate(model, splits.x_test, splits.y_test, spec.num_classes, cfg.recipe.eval_batch_size)
    # Validation metrics of the model that is kept (early stopping may have restored an earlier epoch).
    val = outcome.final_validation or (evaluate(model, splits.x_val, splits.y_val, spec.num_classes,
                                                cfg.recipe.eval_batch_size) if len(splits.y_val) else None)
    images_seen = len(outcome.history) * len(splits.y_train)
    metrics = {
        "status": "done",
        "test_accuracy": test.accuracy,  # test_correct / n_test
        "test_correct": test.correct,
        "n_test": test.n,
        "test_loss": test.loss,
        "val_accuracy": val.accuracy if val else None,
        "val_loss": val.loss if val else None,
        "train_seconds": outcome.train_seconds,
        "train_images_per_second": images_seen / outcome.train_seconds,
        "epochs_run": len(outcome.history),
        "precision": outcome.precision,
        # Inference cost, measured on test images: per image in batches of the evaluation batch size (256 by
        # default; batches of 1,000 were 2.2x slower per image on 2 cores), and one image at a time.
        "inference_ms_per_image": measure_inference_ms(model, splits.x_test, cfg.recipe.eval_batch_size, repeats=3),
        "inference_ms_single": measure_inference_ms(model, splits.x_test, 1, repeats=21),
        "stopped_early_at": outcome.stopped_early_at,
        "per_class_accuracy": test.per_class_accuracy,
        "confusion_matrix": test.confusion_matrix,
        **run.base_metrics,
        "history": [asdict(r) for r in outcome.history],
    }
    if run.out_dir is not None:
        save_weights(model, run.out_dir / WEIGHTS_FILE)
        write_predictions(run.out_dir / PREDICTIONS_FILE, test.predicted.numpy(), splits.y_test.cpu().numpy())
        atomic_write_json(run.out_dir / METRICS_FILE, metrics)
    return RunResult(run.out_dir, run.config, metrics, model)


def run_training(cfg: TrainConfig, out_dir: Path | None = None, *, dataset: ImageDataset | None = None,
                 progress: ProgressCallback | None = None) -> RunResult:
    """Train ``cfg`` and evaluate on the test set; write the run directory if ``out_dir`` is given.

    A diverged run (NaN/inf loss) writes metrics.json with status "failed" and its reason, then re-raises.
    """
    run = _prepare_run(cfg, out_dir, dataset)
    try:
        outcome = train(run.model, run.splits, cfg.recipe, seed=cfg.seed, progress=progress)
    except TrainingDiverged as e:
        _record_divergence(run, e)
        raise
    return _finish_run(run, outcome)


def run_training_batched(cfgs: list[TrainConfig], out_dirs: list[Path | None], *,
                         dataset: ImageDataset | None = None) -> list[RunResult | TrainingDiverged]:
    """Train the seeds ``cfgs`` (one configuration, seeds differing) as one batched model
    (convlens.batched_seeds), each written to its own directory as ``run_training`` would; per seed its result or
    the divergence it ended with (recorded in its metrics.json). Their timing conditions say ``batched_seeds``."""
    from convlens.batched_seeds import seed_generator, train_batched
    runs, generators = [], []
    for cfg, out_dir in zip(cfgs, out_dirs):
        runs.append(_prepare_run(cfg, out_dir, dataset, timing={"batched_seeds": len(cfgs)}))
        generators.append(seed_generator(cfg.seed, runs[-1].splits.device))  # where its separate run would be
    outcomes = train_batched([r.model for r in runs], [r.splits for r in runs], cfgs[0].recipe,
                             seeds=[c.seed for c in cfgs], generators=generators)
    results: list[RunResult | TrainingDiverged] = []
    for run, outcome in zip(runs, outcomes):
        if isinstance(outcome, TrainingDiverged):
            _record_divergence(run, outcome)
            results.append(outcome)
        else:
            results.append(_finish_run(run, outcome))
    return results


def timing_conditions(device: dict, threads: int, workers: int) -> dict:
    """What a run's seconds depend on besides the run itself; timings are compared only when these are equal."""
    return {"device_type": device["type"], "device": device["name"], "threads": threads, "workers": workers}


def evaluation_data(config: dict, dataset: ImageDataset) -> ImageDataset:
    """``dataset`` as the run saw it at test time: its test subset and its pixel order (from its config.json), checked
    against the test images the run recorded."""
    # An exported model's config has no data block: plain pixels, every test image.
    data = config["data"] if config.get("format") != MODEL_FORMAT else {}
    check_same_data(config if data else {}, dataset)
    ds = dataset.subset(None, data.get("test_subset"))
    return ds.with_permuted_pixels() if data.get("pixels") == "permuted" else ds


def load_with_test_set(run_dir: Path, dataset: ImageDataset,
                       device: torch.device) -> tuple[Network, dict, torch.Tensor, torch.Tensor]:
    """A saved run ready to evaluate: (model in eval mode, config, test images (N, 1, H, W), test labels (N,)),
    on ``device``, with the test images the run was evaluated on when it was trained."""
    model, config = load_model(run_dir, device)
    ds = evaluation_data(config, dataset)
    channels_last = uses_channels_last(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = images_to_tensor(ds.test_images, device, channels_last)
    y = torch.as_tensor(ds.test_labels, dtype=torch.long, device=device)
    return model, config, x, y


def check_fits(config: dict, dataset: ImageDataset) -> None:
    """One line when ``dataset`` has other classes or another image shape than the run or model of ``config``: an
    exported model records no digests, so another folder given to evaluate was scored against its class order."""
    classes, shape = config.get("class_names"), (config.get("input") or {}).get("shape")
    if classes is not None and list(dataset.class_names) != list(classes):
        raise DataError(f"{dataset.name} has the classes {', '.join(dataset.class_names)}; the model was trained on "
                        f"{', '.join(classes)}: give the data it was trained on")
    if shape is not None and list(dataset.input_shape) != list(shape):
        raise DataError(f"{dataset.name} has images of {'x'.join(map(str, dataset.input_shape))}; the model takes "
                        f"{'x'.join(map(str, shape))}: give the data it was trained on")


def evaluate_run(run_dir: Path, *, data_dir: Path | None = None, device: str = "auto",
                 dataset: ImageDataset | None = None) -> dict:
    """Reload a saved run and evaluate it on the test images it was evaluated on when trained."""
    config = read_checked_config(run_dir)
    if config.get("format") != MODEL_FORMAT:  # a run's directory: its weights are scored once it finished
        check_finished(run_dir)
    if dataset is None:
        name = dataset_of(config)
        if name.startswith(FOLDER_PREFIX) and data_dir is not None:
            # The folder moved (copied to another machine, a SageMaker channel): read it where it is now; the
            # digests the run recorded say whether it still holds the images the run was tested on.
            name, data_dir = f"{FOLDER_PREFIX}{data_dir}", None
        dataset = load_named(name, data_dir)
    check_fits(config, dataset)
    model, config, x, y = load_with_test_set(run_dir, dataset, pick_device(device))
    result = evaluate(model, x, y, model.spec.num_classes)
    seed = config["seed"] if "seed" in config else config.get("source_run", {}).get("seed")
    from convlens.probes.confusion import classification_report
    source = config.get("source_run") or {}  # an exported model: its run's own test, perhaps on a subset
    return {"run": str(run_dir), "model": config["model"]["name"], "overrides": config["model"].get("overrides") or {},
            "seed": seed,
            "n_test": len(y), **result.to_dict("test_"),
            "source_run_test": ({k: source[k] for k in ("test_accuracy", "n_test")}
                                if "n_test" in source and "test_accuracy" in source else None),
            "classification_report": classification_report(np.asarray(result.confusion_matrix),
                                                            list(dataset.class_names))}
