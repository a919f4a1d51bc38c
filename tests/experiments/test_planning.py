"""`convlens experiment plan`: seeds per level from the spread of finished runs (or a pilot), checked against
statsmodels' power, and the training time from the runs' own seconds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from statsmodels.stats.power import TTestPower

from convlens.cli import main

SPEC = dict(name="plan-me", model="cnn-16-32", recipe="fast", recipe_set={"epochs": 1},
            factor=dict(name="kernel_size", levels=[3, 5]), seeds=2, train_subset=1_200, test_subset=400)


def test_plan_runs_a_pilot_then_answers_from_the_spread(tmp_path, capsys, fashion):
    spec, out = tmp_path / "s.yaml", tmp_path / "exp"
    spec.write_text(yaml.safe_dump(SPEC))
    assert main(["experiment", "plan", str(spec), "--effect", "0.5", "--out", str(out), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    metrics = {p.parent.parent.name + "/" + p.parent.name: json.loads(p.read_text())
               for p in out.glob("runs/*/*/metrics.json")}
    assert len(metrics) == 6  # the pilot: 2 levels x 3 seeds (more than the spec's 2)
    acc = {k: m["test_correct"] / m["n_test"] for k, m in metrics.items()}
    diffs = [acc[f"kernel_size=5/seed{s}"] - acc[f"kernel_size=3/seed{s}"] for s in range(3)]
    (row,) = plan["comparisons"]
    assert row["std_diff"] == pytest.approx(np.std(diffs, ddof=1), abs=1e-12)
    d = 0.005 / row["std_diff"]
    power = TTestPower()
    n = row["seeds_needed"]
    assert power.power(effect_size=d, nobs=n, alpha=0.05) >= 0.8 > power.power(effect_size=d, nobs=n - 1, alpha=0.05)
    per_seed = sum(np.mean([metrics[f"kernel_size={k}/seed{s}"]["train_seconds"] for s in range(3)]) for k in (3, 5))
    assert plan["seeds"] == n and plan["total_seconds"] == pytest.approx(n * per_seed)
    # a second plan reads the finished runs: no pilot, nothing retrained
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/metrics.json")}
    assert main(["experiment", "plan", str(spec), "--effect", "0.5", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pilot" not in printed and f"{n} seeds per level (2 levels)" in printed
    assert "alpha 0.05: a family of one comparison)" in " ".join(printed.split())  # the title wraps
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/metrics.json")}


@pytest.mark.parametrize("argv, message", [(["--effect", "0"], "--effect is in percentage points"),
                                           (["--effect", "0.2", "--pilot-seeds", "1"], "at least 2")])
def test_plan_usage_errors(capsys, argv, message):
    assert main(["experiment", "plan", "kernel-size", *argv]) == 2
    assert message in capsys.readouterr().err


def test_plan_covers_every_level_of_the_spec_not_only_those_already_run(tmp_path, capsys, fashion):
    spec, out = tmp_path / "s.yaml", tmp_path / "exp"
    spec.write_text(yaml.safe_dump({**SPEC, "seeds": 2}))
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0  # levels 3 and 5, 2 seeds
    capsys.readouterr()
    spec.write_text(yaml.safe_dump({**SPEC, "factor": dict(name="kernel_size", levels=[3, 5, 7])}))
    assert main(["experiment", "plan", str(spec), "--effect", "1", "--out", str(out), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [c["label"] for c in plan["comparisons"]] == ["kernel_size=5 vs kernel_size=3",
                                                         "kernel_size=7 vs kernel_size=3"]
    assert all(c["n"] == 3 for c in plan["comparisons"])  # the pilot: 3 seeds for every level, old runs kept


def test_plan_refuses_a_directory_of_another_experiment_without_suggesting_force(tmp_path, capsys, fashion):
    spec, out = tmp_path / "s.yaml", tmp_path / "exp"
    spec.write_text(yaml.safe_dump({**SPEC, "seeds": 1}))
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["experiment", "plan", "kernel-size", "--effect", "0.2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds a different experiment (plan-me)" in err and "--force" not in err and len(err.splitlines()) == 1


def test_plan_takes_the_run_wide_settings_an_experiment_ran_with(tmp_path, capsys, fashion):
    """An experiment run with --epochs/--train-subset/--test-subset is planned with the same flags; without them the
    refusal says which settings differ."""
    spec, out = tmp_path / "s.yaml", tmp_path / "exp"
    base = {k: v for k, v in SPEC.items() if k not in ("recipe_set", "train_subset", "test_subset")}
    spec.write_text(yaml.safe_dump(base))
    run_flags = ["--epochs", "1", "--train-subset", "1200", "--test-subset", "400"]
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet", *run_flags]) == 0
    capsys.readouterr()
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/metrics.json")}
    assert main(["experiment", "plan", str(spec), "--effect", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "with another config (recipe.epochs 1 there, 4 here; train_subset 1200 there, null here; test_subset " \
           "400 there, null here)" in err and len(err.strip().splitlines()) == 1
    assert main(["experiment", "plan", str(spec), "--effect", "1", "--out", str(out), "--json", "--pilot-seeds",
                 "2", *run_flags]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [c["n"] for c in plan["comparisons"]] == [2]  # the finished runs: no pilot needed, nothing retrained
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/metrics.json")}


def test_plan_reads_data_dir_for_its_pilot_and_missing_data_is_one_line_before_anything_is_written(tmp_path, capsys,
                                                                                                    fashion):
    spec, out = tmp_path / "s.yaml", tmp_path / "exp"
    spec.write_text(yaml.safe_dump({**SPEC, "model": "mlp-128-64", "factor": dict(name="recipe.lr",
                                                                                  levels=[1e-3, 2e-3])}))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["experiment", "plan", str(spec), "--effect", "1", "--out", str(out), "--data-dir", str(empty)]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (f"convlens: error: {empty}/train-images-idx3-ubyte(.gz) is missing; copy the fashion-mnist IDX "
                    "files there, or drop --data-dir/CONVLENS_DATA to download them")
    assert not out.exists()  # no pilot of failed runs
    files = tmp_path / "files"
    files.mkdir()
    for gz in Path(fashion.source.directory).glob("*.gz"):
        (files / gz.name).symlink_to(gz)
    assert main(["experiment", "plan", str(spec), "--effect", "1", "--out", str(out), "--data-dir", str(files),
                 "--pilot-seeds", "2", "--json"]) == 0
    configs = [json.loads(p.read_text()) for p in out.glob("runs/*/seed*/config.json")]
    assert len(configs) == 4 and {c["data"]["directory"] for c in configs} == {str(files)}
    assert [c["n"] for c in json.loads(capsys.readouterr().out)["comparisons"]] == [2]
