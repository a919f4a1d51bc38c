"""The exported model's example images (examples.npz, for `convlens serve`'s page): from the dataset the caller
has loaded, else from where the run found its data, else from the default places; never downloaded."""

from __future__ import annotations

import numpy as np
import pytest

import convlens.data
from convlens.data.dataset import ImageDataset
from convlens.errors import DataError
from convlens.serving.export import N_EXAMPLES, write_examples


def _dataset(seed: int, name: str = "fashion-mnist") -> ImageDataset:
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(40) % 10).astype(np.uint8)
    return ImageDataset(rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), np.arange(20, dtype=np.uint8) % 10,
                        rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), labels,
                        tuple(f"class {c}" for c in range(10)), None, name)


def _firsts(ds: ImageDataset) -> list[int]:  # the first test image of each class, in index order
    return sorted(int(np.flatnonzero(ds.test_labels == c)[0]) for c in range(10))[:N_EXAMPLES]


def _written(path) -> tuple[np.ndarray, list[int]]:
    with np.load(path, allow_pickle=False) as examples:
        return examples["images"], examples["labels"].tolist()


@pytest.fixture
def reads(monkeypatch):
    """load_named replaced: records where it was asked to look; a directory named 'missing' has no dataset."""
    calls = []

    def fake_load_named(name, data_dir=None, *, download=True):
        calls.append((name, data_dir, download))
        if data_dir is not None and data_dir.name == "missing":
            raise DataError(f"no {name} in {data_dir}")
        return _dataset(1, name)
    monkeypatch.setattr(convlens.data, "load_named", fake_load_named)  # as export.py imports it, at call time
    return calls


def test_the_loaded_dataset_is_used_and_nothing_is_read(tmp_path, reads):
    given = _dataset(0)
    assert write_examples({"data": {"dataset": "fashion-mnist"}}, tmp_path / "e.npz", dataset=given)
    images, labels = _written(tmp_path / "e.npz")
    assert np.array_equal(images, given.test_images[_firsts(given)])
    assert labels == given.test_labels[_firsts(given)].tolist() and reads == []


def test_a_dataset_of_another_name_is_not_used(tmp_path, reads):
    assert write_examples({"data": {"dataset": "mnist"}}, tmp_path / "e.npz", dataset=_dataset(0))
    assert reads == [("mnist", None, False)]  # no recorded directory: the default places, no download
    images, _ = _written(tmp_path / "e.npz")
    assert np.array_equal(images, _dataset(1).test_images[_firsts(_dataset(1))])


def test_without_a_dataset_the_runs_own_directory_comes_first_then_the_default_places(tmp_path, reads):
    found = tmp_path / "mine"
    found.mkdir()
    assert write_examples({"data": {"dataset": "fashion-mnist", "directory": str(found)}}, tmp_path / "a.npz")
    assert reads == [("fashion-mnist", found, False)]
    reads.clear()
    gone = tmp_path / "missing"
    gone.mkdir()
    assert write_examples({"data": {"dataset": "fashion-mnist", "directory": str(gone)}}, tmp_path / "b.npz")
    assert reads == [("fashion-mnist", gone, False), ("fashion-mnist", None, False)]
    reads.clear()
    assert write_examples({"data": {"dataset": "fashion-mnist", "directory": str(tmp_path / "moved")}},
                          tmp_path / "c.npz")  # a directory that no longer exists is not tried
    assert reads == [("fashion-mnist", None, False)]


def test_a_given_directory_is_the_only_place_and_nothing_found_writes_nothing(tmp_path, reads):
    assert not write_examples({"data": {"dataset": "fashion-mnist", "directory": str(tmp_path)}},
                              tmp_path / "e.npz", data_dir=tmp_path / "missing")
    assert reads == [("fashion-mnist", tmp_path / "missing", False)] and not (tmp_path / "e.npz").exists()


def test_the_page_shows_no_examples_for_a_broken_or_oversized_examples_file(tmp_path):
    """`convlens serve` starts whatever examples.npz holds: empty, cut short, or a few KB that decode to more than
    MAX_EXAMPLES_BYTES (the zip's declared sizes are read before anything is decoded)."""
    import io
    import zipfile

    from convlens.serving.app import MAX_EXAMPLES_BYTES, load_examples
    names = [f"class {c}" for c in range(10)]
    images, labels = np.zeros((30, 28, 28), np.uint8), np.arange(30) % 10
    good = io.BytesIO()
    np.savez_compressed(good, images=images, labels=labels)
    n_bomb = MAX_EXAMPLES_BYTES // (28 * 28) + 1  # just over the cap once decoded
    bomb = io.BytesIO()
    np.savez_compressed(bomb, images=np.zeros((n_bomb, 28, 28), np.uint8), labels=np.zeros(n_bomb, np.uint8))
    assert len(bomb.getvalue()) < 100_000  # small on disk
    for name, content in (("good", good.getvalue()), ("empty", b""), ("cut", good.getvalue()[:200]),
                          ("bomb", bomb.getvalue())):
        (tmp_path / name).mkdir()
        (tmp_path / name / "examples.npz").write_bytes(content)
    shown = load_examples(tmp_path / "good", names)
    assert [e["label"] for e in shown] == [names[c] for c in labels[:20]]  # the first 20, as export writes them
    for name in ("empty", "cut", "bomb"):
        assert load_examples(tmp_path / name, names) == [], name
    with zipfile.ZipFile(io.BytesIO(bomb.getvalue())) as archive:
        assert sum(i.file_size for i in archive.infolist()) > MAX_EXAMPLES_BYTES


def test_an_empty_or_cut_predictions_file_is_one_clear_error(tmp_path):
    from convlens.errors import UsageError
    from convlens.run_files import PREDICTIONS_FILE, read_predictions, write_predictions
    write_predictions(tmp_path / PREDICTIONS_FILE, np.array([1, 2, 3]), np.array([1, 2, 0]))
    whole = (tmp_path / PREDICTIONS_FILE).read_bytes()
    for content in (b"", whole[: len(whole) // 2]):
        (tmp_path / PREDICTIONS_FILE).write_bytes(content)
        with pytest.raises(UsageError, match="cannot read the stored predictions"):
            read_predictions(tmp_path)


@pytest.mark.parametrize("name, inverted", [("fashion-mnist", True), ("mnist", True), ("kmnist", True),
                                            ("digits", True), ("cifar10", False), ("folder:/data/cats", False)])
def test_uploaded_photos_are_inverted_only_for_datasets_of_light_shapes_on_black(name, inverted):
    """The input contract a run records (and the server reads): an uploaded photo with a light border is inverted
    only for the MNIST family and the digits, whose images are light shapes on black; not for photos or folders."""
    from convlens.runs import input_contract
    assert input_contract(_dataset(0, name))["invert_light_background"] is inverted
