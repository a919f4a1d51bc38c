"""`convlens compare`: runs are grouped by everything but the seed, so a permuted-pixel run or a run on another
subset is never averaged with the others; each group's statistics are recomputed here with numpy and scipy."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from scipy import stats as sps

from convlens.cli import main
from convlens.config import TrainConfig, resolve_recipe
from convlens.runs import run_training


@pytest.fixture(scope="module")
def runs(tmp_path_factory, fashion):
    """Three seeds of one MLP (one of them named by its alias), one on permuted pixels, one on fewer images."""
    root = tmp_path_factory.mktemp("compare")
    base = TrainConfig(model="mlp-128-64", recipe=resolve_recipe("fast", {"epochs": 1}), train_subset=600,
                       test_subset=300, device="cpu")
    variants = {"s0": base, "s1": base.model_copy(update={"seed": 1}),
                "alias-s2": TrainConfig(**{**base.model_dump(), "model": "mlp", "seed": 2}),
                "permuted": base.model_copy(update={"pixels": "permuted"}),
                "subset": base.model_copy(update={"train_subset": 500})}
    for name, cfg in variants.items():
        run_training(cfg, root / name, dataset=fashion)
    return root


def _accuracy(run_dir) -> float:
    return json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]


def test_compare_keeps_permuted_and_subset_runs_apart(runs, capsys):
    names = ["s0", "permuted", "s1", "subset", "alias-s2"]
    assert main(["compare", *(str(runs / n) for n in names), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["differs"] == ["data.pixels", "data.train_subset"]
    plain, permuted, subset = result["groups"]
    assert (plain["seeds"], permuted["seeds"], subset["seeds"]) == ([0, 1, 2], [0], [0])
    assert plain["settings"] == {"data.pixels": "original", "data.train_subset": 600}
    assert permuted["settings"] == {"data.pixels": "permuted", "data.train_subset": 600}
    assert subset["settings"] == {"data.pixels": "original", "data.train_subset": 500}
    accuracies = [_accuracy(runs / n) for n in ("s0", "s1", "alias-s2")]
    acc = plain["test_accuracy"]
    assert acc["n"] == 3 and acc["mean"] == pytest.approx(np.mean(accuracies), abs=1e-12)
    assert acc["std"] == pytest.approx(np.std(accuracies, ddof=1), abs=1e-12)
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(accuracies), scale=sps.sem(accuracies))
    assert acc["ci95"] == pytest.approx([lo, hi], abs=1e-12)
    assert permuted["test_accuracy"]["mean"] == pytest.approx(_accuracy(runs / "permuted"), abs=1e-12)
    assert permuted["test_accuracy"]["std"] is None  # one seed: no spread, never a made-up one


def test_auto_precision_groups_with_the_arithmetic_it_meant_and_apart_from_the_other(runs, tmp_path, fashion,
                                                                                      capsys):
    """``precision="auto"`` resolves per machine (bf16 or fp32): a run asking for what it resolved to is another
    seed of the same configuration, a run in the other arithmetic is not."""
    meant = json.loads((runs / "s0" / "metrics.json").read_text())["precision"]
    other = {"bf16": "fp32", "fp32": "bf16"}[meant]
    base = json.loads((runs / "s0" / "config.json").read_text())
    assert base["recipe"]["precision"] == "auto"
    for name, precision, seed in (("explicit", meant, 3), ("other", other, 4)):
        cfg = TrainConfig(model="mlp-128-64", recipe=resolve_recipe("fast", {"epochs": 1, "precision": precision}),
                          train_subset=600, test_subset=300, device="cpu", seed=seed)
        run_training(cfg, tmp_path / name, dataset=fashion)
    assert main(["compare", str(runs / "s0"), str(runs / "s1"), str(tmp_path / "explicit"), str(tmp_path / "other"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["differs"] == ["recipe.precision"]
    same, apart = result["groups"]
    assert (same["seeds"], same["settings"]) == ([0, 1, 3], {"recipe.precision": meant})
    assert (apart["seeds"], apart["settings"]) == ([4], {"recipe.precision": other})
    # a run of precision "auto" recorded before metrics.json had the key trained in fp32: grouped with fp32 runs
    fp32 = "explicit" if meant == "fp32" else "other"
    old = tmp_path / "old"
    shutil.copytree(runs / "s0", old)
    recorded = json.loads((old / "metrics.json").read_text())
    del recorded["precision"]
    (old / "metrics.json").write_text(json.dumps(recorded))
    config = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**config, "seed": 5}))
    assert main(["compare", str(tmp_path / fp32), str(old), "--json"]) == 0
    [group] = json.loads(capsys.readouterr().out)["groups"]
    assert group["seeds"] == sorted([5, 3 if fp32 == "explicit" else 4])


def test_two_cnns_beside_an_mlp_keep_the_column_of_the_setting_they_differ_in(runs, tmp_path, fashion, capsys):
    """Beside an MLP the architecture's keys are left to the model column, but kernel_size differs between the two
    CNNs: without its column the two rows would differ in nothing shown but their parameter counts."""
    for name, kernel in (("k3", 3), ("k5", 5)):
        cfg = TrainConfig(model="cnn-16-32", overrides={"kernel_size": kernel},
                          recipe=resolve_recipe("fast", {"epochs": 1}), train_subset=600, test_subset=300, device="cpu")
        run_training(cfg, tmp_path / name, dataset=fashion)
    assert main(["compare", str(tmp_path / "k3"), str(tmp_path / "k5"), str(runs / "s0")]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "model" in line and "per seed" in line)
    assert "spec.kernel_size" in header and "spec.channels" not in header
    rows = [line for line in out.splitlines() if line.startswith("│ ")]
    assert [row.split("│")[2].strip() for row in rows] == ["3", "5", "-"]  # the MLP has no kernel size
    assert "differ in the architecture, spec.kernel_size" in out


def test_compare_table_shows_what_differs(runs, capsys):
    assert main(["compare", str(runs / "s0"), str(runs / "s1"), str(runs / "permuted")]) == 0
    out = capsys.readouterr().out
    assert "data.pixels" in out and " permuted " in out and '"permuted"' not in out and "differ in data.pixels" in out
    assert "0: " in out and "1: " in out


def test_the_same_seed_twice_is_refused_and_the_same_directory_counts_once(runs, tmp_path, capsys):
    assert main(["compare", str(runs / "s0"), str(runs / "s0"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["groups"][0]["n"] == 1
    shutil.copytree(runs / "s0", tmp_path / "again")
    assert main(["compare", str(runs / "s0"), str(tmp_path / "again")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "the same configuration with the same seed (0)" in err


@pytest.mark.parametrize("split", ["test", "train"])
def test_seeds_that_read_other_images_are_not_averaged(runs, tmp_path, capsys, split):
    """Two seeds of one configuration whose recorded data digests differ (a folder changed between them): their
    mean would mix two datasets, as an experiment already refuses."""
    other = tmp_path / "other"
    shutil.copytree(runs / "s1", other)
    config = json.loads((other / "config.json").read_text())
    config["data"]["digests"][split] = "0" * 64
    (other / "config.json").write_text(json.dumps(config))
    assert main(["compare", str(runs / "s0"), str(other)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"one configuration {split}ed on different images" in err


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "metrics.json").write_text("{not json"), "metrics.json is not valid JSON"),
    (lambda d: (d / "config.json").write_text(json.dumps({"model": {"name": "mlp"}, "seed": 0})),
     "config.json: model.spec: Field required; and 2 more; it is not as convlens writes it"),
    (lambda d: (d / "metrics.json").write_text(json.dumps({"status": "ok", "test_accuracy": 0.9})),
     "found a run written by an older convlens (status 'ok')"),
])
def test_a_broken_or_old_run_is_one_line_not_a_traceback(runs, tmp_path, capsys, damage, message):
    broken = tmp_path / "broken"
    shutil.copytree(runs / "s1", broken)
    damage(broken)
    assert main(["compare", str(runs / "s0"), str(broken)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_run_identity_leaves_out_the_seed_and_keeps_what_changes_a_run():
    from convlens.experiments.spec import run_identity
    config = {"seed": 4, "model": {"name": "cnn-32-64-128", "spec": {"kind": "cnn", "kernel_size": 3}},
              "recipe": {"name": "fast", "epochs": 4},
              "data": {"dataset": "fashion-mnist", "origin": "debian", "directory": "/x", "n_train": 54000,
                       "train_subset": None, "test_subset": 1000, "pixels": "original"},
              "provenance": {"device": {"type": "cpu", "threads": 2}}}
    from convlens.config import Recipe
    from convlens.models.spec import CNNSpec
    identity = run_identity(config)
    # fields a config.json does not name (written before they existed) count at their defaults
    assert set(identity) == ({f"spec.{f}" for f in CNNSpec.model_fields} | {f"recipe.{f}" for f in Recipe.model_fields
                                                                              if f != "name"}
                             | {"data.train_subset", "data.test_subset", "data.pixels", "data.dataset", "device"})
    assert {k: identity[k] for k in ("spec.kind", "spec.kernel_size", "spec.layer", "recipe.epochs", "recipe.augment",
                                     "recipe.precision", "data.test_subset", "data.pixels", "device")} == {
        "spec.kind": "cnn", "spec.kernel_size": 3, "spec.layer": "conv", "recipe.epochs": 4, "recipe.augment": "none",
        "recipe.precision": "fp32", "data.test_subset": 1000, "data.pixels": "original", "device": "cpu"}
