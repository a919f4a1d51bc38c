"""Run the study end to end into one directory; every stage's numbers go to results.json, figures to figures/.

    OUT/results.json              every number the report prints, with the config, versions, device and timings
    OUT/figures/*.png             every figure the report embeds
    OUT/experiments/<name>/       one run store per experiment (resumable; identical runs are trained once)
    OUT/model/                    the exported reference CNN (seed 0): what predict, serve and SageMaker load
    OUT/report.html, report.md    rendered from results.json and figures/ only (convlens.report)
    OUT/.convlens-study.json      digests of the inputs and outputs: a rerun with nothing changed keeps them

Stages run in order: data -> eda -> experiments -> analysis (baseline, design, probes) -> export -> report.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convlens.atomic_files import atomic_write_json
from convlens.config import TrainConfig, model_spec, resolve_recipe
from convlens.data.dataset import ImageDataset, data_checksums, load_named, validation_size
from convlens.errors import first_sentence
from convlens.experiments.local import Job, JobResult, threads_per_run
from convlens.experiments.run import Backend, Plan, plan, train_pending, write_analysis
from convlens.experiments.spec import flatten_config, resolve_levels
from convlens.experiments.store import copy_run
from convlens.figure_files import drawing_in_background
from convlens.models.network import Network
from convlens.models.summary import flops_per_image
from convlens.provenance import package_versions, provenance
from convlens.report.notebook import can_execute, warm_kernels, write_notebook
from convlens.report.render import RESULTS_FORMAT, render_report
from convlens.study import sections, unchanged
from convlens.study.config import StudyConfig
from convlens.study.redraw import figure_drawers
from convlens.training import pick_device

RESULTS_FILE = "results.json"
# Rough cost model for the progress bar's ETA, in seconds on 2 cores: per training image and epoch,
# 6 FLOPs per MAC (forward + backward) at ~2.3e11 FLOP/s, plus a fixed per-image cost that dominates for MLPs.
_FLOP_RATE, _PER_IMAGE_FLOPS = 2.3e11, 5e6
_LOCAL_SLOWDOWN = 5  # a locally connected step costs 2.8x (fp32) to 4.7x (bf16) the conv's at equal MACs
# The other stages of the default study, as measured on 2 cores (bench/README.md, "The next day: ...")
_STAGE_SECONDS = {"data": 2, "eda": 4, "analysis": 24, "export": 3, "report": 1, "notebook": 7}


class StudyEvents:
    """What the study reports while it runs; the CLI draws a rich progress display from these. No-ops here."""

    def planned(self, total_seconds: float, runs: int, reused: int, kept: int = 0) -> None: ...
    def unchanged(self, out: Path) -> None: ...
    def stage(self, name: str, detail: str = "") -> None: ...
    def run_started(self, job: Job) -> None: ...
    def run_finished(self, result: JobResult, estimated_seconds: float) -> None: ...
    def advance(self, estimated_seconds: float) -> None: ...


@contextmanager
def _stage(name: str, events: StudyEvents, seconds: dict[str, float], detail: str = ""):
    """Announce stage ``name`` and add its wall time to ``seconds[name]``."""
    events.stage(name, detail)
    start = time.perf_counter()
    yield
    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start


def estimate_run_seconds(config: TrainConfig, n_train: int) -> float:
    spec = model_spec(config)
    macs = flops_per_image(Network(spec), (spec.in_channels, spec.image_size, spec.image_size))[0] / 2
    slowdown = _LOCAL_SLOWDOWN if getattr(spec, "layer", "conv") == "local" else 1
    return slowdown * config.recipe.epochs * n_train * (6 * macs + _PER_IMAGE_FLOPS) / _FLOP_RATE


def _run_key(config: TrainConfig, seed: int, device_type: str | None, threads: int | None) -> str:
    """Two runs with equal keys train the same network on the same data the same way, under the same timing
    conditions (device type, threads): train it once and copy it, and its seconds stay comparable."""
    return json.dumps({**flatten_config(config), "seed": seed, "device_type": device_type, "threads": threads},
                      sort_keys=True)


@dataclass(frozen=True)
class ExperimentRuns:
    plans: list[Plan]
    unique: list[Job]  # jobs to train
    copies: list[tuple[Job, Path]]  # (job, run directory it duplicates): filled by copying once that run is done
    kept: int = 0  # distinct runs finished before this invocation (a resumed or copied study), kept as they are


def _finished_runs(plans: list[Plan]) -> dict[str, tuple[Path, dict]]:
    """Every successful run of these experiments keyed by what it trained: (run directory, metrics)."""
    finished = {}
    for p in plans:
        record = p.store.read_experiment()
        for level in record["levels"]:
            cfg = TrainConfig.model_validate(level["config"])
            for seed, metrics in p.store.done_runs(level["label"], record["spec"]["seeds"]).items():
                timing = metrics.get("timing") or {}
                key = _run_key(cfg, seed, timing.get("device_type"), timing.get("threads"))
                finished.setdefault(key, (p.store.run_dir(level["label"], seed), metrics))
    return finished


# Unbatched runs sharing an H100 gained little beyond 4-8 at once (bench/README.md, --gpus-per-run); the default
# study's 5 batched levels at once were measured, more were not.
GPU_WORKERS_MAX = 8


def study_workers(config: StudyConfig, backend: Backend) -> int:
    """``config.workers``, or when unset: with CUDA and the local backend, one worker per distinct level of the
    study (at most GPU_WORKERS_MAX and the cores), so every level trains at once on a GPU one small CNN cannot
    fill; else 1. All levels count, not only the pending ones, so a resumed study keeps its threads per run."""
    if config.workers is not None:
        return config.workers
    if backend.name != "local" or backend.gpus_per_run > 0 or pick_device("auto").type != "cuda":
        return 1
    levels = {_run_key(level.config, 0, "cuda", None)  # as the planner shares identical runs
              for spec in config.experiment_specs() for level in resolve_levels(spec)}
    return max(1, min(GPU_WORKERS_MAX, len(os.sched_getaffinity(0)), len(levels)))


def plan_experiments(config: StudyConfig, out: Path, *, force: bool = False, retry_failed: bool = False,
                     data_dir: Path | None = None) -> ExperimentRuns:
    """Plan every experiment's pending runs; a run identical to one already done or planned is a copy."""
    plans = [plan(spec, out / "experiments" / spec.name, force=force, retry_failed=retry_failed, data_dir=data_dir)
             for spec in config.experiment_specs()]
    finished = {key: run_dir for key, (run_dir, _) in _finished_runs(plans).items()}
    unique, copies, scheduled = [], [], {}
    for p in plans:
        for job in p.jobs:
            key = _run_key(job.config, job.seed, pick_device(job.config.device).type,
                           job.config.threads or threads_per_run(config.workers))
            if key in finished:
                copies.append((job, finished[key]))
            elif key in scheduled:
                copies.append((job, scheduled[key]))
            else:
                scheduled[key] = job.directory
                unique.append(job)
    return ExperimentRuns(plans, unique, copies, kept=len(finished))


def run_experiments(runs: ExperimentRuns, costs: list[float], *, workers: int, events: StudyEvents,
                    backend: Backend = Backend(), dataset: ImageDataset | None = None) -> dict[str, dict]:
    """Train the unique runs (``costs``: their estimated seconds, in order; ``dataset``: theirs, loaded), copy
    the duplicates, then write each experiment's summary, runs.csv and plots."""
    pending_costs: dict[tuple[str, int], list[float]] = {}
    for job, cost in zip(runs.unique, costs):
        pending_costs.setdefault((job.level, job.seed), []).append(cost)

    def on_result(result: JobResult) -> None:
        events.run_finished(result, pending_costs[(result.level, result.seed)].pop())

    for p in runs.plans:
        for job in p.jobs:
            p.store.clear_partial(job.level, job.seed)
    train_pending(runs.unique, workers=workers, on_result=on_result, on_start=events.run_started, backend=backend,
                  dataset=dataset)
    for job, source in runs.copies:
        copy_run(source, job.directory)
    return {p.store.read_experiment()["spec"]["name"]: write_analysis(p.store) for p in runs.plans}


def dataset_block(name: str) -> dict:
    """What the report says about the dataset: a title, its description, its shape, flips."""
    from convlens.data.catalog import dataset_info
    info = dataset_info(name)
    return {"name": name, "title": info.title or name, "description": info.description,
            "input_shape": list(info.input_shape), "flips_preserve_meaning": info.flips_preserve_meaning}


def fit_subsets(config: StudyConfig, full: ImageDataset) -> StudyConfig:
    """A subset at least as large as the dataset is the whole dataset (a --quick study of the 1,797 digits)."""
    changes = {key: None for key, n in (("train_subset", len(full.train_labels)), ("test_subset", len(full.test_labels)))
               if getattr(config, key) is not None and getattr(config, key) >= n}
    return config.model_copy(update=changes) if changes else config


def _load_data(config: StudyConfig, data_dir: Path | None) -> tuple[StudyConfig, ImageDataset, ImageDataset]:
    """The dataset, loaded once: (the config with its subsets fitted to it, the full dataset, the study's part)."""
    full = load_named(config.dataset, data_dir)
    config = fit_subsets(config, full)
    return config, full, (full.subset(config.train_subset, config.test_subset)
                          if config.train_subset or config.test_subset else full)


def run_study(config: StudyConfig, out: Path, **options: Any) -> dict:
    """Run (or resume) the study in ``out``; returns the results written to results.json. One process at a time
    (a second study on this --out is refused: both would train the same runs)."""
    from convlens.directory_lock import holding
    with holding(out, "the study"):
        return _run_study(config, Path(out), **options)


def _run_study(config: StudyConfig, out: Path, *, events: StudyEvents | None = None, force: bool = False,
               retry_failed: bool = False, data_dir: Path | None = None, command: str | None = None,
               backend: Backend = Backend()) -> dict:

    events = events or StudyEvents()
    config = config.model_copy(update={"workers": study_workers(config, backend)})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    with _stage("data", events, seconds, f"loading and verifying {config.dataset}"):
        config, full, ds = _load_data(config, data_dir)
        runs = plan_experiments(config, out, force=force, retry_failed=retry_failed, data_dir=data_dir)
        for p in runs.plans:  # runs kept from before must have seen these images
            p.store.check_data(full, fix="give the data they were trained on, or run the study again with --force")
        n_val = validation_size(len(ds.train_labels), resolve_recipe(config.recipe).val_fraction)
        n_train = len(ds.train_labels) - n_val
        costs = [estimate_run_seconds(j.config, n_train) for j in runs.unique]

        def inputs() -> str | None:  # what the outputs are made from: the runs as they are now
            return unchanged.study_inputs(config.model_dump(mode="json"), full, out, [p.store.root for p in runs.plans],
                                          device_type=pick_device("auto").type, notebook_runs=can_execute())
        if not (runs.unique or runs.copies) and unchanged.unchanged(out, inputs()):
            events.unchanged(out)
            return json.loads((out / RESULTS_FILE).read_text())
        unchanged.forget(out)
        events.planned(sum(costs) + sum(_STAGE_SECONDS.values()), len(runs.unique), len(runs.copies), runs.kept)
    events.advance(_STAGE_SECONDS["data"])

    fig_dir = out / "figures"
    with ExitStack() as stack:
        # Figures are drawn by other processes from here to the report, which embeds them (bench/README.md,
        # "Figures drawn beside the study").
        drawing = stack.enter_context(ExitStack())
        drawing.enter_context(drawing_in_background())
        with _stage("eda", events, seconds, f"exploring {len(ds.train_labels):,} + {len(ds.test_labels):,} images"):
            eda = sections.eda_section(ds, fig_dir)
        events.advance(_STAGE_SECONDS["eda"])

        with _stage("experiments", events, seconds, f"{len(runs.unique)} runs to train, {len(runs.copies)} copied, "
                                                     f"{runs.kept} trained before"):
            summaries = run_experiments(runs, costs, workers=config.workers, events=events, backend=backend,
                                        dataset=full)  # runs trained in this process use it: read from disk once
        made_from = inputs()  # the runs the analysis reads

        # The notebook's kernels boot (one core each, 3-7 s) while the study works on: beside the ONNX export (one
        # thread, ~2 s) when there is one, else beside the analysis, whose probes keep both cores busy
        # (bench/README.md, "One session, two paces").
        kernel_beside_export = sections.onnx_export_skipped(config) is None
        kernels = [] if kernel_beside_export else stack.enter_context(warm_kernels(out))
        with _stage("analysis", events, seconds, "baseline, CNN design, shift and locality probes, filters"):
            stores = {name: p.store for name, p in zip(summaries, runs.plans)}
            analysis = sections.analysis_sections(config, stores, summaries, ds, fig_dir)
        events.advance(_STAGE_SECONDS["analysis"])

        if kernel_beside_export:
            kernels = stack.enter_context(warm_kernels(out))
        with _stage("export", events, seconds, "exporting the reference CNN"):
            deployment = sections.export_section(config, stores["cnn-vs-mlp"], out,
                                                 summaries["cnn-vs-mlp"]["levels"], dataset=full)
        events.advance(_STAGE_SECONDS["export"])
        drawing.close()  # every figure is on disk

        distinct = [metrics for _, metrics in _finished_runs(runs.plans).values()]
        results = {
            "format": RESULTS_FORMAT,
            "study": {"config": config.model_dump(mode="json"), "output": str(out),
                      "command": command or shlex.join([os.path.basename(sys.argv[0]), *sys.argv[1:]]),
                      "provenance": provenance(pick_device("auto")), "versions": package_versions(),
                      "dataset": dataset_block(config.dataset),
                      "data": {"origin": full.source.origin, "directory": str(full.source.directory),
                               # digits and folders have no published checksums: the report says so
                               "checksums_verified": bool(data_checksums(full)),
                               "n_train_available": len(full.train_labels), "n_test_available": len(full.test_labels),
                               # of the study's training images, what each run trains on and validates on
                               "n_train": n_train, "n_val": n_val},
                      # Over every distinct finished run, whenever it was trained (a rerun reuses runs, so its own
                      # wall time says nothing about what the training cost).
                      "runs": {"distinct": len(distinct), "trained_now": len(runs.unique),
                               "train_seconds": sum(m["train_seconds"] for m in distinct),
                               # the arithmetic the runs trained in ("auto" resolves per machine). Runs recorded
                               # before metrics.json had the key (6361799, which added bf16) all trained in fp32.
                               "precisions": sorted({m.get("precision", "fp32") for m in distinct})}},
            "eda": eda,
            **analysis,
            "experiments": summaries,
            "deployment": deployment,
        }
        with _stage("report", events, seconds, "rendering report.html and report.md"):
            results["study"]["stage_seconds"] = {**seconds, "report": None}
            results["study"]["wall_seconds"] = None
            atomic_write_json(out / RESULTS_FILE, results)
            render_report(out)
        events.advance(_STAGE_SECONDS["report"])
        # Wall time and the report stage's own time can only be known now: record them, render once more (cheap).
        results["study"]["stage_seconds"] = dict(seconds)
        results["study"]["wall_seconds"] = time.perf_counter() - started
        atomic_write_json(out / RESULTS_FILE, results)
        render_report(out)
        with _stage("notebook", events, seconds, "writing report.ipynb and running it"):
            results["study"]["notebook"] = notebook_status(out, kernels)
        events.advance(_STAGE_SECONDS["notebook"])
    results["study"]["notebook"]["seconds"] = seconds["notebook"]  # after the wall time: not part of it
    atomic_write_json(out / RESULTS_FILE, results)
    # Recorded unless the notebook failed (it is tried again) or a run store changed under the analysis.
    if (results["study"]["notebook"]["executed"] or not can_execute()) and inputs() == made_from:
        unchanged.remember(out, made_from)
    return results


def notebook_status(out: Path, kernels: Sequence[Any] = ()) -> dict:
    """Write report.ipynb, executed when the notebook extra is installed (in ``kernels`` when some were started
    early); a failure costs the outputs, not the study."""
    try:
        results = json.loads((out / RESULTS_FILE).read_text())
        drawn = set(figure_drawers(results, out, dataset=lambda: None))  # names only: nothing is drawn
        _, executed = write_notebook(out, drawn, kernels=kernels)
        return {"executed": executed, "reason": None if executed else "nbclient or ipykernel is not installed "
                "(pip install 'convlens[notebook]')"}
    except ImportError:
        return {"executed": False, "reason": "nbformat is not installed (pip install 'convlens[notebook]')"}
    except Exception as e:  # a kernel that does not start, a cell that fails: the report stands without it
        # nbclient's CellExecutionError begins with the cell's source; its error is in ename and evalue
        cause = (f"{e.ename}: {first_sentence(str(e.evalue))}" if getattr(e, "ename", None)
                 else first_sentence(str(e)))
        reason = f"running it failed ({type(e).__name__}: {cause})"
        try:
            write_notebook(out, drawn, execute=False)
        except Exception as again:  # not even the unexecuted notebook: the study's other outputs are kept
            reason += f"; writing it failed too ({type(again).__name__})"
        return {"executed": False, "reason": reason}
