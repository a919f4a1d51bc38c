"""One process at a time writes a run, an experiment or a study directory (convlens.directory_lock): two commands
on one --out used to train the same runs twice and leave a run directory holding one command's config.json and the
other's metrics.json. Worker processes die with the command that started them, even by kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from convlens.cli import main
from convlens.directory_lock import DirectoryInUse, holding
from tests.conftest import wait_for_a_finished_run

HOLD = "import sys, time\nfrom convlens.directory_lock import holding\nwith holding(sys.argv[1], 'x'):\n" \
       "    print('held', flush=True)\n    time.sleep(120)\n"


def _holder(directory: Path) -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_command_on_a_held_directory_is_refused_and_the_lock_dies_with_its_holder(tmp_path, capsys):
    run, experiment = tmp_path / "run", tmp_path / "experiment"
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(dict(name="lock", model="mlp", dataset="digits", recipe_set={"epochs": 1},
                                        factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]), seeds=2)))
    holders = [_holder(run), _holder(experiment)]
    try:
        assert main(["train", "-m", "mlp", "--dataset", "digits", "--epochs", "1", "--out", str(run)]) == 1
        assert capsys.readouterr().err.strip() == (f"convlens: error: {run} is in use: another convlens process is "
                                                   "writing a run there; wait for it to end, or give another --out")
        assert main(["experiment", "run", str(spec), "--out", str(experiment)]) == 1
        assert "is in use: another convlens process is writing the experiment there" in capsys.readouterr().err
        assert main(["study", "--quick", "--dataset", "digits", "--out", str(run)]) == 1
        assert "writing the study there" in capsys.readouterr().err
        assert list(run.iterdir()) == [] and list(experiment.iterdir()) == []  # nothing written by the refused
    finally:
        for holder in holders:
            holder.kill()  # as kill -9 would: the kernel releases the lock with the process
            holder.wait()
    assert main(["train", "-m", "mlp", "--dataset", "digits", "--epochs", "1", "--out", str(run), "--quiet"]) == 0


def test_a_directory_made_for_a_refused_command_is_removed_and_a_file_is_left_to_its_own_check(tmp_path):
    with pytest.raises(ValueError), holding(tmp_path / "new", "a run"):
        assert (tmp_path / "new").is_dir()
        raise ValueError("refused before writing")
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    with holding(tmp_path / "file", "a run"):  # not a directory: not held, the command says what is wrong
        pass
    with holding(tmp_path / "d", "a run"), pytest.raises(DirectoryInUse):
        with holding(tmp_path / "d", "a run"):  # another open file description: refused in one process too
            pass


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


def test_workers_die_with_a_command_killed_by_kill_9(tmp_path):
    """They went on training into the directory (whose lock died with the command) for minutes, then idled."""
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(dict(name="orphans", model="mlp", dataset="digits", recipe_set={"epochs": 40},
                                        factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]), seeds=4)))
    out = tmp_path / "e"
    process = subprocess.Popen([str(Path(sys.executable).parent / "convlens"), "experiment", "run", str(spec),
                                "--out", str(out), "--workers", "2"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    wait_for_a_finished_run(out)
    workers = _children(process.pid)
    assert workers, "the pool's processes"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 20
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)
