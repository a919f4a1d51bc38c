"""Sweeps end to end on a small real subset: outputs, resume after kill -9, failed runs, parallel workers."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from convlens.cli import main
from tests.conftest import wait_for_a_finished_run

TINY = dict(model="cnn-32-64-128", recipe="fast", recipe_set={"epochs": 1},
            factor=dict(name="kernel_size", levels=[3, 5]), seeds=2, train_subset=2_000, test_subset=500)


def write_spec(path: Path, name: str, **changes) -> Path:
    path.write_text(yaml.safe_dump({"name": name, **TINY, **changes}))
    return path


def test_sweep_through_the_cli_writes_every_output(tmp_path, capsys, fashion):
    out = tmp_path / "exp"
    code = main(["experiment", "run", str(write_spec(tmp_path / "s.yaml", "tiny")), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert {p.name for p in out.iterdir()} == {"experiment.json", "runs", "summary.json", "runs.csv", "plots"}
    assert {p.name for p in (out / "plots").iterdir()} == {"curves.png", "accuracy_vs_params.png",
                                                          "accuracy_vs_time.png", "per_class.png"}
    assert all((out / "plots" / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in ("curves.png", "per_class.png"))

    experiment = json.loads((out / "experiment.json").read_text())
    assert experiment["diff"]["kernel_size=5"] == {"spec.kernel_size": [3, 5]}  # the proof that one factor changed
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"done"}
    summary = json.loads((out / "summary.json").read_text())
    by_label = {lv["label"]: lv for lv in summary["levels"]}
    acc3 = sorted(float(r["test_accuracy"]) for r in rows if r["level"] == "kernel_size=3")
    assert by_label["kernel_size=3"]["test_accuracy"]["mean"] == pytest.approx(sum(acc3) / 2)
    assert by_label["kernel_size=3"]["n"] == 2 and by_label["kernel_size=5"]["params"] == 405_898
    (c,) = summary["comparisons"]
    assert c["label"] == "kernel_size=5 vs kernel_size=3"
    assert {"diff", "ci95", "p_value", "p_holm", "effect_size", "verdict", "mde"} <= set(c)
    assert c["verdict"].startswith(("significantly", "no significant difference", "not tested", "identical"))
    assert "kernel_size=5 vs kernel_size=3: test accuracy" in summary["conclusions"][0]
    assert "n=2 paired seeds (kernel_size=5 vs kernel_size=3): each such paired t-test has 1 degree" in summary["warnings"][0]
    assert "kernel_size=5" in printed and "(reference)" in printed and "one Holm family" in printed

    # Re-running changes nothing; status and table read the same files.
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/metrics.json")}
    assert main(["experiment", "run", str(tmp_path / "s.yaml"), "--out", str(out)]) == 0
    assert "4 finished, 0 failed, 0 to run" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/metrics.json")}
    assert main(["experiment", "table", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["comparisons"][0]["p_value"] == c["p_value"]
    assert main(["experiment", "status", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"kernel_size=3": {"0": "done", "1": "done"},
                                                   "kernel_size=5": {"0": "done", "1": "done"}}


def test_a_different_experiment_in_the_same_directory_is_refused(tmp_path, capsys, fashion):
    out = tmp_path / "exp"
    spec = write_spec(tmp_path / "a.yaml", "a", seeds=1, train_subset=500, test_subset=100)
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0
    other = write_spec(tmp_path / "b.yaml", "b", seeds=1, factor=dict(name="pool", levels=["max", "avg"]))
    assert main(["experiment", "run", str(other), "--out", str(out)]) == 2
    assert "holds a different experiment" in capsys.readouterr().err


def test_killed_sweep_resumes_without_redoing_finished_runs(tmp_path, fashion):
    # A smaller CNN than the others (what is tested is the resumption, not the model): 8 runs, then most again.
    spec = write_spec(tmp_path / "k.yaml", "killed", model="cnn-16-32", seeds=4, train_subset=1_500, test_subset=300)
    out = tmp_path / "exp"
    cmd = [str(Path(sys.executable).parent / "convlens"), "experiment", "run", str(spec), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for_a_finished_run(out)
    os.killpg(proc.pid, signal.SIGKILL)  # the worker (this process runs the training) dies mid-sweep
    proc.wait()
    finished = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("runs/*/*/metrics.json")}
    assert 1 <= len(finished) < 8, "the kill should land after the first run and before the last"

    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} finished, 0 failed, {8 - len(finished)} to run" in rerun.stdout
    for path, (mtime, content) in finished.items():  # nothing finished was redone or touched
        assert path.stat().st_mtime_ns == mtime and path.read_bytes() == content
    statuses = json.loads(subprocess.run(cmd[:1] + ["experiment", "status", str(out), "--json"],
                                         capture_output=True, text=True, timeout=120).stdout)
    assert all(s == "done" for row in statuses.values() for s in row.values())
    assert not list(out.rglob("*.tmp"))


def diverging_spec(path: Path, learning_rates: list[float]) -> Path:
    """SGD at lr 8-10 on a leaky-ReLU MLP overflows to NaN within a few steps; lr 0.01 trains normally."""
    return write_spec(path, path.stem, model="mlp-128-64", recipe="keras", set={"activation": "leaky_relu"},
                      recipe_set={"epochs": 1, "optimizer": "sgd"},
                      factor=dict(name="recipe.lr", levels=learning_rates), seeds=2, train_subset=2_000,
                      test_subset=200)


def test_a_diverging_run_is_recorded_as_failed_and_the_sweep_completes(tmp_path, capsys, fashion):
    spec = diverging_spec(tmp_path / "nan.yaml", [0.01, 10.0])
    out = tmp_path / "exp"
    assert main(["experiment", "run", str(spec), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "recipe.lr=10.0 seed 0: failed (training diverged: loss is" in printed
    summary = json.loads((out / "summary.json").read_text())
    failed = {lv["label"]: lv for lv in summary["levels"]}["recipe.lr=10.0"]
    assert failed["n"] == 0 and len(failed["failed"]) == 2 and "diverged" in failed["failed"][0]["reason"]
    assert {lv["label"]: lv for lv in summary["levels"]}["recipe.lr=0.01"]["n"] == 2
    untested = {c["level"]: c for c in summary["comparisons"]}["recipe.lr=10.0"]
    assert untested["verdict"] == "not tested (no seed finished in both levels)"
    assert summary["conclusions"] == ["recipe.lr=10.0 vs recipe.lr=0.01: test accuracy not tested "
                                      "(no seed finished in both levels)."]
    failed_files = {p: p.stat().st_mtime_ns for p in out.glob("runs/recipe.lr=10.0/*/metrics.json")}
    assert main(["experiment", "run", str(spec), "--out", str(out)]) == 0  # failed runs are not retried
    assert "2 finished, 2 failed (--retry-failed runs them again), 0 to run" in capsys.readouterr().out
    assert failed_files == {p: p.stat().st_mtime_ns for p in out.glob("runs/recipe.lr=10.0/*/metrics.json")}


def test_an_experiment_whose_every_run_failed_exits_1_naming_the_first_reason(tmp_path, capsys, fashion):
    spec = diverging_spec(tmp_path / "allnan.yaml", [8.0, 10.0])
    out = tmp_path / "exp"
    assert main(["experiment", "run", str(spec), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert line.startswith("convlens: error: all 4 runs failed, none finished (the first: training diverged: loss is")
    assert line.endswith(f"run again with --retry-failed (records in {out / 'runs.csv'})")
    assert "plots/*.png" not in captured.out and (out / "runs.csv").is_file()  # the failures stay on record


def test_missing_data_is_one_line_before_anything_is_written_and_data_dir_reaches_every_run(tmp_path, capsys,
                                                                                           fashion):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "exp"
    assert main(["experiment", "run", str(write_spec(tmp_path / "s.yaml", "tiny")), "--out", str(out),
                 "--data-dir", str(empty)]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (f"convlens: error: {empty}/train-images-idx3-ubyte(.gz) is missing; copy the fashion-mnist IDX "
                    "files there, or drop --data-dir/CONVLENS_DATA to download them")
    assert not out.exists()  # not one failed run per level and seed
    files = tmp_path / "files"
    files.mkdir()
    for gz in Path(fashion.source.directory).glob("*.gz"):
        (files / gz.name).symlink_to(gz)
    spec = write_spec(tmp_path / "m.yaml", "mlp", model="mlp-128-64",
                      factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]), seeds=2, train_subset=500, test_subset=100)
    assert main(["experiment", "run", str(spec), "--out", str(out), "--data-dir", str(files), "--quiet"]) == 0
    configs = [json.loads(p.read_text()) for p in out.glob("runs/*/seed*/config.json")]
    assert len(configs) == 4 and {c["data"]["directory"] for c in configs} == {str(files)}


def test_a_training_run_or_exported_model_directory_is_not_made_an_experiment(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "-m", "mlp", "--dataset", "digits", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    spec = write_spec(tmp_path / "d.yaml", "d", model="mlp-128-64", dataset="digits", train_subset=None,
                      test_subset=None, factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]))
    assert main(["experiment", "run", str(spec), "--out", str(run)]) == 2
    assert capsys.readouterr().err.strip() == (f"convlens: error: {run} holds a config.json (a training run or an "
                                               "exported model), not an experiment; nothing was written: choose "
                                               "another --out")
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_runs_without_a_validation_split_get_their_training_curves(tmp_path, capsys):
    """val_fraction 0 is allowed: no run records a validation accuracy, so the curves show the training accuracy
    (it crashed on the missing values, on every rerun)."""
    spec = write_spec(tmp_path / "noval.yaml", "noval", model="mlp-128-64", dataset="digits",
                      recipe_set={"epochs": 2, "val_fraction": 0}, factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]),
                      seeds=2, train_subset=None, test_subset=None)
    out = tmp_path / "exp"
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0
    history = json.loads(next(out.glob("runs/*/seed0/metrics.json")).read_text())["history"]
    assert [h["val_accuracy"] for h in history] == [None, None] and all(h["train_accuracy"] > 0 for h in history)
    from PIL import Image
    assert Image.open(out / "plots" / "curves.png").size[0] > 0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_experiment_runs_precision_reaches_every_run_and_keeps_the_specs_other_recipe_settings(tmp_path, precision):
    spec = write_spec(tmp_path / "p.yaml", "prec", model="mlp-128-64", dataset="digits",
                      recipe_set={"epochs": 2, "lr": 2e-3}, factor=dict(name="recipe.weight_decay", levels=[0, 0.01]),
                      seeds=2, train_subset=None, test_subset=None)
    out = tmp_path / "exp"
    assert main(["experiment", "run", str(spec), "--out", str(out), "--precision", precision, "--quiet"]) == 0
    runs = sorted(out.glob("runs/*/seed*"))
    assert len(runs) == 4
    for run in runs:
        recipe = json.loads((run / "config.json").read_text())["recipe"]
        assert (recipe["precision"], recipe["epochs"], recipe["lr"]) == (precision, 2, 2e-3)
        assert json.loads((run / "metrics.json").read_text())["precision"] == precision


def test_two_workers_split_the_cores_and_finish_every_run(tmp_path, capsys, fashion):
    spec = write_spec(tmp_path / "w.yaml", "workers", model="cnn-16-32", train_subset=1_000, test_subset=200)
    out = tmp_path / "exp"
    assert main(["experiment", "run", str(spec), "--out", str(out), "--workers", "2"]) == 0
    configs = [json.loads(p.read_text()) for p in out.glob("runs/*/*/config.json")]
    assert len(configs) == 4
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert {c["provenance"]["threads"] for c in configs} == {threads}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["levels"][0]["n"] == 2
    timings = [json.loads(p.read_text())["timing"] for p in out.glob("runs/*/*/metrics.json")]
    assert {(t["threads"], t["workers"], t["device_type"]) for t in timings} == {(threads, 2, "cpu")}
    assert summary["timing"]["comparable"]  # all four under the same conditions
    # one level rerun alone (1 worker, all cores): its seconds no longer compare with the others'
    for seed in (0, 1):
        shutil.rmtree(out / "runs" / "kernel_size=5" / f"seed{seed}")
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["timing"]["comparable"] and len(summary["timing"]["conditions"]) == 2
    assert any("measured under different conditions" in w and "so they are not compared" in w
               for w in summary["warnings"])
    assert not (out / "plots" / "accuracy_vs_time.png").exists() and (out / "plots" / "accuracy_vs_params.png").exists()
    # one run that took 10x its sibling's time (a busy machine) gets a warning; the accuracies are untouched
    from convlens.experiments.analysis import write_outputs
    from convlens.experiments.store import RunStore
    slow, quick = (out / "runs" / "kernel_size=3" / f"seed{s}" / "metrics.json" for s in (0, 1))
    metrics = json.loads(slow.read_text())
    quick.write_text(json.dumps({**json.loads(quick.read_text()), "train_seconds": 1.5}))  # long enough to judge
    slow.write_text(json.dumps({**metrics, "train_seconds": 15.0}))
    summary = write_outputs(RunStore(out))
    # (kernel_size=5's own two runs may get the warning too on a busy machine: that one is not what is tested)
    (line,) = [w for w in summary["warnings"] if w.startswith("The train times of kernel_size=3 range from")]
    assert line.startswith("The train times of kernel_size=3 range from 1.5 to 15.0 s over its seeds (10.0x)")
    assert not any("precision" in w for w in summary["warnings"])  # all four in the precision auto means here
    # one run recorded in the other precision (as if resumed on another machine): named, with its level
    here = metrics["precision"]
    other = {"bf16": "fp32", "fp32": "bf16"}[here]
    slow.write_text(json.dumps({**metrics, "precision": other}))
    summary = write_outputs(RunStore(out))
    (line,) = [w for w in summary["warnings"] if "precision" in w]
    listed = {here: "kernel_size=3 (1 run), kernel_size=5 (2 runs)", other: "kernel_size=3 (1 run)"}
    assert line.startswith("The runs trained in more than one precision (" + "; ".join(
        f"{p}: {listed[p]}" for p in sorted(listed)) + "), so a comparison")


def test_adding_a_level_keeps_the_finished_runs_and_a_changed_config_is_refused(tmp_path, capsys, fashion):
    out = tmp_path / "exp"
    spec = write_spec(tmp_path / "a.yaml", "a", seeds=1, train_subset=500, test_subset=100)
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet", "--epochs", "1"]) == 0
    first = (out / "runs" / "kernel_size=3" / "seed0" / "metrics.json").stat().st_mtime_ns
    wider = write_spec(tmp_path / "a.yaml", "a", seeds=1, train_subset=500, test_subset=100,
                       factor=dict(name="kernel_size", levels=[3, 5, 7], reference=3))
    assert main(["experiment", "run", str(wider), "--out", str(out), "--epochs", "1"]) == 0
    assert "2 finished, 0 failed, 1 to run" in capsys.readouterr().out
    assert (out / "runs" / "kernel_size=3" / "seed0" / "metrics.json").stat().st_mtime_ns == first
    assert main(["experiment", "run", str(wider), "--out", str(out), "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "holds runs of kernel_size=3, kernel_size=5, kernel_size=7 with another config (recipe.epochs 1 there, " \
           "2 here)" in err  # what differs, so the user knows which flag to give


def test_a_run_that_is_not_its_levels_is_refused_and_train_does_not_write_into_an_experiment(tmp_path, capsys):
    """A run trained by hand into an experiment (what 'train it again with --force' once advised), or a link to
    another level's run, was counted as that level's seed and paired with the reference, exit 0."""
    spec = write_spec(tmp_path / "d.yaml", "d", model="mlp-128-64", dataset="digits", train_subset=None,
                      test_subset=None, factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]))
    out = tmp_path / "e"
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0
    run = out / "runs" / "recipe.lr=0.002" / "seed1"
    for where in (run, out, out / "runs"):  # force or not
        assert main(["train", "-m", "mlp", "--dataset", "digits", "--epochs", "1", "--out", str(where), "--force"]) == 2
        assert "whose runs 'convlens experiment run' trains; give another --out" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    assert main(["train", "-m", "mlp", "--dataset", "digits", "--epochs", "1", "--seed", "7", "--out", str(foreign),
                 "--quiet"]) == 0
    shutil.rmtree(run)
    shutil.copytree(foreign, run)
    capsys.readouterr()
    # read, not run: the table leaves it out and says why; status marks it
    assert main(["experiment", "table", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    level = next(lv for lv in summary["levels"] if lv["label"] == "recipe.lr=0.002")
    kept = json.loads((run.parent / "seed0" / "metrics.json").read_text())["confusion_matrix"]
    assert level["n"] == 1 and level["test_accuracy"]["mean"] == np.trace(kept) / np.sum(kept)
    assert level["left_out"] == [{"seed": 1, "reason": f"{run} holds a run that is not this level's seed 1 (its seed, "
                                  "recipe differ); move it out of the experiment and run again (that run is trained "
                                  "anew)"}]
    assert f"Left out of this analysis: {run} holds a run that is not this level's seed 1" in summary["warnings"][-1]
    assert main(["experiment", "status", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "3 done, 0 failed, 0 pending, 1 left out" in shown and "│ done   │ left out │" in shown
    assert f"note: left out of the analysis: {run} holds a run that is not this level's seed 1" in shown
    # the curves are drawn from the counted runs, and say over how many seeds
    from convlens.experiments.plots import curves_figure
    from convlens.experiments.store import RunStore
    figure = curves_figure(RunStore(out), summary)
    assert "n=1-2 seeds per level" in figure.axes[0].get_title()
    assert sorted(len(line.get_xdata()) for line in figure.axes[0].get_lines()) == [1, 1]  # one epoch each
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 1
    assert capsys.readouterr().err.strip() == (f"convlens: error: {run} holds a run that is not this level's seed 1 "
                                               "(its seed, recipe differ); move it out of the experiment and run "
                                               "again (that run is trained anew)")
    shutil.rmtree(run)
    run.symlink_to(out / "runs" / "recipe.lr=0.001" / "seed1")  # the reference's run, counted as the other level's
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 1
    assert f"{run} is a link (to " in capsys.readouterr().err
    run.unlink()
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0  # trained anew
    assert json.loads((run / "config.json").read_text())["seed"] == 1
    (run / "model.safetensors").unlink()  # counted as done, evaluate and export then failed on it
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 1
    assert f"{run} is finished but has no model.safetensors" in capsys.readouterr().err
    assert main(["experiment", "table", str(out), "--json"]) == 0  # its numbers stand: counted, and said
    summary = json.loads(capsys.readouterr().out)
    assert summary["levels"][1]["n"] == 2 and summary["levels"][1]["left_out"] == []
    assert ("recipe.lr=0.002 seed 1: no model.safetensors in the run directory; counted here, but it cannot be "
            "exported or probed") in summary["warnings"][-1]


def test_a_run_without_its_predictions_is_named_not_silently_left_out_of_the_image_by_image_test(tmp_path, capsys,
                                                                                                 monkeypatch):
    spec = write_spec(tmp_path / "d.yaml", "d", model="mlp-128-64", dataset="digits", train_subset=None,
                      test_subset=None, factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]))
    out = tmp_path / "e"
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0
    (out / "runs" / "recipe.lr=0.002" / "seed1" / "predictions.npz").unlink()
    capsys.readouterr()
    assert main(["experiment", "table", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "recipe.lr=0.002 seed 1: no predictions.npz in the run directory, so left out of the image-by-image" in \
        printed
    assert "seed 0: " in printed and "seed 1: " not in printed.split("image by image")[1].split("\n")[0]
    # an analysis stopped between its summary and its plots leaves no plot drawn from the runs as they were before
    from convlens.experiments import run as run_module
    from convlens.experiments.store import RunStore
    assert (out / "plots" / "per_class.png").is_file()
    (out / "summary.json").unlink()
    monkeypatch.setattr(run_module, "write_plots", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        run_module.write_analysis(RunStore(out))
    assert (out / "summary.json").is_file() and not (out / "plots").exists()
    # runs that recorded other images (trained where the data was read anew, e.g. Ray tasks after a folder changed)
    config_file = out / "runs" / "recipe.lr=0.002" / "seed0" / "config.json"
    original = config_file.read_text()
    for split, what in (("test", "the runs of d were tested on different images (recipe.lr=0.001 seed 0 and "
                                 "recipe.lr=0.002 seed 0)"),
                        ("train", "the seeds of recipe.lr=0.002 in d were trained on different images (seeds 0 and "
                                  "1)")):
        config = json.loads(original)
        config["data"]["digests"][split] = "0" * 64
        config_file.write_text(json.dumps(config))
        capsys.readouterr()
        assert main(["experiment", "table", str(out)]) == 1
        assert capsys.readouterr().err.strip() == (f"convlens: error: {what}: the data they read changed between them "
                                                   "(a file of the dataset, or for a folder the Pillow that decoded "
                                                   "it); run the experiment again with --force on the data as it is "
                                                   "now")
    config_file.write_text(original)
    assert main(["experiment", "table", str(out)]) == 0


def test_levels_dropped_from_the_design_are_named_not_silently_left_on_disk(tmp_path, capsys):
    spec = write_spec(tmp_path / "d.yaml", "d", model="mlp-128-64", dataset="digits", train_subset=None,
                      test_subset=None, factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]))
    out = tmp_path / "e"
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0
    other = write_spec(tmp_path / "d2.yaml", "d", model="mlp-128-64", dataset="digits", train_subset=None,
                       test_subset=None, factor=dict(name="recipe.lr", levels=[1e-3, 3e-3]))
    capsys.readouterr()
    assert main(["experiment", "run", str(other), "--out", str(out)]) == 0
    assert (f"note: finished runs of recipe.lr=0.002, not a level of this design, are kept in {out / 'runs'} but "
            "left out of this analysis") in capsys.readouterr().out
