"""The dataset in memory: verified uint8 arrays on the host, float tensors resident on the training device."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from convlens.data.sources import FASHION_MNIST, DatasetManifest, LocatedFiles, load_arrays, locate
from convlens.errors import UsageError, user_path

if TYPE_CHECKING:  # imported where used: reading a dataset and drawing its images need no torch
    import torch

PIXEL_SCALE = 255.0  # inputs are pixel / 255, in [0, 1], as in every reference write-up (and what write-up 000's endpoint sends)


@dataclass(frozen=True)
class ImageDataset:
    """A verified dataset as uint8 arrays: images (N, H, W) with one channel or (N, H, W, 3), labels (N,)."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    source: LocatedFiles
    name: str = "fashion-mnist"
    # (train, test): how many of the first images of the dataset as loaded by name ``subset`` kept (None: all). A run
    # records them, so that evaluating it loads the same images again, however the subset was taken.
    subsets: tuple[int | None, int | None] = (None, None)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width), as the models take it."""
        shape = self.train_images.shape
        return (1 if len(shape) == 3 else shape[3], shape[1], shape[2])

    def __repr__(self) -> str:  # the dataclass's would print every array
        c, h, w = self.input_shape
        return (f"ImageDataset({self.name}: {len(self.train_labels):,} train + {len(self.test_labels):,} test images, "
                f"{c}x{h}x{w}, {len(self.class_names)} classes, from {self.source.origin})")

    def digest(self, split: str) -> str:
        """sha256 of the "train" or "test" split as loaded: its images, labels and the class names. A run records
        both, so that data that changed since (a file added to a dataset folder moves images between the splits) is
        named, not scored as if it were the data the run was trained and tested on."""
        cache = self.__dict__.setdefault("_digests", {})  # a frozen dataclass: the cache lives beside the fields
        if split not in cache:
            images, labels = (self.train_images, self.train_labels) if split == "train" else (self.test_images,
                                                                                              self.test_labels)
            h = hashlib.sha256(repr((images.shape, list(self.class_names))).encode())
            h.update(np.ascontiguousarray(images).data)
            h.update(np.ascontiguousarray(labels, dtype=np.int64).data)
            cache[split] = h.hexdigest()
        return cache[split]

    def _replace(self, **fields: Any) -> ImageDataset:
        return dataclasses.replace(self, **fields)

    def subset(self, n_train: int | None = None, n_test: int | None = None) -> ImageDataset:
        """The first ``n_train`` / ``n_test`` images (deterministic; for quick runs and tests)."""
        for n, total, what in ((n_train, len(self.train_labels), "train"), (n_test, len(self.test_labels), "test")):
            if n is not None and (not isinstance(n, (int, np.integer)) or isinstance(n, bool)):
                raise UsageError(f"{what} subset size must be a whole number of images, got {n!r}")
            if n is not None and not 0 < n <= total:
                raise UsageError(f"{what} subset size must be between 1 and {total}, got {n}")
        if n_train is None and n_test is None:  # nothing to cut: the same object, its split digests already taken
            return self
        # the first n of the first m images are the first n (n <= m, checked above)
        subsets = (n_train if n_train is not None else self.subsets[0],
                   n_test if n_test is not None else self.subsets[1])
        return self._replace(train_images=self.train_images[:n_train], train_labels=self.train_labels[:n_train],
                             test_images=self.test_images[:n_test], test_labels=self.test_labels[:n_test],
                             subsets=subsets)

    def with_permuted_pixels(self) -> ImageDataset:
        """Train and test images with their pixels reordered by the one fixed permutation (locality probe)."""
        from convlens.data.permutation import permute_pixels, pixel_permutation
        perm = pixel_permutation(self.train_images.shape[1] * self.train_images.shape[2])
        return self._replace(train_images=permute_pixels(self.train_images, perm),
                             test_images=permute_pixels(self.test_images, perm))

    def describe(self) -> dict:
        """Sizes, shapes, pixel range and class balance (what ``convlens data info`` prints)."""
        return {
            "dataset": self.name,
            "source": {"origin": self.source.origin, "directory": str(self.source.directory),
                       "files": {role: str(p) for role, p in self.source.paths.items()}},
            "train": {"n": int(len(self.train_labels)), "shape": list(self.train_images.shape[1:])},
            "test": {"n": int(len(self.test_labels)), "shape": list(self.test_images.shape[1:])},
            "dtype": str(self.train_images.dtype),
            "pixel_range": [int(self.train_images.min()), int(self.train_images.max())],
            "class_names": list(self.class_names),
            "train_counts": np.bincount(self.train_labels, minlength=len(self.class_names)).tolist(),
            "test_counts": np.bincount(self.test_labels, minlength=len(self.class_names)).tolist(),
        }


def data_checksums(ds: ImageDataset) -> dict[str, str]:
    """The checksums each of the dataset's files was verified against (file -> md5), for the run's record."""
    from convlens.data.catalog import BUILTIN_DATASETS, CIFAR10_MD5
    info = BUILTIN_DATASETS.get(ds.name)
    if info is not None and info.manifest is not None:
        return {f"{spec.name}{'.gz' if spec.md5 is None else ''}": spec.md5 or spec.gz_md5
                for spec in info.manifest.files.values() if (spec.md5 or spec.gz_md5)}
    if ds.name == "cifar10":
        return {"cifar-10-binary.tar.gz": CIFAR10_MD5} if ds.source.origin == "download" else {}
    return {}


def load_idx_dataset(data_dir: str | os.PathLike | None = None, manifest: DatasetManifest = FASHION_MNIST,
                 *, download: bool = True) -> ImageDataset:
    """Locate (or download), verify and load an IDX dataset (Fashion-MNIST by default)."""
    located = locate(data_dir, manifest, download=download)
    arrays = load_arrays(located, manifest)
    return ImageDataset(arrays["train_images"], arrays["train_labels"], arrays["test_images"],
                        arrays["test_labels"], manifest.class_names, located, manifest.name)


def load_named(name: str = "fashion-mnist", data_dir: str | os.PathLike | None = None, *,
               download: bool = True) -> ImageDataset:
    """The dataset called ``name`` (see convlens.data.catalog), found, verified and loaded."""
    from convlens.data import catalog
    name = catalog.check_dataset_name(name)  # a folder: its absolute path
    info = catalog.dataset_info(name)
    if info.manifest is not None:
        return load_idx_dataset(data_dir, info.manifest, download=download)
    if data_dir is not None and not catalog.takes_data_dir(name):  # ignored, yet recorded as where the data came
        # from; where it is (SageMaker's channel holding a folder dataset, digits' own directory) is accepted
        here = (Path(name[len(catalog.FOLDER_PREFIX):]) if name.startswith(catalog.FOLDER_PREFIX)
                else catalog.digits_directory())
        if user_path(data_dir, "data_dir (--data-dir)").resolve() != here.resolve():
            raise UsageError(f"data_dir (--data-dir) {data_dir} does not apply to {name}: "
                             + ("scikit-learn's digits come with scikit-learn" if name == "digits" else
                                "a folder dataset is read from its own path") + "; leave it out")
    if name == "cifar10":
        arrays, located = catalog.load_cifar10(data_dir, download)
    elif name == "digits":
        arrays, located = catalog.load_digits_arrays()
    else:
        arrays, located = catalog.load_folder(Path(name[len(catalog.FOLDER_PREFIX):]), info)
    return ImageDataset(arrays["train_images"], arrays["train_labels"], arrays["test_images"],
                        arrays["test_labels"], info.class_names, located, name)


def images_to_tensor(images: np.ndarray | torch.Tensor, device: torch.device | str = "cpu",
                     channels_last: bool = False) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) -> float32 (N, C, H, W) in [0, 1] on ``device``; converted once, there."""
    import torch
    t = torch.as_tensor(images).to(device)
    t = t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    x = t.float().div_(PIXEL_SCALE)  # (N, C, H, W)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@dataclass(frozen=True)
class DeviceSplits:
    """Train / validation / test tensors resident on one device. x: (N, C, H, W) float in [0, 1]; y: (N,) int64."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def device(self) -> torch.device:
        return self.x_train.device


def validation_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_idx, val_idx): a random split that depends only on ``n``, ``val_fraction`` and ``seed``."""
    if not 0.0 <= val_fraction < 1.0:
        raise UsageError(f"validation fraction must be in [0, 1), got {val_fraction}")
    import torch
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = validation_size(n, val_fraction)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def validation_size(n: int, val_fraction: float) -> int:
    """How many of ``n`` training images ``validation_indices`` holds out for validation."""
    return int(round(n * val_fraction))


def to_device(ds: ImageDataset, device: torch.device, *, val_fraction: float, seed: int,
              channels_last: bool = False) -> DeviceSplits:
    """Move the whole dataset onto ``device`` once, then split train/validation there."""
    import torch
    x_all = images_to_tensor(ds.train_images, device, channels_last)
    y_all = torch.as_tensor(ds.train_labels.astype(np.int64), device=device)
    train_idx, val_idx = validation_indices(len(y_all), val_fraction, seed)
    train_idx, val_idx = train_idx.to(device), val_idx.to(device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return DeviceSplits(
        x_train=x_all[train_idx].contiguous(memory_format=fmt), y_train=y_all[train_idx],
        x_val=x_all[val_idx].contiguous(memory_format=fmt), y_val=y_all[val_idx],
        x_test=images_to_tensor(ds.test_images, device, channels_last),
        y_test=torch.as_tensor(ds.test_labels.astype(np.int64), device=device),
    )
