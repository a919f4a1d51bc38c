"""The comparisons an experiment's design allows, tested as one family, and the sentence each one earns.

One factor: every level against the reference level. Two factors (a full grid A x B): the effect of A within
each level of B, the effect of B within each level of A, and each interaction (the effect of a level of A at a
level of B minus the same effect at B's reference, paired by seed). Two cells that differ in both factors are
never compared directly. All of an experiment's comparisons form one Holm family: exactly the ones printed.
"""

from __future__ import annotations

import math
from typing import Any

from convlens.experiments.spec import ExperimentSpec
from convlens.stats import ALPHA, PairedComparison, holm, p_equals, paired_comparison, verdict

Accuracy = dict[str, dict[int, float]]  # cell label -> seed -> test accuracy (from counts)


def _paired(accuracy: Accuracy, plus: list[str], minus: list[str]) -> PairedComparison:
    """sum(plus cells) - sum(minus cells) per seed, over the seeds finished in every cell, tested against 0."""
    cells = plus + minus
    seeds = sorted(set.intersection(*(set(accuracy.get(c, {})) for c in cells)))
    diff = [sum(accuracy[c][s] for c in plus) - sum(accuracy[c][s] for c in minus) for s in seeds]
    return paired_comparison(diff, [0.0] * len(diff))


def design_comparisons(spec: ExperimentSpec, accuracy: Accuracy, alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Every comparison of the design with its paired test, Holm-corrected across all of them."""
    plan: list[tuple[dict[str, Any], list[str], list[str]]] = []
    first = spec.factor
    a_levels, a0 = [label for label, _ in first.labelled_levels()], first.reference_label
    if spec.second_factor is None:
        for a in a_levels:
            if a != a0:
                plan.append(({"kind": "effect", "factor": first.name, "level": a, "reference": a0, "within": None,
                              "label": f"{a} vs {a0}"}, [a], [a0]))
    else:
        second = spec.second_factor
        b_levels, b0 = [label for label, _ in second.labelled_levels()], second.reference_label
        for b in b_levels:
            for a in a_levels:
                if a != a0:
                    plan.append(({"kind": "effect", "factor": first.name, "level": f"{a} {b}",
                                  "reference": f"{a0} {b}", "within": b, "label": f"{a} vs {a0} at {b}"},
                                 [f"{a} {b}"], [f"{a0} {b}"]))
        for a in a_levels:
            for b in b_levels:
                if b != b0:
                    plan.append(({"kind": "effect", "factor": second.name, "level": f"{a} {b}",
                                  "reference": f"{a} {b0}", "within": a, "label": f"{b} vs {b0} at {a}"},
                                 [f"{a} {b}"], [f"{a} {b0}"]))
        for a in a_levels:
            for b in b_levels:
                if a != a0 and b != b0:
                    plan.append(({"kind": "interaction", "factor": f"{first.name} x {second.name}", "level": a,
                                  "reference": a0, "within": b, "baseline": b0,
                                  "label": f"interaction: {a} vs {a0}, at {b} minus at {b0}"},
                                 [f"{a} {b}", f"{a0} {b0}"], [f"{a0} {b}", f"{a} {b0}"]))
    tests = [_paired(accuracy, plus, minus) for _, plus, minus in plan]
    adjusted = holm([t.p_value for t in tests])
    return [{**about, **test.to_dict(), "p_holm": p_holm, "verdict": verdict(test, p_holm, alpha=alpha)}
            for (about, _, _), test, p_holm in zip(plan, tests, adjusted)]


def _pp(x: float) -> str:
    return f"{x * 100:+.2f} pp"


def comparison_sentence(c: dict[str, Any]) -> str:
    """What one comparison found, in words that follow its corrected test (and its MDE when it found nothing)."""
    if c["kind"] == "interaction":
        line = (f"Interaction: the effect of {c['level']} (vs {c['reference']}) at {c['within']} minus the same "
                f"effect at {c['baseline']}: {c['verdict']}")
    else:
        line = f"{c['label']}: test accuracy {c['verdict']}"
    if c["n"] == 0 or c["identical"]:
        return line
    lo, hi = c["ci95"]
    interval = f", 95% CI {_pp(lo)} to {_pp(hi)}" if lo is not None and not math.isnan(lo) else ""
    line += f"; mean difference {_pp(c['diff'])}{interval}"
    p = c["p_value"]
    if p is not None and not math.isnan(p) and c["p_holm"] != p:
        line += f"; paired t-test {p_equals(p)} before Holm's correction"
    mde = c["mde"]
    if c["verdict"].startswith("no significant") and mde is not None and not math.isnan(mde):
        line += (f"; with n={c['n']} seeds and this spread, differences smaller than {mde * 100:.2f} pp could not "
                 "be detected (80% power, uncorrected alpha 0.05)")
    return line
