"""EDA statistics against direct numpy computations; the duplicate finder on planted duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from convlens.data.dataset import ImageDataset
from convlens.eda import NEAR_DUPLICATE_RMS, explore, find_duplicates, mean_images


@pytest.fixture(scope="module")
def small(fashion) -> ImageDataset:
    return fashion.subset(2_000, 500)


def test_each_statistic_equals_a_direct_numpy_computation(small):
    eda = explore(small)
    x = small.train_images.astype(np.float64) / 255
    assert eda["train"] == {"n": 2_000, "shape": [28, 28]} and eda["test"]["n"] == 500
    assert eda["dtype"] == "uint8"
    assert eda["pixel_range"]["train"] == [small.train_images.min(), small.train_images.max()]
    for split, labels in (("train", small.train_labels), ("test", small.test_labels)):
        assert eda["class_counts"][split] == [int((labels == c).sum()) for c in range(10)]
    counts = eda["class_counts"]["train"]
    assert eda["imbalance_ratio"]["train"] == pytest.approx(max(counts) / min(counts))
    assert eda["normalisation"]["train_mean"] == pytest.approx(x.mean(), abs=1e-12)
    assert eda["normalisation"]["train_std"] == pytest.approx(x.std(), abs=1e-12)
    hist = eda["pixel_histogram"]
    assert len(hist) == 256 and sum(hist) == small.train_images.size
    assert hist[0] == (small.train_images == 0).sum() and hist[255] == (small.train_images == 255).sum()
    assert eda["zero_pixel_fraction"] == pytest.approx((small.train_images == 0).mean())
    for c, stats in enumerate(eda["per_class"]):
        images = x[small.train_labels == c]
        assert stats["class"] == small.class_names[c]
        assert stats["mean_brightness"] == pytest.approx(images.mean())
        assert stats["brightness_std"] == pytest.approx(images.mean(axis=(1, 2)).std())
        assert stats["pixel_std"] == pytest.approx(images.std())
        assert stats["ink_fraction"] == pytest.approx((images > 0).mean())
        samples = eda["sample_indices"][small.class_names[c]]
        assert len(samples) == 8 and all(small.train_labels[i] == c for i in samples)
    means = mean_images(small)
    assert means.shape == (10, 28, 28)
    np.testing.assert_allclose(means[3], x[small.train_labels == 3].mean(0))


def test_full_dataset_facts(fashion):
    eda = explore(fashion)
    assert eda["class_counts"] == {"train": [6_000] * 10, "test": [1_000] * 10}
    assert eda["normalisation"]["train_mean"] == pytest.approx(0.2860, abs=1e-4)  # the widely quoted figures
    assert eda["normalisation"]["train_std"] == pytest.approx(0.3530, abs=1e-4)


def test_duplicate_finder_finds_planted_duplicates_and_nothing_else(fashion):
    rng = np.random.default_rng(0)
    train = fashion.train_images[:3_000].copy()
    test = fashion.test_images[:400].copy()
    test[0:5] = train[100:105]  # byte-identical copies
    noisy = train[200:205].astype(np.int16) + rng.integers(-4, 5, size=(5, 28, 28))  # near copies: +-4 grey levels
    test[5:10] = np.clip(noisy, 0, 255).astype(np.uint8)
    test[10] = np.clip(train[300].astype(np.int16) + 60, 0, 255)  # same garment, much brighter: not a near copy
    found = find_duplicates(train, test)
    assert found["exact"] == 5
    assert sorted((e["test_index"], e["train_index"]) for e in found["exact_examples"]) == [(j, 100 + j) for j in range(5)]
    near = {(e["test_index"], e["train_index"]) for e in found["near_examples"]}
    assert {(5 + k, 200 + k) for k in range(5)} <= near
    assert found["near"] == 5, found["near_examples"]  # the real images are distinct; the brightened one is far
    assert all(0 < e["rms"] <= NEAR_DUPLICATE_RMS for e in found["near_examples"])
    # Oracle: the planted pairs' RMS, computed directly.
    for e in found["near_examples"]:
        d = (test[e["test_index"]].astype(float) - train[e["train_index"]].astype(float)) / 255
        assert e["rms"] == pytest.approx(np.sqrt((d ** 2).mean()), abs=1e-4)
