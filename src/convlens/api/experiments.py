"""Controlled experiments from Python: ``Experiment`` (a spec: built-in, YAML, or fields) ``.run()`` ->
``ExperimentResult`` (tables as DataFrames, figures, conclusions). ``convlens experiment run`` and ``experiment
table`` are this, printed."""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any

from convlens.errors import UsageError, user_path
from convlens.experiments.spec import ExperimentSpec
from convlens.run_files import METRICS_FILE

VERDICT_COLOURS = {"significantly higher": "color:#1a7f37;font-weight:bold",
                   "significantly lower": "color:#cf222e;font-weight:bold", "no significant": "color:#57606a",
                   "identical": "color:#57606a", "not tested": "color:#9a6700"}


class Experiment:
    """One factor varied over levels, several seeds each, everything else fixed.

    ``Experiment("kernel-size")`` (a built-in), ``Experiment("spec.yaml")``, or fields:
    ``Experiment(name="k", model="cnn", factor={"name": "kernel_size", "levels": [3, 5]}, dataset="digits")``.

    Example: ``convlens.Experiment.builtin("kernel-size").run(seeds=3).table()``
    """

    def __init__(self, spec: str | Path | ExperimentSpec | dict | None = None, **fields: Any):
        """``spec``: a built-in name, a YAML file, an ExperimentSpec or a dict; ``fields`` change or give its keys
        (name, model, factor, seeds, recipe, recipe_set, set, dataset, train_subset, ...), validated now."""
        from convlens.experiments import BUILTIN_EXPERIMENTS, load_spec, parse_spec
        if isinstance(spec, ExperimentSpec):
            self.spec = spec
        elif isinstance(spec, dict) or spec is None:
            self.spec = parse_spec({**(spec or {}), **fields})
            fields = {}
        elif isinstance(spec, (str, os.PathLike)):
            # a YAML file's "~/specs/k.yaml" expanded, as every other path of the API is (else "not found")
            self.spec = load_spec(spec if str(spec) in BUILTIN_EXPERIMENTS else user_path(spec, "experiment spec"),
                                  BUILTIN_EXPERIMENTS)
        else:
            raise UsageError("Experiment takes a built-in name, a YAML file, an ExperimentSpec or a dict, got "
                             f"{spec!r}")
        if fields:
            self.spec = parse_spec({**self.spec.model_dump(mode="json", exclude_unset=True), **fields})

    @classmethod
    def builtin(cls, name: str) -> Experiment:
        """A built-in experiment (``convlens.Experiment.names()`` lists them)."""
        from convlens.experiments import BUILTIN_EXPERIMENTS
        if name not in BUILTIN_EXPERIMENTS:
            raise UsageError(f"unknown built-in experiment '{name}'; built-in: {', '.join(BUILTIN_EXPERIMENTS)}")
        return cls(BUILTIN_EXPERIMENTS[name])

    @staticmethod
    def names() -> list[str]:
        """Names of the built-in experiments (`convlens experiment list` describes them)."""
        from convlens.experiments import BUILTIN_EXPERIMENTS
        return list(BUILTIN_EXPERIMENTS)

    def run(self, seeds: int | None = None, *, out: str | Path | None = None, workers: int = 1,
            backend: str = "local", address: str | None = None, cpus_per_run: float = 1, gpus_per_run: float = 0,
            epochs: int | None = None, precision: str | None = None, train_subset: int | None = None,
            test_subset: int | None = None, dataset: str | None = None, force: bool = False,
            retry_failed: bool = False, mlflow: bool | str = False, quiet: bool = False,
            batch_seeds: bool | None = None, data_dir: str | Path | None = None) -> ExperimentResult:
        """Train every level x seed not yet finished in ``out`` (default runs/experiments/NAME), then analyse.

        ``backend="ray"`` runs them as Ray tasks (``address``: a cluster); ``mlflow=True`` logs to OUT/mlflow.db,
        a string is a tracking URI. ``epochs`` and ``precision`` ("fp32", "bf16", "auto") set every level's
        recipe; ``data_dir``: where the dataset's files are (not part of the design). Rerunning resumes: finished
        runs are kept. The dataset is read (or found missing) before anything is written, with either backend.
        """
        from convlens.api.runs import data_path, holds_experiments, output_path
        from convlens.data import load_named
        from convlens.directory_lock import holding
        from convlens.display import RunsProgress
        from convlens.experiments import with_changes
        from convlens.experiments.local import check_workers_can_start
        from convlens.experiments.run import execute_plan, local_workers, make_backend, plan
        from convlens.tracking import make_tracker
        from convlens.training import threads_kept
        check_run_options(workers=workers, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, mlflow=mlflow,
                          batch_seeds=batch_seeds)
        data_dir = data_path(data_dir)
        runner = make_backend(backend, address, cpus_per_run, gpus_per_run, batch_seeds)  # before planning
        check_workers_can_start(local_workers(workers, runner))  # said before anything is written
        spec = with_changes(self.spec, seeds=seeds, epochs=epochs, precision=precision, train_subset=train_subset,
                            test_subset=test_subset, dataset=dataset)
        out_dir = output_path(out) if out is not None else Path("runs") / "experiments" / spec.name
        if holds_experiments(out_dir):  # its experiment.json and runs/ in a study's root: the study refuses to run there again
            raise UsageError(f"{out_dir} holds experiments ({out_dir / 'experiments'}), as a study's directory "
                             "does; an experiment's own files there would stop a study from running again in it: "
                             "give another --out")
        # Read here, once: data that is missing is one line before anything is written (not a failed run per level
        # and seed), runs kept from before are checked against it, and the runs trained in this process (or Ray's
        # object store) take it. Worker processes read their own.
        loaded = load_named(spec.dataset, data_dir)
        loaded.subset(spec.train_subset, spec.test_subset)  # larger than the data: one line now, not a failed run each
        with holding(out_dir, "the experiment"):  # a second command on this --out is refused
            tracker = make_tracker(bool(mlflow), mlflow if isinstance(mlflow, str) else None, out_dir)
            p = plan(spec, out_dir, force=force, retry_failed=retry_failed, data_dir=data_dir)
            # runs kept from before must have seen these images
            p.store.check_data(loaded, fix="give the data they were trained on, or run again with --force (force=True)")
            total = len(p.jobs) + p.done + p.failed
            progress = RunsProgress(quiet)
            if force:
                progress.line(_describe_deleted(p.deleted, out_dir))
            if p.retried:
                progress.line(f"retrying {p.retried} failed run(s)")
            progress.line(f"{spec.name}: {total} runs ({total // spec.seeds} levels x {spec.seeds} seeds) in "
                          f"{out_dir}: {p.done} finished, {p.failed} failed"
                          + (" (--retry-failed runs them again)" if p.failed else "") + f", {len(p.jobs)} to run "
                          + (f"as Ray tasks ({cpus_per_run:g} CPU, {gpus_per_run:g} GPU each)" if backend == "ray"
                             else f"with {workers} worker(s)" + (", each level's seeds as one batched model"
                                                                if runner.batch_seeds else "")))
            beyond = sorted({int(d.name[4:]) for d in (out_dir / "runs").glob("*/seed*") if d.name[4:].isdigit()
                             and int(d.name[4:]) >= spec.seeds and (d / METRICS_FILE).is_file()})
            if beyond:  # fewer seeds than before: their runs stay on disk, outside this analysis; said, not silent
                progress.line(f"note: finished runs of seed {', '.join(map(str, beyond))} are kept in {out_dir} but "
                              f"left out of this analysis of {spec.seeds} seeds; --seeds {beyond[-1] + 1} includes "
                              "them")
            labels = {level["label"] for level in p.store.read_experiment()["levels"]}
            others = sorted(d.name for d in (out_dir / "runs").glob("*") if d.is_dir() and d.name not in labels
                            and any((run / METRICS_FILE).is_file() for run in d.glob("seed*")))
            if others:  # levels of an earlier design of this experiment: on disk, outside this one; said, not silent
                progress.line(f"note: finished runs of {', '.join(others)}, not a level of this design, are kept in "
                              f"{out_dir / 'runs'} but left out of this analysis")
            if tracker is not None:  # one parent per store: a resumed sweep reopens it and logs what it lacks
                if force:
                    tracker.retire(out_dir)
                parent = tracker.start_parent(spec.name, "experiment", params=spec.model_dump(mode="json"),
                                              store=out_dir)
                tracker.catch_up(parent, p.store, spec.name)

            def on_result(result) -> None:
                progress.run_finished(result)
                if tracker is not None:  # logged from the store as each run lands, whatever trained it
                    tracker.catch_up(parent, p.store, spec.name)

            progress.start(len(p.jobs), weighted=False)
            try:
                with threads_kept():  # runs trained here set torch's thread count; the session keeps its own
                    summary = execute_plan(p, workers=workers, on_result=on_result, on_start=progress.run_started,
                                           backend=runner, dataset=loaded)
            finally:
                progress.close()
                if tracker is not None:
                    tracker.finish(parent, [out_dir / "summary.json", out_dir / "runs.csv"])
            return ExperimentResult(out_dir, summary, tracked=tracker.where(parent) if tracker is not None else None)

    def __repr__(self) -> str:
        # a grid's every factor: its levels are their product
        per_factor = [", ".join(label for label, _ in f.labelled_levels()) for f in self.spec.factors]
        levels = per_factor[0] if len(per_factor) == 1 else " x ".join(f"({levels})" for levels in per_factor)
        return f"Experiment({self.spec.name}: {self.spec.model}, {levels}; {self.spec.seeds} seeds)"


def check_run_options(*, workers: Any = 1, cpus_per_run: Any = 1, gpus_per_run: Any = 0, mlflow: Any = False,
                      batch_seeds: Any = None) -> None:
    """One line for an option of the wrong type from Python (the CLI's are typed): compared or formatted later,
    a string was a TypeError, 2.5 workers was read as a script starting "2.5 worker processes", and mlflow=5 was
    taken as True."""
    if not isinstance(workers, numbers.Integral) or isinstance(workers, bool):
        raise UsageError(f"workers takes a whole number, 1 or more; got {workers!r}")
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    for name, value in (("cpus_per_run", cpus_per_run), ("gpus_per_run", gpus_per_run)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise UsageError(f"{name} takes a number, got {value!r}")
    if mlflow is not None and not isinstance(mlflow, (bool, str)):
        raise UsageError(f"mlflow takes True (tracking in OUT/mlflow.db), False or a tracking URI, got {mlflow!r}")
    if batch_seeds is not None and not isinstance(batch_seeds, bool):
        raise UsageError(f"batch_seeds takes True, False or None (the backend decides), got {batch_seeds!r}")


def _describe_deleted(deleted: tuple[Path, ...], root: Path) -> str:
    if not deleted:
        return f"--force: nothing to delete in {root}"
    runs = [p for p in deleted if p.name.startswith("seed")]
    others = sorted({p.name for p in deleted} - {p.name for p in runs})
    return (f"--force: deleted {len(runs)} run(s) under {root / 'runs'}"
            + (f" and {', '.join(others)}" if others else ""))


class ExperimentResult:
    """An experiment's statistics (summary.json) and its runs, read from its directory.

    Example: ``result = convlens.load_experiment("runs/experiments/kernel-size"); result.table()``
    """

    def __init__(self, directory: str | Path, summary: dict | None = None, tracked: str | None = None):
        from convlens.experiments.analysis import analyze
        from convlens.experiments.store import RunStore
        self.directory = user_path(directory, "experiment directory")
        self.summary = summary if summary is not None else analyze(RunStore(self.directory))
        self.tracked = tracked  # where MLflow shows it, when it was tracked

    @property
    def conclusions(self) -> list[str]:
        """The generated sentences, each worded by its family-corrected test."""
        return list(self.summary["conclusions"])

    @property
    def warnings(self) -> list[str]:
        """What limits the conclusions (e.g. n=2 seeds, timings measured under different conditions)."""
        return list(self.summary["warnings"])

    def table(self):
        """One row per level: n, mean, std and 95% CI of test accuracy; for a level compared with the
        experiment's reference, that comparison (named in ``comparison``; in a grid it holds within one level of
        the other factor): the paired difference with its 95% t interval (not adjusted), its p (``p_unadjusted``),
        the Holm-corrected p (one family: all of ``comparisons()``) and the verdict. Accuracies and differences are
        fractions."""
        import pandas as pd
        effects, rows = self._effects(), []
        for lv in self.summary["levels"]:
            acc, c = lv["test_accuracy"], effects.get(lv["label"], {})
            rows.append({"level": lv["label"], "reference": lv["label"] == self.summary["reference"], "n": lv["n"],
                         "mean": acc["mean"], "std": acc["std"], "ci_low": acc["ci95"][0], "ci_high": acc["ci95"][1],
                         "comparison": c.get("label"), "diff": c.get("diff"),
                         "diff_ci_low": (c.get("ci95") or [None, None])[0],
                         "diff_ci_high": (c.get("ci95") or [None, None])[1], "p_unadjusted": c.get("p_value"),
                         "p_holm": c.get("p_holm"), "verdict": c.get("verdict"), "params": lv["params"],
                         "train_seconds": lv["train_seconds"]["mean"]})
        return pd.DataFrame(rows).set_index("level")

    def comparisons(self):
        """Every comparison of the design, one row each (for a grid: the effect of each factor within each level
        of the other, and the interaction), all in one Holm family: paired difference with its 95% t interval
        (not adjusted), p (``p_unadjusted``), Holm p, verdict."""
        import pandas as pd
        return pd.DataFrame([{"comparison": c["label"], "kind": c["kind"], "factor": c.get("factor"),
                              "level": c.get("level"), "reference": c.get("reference"), "within": c.get("within"),
                              "n": c["n"], "diff": c["diff"], "diff_ci_low": c["ci95"][0],
                              "diff_ci_high": c["ci95"][1], "p_unadjusted": c["p_value"], "p_holm": c["p_holm"],
                              "verdict": c["verdict"]} for c in self.summary["comparisons"]]).set_index("comparison")

    def runs(self):
        """One row per finished run, read from the run store now: level, seed, status, test accuracy, seconds,
        directory (runs.csv's columns; ``run_dir`` here a full path, which ``load_run`` reads from anywhere)."""
        import pandas as pd

        from convlens.experiments.analysis import CSV_COLUMNS, collect
        from convlens.experiments.store import RunStore
        rows = collect(RunStore(self.directory))[1]
        for row in rows:  # runs.csv's paths are relative to the experiment, which moves with its directory
            row["run_dir"] = str(self.directory.absolute() / row["run_dir"])
        return pd.DataFrame(rows, columns=CSV_COLUMNS)

    def experiment(self) -> Experiment:
        """The experiment that wrote this directory (its spec, from experiment.json)."""
        from convlens.experiments.spec import parse_spec
        from convlens.experiments.store import RunStore
        return Experiment(parse_spec(RunStore(self.directory).read_experiment()["spec"], origin="experiment.json"))

    def run_more(self, seeds: int, **options: Any) -> ExperimentResult:
        """Run the same experiment with ``seeds`` seeds in this directory: the finished runs are kept, only the new
        seeds train (``options``: as ``Experiment.run``). This result then holds the new statistics, and is
        returned. In a study's directory, rerun the study to update its report."""
        if "out" in options:  # else Python's "got multiple values for keyword argument 'out'"
            raise UsageError("run_more trains in this result's directory; to run the experiment in another: "
                             "result.experiment().run(seeds, out=...)")
        if options.get("force"):  # it would delete the finished runs this method promises to keep
            raise UsageError("run_more keeps the finished runs, which force=True would delete; to train them all "
                             "again: result.experiment().run(seeds, out=result.directory, force=True)")
        have = self.summary["seeds"]
        if not isinstance(seeds, numbers.Integral) or isinstance(seeds, bool) or seeds < have:
            # fewer would replace this analysis (and summary.json) with one of fewer seeds, not add any
            raise UsageError(f"run_more takes the number of seeds to have, at least the {have} this result has; got "
                             f"{seeds!r} (to analyse fewer: result.experiment().run(seeds, out=result.directory))")
        more = self.experiment().run(seeds, out=self.directory, **options)
        self.summary, self.tracked = more.summary, more.tracked
        return self

    def plot(self, kind: str = "accuracy_vs_params"):
        """A matplotlib figure: ``curves`` (validation accuracy per epoch), ``accuracy_vs_params``,
        ``accuracy_vs_time`` (mean test accuracy with 95% CI per level; only when the runs' times were measured
        under the same conditions) or ``per_class``."""
        from convlens.data.catalog import dataset_info
        from convlens.experiments.plots import PLOTS, figure
        from convlens.experiments.store import RunStore
        if kind not in PLOTS:
            raise UsageError(f"unknown plot '{kind}'; plots: {', '.join(PLOTS)}")
        if kind == "accuracy_vs_time" and not self.summary["timing"]["comparable"]:
            raise UsageError("the runs' times were measured under different conditions (device, threads or "
                             "workers), so they are not put on one axis; see summary['timing']")
        store = RunStore(self.directory)
        dataset = store.read_experiment()["spec"].get("dataset", "fashion-mnist")
        from convlens.figure_files import save_figure
        # closed in pyplot (a notebook's inline backend would draw it twice) and its labels shown as written
        return save_figure(figure(kind, store, self.summary, list(dataset_info(dataset).class_names)), None)

    def _effects(self) -> dict[str, dict]:
        """level -> its comparison with the reference (the rows of ``table``)."""
        return {c["level"]: c for c in self.summary["comparisons"]
                if c["kind"] == "effect" and c["reference"] == self.summary["reference"]}

    def _repr_html_(self) -> str:
        """The tables ``convlens experiment run`` prints: levels, then every comparison (verdicts coloured)."""
        from html import escape

        from convlens.config import recipe_label  # the CLI's title, word for word
        from convlens.display import comparisons_title, experiment_rows, html_table
        levels, tests = experiment_rows(self.summary)
        styles = [{"verdict": next((css for key, css in VERDICT_COLOURS.items() if c["verdict"].startswith(key)), "")}
                  for c in self.summary["comparisons"]]
        s = self.summary
        title = f"{s['experiment']}: recipe {recipe_label(s['recipe'])}, {s['seeds']} seeds"
        return (html_table(levels, title) +
                html_table(tests, f"Comparisons: {comparisons_title(self.summary['comparisons'])}", styles) +
                "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in self.conclusions + self.warnings) + "</ul>")

    def __repr__(self) -> str:
        return f"ExperimentResult({self.summary['experiment']} in {self.directory})"


def load_experiment(directory: str | Path) -> ExperimentResult:
    """The result of an experiment directory, analysed again from its run files (as ``experiment table``).

    Example: ``convlens.load_experiment("runs/experiments/kernel-size").table()``
    """
    return ExperimentResult(directory)
