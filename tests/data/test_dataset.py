"""The real dataset in memory: verified sizes and balance, deterministic splits, resident float tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convlens.data.dataset import images_to_tensor, to_device, validation_indices
from convlens.errors import UsageError


def test_real_fashion_mnist_is_verified_and_balanced(fashion):
    info = fashion.describe()
    assert (info["train"]["n"], info["test"]["n"]) == (60_000, 10_000)
    assert info["train"]["shape"] == [28, 28] and info["dtype"] == "uint8"
    assert info["pixel_range"] == [0, 255]
    assert info["train_counts"] == [6_000] * 10 and info["test_counts"] == [1_000] * 10
    assert info["class_names"][0] == "T-shirt/top" and info["class_names"][9] == "Ankle boot"


def test_validation_split_is_deterministic_disjoint_and_complete():
    train_a, val_a = validation_indices(60_000, 0.1, seed=7)
    train_b, val_b = validation_indices(60_000, 0.1, seed=7)
    _, val_c = validation_indices(60_000, 0.1, seed=8)
    assert torch.equal(val_a, val_b) and torch.equal(train_a, train_b)
    assert not torch.equal(val_a, val_c)
    assert len(val_a) == 6_000 and len(train_a) == 54_000
    assert torch.equal(torch.cat([train_a, val_a]).sort().values, torch.arange(60_000))
    with pytest.raises(UsageError, match="validation fraction"):
        validation_indices(100, 1.0, seed=0)


def test_device_splits_hold_scaled_floats_matching_the_uint8_images(fashion):
    small = fashion.subset(1_000, 200)
    splits = to_device(small, torch.device("cpu"), val_fraction=0.2, seed=3, channels_last=True)
    assert splits.x_train.shape == (800, 1, 28, 28) and splits.x_val.shape == (200, 1, 28, 28)
    assert splits.x_train.is_contiguous(memory_format=torch.channels_last)
    assert splits.x_train.dtype == torch.float32 and 0.0 <= splits.x_train.min() and splits.x_train.max() <= 1.0
    train_idx, _ = validation_indices(1_000, 0.2, seed=3)
    expected = small.train_images[train_idx.numpy()].astype(np.float32) / 255.0
    np.testing.assert_allclose(splits.x_train[:, 0].numpy(), expected, rtol=0, atol=1e-7)
    assert splits.y_train.dtype == torch.int64
    assert torch.equal(splits.y_train, torch.as_tensor(small.train_labels[train_idx.numpy()], dtype=torch.int64))


def test_images_to_tensor_scales_to_unit_range():
    x = images_to_tensor(np.array([[[0, 255], [51, 102]]], dtype=np.uint8))
    assert x.shape == (1, 1, 2, 2)
    assert x.flatten().tolist() == pytest.approx([0.0, 1.0, 0.2, 0.4])


def test_subset_rejects_impossible_sizes(fashion):
    with pytest.raises(UsageError, match="between 1 and 60000"):
        fashion.subset(0, None)
