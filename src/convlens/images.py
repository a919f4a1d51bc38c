"""Image files read the same way for training (a dataset folder) and for serving (a PNG or JPEG sent to the model):
turned upright as their EXIF orientation says, greyscale deeper than 8 bits scaled to 8 bits (Pillow's convert("L")
clips it at 255), and one limit on their size."""

from __future__ import annotations

from typing import Any

import numpy as np

DEEP_GREY = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # how Pillow opens 16- and 32-bit greyscale
MAX_IMAGE_PIXELS = 4096 * 4096  # per image, read from its header before decoding (PIL only warns below ~179 MP)
_ORIENTATION = 0x0112  # the EXIF tag; 1 is upright


def upright(img: Any) -> Any:
    """``img`` (a PIL image) turned as its EXIF orientation says: a phone photo taken sideways is stored sideways
    with a tag saying so. ``img`` itself when it has no such tag or when its EXIF block is broken, which costs the
    orientation only. A PNG's EXIF may follow its pixels, so Pillow decodes a PNG to find it."""
    from PIL import ImageOps
    try:
        if img.getexif().get(_ORIENTATION, 1) == 1:
            return img
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - struct.error, SyntaxError, ... from a broken EXIF block
        return img


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
