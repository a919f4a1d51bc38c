"""Data augmentation on the training device, one batch at a time (no torchvision, no DataLoader).

A recipe's ``augment`` is text, so that it can be a factor level and a command-line value: ``none`` or
comma-separated ``name:amount`` terms, e.g. ``shift:2,rotate:10``:

    shift:K    translate each image by a random whole number of px in [-K, K] along each axis (vacated px: 0)
    rotate:D   rotate each image by a random angle in [-D, D] degrees (bilinear, vacated px: 0)
    flip:P     mirror each image left-right with probability P (only where a mirror keeps the class)
    erase:P    with probability P, zero a random rectangle of 2-33% of the image, aspect 0.3-3.3 (random erasing)

The draws come from a generator seeded by the run's seed, like the data order, so a run repeats exactly.
Validation and test images are never augmented: only the training step calls ``augment_batch``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # parsing a recipe's text (configs, --help) needs no torch; augment_batch imports it
    import torch

NONE = "none"
ORDER = ("shift", "rotate", "flip", "erase")  # canonical order of the terms: one spelling per augmentation
LIMITS = {"shift": (0, 14), "rotate": (0, 180), "flip": (0, 1), "erase": (0, 1)}
ERASE_AREA, ERASE_RATIO = (0.02, 0.33), (0.3, 3.3)  # random erasing's defaults (Zhong et al., 2017)


@dataclass(frozen=True)
class Augmentation:
    shift: int = 0
    rotate: float = 0.0
    flip: float = 0.0
    erase: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.shift or self.rotate or self.flip or self.erase)


def parse_augment(text: str) -> Augmentation:
    """``'shift:2,rotate:10'`` -> Augmentation(shift=2, rotate=10.0); ``'none'`` or '' -> nothing. ValueError on
    anything else, naming the term and what is valid."""
    text = (text or "").strip().lower()
    if text in ("", NONE):
        return Augmentation()
    values: dict[str, float] = {}
    for term in (t.strip() for t in text.split(",")):
        name, sep, amount = term.partition(":")
        name, amount = name.strip(), amount.strip()  # 'shift : 2' is shift:2
        if not term:
            raise ValueError(f"augmentation '{text}' has an empty term (a comma too many); e.g. shift:2,rotate:10")
        if name not in ORDER or not sep:
            raise ValueError(f"augmentation '{term}' is not one of {', '.join(f'{n}:AMOUNT' for n in ORDER)} "
                             "(e.g. shift:2,rotate:10) or none")
        if name in values:
            raise ValueError(f"augmentation '{name}' is given twice")
        try:
            value = float(amount)
        except ValueError:
            raise ValueError(f"augmentation '{term}': '{amount}' is not a number") from None
        low, high = LIMITS[name]
        if not low <= value <= high or math.isnan(value):
            raise ValueError(f"augmentation '{term}': the amount must be in [{low}, {high}]")
        if name == "shift" and not value.is_integer():
            raise ValueError(f"augmentation '{term}': shift takes a whole number of px")
        values[name] = value
    return Augmentation(shift=int(values.get("shift", 0)), rotate=values.get("rotate", 0.0),
                        flip=values.get("flip", 0.0), erase=values.get("erase", 0.0))


def canonical(text: str) -> str:
    """The one spelling of an augmentation: terms in a fixed order, zero amounts dropped (``'none'`` if empty)."""
    aug = parse_augment(text)
    terms = [f"{name}:{_number(getattr(aug, name))}" for name in ORDER if getattr(aug, name)]
    return ",".join(terms) or NONE


def _number(value: float) -> str:
    # repr: the shortest text that reads back as the same float ('{:g}' kept 6 digits: rotate:10.1234567 was
    # recorded, and run, as rotate:10.1235)
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def augment_seed(seed: int) -> int:
    """The augmentation generator's seed for run ``seed``: derived (numpy's SeedSequence), not seed + k, so that no
    run's augmentation draws are another run's data order."""
    import numpy as np
    return int(np.random.SeedSequence([seed, 0xA06]).generate_state(1)[0])


def augment_batch(x: torch.Tensor, aug: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """A new augmented batch x (N, C, H, W) on x's device, in x's dtype and memory format (channels_last stays
    channels_last); ``generator`` lives on that device too."""
    import torch
    import torch.nn.functional as F
    n, _, h, w = x.shape
    device, dtype = x.device, x.dtype
    layout = (torch.channels_last if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
              else torch.contiguous_format)

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device, generator=generator)
    if aug.flip:
        x = torch.where(uniform(n, 1, 1, 1) < aug.flip, x.flip(3), x)
    if aug.shift or aug.rotate:
        # the draws, in this order, whatever the terms: angles, then the whole-pixel shifts (dx, dy)
        angle = (uniform(n) * 2 - 1) * math.radians(aug.rotate)
        shift = torch.randint(-aug.shift, aug.shift + 1, (n, 2), device=device, generator=generator)
        if not aug.rotate:
            x = _translate(x, shift, aug.shift)  # by indexing: exact in any dtype (resampling was off by ~1e-6)
        else:
            # one affine resampling per batch: rotation about the centre, then the translation. theta maps
            # output coordinates to input coordinates in [-1, 1] units; a content shift of +s px moves the
            # sampling point by -s px, i.e. -2 s / size. In float32 (grid_sample wants one dtype for the image
            # and the grid, and a bf16 grid would misplace pixels).
            cos, sin, shift = angle.cos(), angle.sin(), shift.float()
            theta = torch.stack([torch.stack([cos, -sin * h / w, -2 * shift[:, 0] / w], 1),
                                 torch.stack([sin * w / h, cos, -2 * shift[:, 1] / h], 1)], 1)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros",
                              align_corners=False).to(dtype)
    if aug.erase:
        area = (ERASE_AREA[0] + uniform(n) * (ERASE_AREA[1] - ERASE_AREA[0])) * h * w
        ratio = torch.exp(math.log(ERASE_RATIO[0]) + uniform(n) * math.log(ERASE_RATIO[1] / ERASE_RATIO[0]))
        eh = (area * ratio).sqrt().round().clamp(1, h)
        ew = (area / ratio).sqrt().round().clamp(1, w)
        top = (uniform(n) * (h - eh + 1)).floor()
        left = (uniform(n) * (w - ew + 1)).floor()
        rows = torch.arange(h, device=device).view(1, h, 1)
        cols = torch.arange(w, device=device).view(1, 1, w)
        box = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
               & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)))
        chosen = (uniform(n) < aug.erase).view(n, 1, 1)
        x = x.masked_fill((box & chosen).unsqueeze(1), 0.0)
    return x.contiguous(memory_format=layout)


def _translate(x: torch.Tensor, shift: torch.Tensor, most: int) -> torch.Tensor:
    """Each image of x (N, C, H, W) with its content moved by ``shift[i] = (dx, dy)`` whole px (right and down for
    positive values, |dx|, |dy| <= ``most``); vacated px are 0 and nothing wraps round. out[i, :, r, c] =
    x[i, :, r - dy, c - dx] where that lies in the image, read from x zero-padded by ``most`` px on every side."""
    import torch
    import torch.nn.functional as F
    n, _, h, w = x.shape
    padded = F.pad(x, (most, most, most, most)).permute(0, 2, 3, 1)  # (N, H + 2 most, W + 2 most, C)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - shift[:, 1].view(n, 1, 1) + most
    cols = torch.arange(w, device=x.device).view(1, 1, w) - shift[:, 0].view(n, 1, 1) + most
    return padded[torch.arange(n, device=x.device).view(n, 1, 1), rows, cols].permute(0, 3, 1, 2)
