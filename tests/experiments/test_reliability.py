"""What a sweep survives: --force only deletes what an experiment store owns, --retry-failed, a worker killed by
the OS (BrokenProcessPool) recorded as one failed run while the sweep goes on."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from convlens.cli import main
from convlens.config import TrainConfig
from convlens.experiments.local import WORKER_DIED, Job, run_jobs
from tests.experiments.dying_worker import execute_group_or_die, execute_or_die

TINY = dict(model="cnn-16-32", recipe="fast", recipe_set={"epochs": 1}, factor=dict(name="kernel_size", levels=[3, 5]),
            seeds=1, train_subset=500, test_subset=100)


def write_spec(path: Path, name: str = "tiny", **changes) -> Path:
    path.write_text(yaml.safe_dump({"name": name, **TINY, **changes}))
    return path


def test_force_refuses_a_directory_that_is_not_an_experiment(tmp_path, capsys):
    run = tmp_path / "runs" / "cnn-s0"  # where `convlens train` writes by default, with --out .
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    code = main(["experiment", "run", str(write_spec(tmp_path / "s.yaml")), "--out", str(tmp_path), "--force"])
    err = capsys.readouterr().err
    assert code == 2 and "not an experiment directory" in err and "nothing was deleted" in err
    assert (run / "metrics.json").read_text() == "{}" and not (tmp_path / "experiment.json").exists()


def test_force_deletes_only_the_experiments_own_runs_and_says_so(tmp_path, capsys, fashion):
    out = tmp_path / "exp"
    spec = write_spec(tmp_path / "s.yaml")
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0
    strays = [out / "runs" / "notes.txt", out / "runs" / "kernel_size=3" / "keep.txt", out / "mine.txt",
              out / "runs" / "other-level" / "seed0" / "metrics.json"]
    for path in strays:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("mine")
    first = (out / "runs" / "kernel_size=3" / "seed0" / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["experiment", "run", str(spec), "--out", str(out), "--force"]) == 0
    printed = capsys.readouterr().out
    assert f"--force: deleted 2 run(s) under {out / 'runs'} and plots, runs.csv, summary.json" in printed
    assert all(p.read_text() == "mine" for p in strays)  # not the store's: kept
    assert (out / "runs" / "kernel_size=3" / "seed0" / "metrics.json").stat().st_mtime_ns != first  # retrained
    assert "2 to run" in printed


def test_force_follows_no_link_out_of_the_store(tmp_path):
    from convlens.experiments.store import RunStore
    out, elsewhere = tmp_path / "exp", tmp_path / "elsewhere"
    (elsewhere / "seed0").mkdir(parents=True)
    (elsewhere / "seed0" / "model.safetensors").write_text("not yours")
    (out / "runs").mkdir(parents=True)
    (out / "runs" / "kernel_size=3").symlink_to(elsewhere)
    (out / "experiment.json").write_text(json.dumps({"levels": [{"label": "kernel_size=3"}, {"label": ".."}]}))
    (out / "seed7").mkdir()  # what runs/.. /seed7 would name
    assert RunStore(out).discard(["kernel_size=3"]) == []
    assert (elsewhere / "seed0" / "model.safetensors").read_text() == "not yours" and (out / "seed7").is_dir()


def test_retry_failed_runs_only_the_failed_runs(tmp_path, capsys, fashion):
    out = tmp_path / "exp"
    spec = write_spec(tmp_path / "s.yaml")
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0
    failed = out / "runs" / "kernel_size=5" / "seed0" / "metrics.json"
    failed.write_text(json.dumps({"status": "failed", "reason": "killed by a test"}))
    done = out / "runs" / "kernel_size=3" / "seed0" / "metrics.json"
    done_before = done.read_bytes()
    capsys.readouterr()
    assert main(["experiment", "run", str(spec), "--out", str(out)]) == 0
    assert "1 finished, 1 failed (--retry-failed runs them again), 0 to run" in capsys.readouterr().out  # kept
    assert main(["experiment", "run", str(spec), "--out", str(out), "--retry-failed"]) == 0
    printed = capsys.readouterr().out
    assert "retrying 1 failed run(s)" in printed and "1 finished, 0 failed, 1 to run" in printed
    assert json.loads(failed.read_text())["status"] == "done" and done.read_bytes() == done_before


def test_a_worker_killed_by_the_os_fails_its_run_and_the_sweep_goes_on(tmp_path):
    config = TrainConfig(model="cnn-16-32", train_subset=100, test_subset=100)
    jobs = [Job("level", seed, config.model_copy(update={"seed": seed}), tmp_path / f"seed{seed}") for seed in range(4)]
    results = []
    run_jobs(jobs, 2, results.append, execute_job=execute_or_die)
    by_seed = {r.seed: r for r in results}
    assert sorted(by_seed) == [0, 1, 2, 3] and len(results) == 4  # each run reported once
    assert by_seed[1].status == "failed" and by_seed[1].reason == WORKER_DIED
    assert json.loads((tmp_path / "seed1" / "metrics.json").read_text())["reason"] == WORKER_DIED
    assert all(by_seed[s].status == "done" for s in (0, 2, 3))
    assert all(json.loads((tmp_path / f"seed{s}" / "metrics.json").read_text())["status"] == "done" for s in (0, 2, 3))


def test_a_killed_batched_worker_is_run_again_alone_then_seed_by_seed(tmp_path):
    """Levels a, b, c of two seeds each, batched, two workers; b's batched unit kills its worker every time and,
    alone, its seed 1 does too. b/1 fails with the reason, b/0 finishes alone, a and c finish batched (a
    again after the pool broke under it, or c after waiting in the queue); every run is reported once."""
    config = TrainConfig(model="cnn-16-32", train_subset=100, test_subset=100)
    jobs = [Job(level, seed, config.model_copy(update={"seed": seed}), tmp_path / level / f"seed{seed}")
            for level in "abc" for seed in (0, 1)]
    results = []
    run_jobs(jobs, 2, results.append, execute_job=execute_or_die, batch_seeds=True, execute_group=execute_group_or_die)
    by_run = {(r.level, r.seed): r for r in results}
    assert len(results) == 6 and len(by_run) == 6
    assert by_run["b", 1].status == "failed" and by_run["b", 1].reason == WORKER_DIED
    assert all(by_run[run].status == "done" for run in by_run if run != ("b", 1))
    metrics = {(lv, s): json.loads((tmp_path / lv / f"seed{s}" / "metrics.json").read_text()) for lv, s in by_run}
    assert metrics["b", 1]["reason"] == WORKER_DIED
    assert "batched" not in metrics["b", 0] and metrics["b", 0]["status"] == "done"  # run alone, unbatched
    assert all(metrics[lv, s]["batched"] == 2 for lv in "ac" for s in (0, 1))


def test_a_config_field_added_later_with_its_default_keeps_the_finished_runs(tmp_path, capsys, fashion):
    out = tmp_path / "exp"
    spec = write_spec(tmp_path / "s.yaml")
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / "experiment.json").read_text())
    for level in record["levels"]:  # as a convlens before the dataset field wrote it
        assert level["config"].pop("dataset") == "fashion-mnist"
    (out / "experiment.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["experiment", "run", str(spec), "--out", str(out)]) == 0
    assert "2 finished, 0 failed, 0 to run" in capsys.readouterr().out


def test_stopping_the_pool_sweeps_what_a_terminated_worker_left_mid_write(tmp_path):
    """terminate() (SIGTERM, whose default action runs no cleanup) can land between an atomic write's temporary
    file and its rename: Ctrl-C with --workers 2 once left runs/.../.config.json.XXXX.tmp behind."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from convlens.experiments.local import _stop
    running, queued = tmp_path / "a" / "seed0", tmp_path / "b" / "seed0"
    running.mkdir(parents=True)
    (running / ".config.json.6zlpdoq5.tmp").write_text("{")  # as atomic_files names it
    (running / "config.json").write_text("{}")  # a finished write stays
    config = TrainConfig(model="mlp")
    units = {Future(): [Job("a", 0, config, running)], Future(): [Job("b", 0, config, queued)]}
    _stop(ThreadPoolExecutor(1), units)
    assert sorted(p.name for p in running.iterdir()) == ["config.json"] and not queued.exists()
