"""Data that changed after a run was trained on it: a file added to a dataset folder re-draws the stratified split,
so images move between train and test. A run keeps the digest of each split it saw; evaluating it, resuming its
experiment or planning from it on other images is one line (exit 1) instead of a silent score on images it may
have trained on."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import yaml

from convlens.cli import main
from convlens.data import load_named
from tests.data.test_catalog import write_folder


def _split_digest(images: np.ndarray, labels: np.ndarray, classes: list[str]) -> str:
    """The digest written again by hand, from its definition: shape and class names, image bytes, int64 labels."""
    h = hashlib.sha256(repr((images.shape, classes)).encode())
    h.update(images.tobytes())
    h.update(labels.astype(np.int64).tobytes())
    return h.hexdigest()


def test_a_run_records_its_splits_and_a_changed_folder_is_refused(tmp_path, capsys):
    folder = tmp_path / "colours"
    write_folder(folder, {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 40, 230)}, n=14)
    run = tmp_path / "run"
    assert main(["train", "-m", "mlp", "--dataset", f"folder:{folder}", "--epochs", "1", "--out", str(run),
                 "--quiet"]) == 0
    capsys.readouterr()
    ds = load_named(f"folder:{folder}")
    recorded = json.loads((run / "config.json").read_text())["data"]["digests"]
    classes = list(ds.class_names)
    assert recorded == {"train": _split_digest(ds.train_images, ds.train_labels, classes),
                        "test": _split_digest(ds.test_images, ds.test_labels, classes)}
    assert main(["evaluate", str(run), "--json"]) == 0
    before = json.loads(capsys.readouterr().out)["test_accuracy"]
    shutil.copytree(folder, tmp_path / "moved")  # the folder moved: --data-dir says where it is now
    assert main(["evaluate", str(run), "--data-dir", str(tmp_path / "moved"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == before
    shutil.copy(folder / "red" / "1.png", tmp_path / "moved" / "red" / "extra.png")  # the copy then changed
    assert main(["evaluate", str(run), "--data-dir", str(tmp_path / "moved")]) == 1
    assert f"the test images of folder:{tmp_path / 'moved'} differ" in capsys.readouterr().err

    shutil.copy(folder / "red" / "1.png", folder / "red" / "extra.png")  # one more image: the split is drawn anew
    changed = load_named(f"folder:{folder}")
    assert changed.test_images.tobytes() != ds.test_images.tobytes()  # what the check is for
    assert main(["evaluate", str(run)]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (f"convlens: error: the test images of folder:{folder} differ from those this run was tested on "
                    "(a file added, removed or changed in the folder moves images between the splits; another Pillow "
                    "may decode or resize them differently; runs of earlier convlens versions read photos with an EXIF "
                    "orientation sideways, or a folder's images class by class, where convlens now turns them upright "
                    "and shuffles each split once); give the data it was trained on, "
                    "or train again")
    (folder / "red" / "extra.png").unlink()  # the folder as it was: the same score again
    assert main(["evaluate", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["test_accuracy"] == before


def test_an_experiment_does_not_keep_runs_trained_on_other_images(tmp_path, capsys):
    folder = tmp_path / "colours"
    write_folder(folder, {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (20, 40, 230)}, n=14)
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(dict(name="changed", model="mlp-128-64", dataset=f"folder:{folder}",
                                        recipe="fast", recipe_set={"epochs": 1},
                                        factor=dict(name="recipe.lr", levels=[1e-3, 2e-3]), seeds=2)))
    out = tmp_path / "exp"
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    metrics = {p: p.read_bytes() for p in out.glob("runs/*/*/metrics.json")}
    (folder / "green" / "3.png").unlink()
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"convlens: error: the train and test images of folder:{folder} differ from those the "
                           f"runs in {out} were trained and tested on")
    assert line.endswith("give the data they were trained on, or run again with --force (force=True)")
    assert {p: p.read_bytes() for p in out.glob("runs/*/*/metrics.json")} == metrics  # nothing retrained or lost
    assert main(["experiment", "run", str(spec), "--out", str(out), "--quiet", "--force"]) == 0
    assert len(list(out.glob("runs/*/*/metrics.json"))) == 4


def test_the_check_names_what_changed_without_blaming_a_folder_and_refuses_data_that_shrank():
    from convlens.data import load_named
    from convlens.errors import DataError
    from convlens.run_files import check_same_data
    digits = load_named("digits")
    first_100 = digits.subset(None, 100)
    config = {"data": {"dataset": "digits", "test_subset": None,
                       "digests": {"train": first_100.digest("train"), "test": first_100.digest("test")}}}
    check_same_data(config, first_100)  # the data it recorded
    with pytest.raises(DataError) as info:  # a run given the first 100 test images, checked on all of them
        check_same_data(config, digits)
    assert str(info.value) == ("the test images of digits differ from those this run was tested on; give the data it "
                               "was trained on, or train again")
    config["data"]["train_subset"] = 5_000  # more than the digits hold: not a usage error about subsets
    with pytest.raises(DataError, match="the train and test images of digits differ"):
        check_same_data(config, digits, ("train", "test"))
    assert digits.subset() is digits  # nothing cut: the same object, its digests computed once


def test_an_exported_model_is_not_scored_on_a_folder_of_other_classes(tmp_path):
    """An exported model keeps no digests, so evaluate --data-dir with another folder scored it against that
    folder's class order. The classes and the image shape are checked against the model's."""
    from convlens.errors import DataError
    from convlens.runs import check_fits
    write_folder(tmp_path / "colours", {"red": (220, 30, 30), "green": (30, 200, 40)}, n=4, size=8)
    ds = load_named(f"folder:{tmp_path / 'colours'}")
    check_fits({"class_names": ["green", "red"], "input": {"shape": [3, 8, 8]}}, ds)  # the same: no error
    with pytest.raises(DataError, match="has the classes green, red; the model was trained on cat, dog"):
        check_fits({"class_names": ["cat", "dog"], "input": {"shape": [3, 8, 8]}}, ds)
    with pytest.raises(DataError, match="has images of 3x8x8; the model takes 1x28x28"):
        check_fits({"class_names": ["green", "red"], "input": {"shape": [1, 28, 28]}}, ds)
