"""Shift robustness: test accuracy when every test image is translated by s pixels (s = 0 .. max_shift), and
its statistics: per model a curve over seeds, per shift the paired test of one model's loss against another's.

Each image moves in one of four directions (left, right, up, down), drawn once from a fixed seed so every
model sees exactly the same shifted images; vacated pixels are background (0). At s = 0 the images are
untouched, so the probe's first point is the plain test accuracy.
"""

from __future__ import annotations

import torch

from convlens.config import EVAL_BATCH_SIZE
from convlens.models.network import Network
from convlens.stats import ALPHA, holm, mean_ci, paired_comparison, seeds_needed, verdict
from convlens.training import evaluate

DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0))  # (dy, dx): right, left, down, up
DIRECTION_SEED = 0


def shift_images(x: torch.Tensor, shift: int, directions: torch.Tensor) -> torch.Tensor:
    """x: (N, C, H, W); directions: (N,) indices into DIRECTIONS. Returns a zero-filled translated copy."""
    if shift == 0:
        return x
    out = torch.zeros_like(x)
    h, w = x.shape[-2:]
    if shift >= min(h, w):  # every pixel leaves the image (the slices below would not match): all background
        return out
    for d, (dy, dx) in enumerate(DIRECTIONS):
        idx = (directions == d).nonzero().squeeze(1)
        if len(idx) == 0:
            continue
        sy, sx = dy * shift, dx * shift
        # destination rows/cols [max(0, s), min(h, h + s)) take source rows/cols shifted back by s
        out[idx, :, max(0, sy):h + min(0, sy), max(0, sx):w + min(0, sx)] = \
            x[idx, :, max(0, -sy):h - max(0, sy), max(0, -sx):w - max(0, sx)]
    return out


def shift_directions(n: int, seed: int = DIRECTION_SEED) -> torch.Tensor:
    return torch.randint(len(DIRECTIONS), (n,), generator=torch.Generator().manual_seed(seed))


def shift_robustness(model: Network, x: torch.Tensor, y: torch.Tensor, max_shift: int,
                     batch_size: int = EVAL_BATCH_SIZE) -> list[float]:
    """Test accuracy at shifts 0, 1, .., max_shift (fractions)."""
    directions = shift_directions(len(y)).to(x.device)
    return [evaluate(model, shift_images(x, s, directions), y, model.spec.num_classes, batch_size).accuracy
            for s in range(max_shift + 1)]


def _curves(accuracy: dict, shifts: list[int]) -> dict:
    """Per model, per shift: the mean accuracy over seeds and its 95% CI (an accuracy: within 0 to 1)."""
    return {m: [mean_ci([acc[s] for acc in accuracy[m].values()], bounds=(0, 1)).to_dict() for s in shifts]
            for m in accuracy}


def shift_effects(accuracy: dict[str, dict[int, list[float]]], max_shift: int, n_images: int, *,
                  alpha: float = ALPHA) -> dict:
    """accuracy[model][seed] -> test accuracy at shifts 0 .. max_shift (``shift_robustness``) on ``n_images``
    test images, for two models.

    Returns the shifts, per model the mean and 95% CI over seeds at each shift, and per shift s > 0 the paired
    test (by seed) of the second model's change (accuracy at s minus at 0) against the first model's; the shifts'
    tests are one family, Holm-corrected, and the verdicts follow the corrected p.
    """
    first, second = accuracy
    shifts = list(range(max_shift + 1))
    curves = _curves(accuracy, shifts)
    seeds = sorted(set(accuracy[first]) & set(accuracy[second]))
    correct = {m: {k: [round(a * n_images) for a in accs] for k, accs in accuracy[m].items()} for m in accuracy}
    strictest = alpha / max(len(shifts) - 1, 1)  # the MDE at Holm's strictest step for this family
    comparisons = []
    for s in shifts[1:]:  # changes in whole images, exact; reported as fractions
        change = {m: [correct[m][k][s] - correct[m][k][0] for k in seeds] for m in accuracy}
        # a change of accuracy minus another: within -2 to 2
        comparisons.append(paired_comparison(change[second], change[first], scale=1 / n_images, mde_alpha=strictest,
                                             bounds=(-2, 2)))
    tests = []
    for s, c, p_holm in zip(shifts[1:], comparisons, holm([c.p_value for c in comparisons])):
        said = verdict(c, p_holm, alpha=alpha, higher=f"smaller loss for the {second}",
                       lower=f"larger loss for the {second}")
        tests.append({"shift": s, **c.to_dict(), "p_holm": p_holm, "verdict": said, "mde_alpha": strictest,
                      "family": len(comparisons),
                      "seeds_needed": (seeds_needed(c.diff, c.std_diff, strictest)
                                       if said.startswith("no significant") and c.diff != 0 else None)})
    return {"shifts": shifts, "seeds": seeds, "curves": curves, "tests": tests}


def shift_loss_comparisons(accuracy: dict[str, dict[int, list[float]]], pairs: list[tuple[str, str]],
                           n_images: int, *, alpha: float = ALPHA) -> dict:
    """accuracy[model][seed] -> accuracy at shifts 0 .. max_shift, for any number of models; ``pairs``: (model,
    reference) to compare. Per pair and shift s > 0: the paired test (by seed) of the model's change (accuracy
    at s minus at 0) against the reference's. All pairs' tests form one family, Holm-corrected."""
    some = next(iter(accuracy.values()))
    shifts = list(range(len(next(iter(some.values())))))
    curves = _curves(accuracy, shifts)
    correct = {m: {k: [round(a * n_images) for a in accs] for k, accs in accuracy[m].items()} for m in accuracy}
    plan = [(model, reference, s) for model, reference in pairs for s in shifts[1:]]
    strictest = alpha / max(len(plan), 1)
    comparisons = []
    for model, reference, s in plan:
        seeds = sorted(set(correct[model]) & set(correct[reference]))
        change = {m: [correct[m][k][s] - correct[m][k][0] for k in seeds] for m in (model, reference)}
        comparisons.append(paired_comparison(change[model], change[reference], scale=1 / n_images,
                                             mde_alpha=strictest, bounds=(-2, 2)))
    tests = []
    for (model, reference, s), c, p_holm in zip(plan, comparisons, holm([c.p_value for c in comparisons])):
        said = verdict(c, p_holm, alpha=alpha, higher=f"smaller loss for {model}", lower=f"larger loss for {model}")
        tests.append({"model": model, "reference": reference, "shift": s, **c.to_dict(), "p_holm": p_holm,
                      "verdict": said, "mde_alpha": strictest, "family": len(plan)})
    return {"shifts": shifts, "curves": curves, "pairs": [list(p) for p in pairs], "family": len(tests),
            "tests": tests}
