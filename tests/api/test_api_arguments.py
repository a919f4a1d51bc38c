"""The API as a notebook or a script calls it: arguments of the wrong type or meaning are one line and write nothing;
a study's or an experiment's directory is not mixed with a run's or a model's files; run_more only adds seeds; what
a result shows is what the CLI prints."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

import convlens
from convlens.cli import main
from convlens.experiments.spec import resolve_levels
from convlens.run_files import refuse_run_or_model
from convlens.study.pipeline import plan_experiments

FAST = dict(epochs=1, threads=1, quiet=True)
SPEC = {"name": "k", "model": "cnn-16-32", "recipe_set": {"epochs": 1}, "seeds": 2, "dataset": "digits",
        "factor": {"name": "kernel_size", "levels": [3, 5]}}


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A four-run experiment on digits, run by the CLI; its result read back through the API."""
    root = tmp_path_factory.mktemp("exp")
    (root / "k.yaml").write_text(yaml.safe_dump(SPEC))
    assert main(["experiment", "run", str(root / "k.yaml"), "--out", str(root / "k"), "--quiet"]) == 0
    return convlens.load_experiment(root / "k")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return convlens.train("mlp", "digits", out=tmp_path_factory.mktemp("run") / "run", **FAST)


def listing(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_a_path_that_is_no_path_is_one_line(saved, tmp_path):
    # were TypeError tracebacks from os.fspath (expected str, bytes or os.PathLike object, not int)
    calls = [lambda: convlens.load_experiment(3), lambda: convlens.load_study(3),
             lambda: convlens.load_dataset("digits", data_dir=3), lambda: saved.evaluate(data_dir=3),
             lambda: convlens.Experiment(SPEC).run(out=tmp_path / "e", data_dir=3, quiet=True),
             lambda: convlens.Study("quick", dataset="digits", seeds=2).run(out=tmp_path / "s", data_dir=3, quiet=True)]
    for call in calls:
        with pytest.raises(convlens.UsageError, match=r"takes a path, got 3$"):
            call()
    with pytest.raises(convlens.UsageError, match=r"^experiment directory takes a path, got None$"):
        convlens.load_experiment(None)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("option, value, message", [
    ("workers", "2", "workers takes a whole number, 1 or more; got '2'"),
    ("workers", 2.5, "workers takes a whole number, 1 or more; got 2.5"),  # was "starts 2.5 worker processes"
    ("cpus_per_run", "1", "cpus_per_run takes a number, got '1'"),
    ("gpus_per_run", "0", "gpus_per_run takes a number, got '0'"),
    ("mlflow", 5, "mlflow takes True"),  # was taken as True: tracked in OUT/mlflow.db
    ("batch_seeds", "no", "batch_seeds takes True, False or None"),  # was taken as True
])
def test_a_run_option_of_the_wrong_type_is_one_line_and_writes_nothing(option, value, message, tmp_path):
    with pytest.raises(convlens.UsageError, match=re.escape(message)):
        convlens.Experiment(SPEC).run(out=tmp_path / "e", quiet=True, **{option: value})
    if option != "workers":  # a study's workers are a config option, validated by the config
        with pytest.raises(convlens.UsageError, match=re.escape(message)):
            convlens.Study("quick", dataset="digits", seeds=2).run(out=tmp_path / "s", quiet=True, **{option: value})
    assert listing(tmp_path) == []


def test_numpys_integers_are_whole_numbers(experiment):
    # a count from a numpy computation is accepted as the int it is: nothing to train, the same statistics
    runs = sorted(experiment.directory.glob("runs/*/seed*/metrics.json"))
    written = {p: p.stat().st_mtime_ns for p in runs}
    again = experiment.experiment().run(out=experiment.directory, workers=np.int64(1), quiet=True)
    assert len(runs) == 4 and {p: p.stat().st_mtime_ns for p in runs} == written  # none trained again
    # against the analysis read before the call: summary.json is rewritten by it, so the file would be its own answer
    assert again.summary["levels"] == experiment.summary["levels"]


def test_run_more_only_adds_seeds_and_keeps_the_finished_runs(experiment):
    summary = (experiment.directory / "summary.json").read_bytes()
    runs = listing(experiment.directory / "runs")
    for call, message in [
        (lambda: experiment.run_more(1), "at least the 2 this result has; got 1"),  # was an analysis of 1 seed
        (lambda: experiment.run_more(None), "got None"),
        (lambda: experiment.run_more(3, out=experiment.directory), "trains in this result's directory"),  # TypeError
        (lambda: experiment.run_more(3, force=True), "force=True would delete"),  # deleted the runs it keeps
    ]:
        with pytest.raises(convlens.UsageError, match=re.escape(message)):
            call()
    assert (experiment.directory / "summary.json").read_bytes() == summary
    assert listing(experiment.directory / "runs") == runs
    assert experiment.summary["seeds"] == json.loads(summary)["seeds"] == 2


def test_the_notebooks_title_is_the_one_the_cli_prints(experiment, capsys):
    capsys.readouterr()
    assert main(["experiment", "table", str(experiment.directory)]) == 0
    printed = capsys.readouterr().out.splitlines()[0].strip()
    assert printed == "k: recipe fast epochs=1, 2 seeds"  # the recipe was missing from the notebook's
    caption = re.search(r"<caption[^>]*><b>(.*?)</b></caption>", experiment._repr_html_()).group(1)
    assert html.unescape(caption) == printed


def test_a_grids_repr_names_the_levels_of_both_factors():
    experiment = convlens.Experiment({**SPEC, "second_factor": {"name": "batch_norm", "levels": [False, True]}})
    cells = [level.label.split(" ") for level in resolve_levels(experiment.spec)]
    assert len(cells) == 4
    shown = repr(experiment)
    assert all(label in shown for cell in cells for label in cell)  # batch_norm's were left out
    assert shown == ("Experiment(k: cnn-16-32, (kernel_size=3, kernel_size=5) x (batch_norm=false, batch_norm=true); "
                     "2 seeds)")
    assert repr(convlens.Experiment(SPEC)) == "Experiment(k: cnn-16-32, kernel_size=3, kernel_size=5; 2 seeds)"


def test_an_experiment_spec_path_expands_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "k.yaml").write_text(yaml.safe_dump({**SPEC, "name": "from-home", "seeds": 4}))
    for given in ("~/specs/k.yaml", Path("~/specs/k.yaml")):
        spec = convlens.Experiment(given).spec  # was "experiment spec file '~/specs/k.yaml' not found"
        assert (spec.name, spec.seeds, spec.factor.levels) == ("from-home", 4, [3, 5])


def test_explore_refuses_counts_and_seeds_that_are_no_counts():
    ds = convlens.load_dataset("digits")
    for arguments, name in [(dict(samples_per_class=-1), "samples_per_class"), (dict(samples_per_class="3"),
                            "samples_per_class"), (dict(seed=-1), "seed")]:  # were numpy's tracebacks
        with pytest.raises(convlens.UsageError, match=f"^{name} takes a whole number, 0 or more"):
            ds.explore(**arguments)
    counts = ds.explore(samples_per_class=0)["class_counts"]
    assert counts["train"] == np.bincount(ds.train_labels).tolist()


def test_summary_of_a_built_network_refuses_a_dataset_it_would_ignore():
    network = convlens.create_model("cnn-16-32", in_channels=1, image_size=8, num_classes=10)
    with pytest.raises(convlens.UsageError, match="^dataset applies to a model name"):
        convlens.summary(network, dataset="cifar10")  # was the 8x8 network's summary, silently
    total = sum(p.numel() for p in network.parameters())
    assert convlens.summary(network).params["total"] == total
    assert convlens.summary("cnn-16-32", dataset="digits").params["total"] == total
    fashion = convlens.create_model("cnn-16-32", in_channels=1, image_size=28, num_classes=10)
    assert convlens.summary("cnn-16-32").params["total"] == sum(p.numel() for p in fashion.parameters())


def test_train_refuses_a_data_dir_it_would_not_read(tmp_path):
    ds = convlens.load_dataset("digits")
    with pytest.raises(convlens.UsageError, match="^data_dir applies to a dataset named by text"):
        convlens.train("mlp", ds, data_dir=tmp_path / "elsewhere", out=tmp_path / "run", **FAST)
    assert listing(tmp_path) == []


@pytest.fixture
def begun_study(tmp_path):
    """A study's directory as the study begins it (its experiments planned, nothing trained yet)."""
    config = convlens.Study("quick", dataset="digits", seeds=2, workers=1).config
    out = tmp_path / "study"
    plan_experiments(config, out)
    return out


def test_a_studys_directory_is_not_given_a_runs_or_a_models_files(begun_study, saved, capsys):
    before = listing(begun_study)
    assert any(name.endswith("experiment.json") for name in before)
    calls = [lambda: convlens.train("mlp", "digits", out=begun_study, **FAST),
             lambda: convlens.train("mlp", "digits", out=begun_study, force=True, **FAST),
             lambda: saved.export(begun_study),
             lambda: convlens.Experiment(SPEC).run(out=begun_study, quiet=True)]
    for call in calls:
        with pytest.raises(convlens.UsageError, match="holds experiments .*, as a study's directory does"):
            call()
    capsys.readouterr()
    assert main(["train", "-m", "mlp", "--dataset", "digits", "--epochs", "1", "--out", str(begun_study)]) == 2
    assert "as a study's directory does" in capsys.readouterr().err  # the CLI's train: the same check
    assert listing(begun_study) == before
    refuse_run_or_model(begun_study, "a study")  # what Study.run checks first: it can still run there
    # a directory inside the study is not the study's: an export there is taken
    assert saved.export(begun_study / "model") == begun_study / "model"


def test_a_model_is_not_exported_into_an_experiments_runs(experiment, saved):
    before = listing(experiment.directory)
    for out, message in [(experiment.directory, "is the experiment"),
                         (experiment.directory / "runs" / "kernel_size=3" / "seed9", "is inside the experiment")]:
        with pytest.raises(convlens.UsageError, match=message):
            saved.export(out)  # the experiment's own directory took a config.json and weights
    assert listing(experiment.directory) == before


def test_a_study_listing_an_experiment_twice_is_refused():
    twice = [{"name": "kernel-size", "levels": [3, 5]}, {"name": "kernel-size", "levels": [5, 7]}]
    with pytest.raises(convlens.UsageError, match="kernel-size is listed twice"):
        convlens.Study("quick", dataset="digits", experiments=twice)  # the first's levels were silently dropped
    once = convlens.Study("quick", dataset="digits", experiments=twice[1:]).config.experiment_specs()
    assert [(s.name, s.factor.levels) for s in once][0] == ("kernel-size", [5, 7])


def test_the_headline_of_a_study_stopped_while_it_rendered_its_report(tmp_path):
    # results.json is first written with wall_seconds None, before the report's own time is known
    def accuracy(mean, std):
        return {"n": 2, "mean": mean, "std": std, "ci95": [mean - 0.1, mean + 0.1]}
    results = {"study": {"wall_seconds": None}, "design": {"test_accuracy": accuracy(0.9, 0.01)},
               "baseline": {"test_accuracy": accuracy(0.8, 0.02)}, "experiments": {}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    study = convlens.load_study(tmp_path)
    assert study.headline() == "CNN 90.00% ± 1.00 pp, MLP 80.00% ± 2.00 pp (n=2 seeds)"  # was a TypeError
    results["study"]["wall_seconds"] = 90
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert convlens.load_study(tmp_path).headline().endswith("(n=2 seeds); 1.5 min")


def test_a_batch_size_is_checked_against_the_loaded_dataset_it_trains_on():
    ds = convlens.load_dataset("digits")
    doubled = dataclasses.replace(ds, train_images=np.concatenate([ds.train_images] * 2),
                                  train_labels=np.concatenate([ds.train_labels] * 2))
    images = 2 * len(ds.train_labels)
    expected = images - round(images * 0.1)  # the recipe's 10% held out for validation
    # more than the 1,294 images the named digits trains on, no more than the doubled set's: was refused
    run = convlens.train("mlp", doubled, batch_size=2000, **FAST)
    assert run.config["data"]["n_train"] == expected > 2000 and run.config["recipe"]["batch_size"] == 2000
    with pytest.raises(convlens.UsageError, match=f"^batch_size: larger than the {expected:,} images digits trains on "
                                                  rf"\({images:,} less the {images - expected} held out"):
        convlens.train("mlp", doubled, batch_size=expected + 1, **FAST)


def test_a_study_tracked_in_mlflow_refuses_a_data_dir_that_is_no_path_before_writing(tmp_path):
    pytest.importorskip("mlflow")
    with pytest.raises(convlens.UsageError, match=r"^data_dir takes a path, got 3$"):
        convlens.Study("quick", dataset="digits", seeds=2).run(out=tmp_path / "s", data_dir=3, quiet=True, mlflow=True)
    assert listing(tmp_path) == []  # was s/mlflow.db, the tracker's store made first


def test_load_run_says_an_experiments_directory_is_one_as_the_cli_does(experiment, capsys):
    directory = experiment.directory
    with pytest.raises(convlens.UsageError) as refused:
        convlens.load_run(directory)  # was "config.json not found; give a directory written by ... or an experiment"
    assert str(refused.value) == (f"{directory} is an experiment, not a run: convlens.load_experiment("
                                  f"{str(directory)!r}) shows its statistics; to load one of its runs, name it "
                                  f"({directory / 'runs'}/LEVEL/seedN)")
    # the runs it points to are what load_run reads
    seed0 = directory / "runs" / "kernel_size=3" / "seed0"
    recorded = json.loads((seed0 / "metrics.json").read_text())["test_accuracy"]
    assert convlens.load_run(seed0).metrics["test_accuracy"] == recorded
    capsys.readouterr()
    assert main(["evaluate", str(directory)]) == 2
    assert "is an experiment, not a run: 'convlens experiment table" in capsys.readouterr().err
