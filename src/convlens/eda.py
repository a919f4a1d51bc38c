"""Dataset exploration: the numbers behind the report's first section, computed from the uint8 arrays.

Everything here is a pure function of the images and labels (no training, no randomness except the seeded
choice of sample images), so each statistic can be checked against a direct numpy computation.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from convlens.data.dataset import PIXEL_SCALE, ImageDataset

if TYPE_CHECKING:
    import torch

# Near duplicates: RMS pixel difference (pixels scaled to [0, 1]) at most this; 0.05 is ~13 grey levels.
NEAR_DUPLICATE_RMS = 0.05
# Average-hash thresholds (x the image's mean block intensity). Pairs sharing any of these hashes are
# candidates; three hashes find 48 of the 49 train/test pairs within NEAR_DUPLICATE_RMS that a brute-force
# search over all 600M pairs finds (measured on Fashion-MNIST), in under a second instead of ~8 s.
HASH_THRESHOLDS = (0.5, 1.0, 1.5)
MAX_EXAMPLES = 8


def explore(ds: ImageDataset, *, samples_per_class: int = 8, seed: int = 0) -> dict:
    """Sizes, balance, pixel statistics, per-class statistics, duplicates; JSON-ready."""
    k = len(ds.class_names)
    # Statistics of pixel / 255 computed on the uint8 images with float64 accumulators and divided at the end: the
    # same numbers (to rounding) as on a float64 copy, without allocating one (376 MB for Fashion-MNIST).
    train = ds.train_images
    counts = {split: np.bincount(labels, minlength=k).tolist()
              for split, labels in (("train", ds.train_labels), ("test", ds.test_labels))}
    brightness = train.reshape(len(train), -1).mean(axis=1, dtype=np.float64) / PIXEL_SCALE  # per image, (N,)
    per_class = []
    for c, name in enumerate(ds.class_names):
        mask = ds.train_labels == c
        images = train[mask]
        per_class.append({
            "class": name, "n_train": counts["train"][c], "n_test": counts["test"][c],
            "mean_brightness": float(images.mean(dtype=np.float64) / PIXEL_SCALE) if len(images) else None,
            "brightness_std": float(brightness[mask].std()) if len(images) else None,
            "pixel_std": float(images.std(dtype=np.float64) / PIXEL_SCALE) if len(images) else None,
            "ink_fraction": float(np.count_nonzero(images) / images.size) if len(images) else None,  # non-zero pixels
        })
    rng = np.random.default_rng(seed)
    samples = {name: sorted(rng.choice(np.flatnonzero(ds.train_labels == c),
                                       size=min(samples_per_class, counts["train"][c]), replace=False).tolist())
               for c, name in enumerate(ds.class_names)}
    return {
        "train": {"n": len(ds.train_labels), "shape": list(ds.train_images.shape[1:])},
        "test": {"n": len(ds.test_labels), "shape": list(ds.test_images.shape[1:])},
        "dtype": str(ds.train_images.dtype),
        "pixel_range": {"train": [int(ds.train_images.min()), int(ds.train_images.max())],
                        "test": [int(ds.test_images.min()), int(ds.test_images.max())]},
        "class_names": list(ds.class_names),
        "class_counts": counts,
        "imbalance_ratio": {s: max(v) / max(min(v), 1) for s, v in counts.items()},  # largest / smallest class
        # What a standardising Normalize would use; convlens feeds pixel / 255 as every seed does.
        "normalisation": {"scale": f"pixel / {PIXEL_SCALE:g}",
                          "train_mean": float(train.mean(dtype=np.float64) / PIXEL_SCALE),
                          "train_std": float(train.std(dtype=np.float64) / PIXEL_SCALE),
                          # per channel (R, G, B) for colour images: what a per-channel Normalize would use
                          **({"channel_means": (train.mean(axis=(0, 1, 2), dtype=np.float64) / PIXEL_SCALE).tolist(),
                              "channel_stds": (train.std(axis=(0, 1, 2), dtype=np.float64) / PIXEL_SCALE).tolist()}
                             if train.ndim == 4 else {})},
        "pixel_histogram": np.bincount(ds.train_images.ravel(), minlength=256).tolist(),  # grey level 0..255
        "zero_pixel_fraction": float(1 - np.count_nonzero(ds.train_images) / ds.train_images.size),
        "per_class": per_class,
        "sample_indices": samples,  # training image indices shown in the sample grid
        "duplicates": find_duplicates(ds.train_images, ds.test_images),
    }


def mean_images(ds: ImageDataset) -> np.ndarray:
    """(classes, H, W[, C]) mean training image per class, in [0, 1]."""
    return np.stack([ds.train_images[ds.train_labels == c].astype(np.float64).mean(0) / PIXEL_SCALE
                     if (ds.train_labels == c).any() else np.zeros(ds.train_images.shape[1:])
                     for c in range(len(ds.class_names))])


def _average_hashes(images: np.ndarray, threshold: float) -> np.ndarray:
    """One 49-bit hash per image: which of its 7x7 block means (4x4 px blocks at 28x28) exceed threshold x their
    mean. Colour images are hashed on their channel mean; sizes that 7 does not divide use adaptive pooling."""
    n, h, w = images.shape[:3]
    if images.ndim == 4:
        images = images.mean(axis=3)
    if h % 7 == 0 and w % 7 == 0:
        blocks = images.reshape(n, 7, h // 7, 7, w // 7).mean(axis=(2, 4)).reshape(n, 49)
    else:
        import torch
        pooled = torch.nn.functional.adaptive_avg_pool2d(torch.as_tensor(images, dtype=torch.float64)[:, None], 7)
        blocks = pooled.reshape(n, 49).numpy()
    bits = blocks > threshold * blocks.mean(axis=1, keepdims=True)
    return (bits.astype(np.uint64) << np.arange(49, dtype=np.uint64)).sum(axis=1)


def _rms_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(len(a), len(b)) RMS pixel differences of flattened [0, 1] images, via one matrix product."""
    squared = a.pow(2).sum(1, keepdim=True) + b.pow(2).sum(1) - 2 * a @ b.T
    return squared.clamp_min_(0).div_(a.shape[1]).sqrt_()


def find_duplicates(train: np.ndarray, test: np.ndarray, *, max_rms: float = NEAR_DUPLICATE_RMS) -> dict:
    """Test images that also occur in the training set: byte-identical, or within ``max_rms`` (hash candidates).

    Returns counts and up to MAX_EXAMPLES examples per kind as (test index, train index, RMS difference).
    """
    train_digest = {}
    for i, image in enumerate(train):
        train_digest.setdefault(hashlib.blake2b(image.tobytes(), digest_size=16).digest(), i)
    exact = []
    for j, image in enumerate(test):
        i = train_digest.get(hashlib.blake2b(image.tobytes(), digest_size=16).digest())
        if i is not None:
            exact.append((j, i, 0.0))
    exact_test = {j for j, _, _ in exact}

    import torch  # here, not at the top: the notebook's figures use this module without torch
    x_train = torch.as_tensor(train.reshape(len(train), -1), dtype=torch.float32) / PIXEL_SCALE
    x_test = torch.as_tensor(test.reshape(len(test), -1), dtype=torch.float32) / PIXEL_SCALE
    nearest: dict[int, tuple[int, float]] = {}  # test index -> (train index, RMS) among hash candidates
    for threshold in HASH_THRESHOLDS:
        buckets = defaultdict(list)
        for i, h in enumerate(_average_hashes(train, threshold).tolist()):
            buckets[h].append(i)
        queries = defaultdict(list)
        for j, h in enumerate(_average_hashes(test, threshold).tolist()):
            if h in buckets:
                queries[h].append(j)
        for h, test_idx in queries.items():
            train_idx = buckets[h]
            d = _rms_distances(x_test[test_idx], x_train[train_idx])
            best, where = d.min(dim=1)
            for j, dist, pos in zip(test_idx, best.tolist(), where.tolist()):
                if dist < nearest.get(j, (None, np.inf))[1]:
                    nearest[j] = (train_idx[pos], dist)
    near = sorted(((j, i, d) for j, (i, d) in nearest.items() if d <= max_rms and j not in exact_test),
                  key=lambda t: t[2])
    as_dicts = lambda pairs: [{"test_index": j, "train_index": i, "rms": round(d, 5)}  # noqa: E731
                              for j, i, d in pairs[:MAX_EXAMPLES]]
    return {"method": f"exact: 128-bit BLAKE2 digest of the pixels; near: RMS difference <= {max_rms} among "
                      f"pairs sharing one of {len(HASH_THRESHOLDS)} 49-bit average hashes",
            "max_rms": max_rms, "exact": len(exact), "near": len(near),
            "exact_examples": as_dicts(exact), "near_examples": as_dicts(near)}
