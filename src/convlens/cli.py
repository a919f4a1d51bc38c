"""The ``convlens`` command: parse, validate, delegate to library functions, print.

Expected mistakes (bad flags, unknown models, broken data files) end with one line on stderr and a non-zero
exit: 2 for usage errors, 1 for everything else. No traceback is shown for them.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from convlens.errors import ConvlensError, UsageError

app = typer.Typer(help="Controlled, multi-seed experiments on convolutional architectures (Fashion-MNIST).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None)
data_app = typer.Typer(help="Find, verify and describe the dataset.", no_args_is_help=True)
models_app = typer.Typer(help="List and inspect model presets.", no_args_is_help=True)
experiment_app = typer.Typer(help="Controlled experiments: one factor, several seeds, statistics.",
                             no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(experiment_app, name="experiment")
sagemaker_app = typer.Typer(help="Train and deploy on Amazon SageMaker (needs the 'cloud' extra and AWS credentials).",
                            no_args_is_help=True)
app.add_typer(sagemaker_app, name="sagemaker")

# markup=False: names like "[fast]" and user input must print as written, never as rich markup.
out = Console(highlight=False, soft_wrap=True)
if not out.is_terminal:  # piped output: rich would assume 80 columns and wrap the tables
    out = Console(highlight=False, soft_wrap=True, markup=False, width=160)
err = Console(stderr=True, highlight=False, soft_wrap=True)

DataDirOption = Annotated[Optional[Path], typer.Option(
    "--data-dir", help="Directory with the Fashion-MNIST IDX files (.gz or raw); default: $CONVLENS_DATA, "
    "the user cache, the Debian package path, else download.", show_default=False)]
SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a spec field, e.g. --set kernel_size=5 --set filters=16,32 (repeatable).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]


def _print_json(obj: object) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def _overrides(pairs: list[str] | None) -> dict[str, str]:
    from convlens.models.registry import parse_override
    result: dict[str, str] = {}
    for text in pairs or []:
        key, value = parse_override(text)
        result[key] = value
    return result


# ---------------------------------------------------------------------------------------------- data
@data_app.command("info")
def data_info(data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Where the data came from, sizes, class names and balance."""
    from convlens.data import load_dataset
    info = load_dataset(data_dir).describe()
    if as_json:
        return _print_json(info)
    src = info["source"]
    out.print(f"Fashion-MNIST from {src['directory']} ({src['origin']}), every file verified (md5 of decompressed bytes)")
    out.print(f"train {info['train']['n']:,} x {info['train']['shape']}, test {info['test']['n']:,} x "
              f"{info['test']['shape']}, {info['dtype']}, pixels {info['pixel_range'][0]}..{info['pixel_range'][1]}")
    table = Table("class", "name", "train", "test", title="Class balance")
    for i, name in enumerate(info["class_names"]):
        table.add_row(str(i), name, f"{info['train_counts'][i]:,}", f"{info['test_counts'][i]:,}")
    out.print(table)


@data_app.command("fetch")
def data_fetch(data_dir: DataDirOption = None) -> None:
    """Make sure the dataset is available (download it if no local copy exists) and verify it."""
    from convlens.data import load_dataset
    ds = load_dataset(data_dir)
    out.print(f"Fashion-MNIST ready: {ds.source.directory} ({ds.source.origin}), "
              f"{len(ds.train_labels):,} train + {len(ds.test_labels):,} test images verified")


# -------------------------------------------------------------------------------------------- models
@models_app.command("list")
def models_list(as_json: JsonOption = False) -> None:
    """The registered presets."""
    from convlens.models.registry import list_models
    models = list_models()
    if as_json:
        return _print_json(models)
    table = Table("name", "description", title="Model presets (convlens models show NAME)")
    for name, doc in models.items():
        table.add_row(name, doc)
    out.print(table)


@models_app.command("show")
def models_show(name: str, set_: SetOption = None, as_json: JsonOption = False) -> None:
    """A Keras-like summary: per layer output shape, parameters, MACs, receptive field, jump."""
    from convlens.models.registry import build_model, resolve_spec
    from convlens.models.summary import summarize
    spec = resolve_spec(name, _overrides(set_))
    summary = summarize(build_model(spec), name)
    if as_json:
        return _print_json({**summary.to_dict(), "spec": spec.model_dump(mode="json")})
    table = Table("Layer", "Type", "Output Shape", "Param #", "MACs", "RF", "Jump",
                  title=f'Model: "{name}"  (shapes as Keras prints them: batch, H, W, C; RF = receptive field in px)')
    for row in summary.layers:
        params = row.params_trainable + row.params_non_trainable
        rf = "all" if row.receptive_field is None else f"{row.receptive_field}x{row.receptive_field}"
        table.add_row(row.name.split(".", 1)[-1], row.layer, str(tuple([None, *row.output_shape])), f"{params:,}",
                      f"{row.macs:,}", rf, "-" if row.jump is None else str(row.jump))
    out.print(table)
    p = summary.params
    out.print(f" Total params: {p['total']:,}\n Trainable params: {p['trainable']:,}\n"
              f" Non-trainable params: {p['non_trainable']:,}\n"
              f" MACs per image (forward): {summary.macs:,}\n"
              f" Training FLOPs per image (forward + backward): {summary.train_flops:,}")


# ------------------------------------------------------------------------------------------ training
class _ProgressPrinter:
    """A rich progress bar with live loss on a terminal; one plain line per epoch otherwise."""

    def __init__(self, quiet: bool):
        self.quiet, self.live = quiet, out.is_terminal and not quiet
        self.progress = self.task = None

    def __call__(self, event: str, payload: dict) -> None:
        if self.quiet:
            return
        if event == "start" and self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=out)
            self.task = self.progress.add_task("training", total=payload["epochs"] * payload["steps_per_epoch"],
                                               status="")
            self.steps_per_epoch = payload["steps_per_epoch"]
            self.progress.start()
        elif event == "step" and self.progress is not None:
            done = (payload["epoch"] - 1) * self.steps_per_epoch + payload["step"]
            self.progress.update(self.task, completed=done, description=f"epoch {payload['epoch']}",
                                 status=f"loss {payload['loss']:.4f}")
        elif event == "epoch":
            r = payload["record"]
            val = f" val_loss {r.val_loss:.4f} val_acc {r.val_accuracy:.4f}" if r.val_loss is not None else ""
            line = (f"epoch {r.epoch}: loss {r.train_loss:.4f} acc {r.train_accuracy:.4f}{val} "
                    f"lr {r.lr:.2e} ({r.seconds:.1f}s)")
            if self.progress is not None:
                self.progress.update(self.task, completed=r.epoch * self.steps_per_epoch)
                self.progress.console.print(line)
            else:
                out.print(line)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@app.command("train")
def train_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Model preset (convlens models list).")],
    set_: SetOption = None,
    recipe: Annotated[str, typer.Option(help="Training recipe: 'fast' (convlens' default) or 'seed' "
                                        "(the seeds' Adam 1e-3, batch 128, constant LR, 15 epochs).")] = "fast",
    epochs: Annotated[Optional[int], typer.Option(help="Override the recipe's epoch count.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override the recipe's batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Override the (peak) learning rate.")] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adam, adamw or sgd.")] = None,
    schedule: Annotated[Optional[str], typer.Option(help="constant, onecycle or cosine.")] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay.")] = None,
    label_smoothing: Annotated[Optional[float], typer.Option(help="Label smoothing in [0, 1).")] = None,
    hflip: Annotated[Optional[float], typer.Option(help="Probability of mirroring a training image.")] = None,
    val_fraction: Annotated[Optional[float], typer.Option(help="Validation fraction (default 0.1).")] = None,
    patience: Annotated[Optional[int], typer.Option(help="Early stopping patience on validation loss.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for initialisation, dropout, split and data order.")] = 0,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Run directory (default runs/MODEL/...).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores).")] = None,
    data_dir: DataDirOption = None,
    train_subset: Annotated[Optional[int], typer.Option(help="Train on the first N images only.")] = None,
    test_subset: Annotated[Optional[int], typer.Option(help="Test on the first N images only.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final result.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Train one model, evaluate it on the test set, and write the run directory."""
    from pydantic import ValidationError

    from convlens.config import TrainConfig, resolve_recipe
    from convlens.models.registry import format_validation_error, resolve_spec
    from convlens.runs import run_training

    overrides = _overrides(set_)
    resolve_spec(model, overrides)  # fail fast on a bad model or override
    recipe_obj = resolve_recipe(recipe, dict(epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                                             schedule=schedule, weight_decay=weight_decay,
                                             label_smoothing=label_smoothing, hflip=hflip, val_fraction=val_fraction,
                                             patience=patience))
    try:
        cfg = TrainConfig(model=model, overrides=overrides, recipe=recipe_obj, seed=seed, device=device,
                          threads=threads, data_dir=data_dir, train_subset=train_subset, test_subset=test_subset)
    except ValidationError as e:
        raise UsageError(f"invalid option: {format_validation_error(e)}") from None
    if out_dir is None:
        out_dir = Path("runs") / model / f"seed{seed}-{dt.datetime.now():%Y%m%d-%H%M%S}"
    printer = _ProgressPrinter(quiet or as_json)
    try:
        result = run_training(cfg, out_dir, progress=None if printer.quiet else printer)
    finally:
        printer.close()
    m = result.metrics
    if as_json:
        return _print_json({"run": str(out_dir), **{k: v for k, v in m.items() if k != "history"}})
    out.print(f"{model} (recipe {cfg.recipe.name}, seed {seed}): test accuracy {m['test_accuracy']:.2%}, "
              f"test loss {m['test_loss']:.4f}, {m['epochs_run']} epoch{'s' if m['epochs_run'] != 1 else ''} in {m['train_seconds']:.1f}s "
              f"({m['train_images_per_second']:,.0f} img/s) -> {out_dir}")


@app.command("evaluate")
def evaluate_cmd(run_dir: Annotated[Path, typer.Argument(help="A run directory written by 'convlens train'.")],
                 data_dir: DataDirOption = None,
                 device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
                 as_json: JsonOption = False) -> None:
    """Reload a saved run and evaluate it on the test set, without the original command."""
    from convlens.runs import evaluate_run
    result = evaluate_run(run_dir, data_dir=data_dir, device=device)
    if as_json:
        return _print_json(result)
    out.print(f"{result['model']} (seed {result['seed']}) from {run_dir}: test accuracy "
              f"{result['test_accuracy']:.2%}, test loss {result['test_loss']:.4f} on {result['n_test']:,} images")


def _changes(overrides: dict) -> str:
    return "".join(f" {k}={v}" for k, v in overrides.items())


def _recipe_label(recipe: dict) -> str:
    """'seed' or 'seed epochs=1': the recipe's name plus what differs from the named recipe."""
    from convlens.config import RECIPES
    named = RECIPES.get(recipe["name"])
    base = named.model_dump(mode="json") if named else {}
    return recipe["name"] + _changes({k: v for k, v in recipe.items() if base.get(k) != v})


@app.command("compare")
def compare_cmd(run_dirs: Annotated[list[Path], typer.Argument(help="Run directories to compare.")],
                as_json: JsonOption = False) -> None:
    """Finished runs side by side, grouped by configuration: n, mean and std of test accuracy over seeds."""
    import statistics

    from convlens.models.checkpoint import read_config
    from convlens.runs import read_metrics
    groups: dict[str, dict] = {}
    for d in run_dirs:
        config, m = read_config(d), read_metrics(d)
        key = f"{config['model']['name']}{_changes(config['model']['overrides'])} [{_recipe_label(config['recipe'])}]"
        g = groups.setdefault(key, {"config": key, "runs": [], "failed": 0, "params": m["params"]["total"],
                                    "macs": m["macs"], "accuracy": [], "train_seconds": []})
        g["runs"].append(str(d))
        if m["status"] != "ok":
            g["failed"] += 1
            continue
        g["accuracy"].append(m["test_accuracy"])
        g["train_seconds"].append(m["train_seconds"])
    rows = []
    for g in groups.values():
        acc = g["accuracy"]
        rows.append({**g, "n": len(acc), "mean_accuracy": statistics.fmean(acc) if acc else None,
                     "std_accuracy": statistics.stdev(acc) if len(acc) > 1 else None,
                     "mean_train_seconds": statistics.fmean(g["train_seconds"]) if acc else None})
    if as_json:
        return _print_json(rows)
    table = Table("configuration [recipe]", "n", "test accuracy (mean ± std)", "per seed", "params", "MACs",
                  "train s (mean)", title="Runs grouped by configuration")
    for r in rows:
        spread = f" ± {r['std_accuracy']:.2%}" if r["std_accuracy"] is not None else " (one seed: no spread)"
        table.add_row(r["config"], f"{r['n']}" + (f" (+{r['failed']} failed)" if r["failed"] else ""),
                      f"{r['mean_accuracy']:.2%}{spread}" if r["n"] else "-",
                      ", ".join(f"{a:.2%}" for a in r["accuracy"]), f"{r['params']:,}", f"{r['macs']:,}",
                      f"{r['mean_train_seconds']:.1f}" if r["n"] else "-")
    out.print(table)
    if any(r["n"] < 2 for r in rows):
        out.print("Note: a configuration with one seed has no spread; differences smaller than the seed-to-seed "
                  "spread (about 0.25 pp for the seed-000 CNN) mean nothing.")


# ---------------------------------------------------------------------------------------- experiments
def _pp(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x * 100:+.2f}" if signed else f"{x * 100:.2f}"


def print_experiment_table(summary: dict) -> None:
    """The statistics table: per level n, mean ± std, 95% CI, and the paired test against the reference."""
    table = Table("level", "n", "test acc % (mean ± std)", "95% CI", "diff vs ref, pp [95% CI]", "p", "p Holm",
                  "verdict", "params", "train s", "ms/img",
                  title=f"{summary['experiment']}: reference {summary['reference']}, "
                        f"recipe {_recipe_label(summary['recipe'])}, {summary['seeds']} seeds")
    for lv in summary["levels"]:
        acc, c = lv["test_accuracy"], lv["vs_reference"]
        n = f"{lv['n']}" + (f" ({len(lv['failed'])} failed)" if lv["failed"] else "") + (
            f" ({lv['pending']} pending)" if lv["pending"] else "")
        std = f" ± {_pp(acc['std'])}" if acc["std"] is not None else ""
        ci = f"{_pp(acc['ci95'][0])}..{_pp(acc['ci95'][1])}" if acc["ci95"][0] is not None else "-"
        if c is None:
            vs, p, ph, word = "reference", "", "", ""
        else:
            lo, hi = c["ci95"]
            vs = f"{_pp(c['diff'], True)}" + (f" [{_pp(lo, True)}, {_pp(hi, True)}]" if lo is not None else "")
            from convlens.stats import format_p
            p, ph = (format_p(x) if x is not None else "n/a" for x in (c["p_value"], c["p_holm"]))
            word = c["verdict"].split(" (")[0]
        secs, ms = lv["train_seconds"]["mean"], lv["inference_ms_per_image"]["mean"]
        table.add_row(lv["label"], n, f"{_pp(acc['mean'])}{std}" if lv["n"] else "-", ci, vs, p, ph, word,
                      f"{lv['params']:,}" if lv["params"] else "-", f"{secs:.1f}" if secs is not None else "-",
                      f"{ms:.3f}" if ms is not None else "-")
    out.print(table)
    for line in summary["conclusions"]:
        out.print(f"- {line}")
    best = summary["best"]
    if best:
        out.print(f"Best mean accuracy: {best['accuracy']}; best accuracy per parameter: "
                  f"{best['accuracy_per_mparam']}; per second of training: {best['accuracy_per_second']}.")


@experiment_app.command("list")
def experiment_list() -> None:
    """The built-in experiments (run one with: convlens experiment run NAME)."""
    from convlens.experiments import BUILTIN_EXPERIMENTS
    table = Table("name", "base model", "factor: levels", "description")
    for name, spec in BUILTIN_EXPERIMENTS.items():
        table.add_row(name, spec.model, f"{spec.factor.name}: " + ", ".join(lbl.split("=", 1)[1] for lbl, _ in
                                                                          spec.factor.labelled_levels()),
                      spec.description)
    out.print(table)


@experiment_app.command("run")
def experiment_run(
    spec_source: Annotated[str, typer.Argument(metavar="SPEC", help="A built-in name (convlens experiment list) "
                                               "or a YAML spec file.")],
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Experiment directory "
                                                    "(default runs/experiments/NAME).")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Seeds per level (default: the spec's, 3).")] = None,
    workers: Annotated[int, typer.Option(help="Parallel worker processes; the cores are split between them.")] = 1,
    epochs: Annotated[Optional[int], typer.Option(help="Override the recipe's epoch count for every level.")] = None,
    train_subset: Annotated[Optional[int], typer.Option(help="Train on the first N images only.")] = None,
    test_subset: Annotated[Optional[int], typer.Option(help="Test on the first N images only.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Discard finished runs and run everything again.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final table.")] = False,
) -> None:
    """Run an experiment: every level x seed (skipping finished runs), then statistics, tables and plots."""
    from convlens.experiments import BUILTIN_EXPERIMENTS, load_spec, parse_spec
    from convlens.experiments.run import execute_plan, plan

    spec = load_spec(spec_source, BUILTIN_EXPERIMENTS)
    changes = {k: v for k, v in dict(seeds=seeds, train_subset=train_subset, test_subset=test_subset).items()
               if v is not None}
    if epochs is not None:
        changes["recipe_set"] = {**spec.recipe_set, "epochs": epochs}
    if changes:
        spec = parse_spec({**spec.model_dump(mode="json"), **changes}, origin=spec_source)
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    out_dir = out_dir or Path("runs") / "experiments" / spec.name
    p = plan(spec, out_dir, force=force)
    total = len(p.jobs) + p.done + p.failed
    if not quiet:
        out.print(f"{spec.name}: {total} runs ({total // spec.seeds} levels x {spec.seeds} seeds) in "
                  f"{out_dir}: {p.done} finished, {p.failed} failed, {len(p.jobs)} to run with {workers} worker(s)")
    progress = None
    if not quiet and out.is_terminal and p.jobs:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TimeRemainingColumn(), console=out)
        task = progress.add_task("runs", total=len(p.jobs))
        progress.start()

    def on_start(job) -> None:
        if progress is not None:
            progress.update(task, description=f"{job.level} seed {job.seed}")

    def on_result(result) -> None:
        line = f"{result.level} seed {result.seed}: {result.status}" + (f" ({result.reason})" if result.reason else "")
        if progress is not None:
            progress.advance(task)
            progress.console.print(line)
        elif not quiet:
            out.print(line)
    try:
        summary = execute_plan(p, workers=workers, on_result=on_result, on_start=on_start)
    finally:
        if progress is not None:
            progress.stop()
    print_experiment_table(summary)
    if not quiet:
        out.print(f"Wrote {out_dir}/summary.json, runs.csv and plots/*.png")


@experiment_app.command("status")
def experiment_status(directory: Annotated[Path, typer.Argument(help="An experiment directory.")],
                      as_json: JsonOption = False) -> None:
    """Done / failed / pending per level and seed."""
    from convlens.experiments.store import RunStore
    store = RunStore(directory)
    experiment = store.read_experiment()
    seeds = range(experiment["spec"]["seeds"])
    grid = {lv["label"]: {seed: store.status(lv["label"], seed) for seed in seeds} for lv in experiment["levels"]}
    if as_json:
        return _print_json(grid)
    table = Table("level", *[f"seed {s}" for s in seeds], title=f"{experiment['spec']['name']} in {directory}")
    for label, row in grid.items():
        table.add_row(label, *row.values())
    out.print(table)
    counts = [s for row in grid.values() for s in row.values()]
    out.print(f"{counts.count('done')} done, {counts.count('failed')} failed, {counts.count('pending')} pending")


@experiment_app.command("table")
def experiment_table(directory: Annotated[Path, typer.Argument(help="An experiment directory.")],
                     as_json: JsonOption = False) -> None:
    """The statistics table of an experiment, computed from its run files."""
    from convlens.experiments.analysis import analyze
    from convlens.experiments.store import RunStore
    summary = analyze(RunStore(directory))
    if as_json:
        return _print_json(summary)
    print_experiment_table(summary)


# ------------------------------------------------------------------------------------------ serving
# ------------------------------------------------------------------------------------------ study
class _StudyProgress:
    """Stage, run and an overall bar with ETA (weighted by each run's estimated cost) on a terminal; one line
    per stage and run otherwise."""

    def __init__(self, quiet: bool):
        self.quiet, self.progress, self.task = quiet, None, None

    def planned(self, total_seconds: float, runs: int, reused: int) -> None:
        if self.quiet:
            return
        out.print(f"{runs} runs to train ({reused} reused from identical runs); estimated "
                  f"{total_seconds / 60:.0f} min on this machine")
        if out.is_terminal:
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                                     TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=out)
            self.task = self.progress.add_task("study", total=total_seconds)
            self.progress.start()

    def _line(self, text: str) -> None:
        if self.quiet:
            return
        (self.progress.console if self.progress else out).print(text)

    def stage(self, name: str, detail: str = "") -> None:
        self._line(f"[{name}] {detail}")
        if self.progress is not None:
            self.progress.update(self.task, description=name)

    def run_started(self, job) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"training {job.level} seed {job.seed}")

    def run_finished(self, result, estimated_seconds: float) -> None:
        self._line(f"  {result.level} seed {result.seed}: {result.status}" + (f" ({result.reason})" if result.reason else ""))
        self.advance(estimated_seconds)

    def advance(self, estimated_seconds: float) -> None:
        if self.progress is not None:
            self.progress.advance(self.task, estimated_seconds)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


@app.command("study")
def study_cmd(
    config_path: Annotated[Optional[Path], typer.Option("--config", help="YAML file of study options (seeds, recipe, "
                                                        "epochs, train_subset, experiments, shift_max, ...).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory (re-running reuses its finished runs).")]
        = Path("runs/study"),
    seeds: Annotated[Optional[int], typer.Option(help="Seeds per configuration (default 3).")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A first look in about 3 minutes: 3 seeds on 8,000 "
                                        "training images.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Everything the seeds ran: kernel 3/5/7, depth 1/2/3, "
                                       "filters; no time budget.")] = False,
    workers: Annotated[Optional[int], typer.Option(help="Parallel training processes (cores are split).")] = None,
    data_dir: DataDirOption = None,
    force: Annotated[bool, typer.Option("--force", help="Discard finished runs and train everything again.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only where the report is.")] = False,
) -> None:
    """The whole assignment end to end: EDA, MLP baseline, CNN design, controlled experiments, probes, export,
    and one self-contained report (report.html, report.md, results.json)."""
    from convlens.study.config import load_study_config
    from convlens.study.pipeline import run_study
    if quick and full:
        raise UsageError("--quick and --full exclude each other; pick one")
    config = load_study_config("quick" if quick else "full" if full else "default", config_path, seeds=seeds,
                               workers=workers)
    progress = _StudyProgress(quiet)
    try:
        results = run_study(config, out_dir, events=progress, force=force, data_dir=data_dir)
    finally:
        progress.close()
    cnn, mlp = results["design"]["test_accuracy"], results["baseline"]["test_accuracy"]
    out.print(f"CNN {cnn['mean'] * 100:.2f}% ± {cnn['std'] * 100:.2f} pp, MLP {mlp['mean'] * 100:.2f}% ± "
              f"{mlp['std'] * 100:.2f} pp (n={cnn['n']} seeds); {results['study']['wall_seconds'] / 60:.1f} min")
    out.print(f"Report: {out_dir / 'report.html'} (also report.md, results.json)")


@app.command("report")
def report_cmd(directory: Annotated[Path, typer.Argument(help="A study directory (convlens study --out).")]) -> None:
    """Render report.html and report.md again from a study's results.json (nothing is trained)."""
    from convlens.report.render import render_report
    md, page = render_report(directory)
    out.print(f"Wrote {page} and {md}")


@app.command("export")
def export_cmd(run_dir: Annotated[Path, typer.Argument(help="A finished run directory.")],
               out_dir: Annotated[Optional[Path], typer.Option("--out", help="Model directory "
                                                               "(default RUN_DIR/export).")] = None,
               fmt: Annotated[Optional[str], typer.Option("--format", help="Also write 'onnx' (model.onnx).")] = None,
               ) -> None:
    """Export a run to a self-contained model directory (safetensors + config.json, optionally ONNX)."""
    from convlens.serving.export import export_run
    if fmt not in (None, "onnx"):
        raise UsageError(f"unknown format '{fmt}'; the only extra format is 'onnx'")
    out_dir = out_dir or run_dir / "export"
    export_run(run_dir, out_dir, onnx=fmt == "onnx")
    out.print(f"exported {run_dir} -> {out_dir} ({', '.join(sorted(p.name for p in out_dir.iterdir()))})")


@app.command("predict")
def predict_cmd(model_dir: Annotated[Path, typer.Argument(help="An exported model (or run) directory.")],
                inputs: Annotated[list[Path], typer.Argument(help="PNG/JPEG images, .npy arrays or .json bodies.")],
                top_k: Annotated[int, typer.Option("--top-k", help="How many classes to show per image.")] = 3,
                as_json: JsonOption = False) -> None:
    """Classify images: PNG/JPEG (any size or mode, converted like the training data) or .npy arrays."""
    from convlens.serving.inputs import CONTENT_TYPE_BY_SUFFIX, InputError, decode
    from convlens.serving.predictor import Predictor
    predictor = Predictor(model_dir)
    results = []
    for path in inputs:
        kind = CONTENT_TYPE_BY_SUFFIX.get(path.suffix.lower())
        if kind is None:
            raise UsageError(f"{path}: unsupported file type; give .png, .jpg/.jpeg, .npy or .json files")
        try:
            x = decode(path.read_bytes(), kind)
        except FileNotFoundError:
            raise UsageError(f"{path} not found") from None
        except InputError as e:
            raise UsageError(f"{path}: {e}") from None
        for i, probs in enumerate(predictor.predict(x)):
            order = probs.argsort()[::-1][:top_k]
            results.append({"input": str(path) if len(x) == 1 else f"{path}[{i}]",
                            "top": [{"class": predictor.class_names[j], "probability": float(probs[j])}
                                    for j in order]})
    if as_json:
        return _print_json(results)
    for r in results:
        out.print(f"{r['input']}: " + ", ".join(f"{t['class']} {t['probability']:.1%}" for t in r["top"]))


@app.command("serve")
def serve_cmd(model_dir: Annotated[Path, typer.Argument(help="An exported model (or run) directory.")],
              host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
              port: Annotated[int, typer.Option(help="Port (SageMaker uses 8080).")] = 8080,
              workers: Annotated[int, typer.Option(help="Server processes.")] = 1) -> None:
    """Serve the model over the SageMaker inference contract, with a web page at /."""
    import os

    import uvicorn

    from convlens.models.checkpoint import read_config
    from convlens.serving.app import MODEL_DIR_ENV
    read_config(model_dir)  # fail with one line before the server starts
    os.environ[MODEL_DIR_ENV] = str(model_dir.resolve())
    out.print(f"serving {model_dir} on http://{host}:{port}/ (POST /invocations, GET /ping)")
    uvicorn.run("convlens.serving.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning")


# ---------------------------------------------------------------------------------------- sagemaker
RegionOption = Annotated[str, typer.Option(help="AWS region.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print the exact API requests; send nothing.")]


def _gateway(region: str, dry_run: bool):
    try:
        import boto3  # noqa: F401

        from convlens.cloud.sagemaker.launcher import Gateway
    except ImportError:
        raise UsageError("SageMaker commands need the 'cloud' extra: pip install 'convlens[cloud]'") from None
    return Gateway(region=region, dry_run=dry_run, echo=lambda text: out.print(text))


def _settings(**kwargs):
    from pydantic import ValidationError

    from convlens.cloud.sagemaker.launcher import SageMakerSettings
    from convlens.models.registry import format_validation_error
    try:
        return SageMakerSettings(**{k: v for k, v in kwargs.items() if v is not None})
    except ValidationError as e:
        raise UsageError(f"invalid SageMaker setting: {format_validation_error(e)}") from None


@sagemaker_app.command("train")
def sagemaker_train(
    role_arn: Annotated[str, typer.Option(help="IAM role SageMaker assumes (arn:aws:iam::ACCOUNT:role/NAME).")],
    bucket: Annotated[str, typer.Option(help="S3 bucket for data, source and model artifacts.")],
    region: RegionOption = "us-east-1",
    prefix: Annotated[str, typer.Option(help="S3 key prefix.")] = "convlens",
    instance_type: Annotated[str, typer.Option(help="Training instance type.")] = "ml.m5.large",
    image: Annotated[Optional[str], typer.Option(help="Training image URI (default: AWS PyTorch CPU container).")] = None,
    hp: Annotated[Optional[list[str]], typer.Option(help="Hyperparameter key=value (repeatable), e.g. "
                                                     "--hp model=seed000-cnn --hp epochs=5.")] = None,
    base_job_name: Annotated[str, typer.Option(help="Job name prefix.")] = "convlens",
    job_name: Annotated[Optional[str], typer.Option(help="Exact job name (default: prefix + time).")] = None,
    data_dir: DataDirOption = None,
    wait: Annotated[bool, typer.Option(help="Wait for the job, showing its status.")] = True,
    dry_run: DryRunOption = False,
) -> None:
    """Upload data and code to S3 and start a SageMaker training job."""
    from convlens.cloud.sagemaker.launcher import launch_training
    from convlens.models.registry import parse_override
    settings = _settings(role_arn=role_arn, bucket=bucket, region=region, prefix=prefix, base_job_name=base_job_name,
                         training_instance=instance_type, training_image=image,
                         hyperparameters=dict(parse_override(x) for x in hp or []))
    result = launch_training(_gateway(region, dry_run), settings, data_dir, job_name=job_name, wait=wait,
                             on_status=lambda status: out.print(f"training job: {status}"))
    if not dry_run:
        out.print(f"training job {result['job_name']}: model at {result['model_data']}")


@sagemaker_app.command("deploy")
def sagemaker_deploy(
    role_arn: Annotated[str, typer.Option(help="IAM role the endpoint runs as.")],
    bucket: Annotated[str, typer.Option(help="S3 bucket used by 'convlens sagemaker train'.")],
    job_name: Annotated[str, typer.Option(help="The training job whose model to deploy.")],
    endpoint: Annotated[str, typer.Option(help="Endpoint name to create.")],
    region: RegionOption = "us-east-1",
    prefix: Annotated[str, typer.Option(help="S3 key prefix used for training.")] = "convlens",
    instance_type: Annotated[str, typer.Option(help="Inference instance type.")] = "ml.m5.large",
    image: Annotated[Optional[str], typer.Option(help="Inference image URI (default: AWS PyTorch CPU container).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait until the endpoint is InService.")] = True,
    dry_run: DryRunOption = False,
) -> None:
    """Create model, endpoint config and endpoint for a finished training job."""
    from convlens.cloud.sagemaker.launcher import deploy
    settings = _settings(role_arn=role_arn, bucket=bucket, region=region, prefix=prefix,
                         inference_instance=instance_type, inference_image=image)
    names = deploy(_gateway(region, dry_run), settings, settings.s3("output", job_name, "output", "model.tar.gz"),
                   endpoint, source=settings.s3("source", job_name, "sourcedir.tar.gz"), wait=wait,
                   on_status=lambda status: out.print(f"endpoint: {status}"))
    if not dry_run:
        out.print(f"endpoint {names['endpoint']} created (model {names['model']}, config {names['config']})")


@sagemaker_app.command("invoke")
def sagemaker_invoke(endpoint: Annotated[str, typer.Option(help="Endpoint name.")],
                     image: Annotated[Path, typer.Argument(help="A PNG/JPEG image, .npy array or .json body.")],
                     region: RegionOption = "us-east-1", dry_run: DryRunOption = False) -> None:
    """Send one image to an endpoint and print the class probabilities."""
    from convlens.cloud.sagemaker.launcher import invoke
    from convlens.serving.inputs import CONTENT_TYPE_BY_SUFFIX
    kind = CONTENT_TYPE_BY_SUFFIX.get(image.suffix.lower())
    if kind is None or not image.is_file():
        raise UsageError(f"{image}: give an existing .png, .jpg, .npy or .json (request body) file")
    result = invoke(_gateway(region, dry_run), endpoint, image.read_bytes(), kind)
    if result:
        _print_json(result)


@sagemaker_app.command("delete")
def sagemaker_delete(endpoint: Annotated[str, typer.Option(help="Endpoint name (its -config and -model too).")],
                     region: RegionOption = "us-east-1", dry_run: DryRunOption = False) -> None:
    """Delete an endpoint and the endpoint config and model that 'deploy' created for it."""
    from convlens.cloud.sagemaker.launcher import delete
    deleted = delete(_gateway(region, dry_run), endpoint)
    if not dry_run:
        out.print("deleted " + ", ".join(deleted))


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and turn expected errors into one line on stderr."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="convlens", standalone_mode=False)
    except typer.Exit as e:
        return e.exit_code
    except typer.Abort:
        err.print("convlens: aborted")
        return 130
    except typer.TyperException as e:  # usage errors from parsing: exit 2
        message = e.format_message()
        if "\n" in message:  # `convlens` or a group alone: the message is the help text
            out.print(message)
            return 0 if argv == [] else 2
        ctx = getattr(e, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        err.print(f"convlens: error: {message}{hint}")
        return e.exit_code
    except ConvlensError as e:
        err.print(f"convlens: error: {e}")
        return e.exit_code
    except OSError as e:
        if e.filename is None:  # not about a path the user named: a real fault, keep the traceback
            raise
        # e.g. --out naming an existing file, a read-only directory, a full disk: say which path and why
        err.print(f"convlens: error: {e.strerror or e}: {e.filename}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
