"""Regression guards for training speed (issue 4), not timed tests.

1. The `fast` recipe is exactly the one bench/README.md measured; changing it means re-running
   bench/time_to_accuracy.py and updating bench/README.md, then this test.
2. convlens' training loop makes no host sync per step: host reads (.item(), bool(), float(), .tolist()) of
   tensors are counted outside the optimizer, and they must not grow with the number of steps. (PyTorch's
   non-fused Adam/AdamW read their CPU step counters inside step(); that is the optimizer's, not the loop's.)
"""

from __future__ import annotations

import torch

from convlens.config import RECIPES, resolve_recipe
from convlens.data.dataset import to_device
from convlens.models.registry import create_model
from convlens.training import train

MEASURED_FAST = {  # bench/README.md, "Time to accuracy"
    "name": "fast", "epochs": 4, "batch_size": 128, "optimizer": "adamw", "lr": 4e-3, "weight_decay": 5e-4,
    "momentum": 0.9, "schedule": "onecycle", "warmup_fraction": 0.25, "label_smoothing": 0.1, "hflip": 0.0, "augment": "none",
    "val_fraction": 0.1, "patience": None, "eval_batch_size": 256, "precision": "auto", "ema": None,
    "fused": True,
}


def test_fast_recipe_is_the_measured_one():
    assert RECIPES["fast"].model_dump() == MEASURED_FAST


def _host_reads_during_training(fashion, n_train: int, monkeypatch) -> int:
    count, in_optimizer = 0, False
    for name in ("item", "__bool__", "__float__", "tolist"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            nonlocal count
            count += not in_optimizer
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counting)
    original_step = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        nonlocal in_optimizer
        in_optimizer = True
        try:
            return original_step(self, *args, **kwargs)
        finally:
            in_optimizer = False
    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    splits = to_device(fashion.subset(n_train, 100), torch.device("cpu"), val_fraction=0.1, seed=0)
    torch.manual_seed(0)
    recipe = resolve_recipe("fast", {"epochs": 1, "batch_size": 16})
    train(create_model("mlp-128-64"), splits, recipe, seed=0, progress=None)
    monkeypatch.undo()
    return count


def test_training_makes_no_host_sync_per_step(fashion, monkeypatch):
    few = _host_reads_during_training(fashion, 320, monkeypatch)  # 18 steps
    many = _host_reads_during_training(fashion, 3_200, monkeypatch)  # 180 steps
    assert many == few, f"host reads grew with steps: {few} for 18 steps, {many} for 180"
    assert few < 30  # a handful per epoch: the NaN check, epoch means, validation
