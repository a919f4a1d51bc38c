"""Run an experiment end to end: resolve and check the design, run what is pending, analyse, plot."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from convlens.config import check_before_training
from convlens.errors import UsageError
from convlens.experiments.analysis import write_outputs
from convlens.experiments.local import Job, JobResult, execute, execute_batched, run_jobs, seed_groups
from convlens.experiments.plots import write_plots
from convlens.experiments.spec import ExperimentSpec, one_factor_diff, reference_level, resolve_levels
from convlens.experiments.store import RunStore, check_kept_run

if TYPE_CHECKING:  # the dataset module imports torch; these modules only name its type
    from convlens.data.dataset import ImageDataset


@dataclass(frozen=True)
class Plan:
    store: RunStore
    jobs: list[Job]  # pending runs, in the order they will start
    done: int
    failed: int  # failed runs kept as they are (with retry_failed they are among the jobs instead)
    retried: int = 0  # failed runs that are run again
    deleted: tuple[Path, ...] = ()  # what force discarded


def plan(spec: ExperimentSpec, out: Path, *, force: bool = False, retry_failed: bool = False,
         data_dir: Path | None = None) -> Plan:
    """Resolve every level, check one factor changes, write experiment.json, list the pending runs (and the
    failed ones, with ``retry_failed``). ``data_dir``: where the runs read the data, not part of the design."""
    levels = resolve_levels(spec)
    diff = one_factor_diff(spec, levels)  # raises on a confounded design, before anything is written
    for level in levels:  # each level's augmentation on this dataset: one line now, not a failed run per seed
        try:
            check_before_training(level.for_seed(0))
        except UsageError as e:
            raise UsageError(f"level {level.label}: {e}") from None
    store = RunStore(out)
    deleted = store.prepare(spec, levels, reference_level(spec, levels).label, diff, force=force)
    jobs, done, failed, retried = [], 0, 0, 0
    for seed in range(spec.seeds):  # seed-major: every level gets seed 0 before any gets seed 1
        for level in levels:
            status = store.status(level.label, seed)
            if status == "done":
                check_kept_run(store.run_dir(level.label, seed), level.for_seed(seed))
                done += 1
                continue
            if status == "failed" and not retry_failed:
                failed += 1
                continue
            retried += status == "failed"
            config = level.for_seed(seed)
            if data_dir is not None:
                config = config.model_copy(update={"data_dir": Path(data_dir)})
            jobs.append(Job(level.label, seed, config, store.run_dir(level.label, seed)))
    return Plan(store, jobs, done, failed, retried, tuple(deleted))


@dataclass(frozen=True)
class Backend:
    """Where runs train: ``local`` (this process, or ``workers`` processes) or ``ray`` (tasks on a local Ray or
    the cluster at ``address``, each asking for ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs)."""

    name: str = "local"
    address: str | None = None
    cpus_per_run: float = 1
    gpus_per_run: float = 0
    # All seeds of a level as one batched model (convlens.batched_seeds): local only; with workers, one per worker.
    batch_seeds: bool = False


def shared_gpu_workers(gpus_per_run: float) -> int:
    """How many local worker processes share this machine's GPUs when each run takes ``gpus_per_run`` of one
    (each process keeps its data resident on its GPU; they all use the first GPU: use Ray to spread over more)."""
    import torch
    if not torch.cuda.is_available():
        raise UsageError(f"--gpus-per-run {gpus_per_run:g} asks for a GPU but CUDA is not available here; leave it "
                         "at 0 to train on the CPU")
    return max(1, int(1 / gpus_per_run))


def make_backend(name: str = "local", address: str | None = None, cpus_per_run: float = 1,
                 gpus_per_run: float = 0, batch_seeds: bool | None = None) -> Backend:
    """A validated Backend (Ray is imported now, so a missing extra is one line up front). ``batch_seeds``
    None: on where CUDA is (a small CNN leaves a GPU mostly idle; with workers, each trains one level's seeds),
    off on the CPU, where the grouped convolutions of a batched model are slower per seed than separate runs
    (bench/README.md)."""
    if name not in ("local", "ray"):
        raise UsageError(f"unknown backend '{name}'; use local or ray")
    if address is not None and name != "ray":  # else ignored: the runs would train here, not on that cluster
        raise UsageError(f"--address {address} names a Ray cluster: add --backend ray, or drop --address")
    if cpus_per_run != 1 and name != "ray":  # else ignored: local runs share the cores by --workers
        raise UsageError(f"--cpus-per-run {cpus_per_run:g} is a Ray task's share of a cluster: add --backend ray, "
                         "or use --workers to train several runs at once here")
    if not cpus_per_run > 0 or gpus_per_run < 0:
        raise UsageError(f"--cpus-per-run must be > 0 and --gpus-per-run >= 0 (got {cpus_per_run:g}, {gpus_per_run:g})")
    if name == "ray":
        from convlens.experiments.ray_backend import check_reachable, import_ray
        ray = import_ray()
        if address is None and os.environ.get("RAY_ADDRESS"):  # where run_jobs_ray connects without --address
            if not ray.is_initialized():
                check_reachable(os.environ["RAY_ADDRESS"], what="$RAY_ADDRESS")
        else:
            check_reachable(address)
    elif gpus_per_run > 0:
        shared_gpu_workers(gpus_per_run)  # no CUDA here: one line now, not after planning
    if batch_seeds is None:
        import torch
        batch_seeds = name == "local" and gpus_per_run == 0 and torch.cuda.is_available()
    elif batch_seeds and (name != "local" or gpus_per_run > 0):
        raise UsageError("--batch-seeds does not combine with --backend ray or --gpus-per-run (to share a GPU "
                         "between batched runs, use --workers)")
    return Backend(name, address, cpus_per_run, gpus_per_run, batch_seeds)


def local_workers(workers: int, backend: Backend) -> int:
    """How many processes ``train_pending`` trains in here for ``workers`` (0 with Ray: the cluster's tasks)."""
    if backend.name != "local":
        return 0
    return max(workers, shared_gpu_workers(backend.gpus_per_run)) if backend.gpus_per_run > 0 else workers


def train_pending(jobs: list[Job], *, workers: int = 1, on_result: Callable[[JobResult], None] = lambda r: None,
                  on_start: Callable[[Job], None] = lambda j: None, backend: Backend = Backend(),
                  dataset: ImageDataset | None = None) -> None:
    """Train ``jobs``: in this process one after another (reporting each start), in ``workers`` processes, or
    as Ray tasks. ``dataset``: the jobs' dataset, already loaded by the caller: runs in this process use it
    instead of reading it again, and Ray's driver puts it in the object store (worker processes read their own)."""
    if backend.name == "ray":
        from convlens.experiments.ray_backend import run_jobs_ray
        run_jobs_ray(jobs, on_result, address=backend.address, cpus_per_run=backend.cpus_per_run,
                     gpus_per_run=backend.gpus_per_run, dataset=dataset)
        return
    workers = local_workers(workers, backend)  # with GPUs shared, 1/gpus_per_run runs per GPU
    if workers <= 1:
        for group in seed_groups(jobs) if backend.batch_seeds else [[job] for job in jobs]:
            for job in group:
                on_start(job)
            for result in execute_batched(group, dataset) if len(group) > 1 else [execute(group[0], dataset)]:
                on_result(result)
    else:
        run_jobs(jobs, workers, on_result, batch_seeds=backend.batch_seeds)


def write_analysis(store: RunStore) -> dict:
    """summary.json, runs.csv and (once any run finished) the plots of one experiment; returns the summary."""
    summary = write_outputs(store)
    if any(level["n"] > 0 for level in summary["levels"]):
        from convlens.data.catalog import dataset_info
        dataset = store.read_experiment()["spec"].get("dataset", "fashion-mnist")
        write_plots(store, summary, list(dataset_info(dataset).class_names))
    return summary


def execute_plan(p: Plan, *, workers: int = 1, on_result: Callable[[JobResult], None] = lambda r: None,
                 on_start: Callable[[Job], None] = lambda j: None, backend: Backend = Backend(),
                 dataset: ImageDataset | None = None) -> dict:
    """Run the pending jobs, then write summary.json, runs.csv and the plots; returns the summary. ``dataset``:
    the jobs' dataset when the caller has loaded it (see train_pending)."""
    for job in p.jobs:
        p.store.clear_partial(job.level, job.seed)
    train_pending(p.jobs, workers=workers, on_result=on_result, on_start=on_start, backend=backend, dataset=dataset)
    return write_analysis(p.store)
