"""Datasets: the catalog (Fashion-MNIST, MNIST, KMNIST, CIFAR-10, digits, folders), sources (local, Debian,
download), verification, device-resident splits.

The names are imported on first use (convlens.lazy_exports): checking a dataset's name (a config, an experiment's
table) reads the catalog without importing torch; loading a dataset (dataset.py) imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convlens.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from convlens.data.dataset import (
        DeviceSplits,
        ImageDataset,
        images_to_tensor,
        load_idx_dataset,
        load_named,
        to_device,
    )
    from convlens.data.sources import FASHION_MNIST, DatasetManifest, locate

_HOME_OF = {**dict.fromkeys(("FASHION_MNIST", "DatasetManifest", "locate"), "convlens.data.sources"),
            **dict.fromkeys(("DeviceSplits", "ImageDataset", "images_to_tensor", "load_idx_dataset", "load_named",
                             "to_device"), "convlens.data.dataset")}
__all__ = ["FASHION_MNIST", "DatasetManifest", "DeviceSplits", "ImageDataset", "images_to_tensor",
           "load_idx_dataset", "load_named", "locate", "to_device"]
assert set(__all__) == set(_HOME_OF)
__getattr__, __dir__ = lazy_exports(globals(), _HOME_OF)
