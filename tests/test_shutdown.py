"""The processes convlens owns (the console script, the training workers) leave without the garbage collector's
last pass over every object alive (convlens.shutdown): the heap is frozen by the time the interpreter finalizes."""

from __future__ import annotations

import atexit
import gc
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from convlens.config import TrainConfig
from convlens.experiments.local import Job, JobResult, _run_pool

# Registered first, so it runs last among the exit handlers (they run in reverse order), just before the
# interpreter's own finalization: it prints how many objects are frozen then.
REPORT_AT_EXIT = ("import atexit, gc, sys\n"
                  "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count()))\n")


def frozen_at_exit(code: str, *args: str) -> tuple[int, int]:
    """(exit status, objects frozen at exit) of a fresh interpreter running ``code``."""
    done = subprocess.run([sys.executable, "-c", REPORT_AT_EXIT + code, *args], capture_output=True, text=True,
                          timeout=120)
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("frozen at exit:")]
    assert line, done.stdout + done.stderr
    return done.returncode, int(line[-1].split(":")[1])


@pytest.mark.parametrize(("args", "status"), [(["models", "--help"], 0), (["train", "--model", "nope"], 2)])
def test_the_console_script_freezes_the_heap_before_it_exits(args, status):
    code, frozen = frozen_at_exit("from convlens.cli import run\nsys.exit(run())", *args)
    assert code == status
    assert frozen > 10_000  # everything alive: the interpreter, typer, pydantic, convlens


def test_calling_main_as_a_library_function_leaves_the_heap_alone():
    code, frozen = frozen_at_exit("from convlens.cli import main\nsys.exit(main(['models', '--help']))")
    assert (code, frozen) == (0, 0)


def frozen_by_the_exit_handlers(job: Job) -> JobResult:
    """Run in a pool worker: its exit handlers, now (the worker's own exit runs them again; freezing twice is
    harmless), and how many objects they froze."""
    atexit._run_exitfuncs()
    return JobResult(job.level, job.seed, "done", reason=str(gc.get_freeze_count()))


def test_a_training_worker_freezes_the_heap_before_it_exits(tmp_path):
    job = Job("level", 0, TrainConfig(model="cnn"), tmp_path)
    results: list[JobResult] = []
    broken = _run_pool([[job]], 1, 1, (frozen_by_the_exit_handlers, None), lambda result: None, results)
    assert broken == [] and len(results) == 1
    assert int(results[0].reason) > 10_000  # torch is imported by then, in a worker spawned as convlens spawns them


def test_the_installed_console_script_is_run():
    (script,) = entry_points(group="console_scripts", name="convlens")
    assert script.value == "convlens.cli:run"
