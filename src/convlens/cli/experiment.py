"""``convlens experiment``: controlled experiments (one factor, several seeds, statistics)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from convlens.cli.json_output import summary_json
from convlens.cli.options import (
    AddressOption,
    BackendOption,
    BatchSeedsOption,
    CpusPerRunOption,
    DataDirOption,
    GpusPerRunOption,
    JsonOption,
    MlflowOption,
    MlflowUriOption,
    PrecisionOption,
    QuietOption,
    path_option,
)
from convlens.cli.tables import LABEL, NUMBER, WORDS, fitted_table, print_experiment_table, print_plan
from convlens.display import RunsProgress, out, print_json
from convlens.errors import ConvlensError, UsageError

app = typer.Typer(help="Controlled experiments: one factor, several seeds, statistics.", no_args_is_help=True)


@app.command("list")
def experiment_list(as_json: JsonOption = False) -> None:
    """The built-in experiments (run one with: convlens experiment run NAME): factors, levels and runs."""
    from convlens.experiments import BUILTIN_EXPERIMENTS
    specs = [{"name": name, "description": spec.description, "model": spec.model,
              "factors": [{"name": f.name, "levels": f.model_dump(mode="json")["levels"],
                           "labels": [label for label, _ in f.labelled_levels()], "reference": f.reference_label}
                          for f in spec.factors],
              "seeds": spec.seeds, "runs": math.prod(len(f.levels) for f in spec.factors) * spec.seeds}
             for name, spec in BUILTIN_EXPERIMENTS.items()]
    if as_json:
        return print_json(specs)
    # one line per factor: a second factor doubles the runs, and a reader counts them from here
    rows = [[s["name"], s["model"], "\n".join(f"{f['name']}: " + ", ".join(label.removeprefix(f"{f['name']}=")
                                                                          for label in f["labels"])
                                            for f in s["factors"]),
             str(s["seeds"]), str(s["runs"]), s["description"]] for s in specs]
    out.print(fitted_table("Built-in experiments (convlens experiment run NAME)",
                           [("name", LABEL), ("base model", LABEL), ("factors: levels", LABEL), ("seeds", NUMBER),
                            ("runs", NUMBER), ("description", LABEL)], rows, out.width))


@app.command("run")
def experiment_run(
    spec_source: Annotated[str, typer.Argument(metavar="SPEC", help="A built-in name (convlens experiment list) "
                                               "or a YAML spec file.")],
    out_dir: Annotated[Optional[Path], path_option("--out", "Experiment directory (default runs/experiments/NAME).")]
        = None,
    seeds: Annotated[Optional[int], typer.Option(help="Seeds per level (default: the spec's, 3).")] = None,
    workers: Annotated[int, typer.Option(help="Parallel worker processes; the cores are split between them.")] = 1,
    epochs: Annotated[Optional[int], typer.Option(help="Override the recipe's epoch count for every level.")] = None,
    precision: PrecisionOption = None,
    train_subset: Annotated[Optional[int], typer.Option(help="Train on the first N images only.")] = None,
    test_subset: Annotated[Optional[int], typer.Option(help="Test on the first N images only.")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="Train every level on this dataset "
                                                   "(default: the spec's, fashion-mnist).")] = None,
    data_dir: DataDirOption = None,
    force: Annotated[bool, typer.Option("--force", help="Discard this experiment's runs and run everything "
                                        "again (only an experiment directory's own runs are deleted).")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run failed runs again (finished ones "
                                               "are kept).")] = False,
    backend: BackendOption = "local",
    address: AddressOption = None,
    cpus_per_run: CpusPerRunOption = 1,
    gpus_per_run: GpusPerRunOption = 0,
    batch_seeds: BatchSeedsOption = None,
    mlflow: MlflowOption = False,
    mlflow_uri: MlflowUriOption = None,
    quiet: QuietOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="No progress; print the statistics as JSON (as "
                                          "'experiment table --json').")] = False,
) -> None:
    """Run an experiment: every level x seed (skipping finished runs), then statistics, tables and plots."""
    from convlens.api.experiments import Experiment
    result = Experiment(spec_source).run(
        seeds, out=out_dir, workers=workers, backend=backend, address=address, cpus_per_run=cpus_per_run,
        gpus_per_run=gpus_per_run, epochs=epochs, precision=precision, train_subset=train_subset,
        test_subset=test_subset, dataset=dataset, force=force, retry_failed=retry_failed,
        mlflow=mlflow_uri or mlflow, quiet=quiet or as_json, batch_seeds=batch_seeds, data_dir=data_dir)
    levels = result.summary["levels"]
    failed = [f for lv in levels for f in lv["failed"]]
    if failed and not any(lv["n"] for lv in levels):  # nothing to show but dashes: say why, exit 1
        raise ConvlensError(f"all {len(failed)} runs failed, none finished (the first: {failed[0]['reason']}); "
                            f"fix the cause, then run again with --retry-failed (records in "
                            f"{result.directory / 'runs.csv'})")
    if as_json:
        return print_json(summary_json(result.summary, result.directory))
    print_experiment_table(result.summary)
    if not quiet:
        plots = " and plots/*.png" if any((result.directory / "plots").glob("*.png")) else ""
        out.print(f"Wrote {result.directory}/summary.json, runs.csv{plots}")
        if result.tracked:
            out.print(f"MLflow: {result.tracked}")


@app.command("plan")
def experiment_plan(
    spec_source: Annotated[str, typer.Argument(metavar="SPEC", help="A built-in name or a YAML spec file.")],
    effect: Annotated[float, typer.Option(help="The difference to detect, in percentage points of test accuracy.")],
    out_dir: Annotated[Optional[Path], path_option("--out", "Its experiment directory "
                                                    "(default runs/experiments/NAME); a pilot is run there when "
                                                    "needed.")]
        = None,
    power: Annotated[float, typer.Option(help="Probability of detecting the effect.")] = 0.8,
    pilot_seeds: Annotated[int, typer.Option(help="Seeds per level of the pilot run when the directory holds "
                                             "too few finished runs to estimate the spread.")] = 3,
    epochs: Annotated[Optional[int], typer.Option(help="The recipe's epoch count the experiment ran with (as "
                                                  "given to experiment run).")] = None,
    precision: Annotated[Optional[str], typer.Option(help="The precision it ran with (as given to experiment "
                                                     "run).")] = None,
    train_subset: Annotated[Optional[int], typer.Option(help="The training subset it ran with.")] = None,
    test_subset: Annotated[Optional[int], typer.Option(help="The test subset it ran with.")] = None,
    dataset: Annotated[Optional[str], typer.Option("--dataset", help="The dataset it ran on.")] = None,
    data_dir: DataDirOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress; print only the seeds per level and "
                                        "the time they cost.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Seeds per level needed to detect an effect with the given power, from the spread of finished runs (or of a
    pilot it runs first), and the training time that costs on this machine."""
    from convlens.experiments import BUILTIN_EXPERIMENTS, load_spec
    from convlens.experiments.planning import plan_experiment
    from convlens.experiments.spec import with_changes
    if not 0 < effect < 100:
        raise UsageError(f"--effect is in percentage points, between 0 and 100; got {effect}")
    if not 0.05 < power < 1:
        raise UsageError(f"--power must be above 0.05 and below 1 (both excluded), got {power}")
    if pilot_seeds < 2:
        raise UsageError(f"--pilot-seeds must be at least 2 (a spread needs two seeds), got {pilot_seeds}")
    spec = with_changes(load_spec(spec_source, BUILTIN_EXPERIMENTS), epochs=epochs, precision=precision,
                        train_subset=train_subset, test_subset=test_subset, dataset=dataset)
    out_dir = out_dir or Path("runs") / "experiments" / spec.name
    progress = RunsProgress(quiet or as_json)
    try:
        result = plan_experiment(spec, out_dir, effect / 100, power=power, pilot_seeds=pilot_seeds,
                                 on_pilot=lambda n: progress.line(f"{out_dir} holds too few finished runs: running a "
                                                                  f"pilot with {n} seeds per level first"),
                                 on_result=progress.run_finished, on_start=progress.run_started, data_dir=data_dir)
    finally:
        progress.close()
    if as_json:
        return print_json(result)
    print_plan(result, quiet)


@app.command("status")
def experiment_status(directory: Annotated[Path, typer.Argument(help="An experiment directory.")],
                      as_json: JsonOption = False) -> None:
    """Done / failed / pending per level and seed ('left out': done, but no longer its level's run)."""
    from convlens.experiments.store import LEFT_OUT, RunStore, kept_run_problem
    store = RunStore(directory)
    grid: dict = store.status_grid()
    configs = {level["label"]: level["config"] for level in store.read_experiment()["levels"]}
    problems = {(label, seed): kept_run_problem(store.run_dir(label, seed), configs[label], seed)
                for label, row in grid.items() for seed, status in row.items() if status == "done"}
    for (label, seed), problem in problems.items():
        if problem:
            grid[label][seed] = LEFT_OUT
    if as_json:
        return print_json(grid)
    seeds = sorted({seed for row in grid.values() for seed in row})
    # fitted as the other tables: a plain rich table cut a long level's label, and 'pending', with an ellipsis
    out.print(fitted_table(f"{store.read_experiment()['spec']['name']} in {directory}",
                           [("level", LABEL), *[(f"seed {s}", WORDS) for s in seeds]],
                           [[label, *row.values()] for label, row in grid.items()], out.width))
    counts = [s for row in grid.values() for s in row.values()]
    out.print(f"{counts.count('done')} done, {counts.count('failed')} failed, {counts.count('pending')} pending"
              + (f", {counts.count(LEFT_OUT)} left out" if LEFT_OUT in counts else ""))
    for problem in filter(None, problems.values()):  # as the table's warning says it
        out.print(f"note: left out of the analysis: {problem}")


@app.command("table")
def experiment_table(directory: Annotated[Path, typer.Argument(help="An experiment directory.")],
                     as_json: JsonOption = False) -> None:
    """The statistics table of an experiment, computed from its run files."""
    from convlens.api.experiments import load_experiment
    summary = load_experiment(directory).summary
    if as_json:
        return print_json(summary_json(summary, directory))
    print_experiment_table(summary)
