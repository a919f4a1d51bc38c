"""The Python API is the CLI's code path: the same seeds give the same numbers through both; its objects read
back what the run store holds; every public name is documented with an example."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml

import convlens
from convlens.cli import main

SPEC = {"name": "api-k", "model": "cnn-16-32", "recipe": "fast", "recipe_set": {"epochs": 2},
        "factor": {"name": "kernel_size", "levels": [3, 5, 7]}, "seeds": 3, "dataset": "digits"}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same experiment through the CLI and through the API, in two directories."""
    root = tmp_path_factory.mktemp("api")
    spec = root / "s.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    assert main(["experiment", "run", str(spec), "--out", str(root / "cli"), "--quiet"]) == 0
    result = convlens.Experiment(str(spec)).run(out=root / "api", quiet=True)
    return root, result


def test_an_experiment_through_the_api_equals_the_cli(both, capsys):
    root, result = both
    for path in (root / "cli").glob("runs/*/*/metrics.json"):
        api = json.loads((root / "api" / path.relative_to(root / "cli")).read_text())
        cli = json.loads(path.read_text())
        assert api["test_correct"] == cli["test_correct"] and api["test_loss"] == cli["test_loss"]
    capsys.readouterr()
    assert main(["experiment", "table", str(root / "cli"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    table = result.table()
    assert list(table.index) == [lv["label"] for lv in printed["levels"]]
    for lv in printed["levels"]:
        row = table.loc[lv["label"]]
        assert row["n"] == lv["n"] == 3
        assert row["mean"] == pytest.approx(lv["test_accuracy"]["mean"], abs=0)
        assert row["std"] == pytest.approx(lv["test_accuracy"]["std"], abs=0)
        assert [row["ci_low"], row["ci_high"]] == pytest.approx(lv["test_accuracy"]["ci95"], abs=0)
    for c in printed["comparisons"]:
        row = table.loc[c["level"]]
        assert row["diff"] == pytest.approx(c["diff"], abs=0) and row["verdict"] == c["verdict"]
        assert row["p_unadjusted"] == pytest.approx(c["p_value"], abs=0)
        assert row["p_holm"] == pytest.approx(c["p_holm"], abs=0)
    assert result.conclusions == printed["conclusions"]


def test_the_tables_numbers_are_the_runs_numbers(both):
    """Independently of the analysis code: mean and std from the metrics files with numpy, and Holm by hand."""
    root, result = both
    table, runs = result.table(), result.runs()
    assert len(runs) == 9 and set(runs["status"]) == {"done"}
    accuracy = {}
    for level in table.index:
        values = [json.loads(p.read_text())["test_correct"] / json.loads(p.read_text())["n_test"]
                  for p in sorted((root / "api" / "runs" / level).glob("seed*/metrics.json"))]
        accuracy[level] = np.array(values)
        assert table.loc[level, "mean"] == pytest.approx(np.mean(values), rel=1e-12)
        assert table.loc[level, "std"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    from scipy import stats
    reference = table.index[table["reference"]][0]
    raw = {lv: stats.ttest_rel(accuracy[lv], accuracy[reference]).pvalue for lv in table.index if lv != reference}
    ordered = sorted(raw, key=raw.get)  # Holm: the k-th smallest p times (m - k), running maximum, capped at 1
    holm, running = {}, 0.0
    for k, level in enumerate(ordered):
        running = max(running, min(1.0, raw[level] * (len(ordered) - k)))
        holm[level] = running
    for level, p in holm.items():
        assert table.loc[level, "p_holm"] == pytest.approx(p, rel=1e-9)


def test_the_result_shows_itself_in_a_notebook_with_the_verdicts_coloured(both):
    _, result = both
    html = result._repr_html_()
    assert html.count("<tr>") == 4 + 3 and "one Holm family of 2" in html  # levels, then comparisons
    for verdict in result.table()["verdict"].dropna():
        assert verdict.split(" (")[0] in html
    assert all(f"<li>{line.split('(')[0]}" in html.replace("&#x27;", "'") for line in result.conclusions[:1])
    assert "color:#" in html  # the verdicts are coloured
    figure = result.plot()  # accuracy against parameters
    assert figure.axes[0].get_xscale() == "log" and len(figure.axes[0].containers) == 3  # one error bar per level
    with pytest.raises(convlens.UsageError, match="unknown plot"):
        result.plot("nonsense")


def test_a_run_in_the_output_directory_is_replaced_only_when_forced(tmp_path):
    first = convlens.train("mlp", "digits", epochs=1, out=tmp_path / "run", quiet=True)
    weights = (tmp_path / "run" / "model.safetensors").read_bytes()
    with pytest.raises(convlens.UsageError, match="already holds a run; nothing was written"):
        convlens.train("mlp", "digits", epochs=1, seed=1, out=tmp_path / "run", quiet=True)
    assert (tmp_path / "run" / "model.safetensors").read_bytes() == weights  # the first run, untouched
    second = convlens.train("mlp", "digits", epochs=1, seed=1, out=tmp_path / "run", quiet=True, force=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["seed"] == 1 != first.config["seed"]
    assert second.metrics["test_correct"] == json.loads((tmp_path / "run" / "metrics.json").read_text())["test_correct"]


def test_train_through_the_api_equals_the_cli_and_reads_back(tmp_path, capsys):
    assert main(["train", "-m", "cnn-16-32", "--dataset", "digits", "--epochs", "2", "--seed", "3", "--out",
                 str(tmp_path / "cli"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    run = convlens.train("cnn-16-32", "digits", epochs=2, seed=3, out=tmp_path / "api", quiet=True)
    cli = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert f"img/s, {cli['precision']}) -> " in printed  # the arithmetic the run used, as recorded
    assert run.metrics["test_correct"] == cli["test_correct"] and run.metrics["test_loss"] == cli["test_loss"]
    assert list(run.history.index) == [1, 2]
    assert run.history["val_accuracy"].tolist() == [h["val_accuracy"] for h in cli["history"]]
    ds = convlens.load_dataset("digits")
    stored = np.load(tmp_path / "api" / "predictions.npz")
    predicted = run.predict(ds.test_images)  # the model in memory, through the API's own preprocessing
    assert (predicted == stored["predicted"]).all() and (stored["label"] == ds.test_labels).all()
    again = convlens.load_run(tmp_path / "api")  # the saved weights
    assert (again.predict(ds.test_images) == predicted).all()
    assert again.evaluate()["test_correct"] == run.metrics["test_correct"]
    assert np.allclose(again.predict_proba(ds.test_images[:7]).sum(axis=1), 1)
    import torch
    by_hand = torch.from_numpy(ds.test_images[:300].astype(np.float32) / 255)[:, None]  # NCHW, one forward
    with torch.inference_mode():
        expected = torch.softmax(convlens.load_run(tmp_path / "api").model.eval()(by_hand), dim=1).numpy()
    assert np.allclose(again.predict_proba(ds.test_images[:300]), expected, atol=1e-5)  # batched, NHWC
    assert (again.predict(ds.test_images[:20, :, :, None]) == predicted[:20]).all()  # (N, H, W, 1) as Keras holds it
    layout = again.model.features.block2.conv.weight.stride()
    assert again.predict_proba(ds.test_images[:0]).shape == (0, 10)
    assert again.model.features.block2.conv.weight.stride() == layout  # the user's model is not converted in place
    for bad, message in ((ds.test_images[0], r"expected uint8 images .* got uint8 of shape \(8, 8\)"),
                         (by_hand[:, 0].numpy(), r"got float32 of shape \(300, 8, 8\)"),
                         (np.zeros((2, 8, 8, 3), np.uint8), r"= \(1, 8, 8\); got \(3, 8, 8\)"),
                         (ds.test_images[:2].astype(np.int64), "integer images must be uint8"),
                         (np.full((2, 1, 8, 8), np.nan, np.float32), "NaN or infinity"),
                         (ds.test_images[:2, None].astype(np.float32),  # 0-255 as floats: read as [0, 1] before
                          r"float images must be in \[0, 1\], as the model was trained; got 0\.\.255 \(divide"),
                         (np.full((2, 1, 8, 8), "a"), "expected uint8 images"),
                         ([np.zeros((8, 8)), np.zeros((7, 8))], "one array of equal-sized images")):
        with pytest.raises(convlens.UsageError, match=message):
            again.predict_proba(bad)
    assert (again.export(tmp_path / "model") / "config.json").is_file()
    unsaved = convlens.train("mlp", "digits", epochs=1, quiet=True)
    accuracy = unsaved.metrics["test_accuracy"]
    assert repr(unsaved) == f"Run(mlp-128-64, seed 0: test accuracy {accuracy:.2%} after 1 epoch)"
    with pytest.raises(convlens.UsageError, match="was not saved"):
        unsaved.export(tmp_path / "nope")
    assert not capsys.readouterr().out  # quiet=True prints nothing


def test_summary_is_the_keras_table_as_a_frame():
    import torch
    s = convlens.summary("cnn", kernel_size=5)
    frame = s.to_frame()
    model = convlens.create_model("cnn", kernel_size=5)
    assert frame["params"].sum() == s.params["total"] == sum(p.numel() for p in model.parameters())
    # by hand: 5x5 convs 1->32->64->128, dense 1152->128, 128->10
    assert s.params["total"] == (25 * 32 + 32) + (25 * 32 * 64 + 64) + (25 * 64 * 128 + 128) + \
        (1152 * 128 + 128) + (128 * 10 + 10)
    assert frame.loc[0, "receptive_field"] == 5 and "Total params: " in str(s) and "<table>" in s._repr_html_()
    assert convlens.summary(model).to_frame()["params"].tolist() == frame["params"].tolist()  # a built network
    assert isinstance(torch.zeros(1), torch.Tensor)


@pytest.mark.parametrize("call, message", [
    (lambda: convlens.summary("nope"), "unknown model 'nope'; valid models: cnn, "),  # was pydantic's 4 lines
    (lambda: convlens.summary("cnn", dataset="nope"), "dataset: unknown dataset 'nope'"),
    (lambda: convlens.train("cnn", "digits", epochs=0), "epochs: Input should be greater than or equal to 1"),
    (lambda: convlens.load_dataset("nope"), "unknown dataset 'nope'"),
    # were AttributeError / TypeError tracebacks, or a misleading line
    (lambda: convlens.load_dataset(None), "a dataset is named by text, e.g. 'fashion-mnist' or 'folder:PATH'"),
    (lambda: convlens.load_dataset("digits").subset(1.5), "train subset size must be a whole number of images"),
    (lambda: convlens.load_dataset("digits").subset(None, "5"), "test subset size must be a whole number of images"),
    (lambda: convlens.load_run(None), "load_run takes a run's directory (a path), got None"),
    (lambda: convlens.train("cnn", "digits", set="kernel_size=5"),  # was "unknown override '5' for cnn"
     "set takes a dict of model settings, e.g. set={'kernel_size': 5}; got 'kernel_size=5'"),
    (lambda: convlens.train("cnn", "digits", kernel_size=5),  # was "kernel_size: Extra inputs are not permitted"
     "kernel_size is a model setting, not a training option: set={'kernel_size': 5}"),
    (lambda: convlens.train("cnn", dataset="digits"), "convlens.train takes the dataset as data=..."),
    (lambda: convlens.train("cnn", "digits", hflip=0.5, augment="flip:0.5"),
     "hflip=0.5 and augment 'flip:0.5' both mirror images left-right; give one of them"),
    (lambda: convlens.create_model("cnn", filters=[]), "filters needs at least one value (one per block), e.g."),
    (lambda: convlens.create_model("cnn", kernel_size=True), "kernel_size: expected a number, got True"),
])
def test_a_wrong_argument_from_python_is_one_line_and_a_value_error(call, message):
    # Python's convention (and scikit-learn's) for a wrong argument value; the CLI prints the same line, exit 2
    with pytest.raises(ValueError) as raised:
        call()
    assert isinstance(raised.value, convlens.UsageError) and raised.value.exit_code == 2
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_every_public_name_is_documented_with_an_example():
    import inspect
    for name in convlens.__all__:
        if name.startswith("__") or name in ("ConvlensError", "UsageError"):
            continue
        obj = getattr(convlens, name)
        doc = inspect.getdoc(obj) or ""
        assert doc and doc.splitlines()[0].endswith((".", ":", ")")), name
        assert "Example" in doc, name
    assert set(dir(convlens)) >= set(convlens.__all__)
    with pytest.raises(AttributeError):
        convlens.not_a_name  # noqa: B018


def test_importing_convlens_stays_light():
    import subprocess
    import sys
    code = ("import sys, convlens; heavy = [m for m in ('torch', 'pandas', 'matplotlib', 'sklearn', 'mlflow', 'ray') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_a_study_describes_itself():
    study = convlens.Study("quick", dataset="digits", seeds=2)
    assert repr(study) == "Study(digits: 2 seeds, experiments kernel-size, cnn-vs-mlp, locality)"


def test_help_reads_well():
    text = convlens.Experiment.__doc__ + convlens.Experiment.run.__doc__
    assert re.search(r"Experiment\.builtin\(\"kernel-size\"\)\.run\(seeds=3\)\.table\(\)", text)


def test_a_dataset_explores_itself_and_gives_the_models_tensors():
    ds = convlens.load_dataset("digits")
    eda = ds.explore()
    assert eda["class_counts"]["train"] == np.bincount(ds.train_labels, minlength=10).tolist()
    x, y = ds.tensors("test")
    assert tuple(x.shape) == (len(ds.test_labels), 1, 8, 8) and (y.numpy() == ds.test_labels).all()
    assert np.allclose(x[:, 0].numpy() * 255, ds.test_images)  # uint8 / 255, nothing else
    assert "digits" in ds._repr_html_()
    assert repr(ds) == (f"ImageDataset(digits: {len(ds.train_labels):,} train + {len(ds.test_labels):,} test images, "
                        "1x8x8, 10 classes, from scikit-learn)")  # one line, not every array
    with pytest.raises(convlens.UsageError, match="split is"):
        ds.tensors("validation")


def test_more_seeds_in_place_train_only_the_new_ones(both, tmp_path, capsys):
    import shutil
    root, _ = both
    directory = shutil.copytree(root / "api", tmp_path / "exp")
    before = {p: p.stat().st_mtime_ns for p in directory.glob("runs/*/*/metrics.json")}
    capsys.readouterr()
    loaded = convlens.load_experiment(directory)
    assert (loaded.table()["n"] == 3).all()
    result = loaded.run_more(seeds=4, quiet=True)
    assert capsys.readouterr() == ("", "")  # quiet=True: nothing printed while 3 runs train
    assert result is loaded  # the object the user holds has the new statistics (README: "in place")
    runs = result.runs()
    assert len(runs) == 12 and sorted(set(runs["seed"])) == [0, 1, 2, 3] and set(runs["status"]) == {"done"}
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # the finished runs were kept
    assert (result.table()["n"] == 4).all()


def test_a_grid_names_each_comparison_and_lists_them_all(tmp_path):
    """A 2 x 2 grid: table() says within which level each effect holds; comparisons() has every one of the
    family, the interaction included."""
    spec = {"name": "grid", "model": "cnn-16-32", "recipe": "fast", "recipe_set": {"epochs": 1}, "seeds": 2,
            "dataset": "digits", "factor": {"name": "kernel_size", "levels": [3, 5]},
            "second_factor": {"name": "recipe.lr", "levels": [0.004, 0.001]}}
    result = convlens.Experiment(spec).run(out=tmp_path / "grid", quiet=True)
    comparisons = result.comparisons()
    assert len(comparisons) == len(result.summary["comparisons"]) and "interaction" in set(comparisons["kind"])
    table = result.table()
    for level, row in table[table["comparison"].notna()].iterrows():
        assert row["comparison"] in comparisons.index and " at " in row["comparison"]
    assert f"one Holm family of {len(comparisons)}" in result._repr_html_()


def test_fewer_seeds_than_before_says_which_finished_runs_it_leaves_out(both, capsys):
    # the runs of seed 2 stay on disk; an analysis of 2 seeds used to leave them out without a word
    root, _ = both
    capsys.readouterr()
    assert main(["experiment", "run", str(root / "s.yaml"), "--out", str(root / "cli"), "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    assert (f"note: finished runs of seed 2 are kept in {root / 'cli'} but left out of this analysis of 2 seeds; "
            "--seeds 3 includes them") in " ".join(out.split())
    assert all((root / "cli" / "runs" / level / "seed2" / "metrics.json").is_file()
               for level in ("kernel_size=3", "kernel_size=5", "kernel_size=7"))
    capsys.readouterr()
    assert main(["experiment", "run", str(root / "s.yaml"), "--out", str(root / "cli")]) == 0  # 3 again: no note
    assert "left out of this analysis" not in capsys.readouterr().out


@pytest.mark.parametrize("dataset", ["digits", "folder"])
def test_a_study_reloads_its_data_where_the_recorded_directory_is_another_existing_one(tmp_path, dataset):
    """results.json records where the study found its data. For digits that is scikit-learn's directory, for a
    folder the folder: on another machine (or venv) that path may exist and be something else. Only datasets read
    from a data directory are given it; digits and folders are found by their name."""
    from convlens.api.study import StudyResult
    from tests.data.test_catalog import write_folder
    name = "digits"
    if dataset == "folder":
        write_folder(tmp_path / "imgs", {"a": (30, 30, 30), "b": (200, 200, 200)}, n=3, mode="L")
        name = f"folder:{tmp_path / 'imgs'}"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    results = {"study": {"config": {"dataset": name, "train_subset": None, "test_subset": None},
                         "data": {"directory": str(elsewhere)}}}
    loaded = StudyResult(tmp_path, results=results).dataset()
    expected = convlens.load_dataset(name)  # read the usual way, by name alone
    assert np.array_equal(loaded.test_images, expected.test_images) and len(loaded.test_labels) > 0
