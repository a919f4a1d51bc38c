"""What the Python API does with runs it cannot use as asked (permuted pixels, failed, exported), presets, output
paths and wrong argument types: one line that says what to do, nothing written, torch's settings left alone."""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil

import numpy as np
import pytest
import yaml

import convlens
from convlens.api.runs import train_from_config
from convlens.config import train_config
from convlens.errors import DataError
from convlens.study.config import STUDY_PRESETS

FAST = dict(epochs=1, threads=1, quiet=True)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One tiny finished run, saved."""
    return convlens.train("mlp", "digits", out=tmp_path_factory.mktemp("run") / "run", **FAST)


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A two-run experiment on digits."""
    spec = {"name": "k", "model": "cnn-16-32", "recipe_set": {"epochs": 1}, "seeds": 1, "dataset": "digits",
            "factor": {"name": "kernel_size", "levels": [3, 5]}}
    return convlens.Experiment(spec).run(out=tmp_path_factory.mktemp("exp") / "k", quiet=True)


def test_predict_refuses_a_run_trained_on_permuted_pixels_as_export_does(tmp_path):
    cfg = train_config("mlp", "digits", epochs=1, threads=1).model_copy(update={"pixels": "permuted"})
    unsaved = train_from_config(cfg, quiet=True)
    images = convlens.load_dataset("digits").test_images[:5]
    with pytest.raises(convlens.UsageError, match="this run was trained on pixel-permuted images"):
        unsaved.predict(images)  # it would answer plain images with confident nonsense
    run = convlens.load_run(train_from_config(cfg, tmp_path / "perm", quiet=True).directory)
    with pytest.raises(convlens.UsageError) as exported:
        run.export(tmp_path / "model")
    for call in (run.predict, run.predict_proba):
        with pytest.raises(convlens.UsageError) as predicted:
            call(images)
        assert str(predicted.value) == str(exported.value)  # the serving check's own line


def test_a_preset_applies_whatever_the_config_is_given_as(tmp_path):
    quick = STUDY_PRESETS["quick"]
    assert convlens.Study(preset="quick").config == convlens.Study("quick").config  # was the default study
    assert convlens.Study(preset="quick").config.train_subset == quick["train_subset"] == 5000
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"seeds": 2}))
    on_quick = convlens.Study(tmp_path / "s.yaml", preset="quick").config
    assert (on_quick.seeds, on_quick.train_subset) == (2, 5000)
    assert convlens.Study().config == convlens.Study("default").config
    for call, message in [
        (lambda: convlens.Study(tmp_path / "s.yaml", preset="quik"),  # was a KeyError
         "unknown study preset 'quik' (did you mean 'quick'?); presets: quick, default, full"),
        (lambda: convlens.Study("quik"),  # was "study config quik not found"
         "'quik' (did you mean 'quick'?) is neither a file nor a study preset (quick, default, full)"),
        (lambda: convlens.Study(tmp_path / "missing.yaml"), "study config"),  # meant as a file: not found
        (lambda: convlens.Study("quick", preset="full"), "give the preset once"),
        (lambda: convlens.Study(convlens.Study("quick").config, preset="full"), "a StudyConfig is complete"),
    ]:
        with pytest.raises(convlens.UsageError) as raised:
            call()
        assert message in str(raised.value)
    with pytest.raises(convlens.UsageError, match="missing.yaml not found"):
        convlens.Study(tmp_path / "missing.yaml")


def test_a_failed_run_loads_and_says_it_failed(saved, tmp_path):
    directory = shutil.copytree(saved.directory, tmp_path / "failed")
    reason = "training diverged: loss is nan at epoch 1, step 3; lower the learning rate or check the inputs"
    metrics = json.loads((directory / "metrics.json").read_text())
    (directory / "metrics.json").write_text(json.dumps(  # as runs._record_divergence writes it
        {"status": "failed", "reason": reason, "epoch": 1, "step": 3,
         **{k: metrics[k] for k in ("params", "macs", "timing")}}))
    run = convlens.load_run(directory)
    assert repr(run) == f"Run(mlp-128-64, seed 0: failed ({reason}) in {directory})"
    assert "failed" in run._repr_html_() and "lower the learning rate" in run._repr_html_()
    for use in (lambda: run.test_accuracy, lambda: run.predict(np.zeros((1, 8, 8), np.uint8))):
        with pytest.raises(convlens.UsageError, match=f"{directory} is a failed run \\(training diverged: "):
            use()


def test_load_run_of_an_exported_model_says_what_it_is_and_what_reads_it(saved, tmp_path):
    model = saved.export(tmp_path / "model")
    with pytest.raises(convlens.UsageError) as raised:
        convlens.load_run(model)
    message = str(raised.value)
    assert message.startswith(f"{model} is an exported model (of the run {saved.directory}), not a training run")
    assert "convlens predict" in message and "convlens serve" in message and "\n" not in message


def test_a_study_refuses_a_run_or_an_experiment_as_its_directory(saved, experiment):
    study = convlens.Study("quick", dataset="digits", seeds=2, epochs=1)
    for out, message in [(saved.directory, "holds a config.json"),
                         (experiment.directory, "is the experiment"),
                         (experiment.directory / "runs", "is inside the experiment")]:
        before = sorted(p.name for p in out.rglob("*"))
        with pytest.raises(convlens.UsageError, match=message):
            study.run(out=out, quiet=True)
        assert sorted(p.name for p in out.rglob("*")) == before  # nothing written


def test_the_runs_frame_gives_run_directories_that_load_from_anywhere(experiment, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the experiment's directory, nor where it was run from
    frame = experiment.runs()
    assert len(frame) == 2
    for row in frame.itertuples():
        run = convlens.load_run(row.run_dir)
        assert run.metrics["test_accuracy"] == row.test_accuracy and run.config["seed"] == row.seed
    with open(experiment.directory / "runs.csv") as f:  # the file on disk keeps paths relative to the experiment
        assert [r["run_dir"] for r in csv.DictReader(f)] == ["runs/kernel_size=3/seed0", "runs/kernel_size=5/seed0"]


def test_output_paths_expand_the_home_directory(saved, experiment, tmp_path, monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    run = convlens.train("mlp", "digits", out="~/run", **FAST)
    assert run.directory == home / "run" and (home / "run" / "metrics.json").is_file()
    assert (saved.export("~/model") / "config.json").is_file() and (home / "model" / "config.json").is_file()
    assert convlens.Experiment(experiment.experiment().spec).run(out="~/exp", quiet=True).directory == home / "exp"
    with pytest.raises(convlens.UsageError, match=f"{home / 'run'} holds a config.json"):  # the run found at ~/run
        convlens.Study("quick", dataset="digits").run(out="~/run", quiet=True)
    assert not any(cwd.iterdir())  # no directory named '~'


def test_a_wrong_argument_type_is_one_usage_line(saved, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    config = convlens.Study("quick").config
    for call, message in [
        (lambda: convlens.Experiment(3), "Experiment takes a built-in name, a YAML file, an ExperimentSpec or a "
                                         "dict, got 3"),
        (lambda: convlens.Study(5), "Study takes a preset name (quick, default, full), a YAML file or a StudyConfig, "
                                    "got 5"),
        (lambda: convlens.train("mlp", "digits", out=123, **FAST), "out takes a directory (a path), got 123"),
        (lambda: saved.export(a_file), f"{a_file} is a file, where a directory is needed"),
        (lambda: convlens.Study("quick").run(out=a_file), f"{a_file} is a file, where a directory is needed"),
        (lambda: convlens.train("mlp", "digits", out=a_file / "run", **FAST), f"{a_file} is a file, where a"),
        (lambda: convlens.Study(config, sedes=2), "sedes: Extra inputs are not permitted"),
    ]:
        with pytest.raises(convlens.UsageError) as raised:
            call()
        assert message in str(raised.value) and "\n" not in str(raised.value)
    assert a_file.read_text() == "mine"


def test_training_leaves_torchs_thread_count_as_it_was(monkeypatch, tmp_path):
    import torch
    from sklearn.datasets import load_digits
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        run = convlens.train("mlp", "digits", epochs=1, threads=1, quiet=True)
        assert run.metrics["timing"]["threads"] == 1 and torch.get_num_threads() == 3  # trained with 1, then back
        convlens.train("mlp", "digits", epochs=1, quiet=True)  # all cores while it trains
        assert torch.get_num_threads() == 3
        x, y = load_digits(return_X_y=True)
        convlens.ConvNetClassifier(model="mlp", epochs=1, threads=1).fit(x[:200], y[:200])
        assert torch.get_num_threads() == 3
        convlens.Experiment(dict(name="t", model="mlp-128-64", dataset="digits", recipe_set={"epochs": 1},
                                 factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]), seeds=2)).run(
            out=tmp_path / "exp", quiet=True)  # its runs trained in this process, on every core
        assert torch.get_num_threads() == 3

        def fail(*args, **kwargs):
            assert torch.get_num_threads() == 1
            raise RuntimeError("stopped")
        monkeypatch.setattr("convlens.runs.train", fail)
        with pytest.raises(RuntimeError, match="stopped"):
            convlens.train("mlp", "digits", epochs=1, threads=1, quiet=True)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_a_run_trained_on_a_changed_dataset_is_evaluated_on_it(tmp_path):
    ds = convlens.load_dataset("digits")
    inverted = dataclasses.replace(ds, train_images=255 - ds.train_images, test_images=255 - ds.test_images)
    run = convlens.train("mlp", inverted, out=tmp_path / "run", **FAST)
    with pytest.raises(DataError, match=r"run\.evaluate\(dataset=\.\.\.\)"):  # reloaded by name: others
        run.evaluate()
    assert run.evaluate(dataset=inverted)["test_correct"] == run.metrics["test_correct"]
    with pytest.raises(DataError, match="differ from those this run was tested on"):
        run.evaluate(dataset=ds)
    with pytest.raises(convlens.UsageError, match="dataset takes a Dataset"):
        run.evaluate(dataset="digits")


def test_a_run_on_a_subset_taken_in_python_records_it_and_evaluates_on_the_same_images(tmp_path):
    """train(data=ds.subset(...)) recorded no subset, so evaluating the run reloaded every image and called the
    data changed. Each subset taken is recorded (a subset of a subset: the smaller), as --train-subset is."""
    ds = convlens.load_dataset("digits")
    run = convlens.train("mlp", ds.subset(400, 300).subset(200), out=tmp_path / "run", **FAST)
    data = json.loads((tmp_path / "run" / "config.json").read_text())["data"]
    assert (data["train_subset"], data["test_subset"], data["n_test"]) == (200, 300, 300)
    again = convlens.load_run(tmp_path / "run").evaluate()
    assert again["test_correct"] == run.metrics["test_correct"] and again["n_test"] == 300


def test_results_are_loaded_from_a_home_relative_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for load, what in ((convlens.load_experiment, "experiment directory"), (convlens.load_study, "study directory")):
        with pytest.raises(convlens.UsageError, match=f"{what} ~nouser_cl/x: there is no user 'nouser_cl'"):
            load("~nouser_cl/x")
        with pytest.raises(Exception) as info:  # ~ is the home directory, not a folder named ~
            load("~/absent")
        assert str(tmp_path / "absent") in str(info.value)


def test_a_spec_error_is_prefixed_once():
    bad = dict(name="x", model="cnn", factor=dict(name="kernel_size", levels=[3, 5]))
    with pytest.raises(convlens.UsageError) as info:
        convlens.Experiment({**bad, "recipe": "kears"})
    assert str(info.value) == ("spec: unknown recipe 'kears' (did you mean 'keras'?); valid recipes: keras, "
                               "fast")  # was "spec: spec: ..."
    with pytest.raises(convlens.UsageError, match=r"^spec: factr: Extra inputs are not permitted"):
        convlens.Experiment({k: v for k, v in {**bad, "factr": bad["factor"]}.items() if k != "factor"})


SPAWNING = '''import convlens
spec = dict(name="t", model="mlp-128-64", dataset="digits", recipe_set={"epochs": 1},
            factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]), seeds=2)
'''


def test_workers_from_a_script_that_would_run_again_in_each_are_refused_before_anything(tmp_path, monkeypatch):
    """Spawned workers run the main script's top level again: unguarded, it trained again in each; read from
    standard input, it cannot be run again (every run failed as 'its worker process died')."""
    import subprocess
    import sys
    import types

    from convlens.experiments.local import check_workers_can_start
    script = tmp_path / "unguarded.py"
    script.write_text(SPAWNING + 'convlens.Experiment(spec).run(out="exp", workers=2, quiet=True)\n')
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1] == (
        f"convlens.errors.UsageError: {script}, line 4, starts 2 worker processes outside `if __name__ == "
        '"__main__":`; each worker runs the script again and would run that line too: put the script\'s calls under '
        "that guard, or use workers=1")
    assert not (tmp_path / "exp").exists()  # refused before anything was written
    executed = tmp_path / "executed.py"  # the call in exec'd code, itself at the script's top level
    executed.write_text(SPAWNING + 'exec(\'convlens.Experiment(spec).run(out="exp", workers=2, quiet=True)\')\n')
    done = subprocess.run([sys.executable, executed.name], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and f"{executed}, line 4, starts 2 worker processes" in done.stderr  # relative path
    assert not (tmp_path / "exp").exists()
    # what multiprocessing's spawn runs again, by the main module's spec and file (as its get_preparation_data)
    stdin = types.ModuleType("__main__")
    stdin.__file__, stdin.__spec__ = "<stdin>", None
    monkeypatch.setitem(sys.modules, "__main__", stdin)
    with pytest.raises(convlens.UsageError, match="<stdin> is not a file they can run"):
        check_workers_can_start(2)
    check_workers_can_start(1)  # one worker: nothing spawned
    package = types.ModuleType("__main__")  # python -m pkg, a zipapp: spawn does not run pkg/__main__ again
    package.__file__, package.__spec__ = str(script), types.SimpleNamespace(name="pkg.__main__")
    monkeypatch.setitem(sys.modules, "__main__", package)
    check_workers_can_start(2)


def test_the_main_guard_is_found_by_the_line_that_calls(tmp_path):
    from convlens.experiments.local import _under_main_guard
    source = ("import os\n"                       # 1
              "def main():\n"                     # 2
              "    pass\n"                        # 3
              "main()\n"                          # 4: outside
              "if '__main__' == __name__:\n"      # 5
              "    main(\n"                       # 6: inside, over two lines
              "        )\n"                       # 7
              "else:\n"                           # 8
              "    main()\n"                      # 9: the else branch runs in the workers
              "if __name__ != '__main__':\n"      # 10
              "    main()\n"                      # 11
              "if __name__ == '__main__' and os:\n"  # 12
              "    main()\n"                      # 13: a guard with a condition beside it
              "if __name__ != '__main__':\n"      # 14
              "    pass\n"                        # 15
              "else:\n"                           # 16
              "    main()\n")                     # 17: the guard's other spelling
    (tmp_path / "script.py").write_text(source)
    assert [line for line in range(1, 18) if _under_main_guard(str(tmp_path / "script.py"), line)] == [6, 7, 13, 17]
    assert _under_main_guard("/nonexistent/script.py", 4)  # unreadable: nothing is claimed


def test_load_dataset_downloads_what_is_missing_as_train_does(tmp_path, monkeypatch, http_dir):
    """It refused ("run 'convlens data fetch'") where train downloaded: the README's first line failed on a fresh
    machine with internet. Here the official code path fetches Debian's files from a local server."""
    from convlens.data import catalog
    from tests.conftest import fashion_files
    served, url = http_dir
    for path in fashion_files():
        (served / path.name).write_bytes(path.read_bytes())
    info = catalog.BUILTIN_DATASETS["fashion-mnist"]  # no Debian copy and an empty cache: only the download is left
    hidden = dataclasses.replace(info, manifest=dataclasses.replace(info.manifest, system_dir=None))
    monkeypatch.setitem(catalog.BUILTIN_DATASETS, "fashion-mnist", hidden)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CONVLENS_DATA_URL", url)
    monkeypatch.delenv("CONVLENS_DATA", raising=False)
    with pytest.raises(DataError, match="fashion-mnist not found in"):
        convlens.load_dataset("fashion-mnist", download=False)
    ds = convlens.load_dataset("fashion-mnist")
    assert ds.train_images.shape == (60_000, 28, 28) and ds.source.origin == "download"
    assert sorted(p.name for p in (tmp_path / "cache" / "convlens" / "fashion-mnist").iterdir()) == sorted(
        p.name for p in fashion_files())


def test_missing_data_is_not_blamed_on_a_dataset_changed_in_python(tmp_path):
    from tests.data.test_catalog import write_folder
    folder = tmp_path / "colours"
    write_folder(folder, {"red": (220, 30, 30), "blue": (20, 40, 230)}, n=10)
    run = convlens.train("mlp", f"folder:{folder}", out=tmp_path / "run", **FAST)
    shutil.rmtree(folder)
    with pytest.raises(DataError) as info:
        run.evaluate()
    assert "does not exist" in str(info.value) and "run.evaluate(dataset=" not in str(info.value)
