"""The processes convlens owns leave without the garbage collector's last pass over every object alive: the console
script's heap is frozen by the time the interpreter finalizes (convlens.shutdown), and the training workers, forked
from a fork server, leave by os._exit."""

from __future__ import annotations

import atexit
import json
import os
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


def what_the_worker_has(job: Job) -> JobResult:
    """Run in a pool worker: registers an exit handler that would write a file, and reports what was imported
    before the job began and the environment it sees."""
    atexit.register(lambda: (job.directory / "exit-handlers-ran").write_text("yes"))
    seen = {"preloaded": "convlens.runs" in sys.modules, "marker": os.environ.get("CONVLENS_TEST_MARKER")}
    return JobResult(job.level, job.seed, "done", reason=json.dumps(seen))


def test_a_training_worker_comes_preloaded_sees_the_current_environment_and_leaves_without_finalizing(
        tmp_path, monkeypatch):
    """Workers are forked from a fork server that imported the training code once; they see this process's
    environment as of the pool (not the server's), and leave by os._exit: no exit handler, no last collection."""
    seen = []
    for marker in ("first", "second"):  # the second pool's workers come from the server the first one started
        monkeypatch.setenv("CONVLENS_TEST_MARKER", marker)
        job = Job("level", 0, TrainConfig(model="cnn"), tmp_path)
        results: list[JobResult] = []
        broken = _run_pool([[job]], 1, 1, (what_the_worker_has, None), lambda result: None, results)
        assert broken == [] and len(results) == 1
        seen.append(json.loads(results[0].reason))
    assert seen == [{"preloaded": True, "marker": "first"}, {"preloaded": True, "marker": "second"}]
    assert not (tmp_path / "exit-handlers-ran").exists()


def test_the_installed_console_script_is_run():
    (script,) = entry_points(group="console_scripts", name="convlens")
    assert script.value == "convlens.cli:run"
