"""A job executor for the worker-death test: it runs in a spawned worker, so it lives in an importable module.

It marks the run as started (config.json, as run_training does first), then either kills its own process the
way the OS kills one that runs out of memory (SIGKILL) or finishes the run at once, without training."""

from __future__ import annotations

import json
import os
import signal
import time

from convlens.experiments.local import Job, JobResult
from tests.experiments.fake_records import done_metrics

DIES = {1}  # seeds whose worker is killed


def execute_or_die(job: Job) -> JobResult:
    job.directory.mkdir(parents=True, exist_ok=True)
    (job.directory / "config.json").write_text(json.dumps({"seed": job.seed}))
    if job.seed in DIES:
        time.sleep(0.3)  # let the other worker start its run: it dies with the pool and must be run again
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)
    (job.directory / "metrics.json").write_text(json.dumps(done_metrics(pid=os.getpid())))
    return JobResult(job.level, job.seed, "done")


DIES_BATCHED = {"b"}  # levels whose batched unit kills its worker (each time it is run batched)


def execute_group_or_die(jobs: list[Job]) -> list[JobResult]:
    """The seeds of one level as one unit: started together; killed for a level in DIES_BATCHED."""
    for job in jobs:
        job.directory.mkdir(parents=True, exist_ok=True)
        (job.directory / "config.json").write_text(json.dumps({"seed": job.seed}))
    if jobs[0].level in DIES_BATCHED:
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.5)
    for job in jobs:
        (job.directory / "metrics.json").write_text(json.dumps(done_metrics(batched=len(jobs))))
    return [JobResult(job.level, job.seed, "done") for job in jobs]
