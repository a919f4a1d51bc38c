"""A run's metrics.json and config.json and an experiment's experiment.json, edited by hand: every command that reads
them answers one line naming the file and the field (exit 2) and changes nothing, and no value put in any field
makes the statistics raise anything else."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convlens.api.experiments import load_experiment
from convlens.cli import main
from convlens.errors import DataError, UsageError
from convlens.experiments.compare import compare_runs
from convlens.experiments.plots import curves_figure
from convlens.experiments.store import RunStore

SPEC = dict(name="records", model="mlp-128-64", recipe="fast", recipe_set={"epochs": 1},
            factor=dict(name="dropout", levels=[0.0, 0.2]), seeds=2, train_subset=400, test_subset=100)
RUN = Path("runs") / "dropout=0.0" / "seed0"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, fashion) -> Path:
    root = tmp_path_factory.mktemp("records")
    (root / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    assert main(["experiment", "run", str(root / "spec.yaml"), "--out", str(root / "exp"), "--quiet"]) == 0
    return root / "exp"


def tree_digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def at(keys: tuple, value: object) -> Callable[[dict], None]:
    def edit(record: dict) -> None:
        for key in keys[:-1]:
            record = record[key]
        if value is DELETE:
            del record[keys[-1]]
        else:
            record[keys[-1]] = value
    return edit


DELETE = object()
STATUS = lambda d: ["experiment", "status", str(d)]  # noqa: E731
TABLE = lambda d: ["experiment", "table", str(d)]  # noqa: E731
COMPARE = lambda d: ["compare", str(d / RUN), str(d / "runs" / "dropout=0.0" / "seed1")]  # noqa: E731
EVALUATE = lambda d: ["evaluate", str(d / RUN)]  # noqa: E731
EXPORT = lambda d: ["export", str(d / RUN), "--out", str(d.parent / "exported")]  # noqa: E731

# (file, edit, command, words the one line must hold besides the file's name)
EDITS = {
    "accuracy as text": ("metrics.json", at(("test_accuracy",), "0.9"), COMPARE,
                         "test_accuracy: Input should be a valid number"),
    "accuracy of 5": ("metrics.json", at(("test_accuracy",), 5), TABLE,
                      "test_accuracy: Input should be less than or equal to 1"),
    "done without accuracy": ("metrics.json", at(("test_accuracy",), DELETE), TABLE, "records its test_accuracy"),
    "status a list": ("metrics.json", at(("status",), ["done"]), STATUS,
                      "status: Input should be 'done' or 'failed'"),
    "confusion matrix text": ("metrics.json", at(("confusion_matrix",), "x"), TABLE, "confusion_matrix"),
    "confusion matrix not square": ("metrics.json", at(("confusion_matrix",), [[1, 2]] * 10), COMPARE, "not square"),
    "timing a list": ("metrics.json", at(("timing",), [1]), TABLE, "timing: Input should be a valid dictionary"),
    "params text": ("metrics.json", at(("params",), "x"), COMPARE, "params"),
    "seconds as text": ("metrics.json", at(("train_seconds",), "x"), TABLE, "train_seconds"),
    "per-class list too short": ("metrics.json", at(("per_class_accuracy",), [0.5]), TABLE, "per_class_accuracy has 1"),
    "history items text": ("metrics.json", at(("history",), ["x"]), EXPORT, "history[0]: Input should be a valid"),
    "an epoch without its lr": ("metrics.json", lambda m: m["history"][0].pop("lr"), TABLE,
                                "history[0].lr: Field required"),
    "an older convlens's status": ("metrics.json", at(("status",), "ok"), STATUS,
                                   "found a run written by an older convlens (status 'ok')"),
    "seed as text": ("config.json", at(("seed",), "x"), COMPARE, "seed: Input should be a valid integer"),
    "no data block": ("config.json", at(("data",), DELETE), EVALUATE, "data: Field required"),
    "dataset a number": ("config.json", at(("data", "dataset"), 3), EXPORT, "data.dataset"),
    "dense widths text": ("config.json", at(("model", "spec", "dense"), "x"), COMPARE,
                          "model.spec.dense: Input should be a valid tuple"),
    "recipe a list": ("config.json", at(("recipe",), [1]), COMPARE, "recipe: Input should be a valid dictionary (got"),
    "spec text": ("experiment.json", at(("spec",), "x"), STATUS, "spec: Input should be a valid dictionary"),
    "levels an object": ("experiment.json", at(("levels",), {"a": 1}), TABLE, "levels: Input should be a valid list"),
    "a level without its label": ("experiment.json", lambda e: e["levels"][0].pop("label"), STATUS,
                                  "label: Field required"),
    "seeds as text": ("experiment.json", at(("spec", "seeds"), "x"), STATUS, "spec: seeds"),
    "a billion seeds": ("experiment.json", at(("spec", "seeds"), 10**9), STATUS, "less than or equal to 100"),
    "reference not a level": ("experiment.json", at(("reference",), "dropout=9"), TABLE, "is none of the levels"),
    "broken, then run again": ("experiment.json", at(("levels",), None), lambda d: [
        "experiment", "run", str(d.parent / "spec.yaml"), "--out", str(d)], "--force"),
}


@pytest.fixture(scope="module")
def exported(experiment) -> Path:
    model = experiment.parent / "model"
    assert main(["export", str(experiment / RUN), "--out", str(model)]) == 0
    return model


def test_an_exported_models_config_is_checked_and_compare_refuses_it(exported, tmp_path, capsys):
    """evaluate takes a run or an exported model, each checked against its own shape; compare takes runs only."""
    model = tmp_path / "model"
    shutil.copytree(exported, model)
    assert main(["evaluate", str(model), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["n_test"] == 10_000  # an exported model: Fashion-MNIST's whole test set
    run_metrics = json.loads((exported.parent / "exp" / RUN / "metrics.json").read_text())
    assert run_metrics["n_test"] < 10_000 and evaluated["source_run_test"] == {
        "test_accuracy": run_metrics["test_accuracy"], "n_test": run_metrics["n_test"]}
    assert main(["evaluate", str(model)]) == 0  # the line says why the run's own accuracy differs
    assert capsys.readouterr().out.rstrip().endswith(
        f"on 10,000 images (its run was tested on {run_metrics['n_test']:,}: {run_metrics['test_accuracy']:.2%})")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "dataset": 3}))
    assert main(["evaluate", str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{model / 'config.json'}: dataset: Input should be a valid string" in err
    (model / "config.json").write_text(json.dumps(config))
    shutil.copyfile(exported.parent / "exp" / RUN / "metrics.json", model / "metrics.json")  # a SageMaker job's
    assert main(["compare", str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds an exported model, not a training run" in err


def test_a_failed_runs_history_is_empty(experiment, tmp_path):
    from convlens import load_run
    run = tmp_path / "run"
    shutil.copytree(experiment / RUN, run)
    (run / "metrics.json").write_text(json.dumps({"status": "failed", "reason": "DataError: no data"}))
    history = load_run(run).history
    assert history.empty and history.index.name == "epoch"


@pytest.mark.parametrize("name", EDITS)
def test_a_hand_edited_record_is_one_line_naming_the_file_and_the_field(name, experiment, tmp_path, capsys):
    file, edit, command, words = EDITS[name]
    copied = tmp_path / "exp"
    shutil.copytree(experiment, copied)
    shutil.copyfile(experiment.parent / "spec.yaml", tmp_path / "spec.yaml")
    path = copied / file if file == "experiment.json" else copied / RUN / file
    record = json.loads(path.read_text())
    edit(record)
    path.write_text(json.dumps(record))
    before = tree_digest(tmp_path)
    assert main(command(copied)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"{path}:" in err and words in err, err
    assert tree_digest(tmp_path) == before  # nothing written, nothing deleted


def test_force_clears_an_experiment_whose_record_is_broken(experiment, tmp_path):
    copied = tmp_path / "exp"
    shutil.copytree(experiment, copied)
    (copied / "experiment.json").write_text(json.dumps({"levels": "not a list"}))
    deleted = RunStore(copied).discard(["dropout=0.0"])
    # Only the level named survives the broken record's loss: its two seeds, and the analysis outputs.
    assert sorted(p.relative_to(copied).as_posix() for p in deleted) == [
        "plots", "runs.csv", "runs/dropout=0.0/seed0", "runs/dropout=0.0/seed1", "summary.json"]
    assert (copied / "runs" / "dropout=0.2" / "seed0" / "metrics.json").is_file()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12)


def field_paths(record: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a JSON record, lists entered at their first item."""
    if isinstance(record, dict):
        return [p for k, v in record.items() for p in [(*prefix, k), *field_paths(v, (*prefix, k))]]
    if isinstance(record, list) and record:
        return [(*prefix, 0), *field_paths(record[0], (*prefix, 0))]
    return []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_in_any_field_is_read_or_refused_in_one_line(experiment, tmp_path_factory, data):
    """One field of one record replaced by any JSON value (or removed): the statistics, the comparison and the
    status grid come out, or a UsageError (a DataError for a changed image digest) does; nothing else is raised."""
    file = data.draw(st.sampled_from(["metrics.json", "config.json", "experiment.json"]))
    root = Path(str(experiment) + "-fuzz")
    if not root.exists():
        shutil.copytree(experiment, root)
    path = root / file if file == "experiment.json" else root / RUN / file
    original = json.loads((experiment / path.relative_to(root)).read_text())
    record = copy.deepcopy(original)
    keys = data.draw(st.sampled_from(field_paths(record)))
    value = data.draw(st.just(DELETE) | JSON_VALUES)
    parent = record
    for key in keys[:-1]:
        parent = parent[key]
    if value is DELETE:
        parent.pop(keys[-1]) if isinstance(parent, dict) else parent.pop(0)
    else:
        parent[keys[-1]] = value
    path.write_text(json.dumps(record))
    try:
        for read in (lambda: plt.close(curves_figure(RunStore(root), load_experiment(root).summary)),
                     lambda: RunStore(root).status_grid(),
                     lambda: compare_runs([root / RUN, root / "runs" / "dropout=0.0" / "seed1"])):
            try:
                read()
            except (UsageError, DataError) as e:  # DataError: a digest edited into another dataset's
                assert len(str(e).splitlines()) == 1
    finally:
        path.write_text(json.dumps(original))
