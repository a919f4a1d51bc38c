"""The Ray backend: a local Ray (2 CPUs) runs the same sweep as the local backend, to the same numbers; the run
store stays the single source of truth (files written by the driver, metrics.json last); a run that raises is
recorded as failed; without Ray installed, one line says how to get it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from convlens.cli import main

TINY = dict(model="cnn-16-32", recipe="fast", recipe_set={"epochs": 1}, factor=dict(name="kernel_size", levels=[3, 5]),
            seeds=2, dataset="digits")


def write_spec(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump({"name": "ray-tiny", **TINY, **changes}))
    return path


def _runs(out: Path) -> dict[str, dict]:
    return {str(p.parent.relative_to(out)): json.loads(p.read_text()) for p in sorted(out.glob("runs/*/*/metrics.json"))}


@pytest.fixture(scope="module")
def local_ray():
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def test_ray_and_local_give_the_same_runs(local_ray, tmp_path, capsys):
    spec = write_spec(tmp_path / "s.yaml")
    threads = len(os.sched_getaffinity(0))  # the local backend's one worker uses every core: ask Ray for as many
    assert main(["experiment", "run", str(spec), "--out", str(tmp_path / "local"), "--quiet"]) == 0
    assert main(["experiment", "run", str(spec), "--out", str(tmp_path / "ray"), "--backend", "ray",
                 "--cpus-per-run", str(threads)]) == 0
    assert "as Ray tasks" in capsys.readouterr().out
    local, ray_runs = _runs(tmp_path / "local"), _runs(tmp_path / "ray")
    assert sorted(local) == sorted(ray_runs) and len(local) == 4
    for key in local:
        assert ray_runs[key]["status"] == "done"
        assert ray_runs[key]["test_correct"] == local[key]["test_correct"], key  # same seeds, same threads
        assert ray_runs[key]["test_loss"] == local[key]["test_loss"], key
    for directory in (tmp_path / "ray").glob("runs/*/*"):  # the driver wrote the whole run
        assert {"config.json", "model.safetensors", "metrics.json", "predictions.npz"} <= {p.name for p in directory.iterdir()}
    assert main(["experiment", "run", str(spec), "--out", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    assert "4 finished, 0 failed, 0 to run" in capsys.readouterr().out  # resumable as before


def test_a_run_that_raises_is_recorded_as_failed_and_the_sweep_goes_on(local_ray, tmp_path, capsys):
    # SGD at lr 10 on a leaky-ReLU MLP overflows to NaN within a few steps (as in test_sweep.py)
    spec = write_spec(tmp_path / "s.yaml", model="mlp-128-64", set={"activation": "leaky_relu"},
                      factor=dict(name="recipe.lr", levels=[0.01, 10.0]), seeds=1, recipe="keras",
                      recipe_set={"epochs": 1, "optimizer": "sgd"}, dataset="fashion-mnist", train_subset=2000,
                      test_subset=200)
    assert main(["experiment", "run", str(spec), "--out", str(tmp_path / "exp"), "--backend", "ray"]) == 0
    runs = _runs(tmp_path / "exp")
    assert runs["runs/recipe.lr=0.01/seed0"]["status"] == "done"
    assert runs["runs/recipe.lr=10.0/seed0"]["status"] == "failed"
    assert "diverged" in runs["runs/recipe.lr=10.0/seed0"]["reason"]
    assert "recipe.lr=10.0 seed 0: failed (training diverged" in capsys.readouterr().out


def test_without_ray_the_backend_says_how_to_install_it(tmp_path):
    code = ("import sys, builtins; real = builtins.__import__\n"
            "def fake(name, *a, **k):\n"
            "    if name == 'ray' or name.startswith('ray.'): raise ImportError(name)\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = fake\n"
            "from convlens.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", code, "experiment", "run", str(write_spec(tmp_path / "s.yaml")),
                           "--out", str(tmp_path / "o"), "--backend", "ray"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "pip install 'convlens[ray]'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_gpus_asked_of_a_cluster_without_them_is_one_line_not_a_wait(local_ray, tmp_path, capsys):
    assert main(["experiment", "run", str(write_spec(tmp_path / "s.yaml")), "--out", str(tmp_path / "exp"),
                 "--backend", "ray", "--gpus-per-run", "0.25"]) == 2
    assert "more GPU than the Ray cluster has (0)" in capsys.readouterr().err
    assert not list((tmp_path / "exp").glob("runs/*/*/metrics.json"))


def test_connecting_to_ray_keeps_the_commands_sigterm_handler():
    """ray.init installs its own SIGTERM handler (sys.exit(15)); the console script's, which ends a command as
    Ctrl-C does with one line and exit 143, is put back (checked by hand on a real Ray: exit 143, one line)."""
    import signal

    from convlens.experiments import ray_backend

    class RayInstallingItsHandler:
        def init(self, **kwargs):
            signal.signal(signal.SIGTERM, lambda *args: sys.exit(15))
    console_scripts = lambda *args: None  # noqa: E731
    before = signal.signal(signal.SIGTERM, console_scripts)
    try:
        ray_backend._connect(RayInstallingItsHandler(), None)
        assert signal.getsignal(signal.SIGTERM) is console_scripts
    finally:
        signal.signal(signal.SIGTERM, before)


def test_with_ray_runs_kept_from_other_images_are_refused_before_any_task_trains(local_ray, tmp_path, capsys):
    """The driver reads the data (it puts it in Ray's object store), so it checks the kept runs against it first,
    as the local backend does: nothing new is trained for an analysis that would be refused."""
    from tests.data.test_catalog import write_folder
    folder = tmp_path / "colours"
    write_folder(folder, {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 40, 230)}, n=14)
    spec = write_spec(tmp_path / "s.yaml", model="mlp-128-64", dataset=f"folder:{folder}",
                      factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]))
    out = tmp_path / "exp"
    assert main(["experiment", "run", str(spec), "--out", str(out), "--backend", "ray", "--quiet"]) == 0
    capsys.readouterr()
    kept = {p: p.read_bytes() for p in out.glob("runs/*/*/metrics.json")}
    assert len(kept) == 4
    (folder / "green" / "3.png").unlink()
    assert main(["experiment", "run", str(spec), "--out", str(out), "--backend", "ray", "--seeds", "3",
                 "--quiet"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"convlens: error: the train and test images of folder:{folder} differ from those the "
                           f"runs in {out} were trained and tested on")
    assert {p: p.read_bytes() for p in out.glob("runs/*/*/metrics.json")} == kept  # seed 2 was not trained
