"""The whole assignment from Python: ``Study(preset_or_config).run(out)`` -> ``StudyResult`` (the numbers of
results.json, the figures, the report). ``convlens study`` is this, printed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from convlens.errors import UsageError, did_you_mean, user_path
from convlens.study.config import STUDY_PRESETS, StudyConfig


class Study:
    """EDA, MLP baseline, CNN design, the controlled experiments, probes, export and one report.

    ``Study("default")`` (or ``"quick"``, ``"full"``), ``Study("study.yaml")``, or a preset with changes:
    ``Study("quick", dataset="digits", seeds=5)``.

    Example: ``result = convlens.Study("quick").run(out="runs/quick"); result.report_path``
    """

    def __init__(self, config: str | Path | StudyConfig | None = None, *, preset: str | None = None,
                 **changes: Any):
        """``config``: a preset name, a YAML file of study options (applied on top of ``preset``, default
        "default") or a StudyConfig; ``changes``: options on top (seeds, workers, dataset, epochs, train_subset,
        ...)."""
        from convlens.study.config import load_study_config, validated_study_config
        presets = ", ".join(STUDY_PRESETS)
        changes = {k: v for k, v in changes.items() if v is not None}  # None keeps the config's (as in YAML)
        if isinstance(config, StudyConfig):
            if preset is not None:  # else silently not applied
                raise UsageError(f"preset={preset!r} applies to a preset name or a YAML file; a StudyConfig is "
                                 "complete: give its changes as keywords")
            self.config = validated_study_config({**config.model_dump(), **changes}) if changes else config
        elif config is None or str(config) in STUDY_PRESETS:
            name = (preset or "default") if config is None else str(config)
            if preset is not None and preset != name:
                raise UsageError(f"Study({name!r}, preset={preset!r}): two presets; give the preset once")
            self.config = load_study_config(name, **changes)
        elif not isinstance(config, (str, os.PathLike)):
            raise UsageError(f"Study takes a preset name ({presets}), a YAML file or a StudyConfig, got {config!r}")
        else:
            path = user_path(config, "study config")
            if not path.exists() and path.suffix.lower() not in (".yaml", ".yml") and len(path.parts) == 1:
                # a name, not a path: most likely a misspelled preset ("study config quik not found" said neither)
                raise UsageError(f"{str(config)!r}{did_you_mean(config, STUDY_PRESETS)} is neither a file nor a study "
                                 f"preset ({presets})")
            self.config = load_study_config(preset or "default", path, **changes)

    def run(self, out: str | Path = "runs/study", *, force: bool = False, retry_failed: bool = False,
            data_dir: str | Path | None = None, backend: str = "local", address: str | None = None,
            cpus_per_run: float = 1, gpus_per_run: float = 0, mlflow: bool | str = False,
            quiet: bool = False, batch_seeds: bool | None = None) -> StudyResult:
        """Run (or resume: finished runs are reused) the study into ``out``; writes report.html, report.md,
        report.ipynb and results.json there."""
        from convlens.api.experiments import check_run_options
        from convlens.api.runs import data_path, in_an_experiment, output_path
        from convlens.display import StudyProgress
        from convlens.experiments.local import check_workers_can_start
        from convlens.experiments.run import local_workers, make_backend
        from convlens.run_files import refuse_run_or_model
        from convlens.study.pipeline import run_study, study_workers
        from convlens.tracking import log_study, make_tracker
        from convlens.training import threads_kept
        out = output_path(out)
        # as train and Experiment.run refuse each other's directories: a study there would mix its files into
        # a run's (whose --force would then delete them) or have its runs analysed as the experiment's
        where = in_an_experiment(out)
        if where is not None:
            raise UsageError(f"{out} {where}; a study writes its experiments in its own directory: give another --out")
        refuse_run_or_model(out, "a study")
        check_run_options(cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, mlflow=mlflow, batch_seeds=batch_seeds)
        data_dir = data_path(data_dir)  # before the tracker: with mlflow=True it writes OUT/mlflow.db
        runner = make_backend(backend, address, cpus_per_run, gpus_per_run, batch_seeds)
        # a script that would run again in every worker: said before anything is written (the tracker makes OUT)
        check_workers_can_start(local_workers(study_workers(self.config, runner), runner))
        tracker = make_tracker(bool(mlflow), mlflow if isinstance(mlflow, str) else None, out)  # a bad store: now
        progress = StudyProgress(quiet)
        try:
            with threads_kept():  # runs trained here set torch's thread count; the session keeps its own
                results = run_study(self.config, out, events=progress, force=force, retry_failed=retry_failed,
                                    data_dir=data_dir, backend=runner)
        finally:
            progress.close()
        tracked = tracker.where(log_study(tracker, out, results, fresh=force)) if tracker is not None else None
        return StudyResult(out, results, tracked=tracked)

    def __repr__(self) -> str:
        c = self.config
        return f"Study({c.dataset}: {c.seeds} seeds, experiments {', '.join(e.name for e in c.experiment_specs())})"


class StudyResult:
    """A finished study: ``results`` (results.json), ``figures``, ``report_path``, one experiment's result.

    Example: ``convlens.load_study("runs/study").results["design"]["test_accuracy"]``
    """

    def __init__(self, directory: str | Path, results: dict | None = None, tracked: str | None = None):
        from convlens.models.checkpoint import read_json_object
        self.directory = user_path(directory, "study directory")
        self.results = results if results is not None else read_json_object(
            self.directory / "results.json", "give a directory written by 'convlens study'")
        self.tracked = tracked
        self._dataset = None  # loaded by dataset() on first use

    @property
    def report_path(self) -> Path:
        """report.html: one self-contained file."""
        return self.directory / "report.html"

    @property
    def notebook_path(self) -> Path:
        """report.ipynb: the report as a notebook that rebuilds its tables and figures."""
        return self.directory / "report.ipynb"

    @property
    def figures(self) -> dict[str, Path]:
        """Figure name -> PNG path, as the report embeds them."""
        return {p.stem: p for p in sorted((self.directory / "figures").glob("*.png")) if not p.name.startswith(".")}

    @property
    def experiments(self) -> list[str]:
        """The names of the study's experiments (``experiment(name)`` gives one)."""
        return list(self.results["experiments"])

    def experiment(self, name: str):
        """The ``ExperimentResult`` of one of the study's experiments (its tables, plots, conclusions)."""
        from convlens.api.experiments import ExperimentResult
        if name not in self.results["experiments"]:
            raise UsageError(f"the study has no experiment '{name}'; it has {', '.join(self.experiments)}")
        return ExperimentResult(self.directory / "experiments" / name)

    def figure(self, name: str):
        """A saved figure of the report by name (``figures`` lists them), shown in a notebook."""
        if name not in self.figures:
            raise UsageError(f"the study has no figure '{name}'; it has {', '.join(self.figures)}")
        try:
            from IPython.display import Image
        except ImportError:
            return self.figures[name]
        return Image(filename=str(self.figures[name]))

    def plot(self, name: str):
        """A figure of the report drawn again as a matplotlib figure, as the study drew it: from results.json, the
        run store (curves, confusion matrices, first-layer kernels, feature maps) and the study's images (samples,
        galleries; the dataset is loaded on first use). ``rebuilt()`` lists the names; change the code to change
        a figure."""
        drawers = self._drawers()
        if name not in drawers:
            raise UsageError(f"the study has no figure '{name}' to draw; it draws {', '.join(drawers)}")
        return drawers[name]()

    def rebuilt(self) -> list[str]:
        """The names of the figures ``plot`` draws (every figure of the report)."""
        return list(self._drawers())

    def dataset(self):
        """The images the study used (its dataset and subsets, as results.json records them): a ``Dataset``."""
        if self._dataset is None:
            from convlens.api.runs import load_dataset
            config, data = self.results["study"]["config"], self.results["study"]["data"]
            from convlens.data.catalog import takes_data_dir
            directory = Path(data["directory"])  # where the study found it; elsewhere (Colab) the default place
            # digits and folders are found by their name: their recorded directory is where they were
            use = directory if directory.is_dir() and takes_data_dir(config["dataset"]) else None
            self._dataset = load_dataset(config["dataset"], use).subset(
                config["train_subset"], config["test_subset"])
        return self._dataset

    def _drawers(self) -> dict:
        from convlens.study.redraw import figure_drawers
        return figure_drawers(self.results, self.directory, self.dataset)

    def headline(self) -> str:
        """The study's one line: CNN and MLP test accuracy over seeds and the wall time."""
        cnn, mlp = self.results["design"]["test_accuracy"], self.results["baseline"]["test_accuracy"]
        # None in the results.json of a study stopped while it rendered its report (written before the time is known)
        wall = self.results["study"].get("wall_seconds")
        return (f"CNN {cnn['mean'] * 100:.2f}% ± {cnn['std'] * 100:.2f} pp, MLP {mlp['mean'] * 100:.2f}% ± "
                f"{mlp['std'] * 100:.2f} pp (n={cnn['n']} seeds)" + ("" if wall is None else f"; {wall / 60:.1f} min"))

    def accuracy(self) -> dict[str, dict]:
        """Test accuracy over seeds (n, mean, std, 95% CI) of the MLP baseline and the CNN design."""
        return {"mlp": self.results["baseline"]["test_accuracy"], "cnn": self.results["design"]["test_accuracy"]}

    def _repr_html_(self) -> str:
        from html import escape

        from convlens.display import html_table
        rows = [{"model": name, "n": str(a["n"]), "test accuracy %": f"{a['mean'] * 100:.2f} ± {a['std'] * 100:.2f}",
                 "95% CI": f"{a['ci95'][0] * 100:.2f}..{a['ci95'][1] * 100:.2f}"}
                for name, a in self.accuracy().items() if a["n"] and a["std"] is not None]
        return (html_table(rows, f"Study in {self.directory}") +
                f"<p>Report: <code>{escape(str(self.report_path))}</code></p>")

    def __repr__(self) -> str:
        return f"StudyResult({self.directory}: experiments {', '.join(self.experiments)})"


def load_study(directory: str | Path) -> StudyResult:
    """A study written by ``Study.run`` or ``convlens study`` (its results.json).

    Example: ``convlens.load_study("runs/study").experiment("kernel-size").table()``
    """
    return StudyResult(directory)
