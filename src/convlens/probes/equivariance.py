"""Translation equivariance, measured where a network keeps it and where it loses it.

For every stage of the conv blocks (after each convolution with its activation, after each pooling) and shifts
k = 1 .. max_shift px: the cosine similarity between the stage's feature map of the shifted image and the
unshifted image's feature map moved by k / jump feature pixels (jump: input px between adjacent units there),
over the region where the two overlap, per image; then the mean over images. A convolution is exactly
equivariant (1.0); a pooling with stride s is only for shifts that are multiples of s. Where k / jump is not a
whole number, the map is compared with both neighbouring whole shifts and the better one is kept (the most
equivariance the stage could show).

Border effects are kept out: the image is placed on a zero canvas with room to move (zero is the background
every dataset here is normalised to and what 'same' padding adds), so a shift loses no content and padding
sees the same zeros in both images. The feature maps of an empty canvas (the biases' response) are subtracted
from both maps first: otherwise the background, identical in both, would count as agreement. Last, the first
dense layer: it has no spatial axes, so its activations of the shifted image (at its own size) are compared with
the unshifted image's (invariance: what the head keeps), the empty image's taken out likewise.

Unrelated images' maps are far from orthogonal, the empty canvas's taken out or not (mostly non-negative after a
ReLU, and alike where the images are alike), so each stage also gets a floor to read the figures against: the
mean cosine of each unshifted image's maps with the next test image's ("unrelated"; measured 0.3-0.5 per stage for
a trained CNN on Fashion-MNIST, 0.29 at dense1 whose 4-px figure is ~0.76, and 0.72-0.96 on digits).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from convlens.models.network import Network
from convlens.probes.shift import DIRECTIONS, shift_directions, shift_images
from convlens.stats import mean_ci


def feature_stages(model: Network) -> list[tuple[str, nn.Module, int]]:
    """(label, module whose output is the stage, jump in input px) for each conv and each pooling, in order: the
    conv stage is the block's last layer before pooling (its activation or BatchNorm)."""
    stages, jump = [], 1
    for name, block in model.features.named_children():
        layers = dict(block.named_children())
        conv = layers["conv"]
        jump *= conv.stride if isinstance(conv.stride, int) else conv.stride[0]
        before_pool = [m for n, m in layers.items() if n != "pool"][-1]
        stages.append((f"{name} conv", before_pool, jump))
        if "pool" in layers:
            jump *= layers["pool"].stride if isinstance(layers["pool"].stride, int) else layers["pool"].stride[0]
            stages.append((f"{name} pool", layers["pool"], jump))
    return stages


def _capture(model: Network, modules: list[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of ``modules`` for input ``x``, running only the conv blocks (any input size)."""
    outputs: dict[int, torch.Tensor] = {}

    def keep(i: int, out: torch.Tensor) -> None:  # a tensor of its own: the caller changes it in place
        owned = any(out.data_ptr() == o.data_ptr() for o in outputs.values()) or out.dtype != torch.float32
        outputs[i] = out.float().clone() if owned else out
    hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: keep(i, out)) for i, m in enumerate(modules)]
    try:
        model.features(x)
    finally:
        for h in hooks:
            h.remove()
    return [outputs[i] for i in range(len(modules))]


def _overlap(shifted: torch.Tensor, original: torch.Tensor, dy: int, dx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The region where ``shifted`` and ``original`` moved by (dy, dx) feature px overlap: (a, b), views."""
    h, w = original.shape[-2:]
    return (shifted[..., max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)],
            original[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)])


def _cosine_sum(a: torch.Tensor, b: torch.Tensor) -> float:
    """The sum over images of the cosine similarity of a[i] and b[i], each (C, H, W)."""
    dims = (1, 2, 3)
    dot = (a * b).sum(dims)
    norms = torch.linalg.vector_norm(a, dim=dims) * torch.linalg.vector_norm(b, dim=dims)
    # float32 rounding puts the cosine of identical maps at 1.0000001 about as often as not: clamped, so a mean over
    # images and seeds never passes 1 (or its interval, cut to [-1, 1], turns inside out)
    return float((dot / norms.clamp_min(1e-12)).clamp(-1, 1).sum())


# Images per forward pass on the canvas, on a CPU. The probe's 64 x 64 canvases make 4.3x the activations of a
# 28 x 28 batch: at 256 images a pass ran 214 ms per 256 images on a 2-core Zen 4, at 32 it ran 108 ms (the maps
# stay in the caches). The cosines are sums over images, so chunks add up to the same figure. A GPU takes all
# images at once (each chunk's cosines are read back to the host).
CANVAS_CHUNK = 32


def _direction_groups(directions: torch.Tensor) -> list[tuple[int, slice]]:
    """(direction, slice of the images moved that way) for ``directions`` sorted ascending."""
    counts = torch.bincount(directions, minlength=len(DIRECTIONS)).tolist()
    starts = [sum(counts[:d]) for d in range(len(DIRECTIONS))]
    return [(d, slice(start, start + n)) for d, (start, n) in enumerate(zip(starts, counts)) if n]


@torch.no_grad()
def equivariance(model: Network, x: torch.Tensor, max_shift: int = 4, chunk: int | None = None) -> dict:
    """Per stage and shift k = 1 .. max_shift: the mean cosine similarity over the images ``x`` (N, C, H, W),
    computed ``chunk`` images at a time (default: ``CANVAS_CHUNK`` on a CPU, all at once elsewhere).

    Returns {"stages": [labels], "jumps": [px], "shifts": [k], "similarity": [[per shift] per stage],
    "exact": [[k % jump == 0] per stage], "unrelated": [per stage: the mean cosine of two different images'
    unshifted maps, None for fewer than 2 images]}, the dense layer last (jump None).
    """
    model = model.eval()
    chunk = chunk or (CANVAS_CHUNK if x.device.type == "cpu" else len(x))
    stages = feature_stages(model)
    jump = stages[-1][2] if stages else 1
    # Room to move plus one cell, before: a multiple of the total jump keeps the pooling grid's phase; after: as
    # much again plus what makes the canvas a whole number of cells, so no pooling drops a row the image reaches.
    before = (math.ceil(max_shift / jump) + 1) * jump
    after = before + (-x.shape[-1]) % jump
    directions = shift_directions(len(x)).to(x.device)
    # Images grouped by direction (a mean over images does not depend on their order): each group is a slice, a
    # view, where indexing would copy every feature map once per group.
    order = torch.argsort(directions, stable=True)
    x, directions = x[order], directions[order]
    modules = [m for _, m, _ in stages]
    # The response to an empty canvas (biases through activations and BatchNorm) is the same in both maps: taken
    # out, so that the similarity is the image's and does not grow with the canvas's background.
    empty = _capture(model, modules, nn.functional.pad(torch.zeros_like(x[:1]), (before, after, before, after)))
    # the whole feature-map shifts compared at each stage and k: both whole neighbours of k / jump
    candidates = [[sorted({math.floor(k / jump), math.ceil(k / jump)}) for k in range(1, max_shift + 1)]
                  for _, _, jump in stages]
    totals = [[dict.fromkeys(per_k, 0.0) for per_k in per_stage] for per_stage in candidates]
    partner = torch.roll(torch.arange(len(x), device=x.device), -1)  # each image against the next one
    unrelated = [0.0] * len(stages)
    for start in range(0, len(x), chunk):
        rows = slice(start, start + chunk)
        canvas = nn.functional.pad(x[rows], (before, after, before, after))
        groups = _direction_groups(directions[rows])
        base = [stage.sub_(e) for stage, e in zip(_capture(model, modules, canvas), empty)]
        other = [stage.sub_(e) for stage, e in zip(_capture(model, modules, nn.functional.pad(
            x[partner[rows]], (before, after, before, after))), empty)]
        for i in range(len(stages)):
            unrelated[i] += _cosine_sum(base[i], other[i])
        del other
        for k in range(1, max_shift + 1):
            moved = [stage.sub_(e) for stage, e in
                     zip(_capture(model, modules, shift_images(canvas, k, directions[rows])), empty)]
            for i in range(len(stages)):
                for s in candidates[i][k - 1]:
                    totals[i][k - 1][s] += sum(_cosine_sum(*_overlap(moved[i][g], base[i][g], DIRECTIONS[d][0] * s,
                                                                     DIRECTIONS[d][1] * s)) for d, g in groups)
    similarity = [[max(by_s.values()) / len(x) for by_s in per_stage] for per_stage in totals]
    dense, dense_unrelated = _dense_invariance(model, x, directions, max_shift, partner)
    labels = [label for label, _, _ in stages]
    floors = [u / len(x) if len(x) > 1 else None for u in unrelated] + ([dense_unrelated] if dense else [])
    return {"stages": labels + (["dense1"] if dense else []),
            "jumps": [jump for _, _, jump in stages] + ([None] if dense else []),
            "shifts": list(range(1, max_shift + 1)),
            "similarity": similarity + ([dense] if dense else []),
            "exact": [[k % jump == 0 for k in range(1, max_shift + 1)] for _, _, jump in stages]
                     + ([[False] * max_shift] if dense else []),
            "unrelated": floors}


def _dense_invariance(model: Network, x: torch.Tensor, directions: torch.Tensor, max_shift: int,
                      partner: torch.Tensor) -> tuple[list[float], float | None]:
    """Mean cosine similarity of the first dense layer's activations, shifted vs unshifted image (28 x 28), the
    empty image's activations taken out of both as for the maps; and the same for each unshifted image against
    its ``partner`` (another image: the floor)."""
    layers = dict(model.head.named_children())
    if "act1" not in layers:
        return [], None
    captured: list[torch.Tensor] = []
    hook = layers["act1"].register_forward_hook(lambda mod, inp, out: captured.append(out.float()))
    try:
        model(torch.zeros_like(x[:1]))
        model(x)
        for k in range(1, max_shift + 1):
            model(shift_images(x, k, directions))
    finally:
        hook.remove()
    empty, base = captured[0], captured[1] - captured[0]
    floor = (nn.functional.cosine_similarity(base[partner], base, dim=1, eps=1e-12).clamp(-1, 1).mean().item()
             if len(x) > 1 else None)
    return [nn.functional.cosine_similarity(c - empty, base, dim=1, eps=1e-12).clamp(-1, 1).mean().item()
            for c in captured[2:]], floor  # clamped as in _cosine_sum


def equivariance_over_seeds(per_seed: dict[int, dict]) -> dict:
    """Seed -> ``equivariance(...)`` of one architecture -> per stage and shift the mean and 95% CI over seeds."""
    first = next(iter(per_seed.values()))
    floors = ({"unrelated": [None if any(r["unrelated"][i] is None for r in per_seed.values()) else
                             mean_ci([r["unrelated"][i] for r in per_seed.values()], bounds=(-1, 1)).to_dict()
                             for i in range(len(first["stages"]))]} if "unrelated" in first else {})
    return {**{k: first[k] for k in ("stages", "jumps", "shifts", "exact")}, "seeds": sorted(per_seed),
            "similarity": [[mean_ci([r["similarity"][i][j] for r in per_seed.values()], bounds=(-1, 1)).to_dict()
                            for j in range(len(first["shifts"]))] for i in range(len(first["stages"]))], **floors}
