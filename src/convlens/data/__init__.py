"""Datasets: the catalog (Fashion-MNIST, MNIST, KMNIST, CIFAR-10, digits, folders), sources (local, Debian,
download), verification, device-resident splits.

The names are imported on first use (PEP 562): checking a dataset's name (a config, an experiment's table) reads
the catalog without importing torch, which only the device-resident splits need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convlens.data.dataset import (
        DeviceSplits,
        ImageDataset,
        images_to_tensor,
        load_dataset,
        load_named,
        to_device,
    )
    from convlens.data.sources import FASHION_MNIST, DatasetManifest, locate

__all__ = ["FASHION_MNIST", "DatasetManifest", "DeviceSplits", "ImageDataset", "images_to_tensor",
           "load_dataset", "load_named", "locate", "to_device"]

_HOME = {**dict.fromkeys(("FASHION_MNIST", "DatasetManifest", "locate"), "sources"),
         **dict.fromkeys(("DeviceSplits", "ImageDataset", "images_to_tensor", "load_dataset", "load_named",
                          "to_device"), "dataset")}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'convlens.data' has no attribute '{name}'")
    return getattr(importlib.import_module(f"convlens.data.{_HOME[name]}"), name)
