"""Run an experiment's pending runs on this machine: in this process, or in parallel worker processes.

With N workers, each gets cores // N threads. Workers are spawned (not forked: forking a process that has
started torch's thread pools is unsafe) and each loads the dataset once.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from convlens.atomic_files import atomic_write_json
from convlens.config import TrainConfig
from convlens.data.dataset import ImageDataset
from convlens.errors import ConvlensError, TrainingDiverged
from convlens.runs import CONFIG_FILE, METRICS_FILE


@dataclass(frozen=True)
class Job:
    level: str
    seed: int
    config: TrainConfig
    directory: Path


@dataclass(frozen=True)
class JobResult:
    level: str
    seed: int
    status: str  # "done" or "failed"
    reason: str | None = None


_DATASETS: dict[str, ImageDataset] = {}  # per process: the dataset is loaded once per worker


def _dataset(name: str, data_dir: Path | None) -> ImageDataset:
    from convlens.data import load_named
    key = f"{name}\0{data_dir}"
    if key not in _DATASETS:
        _DATASETS[key] = load_named(name, data_dir)
    return _DATASETS[key]


def execute(job: Job, dataset: ImageDataset | None = None) -> JobResult:
    """Train one run (on ``dataset``, else the job's, loaded once per process); any failure is recorded in its
    metrics.json with the reason, never raised."""
    from convlens.runs import run_training
    try:
        run_training(job.config, job.directory,
                     dataset=dataset if dataset is not None else _dataset(job.config.dataset, job.config.data_dir))
        return JobResult(job.level, job.seed, "done")
    except TrainingDiverged as e:  # run_training already recorded it
        return JobResult(job.level, job.seed, "failed", str(e))
    except Exception as e:  # noqa: BLE001 - a failed run must not stop the sweep; its reason is kept
        reason = str(e) if isinstance(e, ConvlensError) else f"{type(e).__name__}: {e}"
        atomic_write_json(job.directory / METRICS_FILE, {
            "status": "failed", "reason": reason,
            "traceback": None if isinstance(e, ConvlensError) else traceback.format_exc(limit=8)})
        return JobResult(job.level, job.seed, "failed", reason)


def execute_batched(jobs: list[Job], dataset: ImageDataset | None = None) -> list[JobResult]:
    """Train ``jobs``, the seeds of one configuration, as one batched model (convlens.batched_seeds); as
    ``execute``, every failure is recorded in the runs' metrics.json, never raised."""
    from convlens.runs import read_metrics, run_training_batched
    first = jobs[0].config
    try:
        outcomes = run_training_batched([j.config for j in jobs], [j.directory for j in jobs],
                                        dataset=dataset if dataset is not None else _dataset(first.dataset,
                                                                                             first.data_dir))
    except Exception:  # noqa: BLE001 - e.g. out of memory with n models at once: one seed at a time instead
        results = []
        for job in jobs:  # a seed that finished before the failure keeps its run
            try:
                done = read_metrics(job.directory).get("status") == "done"
            except ConvlensError:  # not written, or half a file
                done = False
            results.append(JobResult(job.level, job.seed, "done") if done else execute(job, dataset))
        return results
    return [JobResult(j.level, j.seed, "failed", str(o)) if isinstance(o, TrainingDiverged)
            else JobResult(j.level, j.seed, "done") for j, o in zip(jobs, outcomes)]


def threads_per_run(workers: int) -> int:
    """CPU threads each run gets when ``workers`` runs share this machine's cores."""
    return max(1, len(os.sched_getaffinity(0)) // workers)


def _init_worker(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


WORKER_DIED = ("its worker process died while training it (killed by the OS, e.g. out of memory, or a crash); "
               "it also died when run alone")


def run_jobs(jobs: list[Job], workers: int, on_result: Callable[[JobResult], None],
             execute_job: Callable[[Job], JobResult] = execute) -> list[JobResult]:
    """Execute ``jobs`` (``workers`` processes, or in-process for 1); ``on_result`` is called as each ends.

    A worker killed by the OS (out of memory) breaks the whole process pool. The sweep goes on: the runs that
    had started are run again one at a time in a fresh process, so the one that kills its process is found and
    recorded as failed with the reason, the others finish; runs that had not started go back in the queue.
    """
    results = []
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            result = execute_job(job)
            on_result(result)
            results.append(result)
        return results
    threads = threads_per_run(workers)
    queue = [Job(j.level, j.seed, j.config.model_copy(update={"threads": threads, "workers": workers}), j.directory)
             for j in jobs]
    while queue:
        broken = _run_pool(queue, workers, threads, execute_job, on_result, results)
        started = [job for job in broken if (job.directory / CONFIG_FILE).exists()]
        queue = [job for job in broken if job not in started]
        for job in started:  # alone, so a second death names the run that causes it
            results.extend(_run_alone(job, threads, execute_job, on_result))
        if broken and not started and len(queue) == len(broken):  # no run even started: do not loop forever
            for job in queue:
                results.append(_record_failure(job, "its worker process died before the run started (killed by the "
                                                    "OS, or the worker could not start)", on_result))
            queue = []
    return results


def _run_pool(jobs: list[Job], workers: int, threads: int, execute_job: Callable[[Job], JobResult],
              on_result: Callable[[JobResult], None], results: list[JobResult]) -> list[Job]:
    """Run ``jobs`` in a pool; returns the jobs lost when the pool broke (none if it did not)."""
    broken = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_init_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(execute_job, job): job for job in jobs}
        for future in as_completed(futures):
            try:
                result = future.result()
            except BrokenProcessPool:
                broken.append(futures[future])
                continue
            on_result(result)
            results.append(result)
    return sorted(broken, key=jobs.index)


def _run_alone(job: Job, threads: int, execute_job: Callable[[Job], JobResult],
               on_result: Callable[[JobResult], None]) -> list[JobResult]:
    (job.directory / CONFIG_FILE).unlink(missing_ok=True)  # what the killed attempt left
    results: list[JobResult] = []
    if _run_pool([job], 1, threads, execute_job, on_result, results):
        return [_record_failure(job, WORKER_DIED, on_result)]
    return results


def _record_failure(job: Job, reason: str, on_result: Callable[[JobResult], None]) -> JobResult:
    job.directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(job.directory / METRICS_FILE, {"status": "failed", "reason": reason, "traceback": None})
    result = JobResult(job.level, job.seed, "failed", reason)
    on_result(result)
    return result
