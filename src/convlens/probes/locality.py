"""The locality probe, analysed: how much each model loses when pixels are permuted, and whether the CNN
loses more than the MLP (the interaction), all paired by seed.

Input is the locality experiment's per-seed test accuracies (from its run store); nothing is trained here.
"""

from __future__ import annotations

from convlens.stats import ALPHA, holm, mean_ci, paired_comparison, verdict


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
                                 "verdict": verdict(c, c.p_value, alpha=alpha, higher=f"smaller loss for the {second}",
                                                    lower=f"larger loss for the {second}")}
    return result
