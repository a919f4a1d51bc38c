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
from typing import TYPE_CHECKING

from convlens.atomic_files import atomic_write_json
from convlens.config import TrainConfig
from convlens.errors import ConvlensError, TrainingDiverged, UsageError
from convlens.models.checkpoint import CONFIG_FILE
from convlens.run_files import METRICS_FILE
from convlens.shutdown import skip_the_last_collection

if TYPE_CHECKING:  # the dataset module imports torch; these modules only name its type
    from convlens.data.dataset import ImageDataset


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
    from convlens.runs import run_training_batched
    first = jobs[0].config
    try:
        outcomes = run_training_batched([j.config for j in jobs], [j.directory for j in jobs],
                                        dataset=dataset if dataset is not None else _dataset(first.dataset,
                                                                                             first.data_dir))
    except Exception:  # noqa: BLE001 - e.g. out of memory with n models at once: one seed at a time instead
        results = []
        for job in jobs:  # a seed that finished before the failure keeps its run
            results.append(JobResult(job.level, job.seed, "done") if _finished(job) else execute(job, dataset))
        return results
    return [JobResult(j.level, j.seed, "failed", str(o)) if isinstance(o, TrainingDiverged)
            else JobResult(j.level, j.seed, "done") for j, o in zip(jobs, outcomes)]


def threads_per_run(workers: int) -> int:
    """CPU threads each run gets when ``workers`` runs share this machine's cores."""
    return max(1, len(os.sched_getaffinity(0)) // workers)


def _init_worker(threads: int, parent: int) -> None:
    _die_with(parent)
    import torch
    torch.set_num_threads(threads)
    skip_the_last_collection()  # the pool's shutdown waits for each worker to exit


def _die_with(parent: int) -> None:
    """Linux: this worker is killed when its parent dies, however it dies (kill -9 included). Otherwise it would go
    on training into a directory whose lock died with the parent, beside a rerun that trains the same runs."""
    import ctypes
    import signal
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pool's own checks remain
        return
    if os.getppid() != parent:  # the parent died before the call above
        os._exit(1)


def check_workers_can_start(workers: int) -> None:
    """One line now, before anything trains, when ``workers`` processes cannot start cleanly from this program.

    Workers are spawned: each starts a fresh Python that runs the main script's top level again (multiprocessing
    prepares a child so: the script by its path, or ``python -m module`` by name), so the line that starts them
    must sit under ``if __name__ == "__main__":``, or every worker would run it too; a script read from standard
    input cannot be run again at all (every run would fail as "its worker process died"). Only that line is
    checked. Notebooks, ``python -c``, a package's ``__main__`` (``python -m pkg``, zipapps) and the CLI run
    nothing again."""
    import sys
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if workers <= 1 or main is None or path is None:
        return
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None and (name == "__main__" or name.endswith(".__main__")):  # as multiprocessing.spawn skips
        return
    if name is None and os.path.splitext(os.path.basename(path))[0] == "ipython":  # spawn skips IPython too
        return
    from multiprocessing.process import ORIGINAL_DIR  # what spawn resolves a relative __file__ against

    def absolute(name: str) -> str:
        return os.path.normpath(os.path.join(ORIGINAL_DIR or os.getcwd(), name))
    script = absolute(path)
    if not os.path.isfile(script):
        raise UsageError(f"workers={workers} start fresh Python processes, which run the main script again, and "
                         f"{path} is not a file they can run: save the script to a file, or use workers=1")
    # The script's own top-level frame: past exec'd code and wrappers (runpy), to the line the script runs
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_globals is vars(main) and frame.f_code.co_name == "<module>"
                                     and absolute(frame.f_code.co_filename) == script):
        frame = frame.f_back
    if frame is None:  # not from the script's lines (a thread, a callback): nothing to check
        return
    if not _under_main_guard(script, frame.f_lineno):
        raise UsageError(f"{script}, line {frame.f_lineno}, starts {workers} worker processes outside "
                         "`if __name__ == \"__main__\":`; each worker runs the script again and would run that "
                         "line too: put the script's calls under that guard, or use workers=1")


def _under_main_guard(path: str, line: int) -> bool:
    """Whether ``line`` of the script at ``path`` is inside an ``if __name__ == "__main__":`` block (True when the
    script cannot be read or parsed: then nothing is claimed)."""
    import ast
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return True

    def names_main(test: ast.expr, op: type) -> bool:  # __name__ == "__main__" (op Eq) or != (NotEq)
        if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) and op is ast.Eq:  # `... and x:`
            return any(names_main(value, op) for value in test.values)
        if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], op)):
            return False
        sides = [test.left, test.comparators[0]]
        return (any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
                and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides))

    def inside(block: list[ast.stmt]) -> bool:
        return any(child.lineno <= line <= (child.end_lineno or child.lineno) for child in block)
    return any(isinstance(node, ast.If) and (names_main(node.test, ast.Eq) and inside(node.body)
                                             or names_main(node.test, ast.NotEq) and inside(node.orelse))
               for node in ast.walk(tree))


WORKER_DIED = ("its worker process died while training it (killed by the OS, e.g. out of memory, or a crash); "
               "it also died when run alone")


def seed_groups(jobs: list[Job]) -> list[list[Job]]:
    """``jobs`` grouped into the seeds of one configuration (the same level and settings but the seed), in
    order; a configuration that cannot be batched (early stopping, weight averages) stays one job per group."""
    from convlens.batched_seeds import not_batchable
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        key = (job.config.model_dump_json(exclude={"seed"}) + str(job.directory.parent)
               if not_batchable(job.config.recipe) is None else str(job.directory))
        groups.setdefault(key, []).append(job)
    return list(groups.values())


def run_jobs(jobs: list[Job], workers: int, on_result: Callable[[JobResult], None],
             execute_job: Callable[[Job], JobResult] = execute, *, batch_seeds: bool = False,
             execute_group: Callable[[list[Job]], list[JobResult]] = execute_batched) -> list[JobResult]:
    """Execute ``jobs`` (``workers`` processes, or in-process for 1); ``on_result`` is called as each ends.
    With ``batch_seeds``, each worker trains the seeds of one configuration as one batched model
    (``execute_group``).

    A worker killed by the OS (out of memory) breaks the whole process pool. The sweep goes on: the units (runs,
    or batched seeds) that had started are run again one at a time in a fresh process, a batched unit that dies
    again seed by seed, so the run that kills its process is found and recorded as failed with the reason, the
    others finish; a run the killed attempt had finished is kept; units that had not started go back in the queue.
    """
    check_workers_can_start(workers)  # the callers check first; this is for anyone calling run_jobs
    results = []
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            result = execute_job(job)
            on_result(result)
            results.append(result)
        return results
    units_of = seed_groups if batch_seeds else (lambda js: [[j] for j in js])
    # No more processes than units to train: the cores go to the runs that train (--workers 8 for 3 pending runs
    # gives each of 3 runs a third of the cores, not an eighth), and their timing says how many shared the machine.
    workers = min(workers, len(units_of(jobs)))
    threads = threads_per_run(workers)
    queue = [Job(j.level, j.seed, j.config.model_copy(update={"threads": threads, "workers": workers}), j.directory)
             for j in jobs]
    units = units_of(queue)
    while units:
        broken = _run_pool(units, workers, threads, (execute_job, execute_group), on_result, results)
        started = [unit for unit in broken if any((job.directory / CONFIG_FILE).exists() for job in unit)]
        waiting = [job for unit in broken if unit not in started for job in unit]
        for unit in started:  # alone, so a second death names the unit, then the run, that causes it
            results.extend(_run_alone(unit, threads, (execute_job, execute_group), on_result))
        if broken and not started:  # no run even started: do not loop forever
            for job in waiting:
                results.append(_record_failure(job, "its worker process died before the run started (killed by the "
                                                    "OS, or the worker could not start)", on_result))
            waiting = []
        units = units_of(waiting)
    return results


Executors = tuple[Callable[[Job], JobResult], Callable[[list[Job]], list[JobResult]]]


def _execute_unit(executors: Executors, unit: list[Job]) -> list[JobResult]:
    """One job, or the seeds of one configuration as one batched model (in a worker process)."""
    execute_job, execute_group = executors
    return execute_group(unit) if len(unit) > 1 else [execute_job(unit[0])]


def _run_pool(units: list[list[Job]], workers: int, threads: int, executors: Executors,
              on_result: Callable[[JobResult], None], results: list[JobResult]) -> list[list[Job]]:
    """Run ``units`` (lists of jobs trained together) in a pool; returns the units lost when the pool broke
    (none if it did not), in order."""
    broken = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_init_worker, initargs=(threads, os.getpid())) as pool:
        futures = {pool.submit(_execute_unit, executors, unit): unit for unit in units}
        try:
            for future in as_completed(futures):
                try:
                    unit_results = future.result()
                except BrokenProcessPool:
                    broken.append(futures[future])
                    continue
                for result in unit_results:
                    on_result(result)
                    results.append(result)
        except BaseException:  # Ctrl-C, SIGTERM, an error here: leaving the block would wait for every queued run
            _stop(pool, futures)
            raise
    return sorted(broken, key=units.index)


def _stop(pool: ProcessPoolExecutor, futures: dict) -> None:
    """No queued run starts, and the running ones stop now (their directories stay unfinished: a rerun trains
    them again)."""
    for future in futures:
        future.cancel()
    for process in list((getattr(pool, "_processes", None) or {}).values()):  # the standard library keeps them
        process.terminate()  # there; Python 3.14's terminate_workers() does the same
    pool.shutdown(wait=True, cancel_futures=True)
    # A worker ended by terminate() mid-write leaves its atomic write's temporary file (SIGTERM's default action
    # runs no cleanup); the workers are gone now, so their units' directories can be swept.
    for unit in futures.values():
        for job in unit:
            for leftover in job.directory.glob(".*.tmp") if job.directory.is_dir() else ():
                leftover.unlink(missing_ok=True)


def _finished(job: Job) -> bool:
    """Whether ``job``'s run is done (its metrics.json, written last, says so)."""
    from convlens.run_files import read_metrics
    try:
        return read_metrics(job.directory).get("status") == "done"
    except ConvlensError:  # not written, or half a file
        return False


def _run_alone(unit: list[Job], threads: int, executors: Executors,
               on_result: Callable[[JobResult], None]) -> list[JobResult]:
    """A unit whose pool broke, in a pool of its own; a batched unit that dies again, each seed alone."""
    results: list[JobResult] = []
    pending = []
    for job in unit:
        if _finished(job):  # the killed attempt finished it (metrics.json is written last)
            results.append(JobResult(job.level, job.seed, "done"))
            on_result(results[-1])
        else:
            (job.directory / CONFIG_FILE).unlink(missing_ok=True)  # what the killed attempt left
            pending.append(job)
    if len(pending) > 1:
        if not _run_pool([pending], 1, threads, executors, on_result, results):
            return results
        return results + [r for job in pending for r in _run_alone([job], threads, executors, on_result)]
    for job in pending:
        if _run_pool([[job]], 1, threads, executors, on_result, results):
            results.append(_record_failure(job, WORKER_DIED, on_result))
    return results


def _record_failure(job: Job, reason: str, on_result: Callable[[JobResult], None]) -> JobResult:
    job.directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(job.directory / METRICS_FILE, {"status": "failed", "reason": reason, "traceback": None})
    result = JobResult(job.level, job.seed, "failed", reason)
    on_result(result)
    return result
