"""``convlens train``, ``evaluate`` and ``compare``: one run at a time, and finished runs side by side."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer

from convlens.cli.json_output import comparison_json
from convlens.cli.options import (
    DataDirOption,
    DatasetOption,
    DeviceOption,
    EvaluateDataDirOption,
    JsonOption,
    MlflowUriOption,
    PrecisionOption,
    QuietOption,
    SetOption,
    TrainMlflowOption,
    overrides,
    path_option,
)
from convlens.cli.tables import print_comparison
from convlens.config import DEFAULT_RECIPE, RECIPE_DESCRIPTIONS, train_config
from convlens.display import model_label, out, print_json
from convlens.tracking import make_tracker

RECIPE_HELP = "Training recipe: " + "; ".join(f"'{name}' ({text})" for name, text in RECIPE_DESCRIPTIONS.items()) + "."


def train_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Model preset or alias (convlens models list).")],
    set_: SetOption = None,
    recipe: Annotated[str, typer.Option(help=RECIPE_HELP)] = DEFAULT_RECIPE,
    epochs: Annotated[Optional[int], typer.Option(help="Override the recipe's epoch count.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override the recipe's batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Override the (peak) learning rate.")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adam, adamw or sgd.")] = None,
    schedule: Annotated[Optional[str], typer.Option(help="constant, onecycle or cosine.")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay.")] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(help="Label smoothing in [0, 1).")] = None,
    hflip: Annotated[Optional[float], typer.Option(help="Probability of mirroring a training image.")] = None,
    augment: Annotated[Optional[str], typer.Option(help="Training-batch augmentation on the device: none, or terms "
                                                   "such as shift:2,rotate:10,flip:0.5,erase:0.25.")] = None,
    precision: PrecisionOption = None,
    ema: Annotated[Optional[float], typer.Option(help="Keep an exponential moving average of the weights with "
                                                 "this decay (e.g. 0.995).")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(help="Validation fraction (default 0.1).")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Early stopping patience on validation loss.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed for initialisation, dropout, split and data order.")] = 0,
    out_dir: Annotated[Optional[Path], path_option("--out", "Run directory (default runs/MODEL/...).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the run already in --out.")] = False,
    device: DeviceOption = "auto",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores).")] = None,
    data_dir: DataDirOption = None,
    dataset: DatasetOption = "fashion-mnist",
    train_subset: Annotated[Optional[int], typer.Option(help="Train on the first N images only.")] = None,
    test_subset: Annotated[Optional[int], typer.Option(help="Test on the first N images only.")] = None,
    mlflow: TrainMlflowOption = False,
    mlflow_uri: MlflowUriOption = None,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Train one model, evaluate it on the test set, and write the run directory."""
    cfg = train_config(model, dataset, recipe=recipe, seed=seed, set=overrides(set_), device=device, threads=threads,
                       train_subset=train_subset, test_subset=test_subset, data_dir=data_dir, epochs=epochs,
                       batch_size=batch_size, lr=lr, optimizer=optimizer, schedule=schedule,
                       weight_decay=weight_decay, label_smoothing=label_smoothing, hflip=hflip, augment=augment,
                       precision=precision, ema=ema, val_fraction=val_fraction, patience=patience)
    out_dir = out_dir or Path("runs") / cfg.model / f"seed{seed}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    # torch: after the options are checked (a mistake costs 0.3 s)
    from convlens.api.runs import refuse_to_replace, train_from_config
    refuse_to_replace(out_dir, force)  # before the store is opened: a refusal writes nothing
    # Beside the run (its directory stays the run's); opened first, so a bad store costs no training.
    tracker = make_tracker(mlflow, mlflow_uri, out_dir.parent)
    result = train_from_config(cfg, out_dir, force=force, quiet=quiet or as_json)
    tracked = tracker.where(tracker.log_run(out_dir)) if tracker is not None else None
    m = result.metrics
    if as_json:
        return print_json({"run": str(out_dir), **{k: v for k, v in m.items() if k != "history"}})
    epochs_run = m["epochs_run"]
    out.print(f"{model_label(cfg.model, cfg.overrides)}, recipe {cfg.recipe.name}, seed {seed}: test accuracy "
              f"{m['test_accuracy']:.2%}, "
              f"test loss {m['test_loss']:.4f}, {epochs_run} epoch{'s' if epochs_run != 1 else ''} in "
              f"{m['train_seconds']:.1f}s ({m['train_images_per_second']:,.0f} img/s, {m['precision']}) -> {out_dir}")
    if tracked and not quiet:
        out.print(f"MLflow: {tracked}")


def evaluate_cmd(run_dir: Annotated[Path, typer.Argument(help="A run directory written by 'convlens train'.")],
                 data_dir: EvaluateDataDirOption = None, device: DeviceOption = "auto",
                 as_json: JsonOption = False) -> None:
    """Reload a saved run and evaluate it on the test set, without the original command."""
    from convlens.api.runs import refuse_an_experiment
    from convlens.models.checkpoint import read_checked_config
    refuse_an_experiment(run_dir, "to evaluate one of its runs, name it")
    read_checked_config(run_dir)  # a wrong directory is answered before torch is imported (1.3-2.2 s)
    from convlens.runs import evaluate_run
    result = evaluate_run(run_dir, data_dir=data_dir, device=device)
    if as_json:
        return print_json(result)
    source = result["source_run_test"]
    # an exported model is tested on every test image; its run may have been tested on a subset
    note = (f" (its run was tested on {source['n_test']:,}: {source['test_accuracy']:.2%})"
            if source and source["n_test"] != result["n_test"] else "")
    model = model_label(result["model"], result["overrides"])
    out.print(f"{model}, seed {result['seed']}, from {run_dir}: test accuracy "
              f"{result['test_accuracy']:.2%}, test loss {result['test_loss']:.4f}, macro F1 "
              f"{result['classification_report']['macro']['f1']:.2%} on {result['n_test']:,} images{note}")


def compare_cmd(run_dirs: Annotated[list[Path], typer.Argument(help="Run directories to compare.")],
                as_json: JsonOption = False) -> None:
    """Finished runs grouped by configuration (everything but the seed): n, mean ± std and 95% CI per group,
    and what differs between the groups."""
    from convlens.api.runs import refuse_an_experiment
    from convlens.experiments.compare import compare_runs
    for run_dir in run_dirs:
        refuse_an_experiment(run_dir, "to compare its runs, name them")
    comparison = compare_runs(run_dirs)
    if as_json:
        return print_json(comparison_json(comparison))
    print_comparison(comparison)
