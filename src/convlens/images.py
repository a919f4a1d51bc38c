"""Greyscale images deeper than 8 bits, brought to 8 bits the same way for training (a dataset folder) and for
serving (a PNG sent to the model): Pillow's convert("L") clips them at 255 instead of scaling them."""

from __future__ import annotations

from typing import Any

import numpy as np

DEEP_GREY = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # how Pillow opens 16- and 32-bit greyscale


def to_8bit_grey(img: Any) -> Any:
    """``img`` (a PIL image) with 16-bit grey scaled by 65535 -> 255 and 32-bit or float grey by its own maximum;
    any other mode as it is. The integer path works in place on one uint32 copy (4 bytes per pixel)."""
    from PIL import Image
    if img.mode not in DEEP_GREY:
        return img
    if img.mode.startswith("I;16"):
        wide = np.asarray(img, dtype=np.uint32)
        wide += 128
        wide //= 257  # round(v / 257), in integers
        return Image.fromarray(np.minimum(wide, 255).astype(np.uint8), "L")
    a = np.asarray(img, dtype=np.float64)
    top = max(float(a.max()), 1.0)
    return Image.fromarray(np.clip(np.round(a / top * 255), 0, 255).astype(np.uint8), "L")
