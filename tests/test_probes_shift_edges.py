"""Shifts as large as the image or larger (``shift_max`` may reach 14 px; the digits are 8 x 8): every pixel
leaves the image, so the shifted image is all background, in every direction."""

from __future__ import annotations

import numpy as np
import torch

from convlens.probes.shift import DIRECTIONS, shift_images


def _numpy_shift(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """A translation by (dy, dx) written pixel by pixel: out[r + dy, c + dx] = img[r, c] where that is inside."""
    out = np.zeros_like(img)
    h, w = img.shape[-2:]
    for r in range(h):
        for c in range(w):
            if 0 <= r + dy < h and 0 <= c + dx < w:
                out[..., r + dy, c + dx] = img[..., r, c]
    return out


def test_shifts_up_to_twice_the_image_size_match_a_pixel_by_pixel_translation():
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))  # RGB, the digits' size
    directions = torch.arange(4)
    for s in (1, 4, 7, 8, 9, 12, 15, 16, 20):
        moved = shift_images(x, s, directions).numpy()
        for i, (dy, dx) in enumerate(DIRECTIONS):
            np.testing.assert_array_equal(moved[i], _numpy_shift(x[i].numpy(), dy * s, dx * s))
