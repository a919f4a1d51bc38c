"""The locality probe's data: every image's pixels reordered by one fixed permutation.

The same permutation is applied to training and test images, so an MLP (which has no notion of which pixels
are neighbours) can learn exactly as well as before, while a CNN loses what its kernels assume: that nearby
pixels belong together. The permutation depends only on ``PERMUTATION_SEED``, recorded in every run config.
"""

from __future__ import annotations

import numpy as np

PERMUTATION_SEED = 20240917  # fixed: every permuted run (any model, any seed) sees the same pixel order


def pixel_permutation(n_pixels: int = 28 * 28, seed: int = PERMUTATION_SEED) -> np.ndarray:
    """A permutation of ``range(n_pixels)`` (int64), the same on every machine for a given seed."""
    return np.random.default_rng(seed).permutation(n_pixels)


def permute_pixels(images: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    """(N, H, W[, C]) -> same shape: pixel k of each output image is pixel ``permutation[k]`` of the input (a
    pixel's channels move together)."""
    n, h, w = images.shape[:3]
    return images.reshape(n, h * w, -1)[:, permutation].reshape(images.shape)
