"""Effective receptive field (Luo et al., 2016): how much of its theoretical receptive field a unit actually uses.

For each conv block's output, the unit at the centre of the map (summed over channels): the absolute gradient of
that unit with respect to the input image, averaged over test images, is the block's effective receptive field.
Its size is the side of the smallest square, centred on the theoretical receptive field's part inside the image,
that holds 90% of the gradient mass; the theoretical field is the window the unit can see at all (clipped to the
image), so the side is at most the visible field's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from convlens.models.network import Network
from convlens.stats import ALPHA, holm, mean_ci, paired_comparison, verdict

MASS = 0.9


def receptive_windows(model: Network) -> list[tuple[str, int, int, int]]:
    """Per block output: (block name, first, size, jump): the centre-free description of its units' windows, i.e.
    unit p sees input px first + p * jump .. first + p * jump + size - 1 along each axis (padding, strides and
    poolings included; standard receptive-field arithmetic)."""
    windows, first, size, jump = [], 0, 1, 1
    for name, block in model.features.named_children():
        for layer in block.children():
            if isinstance(layer, nn.ZeroPad2d):
                first -= layer.padding[0] * jump  # (left, right, top, bottom): square inputs pad alike
            elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)) or hasattr(layer, "kernel_size"):
                k = _first(layer.kernel_size)
                s = _first(layer.stride) if layer.stride is not None else k
                pad = _first(getattr(layer, "padding", 0))
                first -= pad * jump
                size += (k - 1) * jump
                jump *= s
        windows.append((name, first, size, jump))
    return windows


def _first(v) -> int:
    return v if isinstance(v, int) else v[0]


def effective_receptive_fields(model: Network, x: torch.Tensor) -> list[dict]:
    """Per block: the mean absolute input gradient of its central unit (an H x W array), the unit's theoretical
    window (clipped to the image) and the side of the centred square holding 90% of the gradient mass."""
    model = model.eval()
    h, w = x.shape[-2:]
    outputs: dict[str, torch.Tensor] = {}
    hooks = [block.register_forward_hook(lambda mod, inp, out, n=n: outputs.__setitem__(n, out))
             for n, block in model.features.named_children()]
    results = []
    try:
        for name, first, size, jump in receptive_windows(model):
            image = x.detach().clone().requires_grad_(True)
            outputs.clear()
            model.features(image)
            out = outputs[name]
            cy, cx = out.shape[-2] // 2, out.shape[-1] // 2
            (grad,) = torch.autograd.grad(out[:, :, cy, cx].float().sum(), image)
            erf = grad.abs().sum(1).mean(0).cpu().double().numpy()  # channels summed, images averaged: (H, W)
            window = [(first + c * jump, first + c * jump + size - 1) for c in (cy, cx)]
            clipped = [(max(lo, 0), min(hi, n - 1)) for (lo, hi), n in zip(window, (h, w))]
            # The square is centred on the part of the window inside the image, the part the side is compared
            # with: centred on the whole window, a square that reaches past the image edge can be wider than
            # the visible field (8 px of a 7 px one on 8 x 8 digits) while holding fewer image pixels.
            centre = [(lo + hi) / 2 for lo, hi in clipped]
            results.append({"block": name, "erf": erf, "theoretical_size": size,
                            "theoretical_window": [list(c) for c in clipped],
                            "theoretical_visible": [hi - lo + 1 for lo, hi in clipped],
                            "centre": centre, "side90": mass_side(erf, centre)})
    finally:
        for hook in hooks:
            hook.remove()
    return results


def mass_side(erf: np.ndarray, centre: list[float], mass: float = MASS) -> int:
    """Side (px) of the smallest square centred at ``centre`` (row, column; .5 for an even-sized window) that
    holds ``mass`` of ``erf``'s total; the sides tried have the parity that puts the square on whole pixels."""
    total = float(erf.sum())
    if total <= 0:
        return 0
    h, w = erf.shape
    start = 1 if float(centre[0]).is_integer() else 2
    for side in range(start, 2 * max(h, w) + 2, 2):
        half = (side - 1) / 2
        top, left = math.floor(centre[0] - half), math.floor(centre[1] - half)
        held = erf[max(top, 0):max(top + side, 0), max(left, 0):max(left + side, 0)].sum()
        if held >= mass * total - 1e-12 * total:
            return side
    return 2 * max(h, w)


def erf_summary(per_seed: dict[int, list[dict]]) -> dict:
    """Seed -> ``effective_receptive_fields`` of one architecture -> per block: the ERF image averaged over seeds
    (each normalised to sum 1 first, so every seed weighs the same), the theoretical window, and the 90% side
    per seed with its mean and 95% CI."""
    seeds = sorted(per_seed)
    blocks = []
    for i, first in enumerate(per_seed[seeds[0]]):
        images = [per_seed[s][i]["erf"] / max(per_seed[s][i]["erf"].sum(), 1e-30) for s in seeds]
        sides = [per_seed[s][i]["side90"] for s in seeds]
        blocks.append({"block": first["block"], "theoretical_size": first["theoretical_size"],
                       "theoretical_window": first["theoretical_window"],
                       "theoretical_visible": first["theoretical_visible"], "centre": first["centre"],
                       "side90_per_seed": dict(zip(map(str, seeds), sides)), "side90": mean_ci(sides).to_dict(),
                       "erf": np.round(np.mean(images, axis=0), 6).tolist()})
    return {"seeds": seeds, "blocks": blocks}


def kernel_size_effects(levels: dict[str, dict], reference: str, alpha: float = ALPHA) -> dict:
    """``levels``: label -> ``erf_summary`` of each level of the kernel-size experiment. Per block and level
    other than ``reference``: the paired (by seed) difference of the 90% side in px, all of them one family,
    Holm-corrected."""
    pairs = [(label, block, levels[reference]["blocks"][i]) for label, summary in levels.items()
             if label != reference for i, block in enumerate(summary["blocks"])]
    plan = []
    for label, block, ref_block in pairs:
        seeds = sorted(set(block["side90_per_seed"]) & set(ref_block["side90_per_seed"]), key=int)
        test = paired_comparison([block["side90_per_seed"][s] for s in seeds],
                                 [ref_block["side90_per_seed"][s] for s in seeds], mde_alpha=alpha / len(pairs))
        plan.append((label, block, ref_block, test))
    adjusted = holm([t.p_value for *_, t in plan])
    tests = []
    for (label, block, ref_block, test), p_holm in zip(plan, adjusted):
        tests.append({"level": label, "reference": reference, "block": block["block"],
                      "theoretical": [ref_block["theoretical_size"], block["theoretical_size"]],
                      "theoretical_visible": [ref_block["theoretical_visible"][0], block["theoretical_visible"][0]],
                      "side90": [ref_block["side90"]["mean"], block["side90"]["mean"]],
                      **test.to_dict(), "p_holm": p_holm, "family": len(plan),
                      "verdict": verdict(test, p_holm, alpha=alpha, higher="larger", lower="smaller")})
    return {"reference": reference, "family": len(tests), "tests": tests}
