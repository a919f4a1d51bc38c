"""The comparisons an experiment's design allows, tested as one family, and the sentence each one earns.

One factor: every level against the reference level. Two factors (a full grid A x B): the effect of A within
each level of B, the effect of B within each level of A, and each interaction (the effect of a level of A at a
level of B minus the same effect at B's reference, paired by seed). Two cells that differ in both factors are
never compared directly. All of an experiment's comparisons form one Holm family: exactly the ones printed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from convlens.experiments.spec import ExperimentSpec
from convlens.stats import (
    ALPHA,
    PairedComparison,
    holm,
    mcnemar_exact,
    p_equals,
    paired_comparison,
    seeds_needed,
    verdict,
)

Predictions = dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]  # cell label -> seed -> (predicted, true)
GALLERY = 8  # images per row of a flip gallery

Counts = dict[str, dict[int, int]]  # cell label -> seed -> test images classified correctly


def _paired(counts: Counts, plus: list[str], minus: list[str], n_images: int, mde_alpha: float) -> PairedComparison:
    """sum(plus cells) - sum(minus cells) per seed in whole images, over the seeds finished in every cell, tested
    against 0 and reported as fractions of the ``n_images`` test images."""
    cells = plus + minus
    seeds = sorted(set.intersection(*(set(counts.get(c, {})) for c in cells)))
    diff = [sum(counts[c][s] for c in plus) - sum(counts[c][s] for c in minus) for s in seeds]
    return paired_comparison(diff, [0] * len(diff), scale=1 / n_images, mde_alpha=mde_alpha,
                             bounds=(-len(minus), len(plus)))  # each cell's accuracy is 0 to 1


def _effects_within(factor: str, levels: list[str], reference: str, fixed_levels: list[str],
                    cell: Callable[[str, str], str]) -> list[tuple[dict, list[str], list[str]]]:
    """Each level of ``factor`` against its reference, within every level of the other factor; ``cell(level,
    fixed)`` names the grid cell. Never two cells that differ in both factors."""
    return [({"kind": "effect", "factor": factor, "level": cell(x, f), "reference": cell(reference, f), "within": f,
              "changed": x, "from": reference, "label": f"{x} vs {reference} at {f}"},
             [cell(x, f)], [cell(reference, f)])
            for f in fixed_levels for x in levels if x != reference]


def design_comparisons(spec: ExperimentSpec, counts: Counts, n_images: int,
                       alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Every comparison of the design with its paired test, Holm-corrected across all of them. ``counts``: correct
    test images per cell and seed (all cells share one test set of ``n_images``). The minimum detectable effect
    and the seeds a difference would need are computed at alpha / m, Holm's strictest step for a family of m."""
    plan: list[tuple[dict[str, Any], list[str], list[str]]] = []
    first = spec.factor
    a_levels, a0 = [label for label, _ in first.labelled_levels()], first.reference_label
    if spec.second_factor is None:
        for a in a_levels:
            if a != a0:
                plan.append(({"kind": "effect", "factor": first.name, "level": a, "reference": a0, "within": None,
                              "changed": a, "from": a0, "label": f"{a} vs {a0}"}, [a], [a0]))
    else:
        second = spec.second_factor
        b_levels, b0 = [label for label, _ in second.labelled_levels()], second.reference_label
        plan += _effects_within(first.name, a_levels, a0, b_levels, lambda a, b: f"{a} {b}")
        plan += _effects_within(second.name, b_levels, b0, a_levels, lambda b, a: f"{a} {b}")
        for a in a_levels:
            for b in b_levels:
                if a != a0 and b != b0:
                    plan.append(({"kind": "interaction", "factor": f"{first.name} x {second.name}", "level": a,
                                  "reference": a0, "within": b, "baseline": b0,
                                  "label": f"interaction: {a} vs {a0}, at {b} minus at {b0}"},
                                 [f"{a} {b}", f"{a0} {b0}"], [f"{a0} {b}", f"{a} {b0}"]))
    strictest = alpha / max(len(plan), 1)
    tests = [_paired(counts, plus, minus, n_images, strictest) for _, plus, minus in plan]
    adjusted = holm([t.p_value for t in tests])
    results = []
    for (about, _, _), test, p_holm in zip(plan, tests, adjusted):
        said = verdict(test, p_holm, alpha=alpha)
        results.append({**about, **test.to_dict(), "p_holm": p_holm, "verdict": said, "mde_alpha": strictest,
                        "family": len(plan),
                        # seeds the observed difference would need to be detected (80% power), when it was not
                        "seeds_needed": (seeds_needed(test.diff, test.std_diff, strictest)
                                         if said.startswith("no significant") and test.diff != 0 else None)})
    return results


def per_example_evidence(level: dict[int, tuple[np.ndarray, np.ndarray]],
                         reference: dict[int, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any] | None:
    """Where two cells' models disagree, image by image (seed -> (predicted, true) class per test image).

    Per seed: ``gained`` (images the level gets right and the reference wrong), ``lost`` (the other way), McNemar's
    exact test on the two, Holm-corrected across the seeds (one family per comparison), and the agreement rate
    (same predicted class). Then the images lost on every seed and gained on every seed, the first few of each
    with their true class and both models' seed-0 predictions: what the change actually does."""
    seeds = sorted(set(level) & set(reference))
    if not seeds:
        return None
    per_seed, lost_all, gained_all = [], None, None
    for seed in seeds:
        (pred_l, true_l), (pred_r, true_r) = level[seed], reference[seed]
        if not np.array_equal(true_l, true_r):
            return None  # not the same test images: nothing to pair
        right_l, right_r = pred_l == true_l, pred_r == true_r
        gained, lost = right_l & ~right_r, right_r & ~right_l
        per_seed.append({"seed": seed, "gained": int(gained.sum()), "lost": int(lost.sum()),
                         "p_value": mcnemar_exact(int(gained.sum()), int(lost.sum())),
                         "agreement": float((pred_l == pred_r).mean())})
        lost_all = lost if lost_all is None else lost_all & lost
        gained_all = gained if gained_all is None else gained_all & gained
    for entry, p_holm in zip(per_seed, holm([e["p_value"] for e in per_seed])):
        entry["p_holm"] = p_holm
    (pred_l, true), (pred_r, _) = level[seeds[0]], reference[seeds[0]]

    def examples(mask: np.ndarray) -> list[dict[str, int]]:
        return [{"index": int(i), "true": int(true[i]), "level_predicted": int(pred_l[i]),
                 "reference_predicted": int(pred_r[i])} for i in np.flatnonzero(mask)[:GALLERY]]
    return {"test": "McNemar's exact test per seed, Holm-corrected across the seeds", "per_seed": per_seed,
            "n_images": int(len(true)), "lost_every_seed": int(lost_all.sum()), "gained_every_seed": int(gained_all.sum()),
            "lost_examples": examples(lost_all), "gained_examples": examples(gained_all)}


def evidence_sentence(c: dict[str, Any]) -> str | None:
    """The per-image finding of an effect comparison, from its ``evidence``."""
    e = c.get("evidence")
    if not e:
        return None
    seeds = "; ".join(f"seed {s['seed']}: {s['gained']} gained, {s['lost']} lost ({p_equals(s['p_holm'])})"
                      for s in e["per_seed"])
    significant = sum(s["p_holm"] < ALPHA for s in e["per_seed"])
    agreement = np.mean([s["agreement"] for s in e["per_seed"]])
    return (f"{c['label']}, image by image ({e['test']}): {seeds}; {significant} of {len(e['per_seed'])} seeds "
            f"show a significant imbalance. The two predict the same class for {agreement * 100:.1f}% of the "
            f"{e['n_images']:,} test images (mean over seeds); {_images_are(e['gained_every_seed'])} gained and "
            f"{e['lost_every_seed']} lost on every seed.")


def _images_are(n: int) -> str:
    """'1 image is', '0 images are', '12 images are'."""
    return "1 image is" if n == 1 else f"{n:,} images are"


def undetectable(mde: float) -> str:
    """'differences smaller than 0.54 pp had under 80% power to be detected' (the minimum detectable effect: not
    that smaller ones cannot be found, but that the test finds them less than 80% of the time); an MDE beyond
    100 pp covers every difference an accuracy can show."""
    if mde >= 1:
        return "no difference an accuracy can show (up to 100 pp) had 80% power to be detected"
    return f"differences smaller than {mde * 100:.2f} pp had under 80% power to be detected"


def _pp(x: float) -> str:
    return f"{x * 100:+.2f} pp"


# A seed count read off an observed difference plans the next experiment; adding seeds to this one until its
# test passes is optional stopping, and the p-value it ends with is too small.
FRESH_SEEDS = "for a new experiment: adding seeds to this one until its test passes would make its p-value too small"


def interval_text(c: dict[str, Any], number: Callable[[float], str] = lambda x: f"{x * 100:+.2f}",
                  unit: str = "pp") -> str:
    """', 95% CI -0.29 to +0.53 pp' for comparison ``c``: its paired t interval, which is not adjusted for
    the family. So in a family of several tests it is called unadjusted, and when it excludes 0 beside a verdict
    that (following the Holm-corrected p) finds no difference, the sentence says why the two differ."""
    lo, hi = c["ci95"]
    if lo is None or math.isnan(lo):
        return ""
    family = c.get("family", 1)
    text = f", {'unadjusted ' if family > 1 else ''}95% CI {number(lo)} to {number(hi)} {unit}"
    p = c.get("p_holm")
    if family > 1 and (lo > 0 or hi < 0) and p is not None and not math.isnan(p) and p >= ALPHA:
        text += f" (it excludes 0, but the test corrected over the family's {family} comparisons does not)"
    return text


def comparison_sentence(c: dict[str, Any]) -> str:
    """What one comparison found, in words that follow its corrected test (and its MDE when it found nothing)."""
    if c["kind"] == "interaction":
        line = (f"Interaction: the effect of {c['level']} (vs {c['reference']}) at {c['within']} minus the same "
                f"effect at {c['baseline']}: {c['verdict']}")
    else:
        line = f"{c['label']}: test accuracy {c['verdict']}"
    if c["n"] == 0 or c["identical"]:
        return line + "."
    line += f"; mean difference {_pp(c['diff'])}{interval_text(c)}"
    mde = c["mde"]
    if c["verdict"].startswith("no significant") and mde is not None and not math.isnan(mde):
        line += f"; with n={c['n']} seeds and this spread, {undetectable(mde)} (at alpha " \
                f"{c['mde_alpha']:.3g}, the family's strictest level)"
        if c.get("seeds_needed"):
            line += (f"; detecting the observed {abs(c['diff']) * 100:.2f} pp would take roughly {c['seeds_needed']} "
                     f"seeds ({FRESH_SEEDS})")
    return line + "."
