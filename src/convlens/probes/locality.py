"""The locality probe, analysed: how much each model loses when pixels are permuted, and whether the CNN
loses more than the MLP (the interaction), all paired by seed.

Input is the locality experiment's per-seed test accuracies (from its run store); nothing is trained here.
"""

from __future__ import annotations

import math

from convlens.stats import ALPHA, holm, mean_ci, paired_comparison, verdict


def _pp(x: float) -> str:
    return f"{x * 100:+.2f} pp"


def _interval(c: dict) -> str:
    lo, hi = c["ci95"]
    return "" if lo is None or math.isnan(lo) else f", 95% CI {lo * 100:+.2f} to {hi * 100:+.2f} pp"


def locality_effects(accuracy: dict[str, dict[str, dict[int, float]]], *, alpha: float = ALPHA) -> dict:
    """accuracy[model][pixels][seed] -> test accuracy, pixels in {"original", "permuted"}.

    Returns, per model, the paired change (permuted - original) with Holm-corrected verdicts across models,
    and for exactly two models the interaction: (second model's change) - (first model's change).
    """
    models = list(accuracy)
    effects = {}
    for model in models:
        seeds = sorted(set(accuracy[model].get("original", {})) & set(accuracy[model].get("permuted", {})))
        c = paired_comparison([accuracy[model]["permuted"][s] for s in seeds],
                              [accuracy[model]["original"][s] for s in seeds])
        effects[model] = {"seeds": seeds, **c.to_dict(), "_comparison": c,
                          "original": mean_ci([accuracy[model]["original"][s] for s in seeds]).to_dict(),
                          "permuted": mean_ci([accuracy[model]["permuted"][s] for s in seeds]).to_dict()}
    for model, p_holm in zip(models, holm([effects[m]["p_value"] for m in models])):
        e = effects[model]
        e["p_holm"] = p_holm
        e["verdict"] = verdict(e.pop("_comparison"), p_holm, alpha=alpha)
    result = {"models": effects, "interaction": None}
    if len(models) == 2:
        first, second = models
        seeds = sorted(set(effects[first]["seeds"]) & set(effects[second]["seeds"]))
        change = {m: [accuracy[m]["permuted"][s] - accuracy[m]["original"][s] for s in seeds] for m in models}
        c = paired_comparison(change[second], change[first])
        result["interaction"] = {"of": second, "against": first, "seeds": seeds, **c.to_dict(),
                                 "verdict": verdict(c, c.p_value, alpha=alpha, higher=f"smaller loss for {second}",
                                                    lower=f"larger loss for {second}")}
    return result


def locality_conclusions(effects: dict, names: dict[str, str]) -> list[str]:
    """Sentences for the report, worded by the tests; ``names`` maps model ids to readable names."""
    lines = []
    for model, e in effects["models"].items():
        o, p = e["original"], e["permuted"]
        lines.append(f"{names.get(model, model)}: {o['mean'] * 100:.2f}% on original pixels, {p['mean'] * 100:.2f}% "
                     f"on permuted pixels; change {_pp(e['diff'])}{_interval(e)}; permuted vs original: "
                     f"{e['verdict']}.")
    inter = effects["interaction"]
    if inter is not None:
        of, against = names.get(inter["of"], inter["of"]), names.get(inter["against"], inter["against"])
        worded = inter["verdict"].replace(inter["of"], f"the {of}")
        lines.append(f"Interaction, the {of}'s change minus the {against}'s (paired by seed): "
                     f"{_pp(inter['diff'])}{_interval(inter)}: {worded}.")
    return lines
