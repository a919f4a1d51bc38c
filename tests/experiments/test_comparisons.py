"""The comparisons a design allows: within-level effects and interactions for a grid (never two cells that
differ in both factors), one Holm family of exactly the comparisons printed; checked against scipy/statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from convlens.experiments import parse_spec
from convlens.experiments.comparisons import comparison_sentence, design_comparisons

GRID = parse_spec(dict(name="g", model="mlp", factor=dict(name="model", levels=["mlp", "cnn"]),
                       second_factor=dict(name="pixels", levels=["original", "permuted"])))
M, C, O, P = "model=mlp-128-64", "model=cnn-32-64-128", "pixels=original", "pixels=permuted"
ACC = {f"{M} {O}": {0: 0.880, 1: 0.870, 2: 0.875}, f"{M} {P}": {0: 0.879, 1: 0.872, 2: 0.874},
       f"{C} {O}": {0: 0.920, 1: 0.915, 2: 0.918}, f"{C} {P}": {0: 0.860, 1: 0.850, 2: 0.858}}


COUNTS = {cell: {s: round(a * 1000) for s, a in seeds.items()} for cell, seeds in ACC.items()}  # of 1,000 images


def _values(cell):
    return [ACC[cell][s] for s in range(3)]


def test_a_grid_compares_within_levels_and_tests_the_interaction_never_across_both_factors():
    comps = design_comparisons(GRID, COUNTS, 1000)
    assert [c["label"] for c in comps] == [
        f"{C} vs {M} at {O}", f"{C} vs {M} at {P}",
        f"{P} vs {O} at {M}", f"{P} vs {O} at {C}",
        f"interaction: {C} vs {M}, at {P} minus at {O}"]
    for c in comps[:4]:  # each effect changes exactly one factor
        assert sum(a != b for a, b in zip(c["level"].split(), c["reference"].split())) == 1
    raw = [sps.ttest_rel(_values(f"{C} {O}"), _values(f"{M} {O}")).pvalue,
           sps.ttest_rel(_values(f"{C} {P}"), _values(f"{M} {P}")).pvalue,
           sps.ttest_rel(_values(f"{M} {P}"), _values(f"{M} {O}")).pvalue,
           sps.ttest_rel(_values(f"{C} {P}"), _values(f"{C} {O}")).pvalue,
           sps.ttest_rel(np.subtract(_values(f"{C} {P}"), _values(f"{C} {O}")),
                         np.subtract(_values(f"{M} {P}"), _values(f"{M} {O}"))).pvalue]
    assert [c["p_value"] for c in comps] == pytest.approx(raw)
    assert [c["p_holm"] for c in comps] == pytest.approx(multipletests(raw, method="holm")[1])  # the whole family
    assert [(c["from"], c["changed"]) for c in comps[:4]] == [(M, C), (M, C), (O, P), (O, P)]  # gallery labels
    # the minimum detectable effect at Holm's strictest step, alpha / 5: power 0.8 there by statsmodels
    from statsmodels.stats.power import TTestPower
    for c in comps:
        assert c["mde_alpha"] == 0.01
        assert TTestPower().power(effect_size=c["mde"] / c["std_diff"], nobs=3, alpha=0.01) == pytest.approx(0.8, abs=1e-4)
    inter = comps[4]
    assert inter["diff"] == pytest.approx(np.mean(np.subtract(_values(f"{C} {P}"), _values(f"{C} {O}"))
                                                  - np.subtract(_values(f"{M} {P}"), _values(f"{M} {O}"))))
    assert inter["verdict"].startswith("significantly lower")
    sentence = comparison_sentence(inter)
    assert sentence.startswith(f"Interaction: the effect of {C} (vs {M}) at {P} minus the same effect at {O}: "
                               "significantly lower")


def test_one_factor_compares_each_level_with_the_reference_and_counts_untested_ones_in_the_family():
    spec = parse_spec(dict(name="k", model="cnn", factor=dict(name="kernel_size", levels=[3, 5, 7])))
    acc = {"kernel_size=3": {0: 0.9180, 1: 0.9132, 2: 0.9166},
           "kernel_size=5": {0: 0.9180, 1: 0.9132, 2: 0.9166},  # the same predictions: nothing to test
           "kernel_size=7": {0: 0.9125, 1: 0.9101, 2: 0.9150}}
    same, seven = design_comparisons(spec, {k: {s: round(a * 10_000) for s, a in v.items()} for k, v in acc.items()},
                                     10_000)
    assert same["identical"] and same["verdict"] == "identical on every seed (n=3)" and math.isnan(same["p_holm"])
    assert all(math.isnan(x) for x in same["ci95"])  # no zero-width interval
    raw = sps.ttest_rel([0.9125, 0.9101, 0.9150], [0.9180, 0.9132, 0.9166]).pvalue
    assert seven["p_holm"] == pytest.approx(multipletests([raw, 1.0], method="holm")[1][0])  # a family of two
    assert comparison_sentence(same) == "kernel_size=5 vs kernel_size=3: test accuracy identical on every seed (n=3)."
    from convlens.display import comparisons_title
    from convlens.experiments.analysis import without_nan
    for comparisons in ([same, seven], without_nan([same, seven])):  # as computed, and as summary.json holds them
        assert comparisons_title(comparisons) == ("paired by seed; one Holm family of 2, 1 of them not testable "
                                                  "(fewer than 2 paired seeds, or no spread) and counted as p = 1")
    assert comparisons_title([seven]) == "paired by seed; one Holm family of 1"
    assert comparisons_title([same]).startswith("paired by seed; none could be tested")


def test_no_significant_difference_carries_its_minimum_detectable_effect():
    spec = parse_spec(dict(name="k", model="cnn", factor=dict(name="kernel_size", levels=[3, 5])))
    acc = {"kernel_size=3": {0: 0.918, 1: 0.913, 2: 0.9166}, "kernel_size=5": {0: 0.915, 1: 0.9161, 2: 0.9142}}
    (c,) = design_comparisons(spec, {k: {s: round(a * 10_000) for s, a in v.items()} for k, v in acc.items()}, 10_000)
    assert c["verdict"].startswith("no significant difference")
    sentence = comparison_sentence(c)
    assert f"differences smaller than {c['mde'] * 100:.2f} pp had under 80% power to be detected" in sentence
    assert c["mde"] > abs(c["diff"])


def test_per_example_evidence_matches_statsmodels_mcnemar_and_finds_the_images_flipped_on_every_seed():
    from statsmodels.stats.contingency_tables import mcnemar

    from convlens.experiments.comparisons import evidence_sentence, per_example_evidence
    rng = np.random.default_rng(0)
    true = rng.integers(0, 10, 500)
    level, reference = {}, {}
    for seed in range(3):
        ref = np.where(rng.random(500) < 0.9, true, (true + 1) % 10)
        lev = np.where(rng.random(500) < 0.8, true, (true + 2) % 10)
        ref[:5], lev[:5] = true[:5], (true[:5] + 3) % 10  # images 0-4: reference right, level wrong, every seed
        ref[5:7], lev[5:7] = (true[5:7] + 1) % 10, true[5:7]  # images 5-6: the other way round
        level[seed], reference[seed] = (lev, true), (ref, true)
    e = per_example_evidence(level, reference)
    raw = []
    for s, entry in zip(range(3), e["per_seed"]):
        right_l, right_r = level[s][0] == true, reference[s][0] == true
        table = [[np.sum(right_l & right_r), np.sum(right_l & ~right_r)],
                 [np.sum(~right_l & right_r), np.sum(~right_l & ~right_r)]]
        assert (entry["gained"], entry["lost"]) == (table[0][1], table[1][0])
        raw.append(mcnemar(table, exact=True).pvalue)
        assert entry["p_value"] == pytest.approx(raw[-1])
        assert entry["agreement"] == pytest.approx(np.mean(level[s][0] == reference[s][0]))
    assert [x["p_holm"] for x in e["per_seed"]] == pytest.approx(multipletests(raw, method="holm")[1])
    lost = np.logical_and.reduce([(reference[s][0] == true) & (level[s][0] != true) for s in range(3)])
    assert e["lost_every_seed"] == lost.sum() >= 5 and [x["index"] for x in e["lost_examples"]][:5] == [0, 1, 2, 3, 4]
    assert {5, 6} <= {x["index"] for x in e["gained_examples"]}
    assert evidence_sentence({"label": "a vs b", "evidence": e}).startswith(
        f"a vs b, image by image (McNemar's exact test per seed, Holm-corrected across the seeds): seed 0: "
        f"{e['per_seed'][0]['gained']} gained, {e['per_seed'][0]['lost']} lost")
    same = np.mean([np.mean(level[s][0] == reference[s][0]) for s in range(3)])
    assert f"The two predict the same class for {same * 100:.1f}% of the 500 test images (mean over seeds); " in \
        evidence_sentence({"label": "a vs b", "evidence": e})
    gained = e["gained_every_seed"]
    assert f"; {gained:,} images are gained and {e['lost_every_seed']} lost on every seed." in \
        evidence_sentence({"label": "a vs b", "evidence": e})
    one = evidence_sentence({"label": "a vs b", "evidence": {**e, "gained_every_seed": 1}})
    assert one.endswith(f"; 1 image is gained and {e['lost_every_seed']} lost on every seed.")


def test_untested_comparisons_do_not_make_levels_indistinguishable():
    from convlens.experiments.analysis import conclusions
    spec = parse_spec(dict(name="k", model="cnn", factor=dict(name="kernel_size", levels=[3, 5, 7])))
    counts = {"kernel_size=3": {0: 9180, 1: 9132, 2: 9166}, "kernel_size=5": {0: 9150, 1: 9161, 2: 9142}}
    comps = design_comparisons(spec, counts, 10_000)  # kernel_size=7 never finished: not tested
    levels = [{"label": k, "n": len(v), "test_accuracy": {"mean": np.mean(list(v.values())) / 10_000}}
              for k, v in counts.items()]
    lines = conclusions(levels, comps)
    assert comps[1]["verdict"].startswith("not tested") and not any("highest mean" in line for line in lines)
    counts["kernel_size=7"] = {0: 9170, 1: 9140, 2: 9160}
    lines = conclusions(levels, design_comparisons(spec, counts, 10_000))
    assert lines[-1] == ("No level differs significantly from the reference (kernel_size=3) after Holm's correction, "
                         "so the highest mean (kernel_size=3) is no evidence of a better setting; the other levels "
                         "were not compared with each other.")
    tied = [{**lv, "test_accuracy": {"mean": 0.9}} for lv in levels]  # two levels, one mean: neither is highest
    assert conclusions(tied, design_comparisons(spec, counts, 10_000))[-1] == (
        "No level differs significantly from the reference (kernel_size=3) after Holm's correction, so the highest "
        "means (kernel_size=3, kernel_size=5, tied) are no evidence of a better setting; the other levels were not "
        "compared with each other.")
    two = parse_spec(dict(name="k", model="cnn", factor=dict(name="kernel_size", levels=[3, 5])))
    del counts["kernel_size=7"]
    assert conclusions(levels, design_comparisons(two, counts, 10_000))[-1] == (  # a family of one: no correction
        "No level differs significantly from the reference (kernel_size=3), so the highest mean (kernel_size=3) is "
        "no evidence of a better setting.")


def test_a_detectable_effect_beyond_100_pp_is_said_as_none():
    spec = parse_spec(dict(name="k", model="cnn", factor=dict(name="kernel_size", levels=[3, 5])))
    (c,) = design_comparisons(spec, {"kernel_size=3": {0: 400, 1: 300}, "kernel_size=5": {0: 200, 1: 500}}, 1000)
    assert c["mde"] > 1  # two seeds that disagree this much: no accuracy difference could be detected
    sentence = comparison_sentence(c)
    assert "no difference an accuracy can show (up to 100 pp) had 80% power to be detected" in sentence
    assert "pp had under" not in sentence


def test_an_unadjusted_interval_that_excludes_zero_beside_no_significant_difference_says_why():
    """The interval is the paired t interval of one comparison; the verdict follows the family's Holm-corrected p.
    Kernel 5 vs 3 below: scipy's interval excludes 0 but Holm over the 2 comparisons does not find it."""
    spec = parse_spec(dict(name="k", model="cnn", factor=dict(name="kernel_size", levels=[3, 5, 7])))
    counts = {"kernel_size=3": {0: 9000, 1: 9010, 2: 9005}, "kernel_size=5": {0: 9030, 1: 9060, 2: 9065},
              "kernel_size=7": {0: 8970, 1: 8960, 2: 8945}}
    five, seven = design_comparisons(spec, counts, 10_000)
    diff = np.array([30, 50, 60]) / 10_000
    low, high = sps.ttest_rel(diff, np.zeros(3)).confidence_interval()
    raw = [sps.ttest_rel(diff, np.zeros(3)).pvalue, sps.ttest_rel(np.array([-30, -50, -60]), np.zeros(3)).pvalue]
    assert low > 0 and five["p_holm"] == pytest.approx(multipletests(raw, method="holm")[1][0])
    assert five["p_holm"] > 0.05
    assert five["family"] == seven["family"] == 2
    assert (f"mean difference +0.47 pp, unadjusted 95% CI {low * 100:+.2f} to {high * 100:+.2f} pp (it excludes 0, "
            "but the test corrected over the family's 2 comparisons does not)") in comparison_sentence(five)
    # the seeds the observed difference would need plan a new experiment, not more seeds for this one
    assert five["seeds_needed"] > 3 and (f"would take roughly {five['seeds_needed']} seeds (for a new experiment: "
                                         "adding seeds to this one until its test passes would make its p-value too "
                                         "small)") in comparison_sentence(five)
    # a family of one: its interval and its p come from the same t-test, so it is not called unadjusted
    (alone,) = design_comparisons(parse_spec(dict(name="k", model="cnn", factor=dict(name="kernel_size",
                                                                                    levels=[3, 5]))),
                                  {k: counts[k] for k in ("kernel_size=3", "kernel_size=5")}, 10_000)
    assert f", 95% CI {low * 100:+.2f} to {high * 100:+.2f} pp" in comparison_sentence(alone)
    assert alone["verdict"].startswith("significantly higher") and "excludes 0" not in comparison_sentence(alone)


def test_with_nothing_significant_in_a_grid_only_the_tested_comparisons_are_claimed():
    from convlens.experiments.analysis import conclusions
    counts = {f"{M} {O}": {0: 880, 1: 870, 2: 875}, f"{M} {P}": {0: 879, 1: 874, 2: 873},
              f"{C} {O}": {0: 878, 1: 873, 2: 872}, f"{C} {P}": {0: 881, 1: 870, 2: 876}}
    comps = design_comparisons(GRID, counts, 1000)
    assert all(c["verdict"].startswith("no significant") for c in comps)
    levels = [{"label": k, "n": 3, "test_accuracy": {"mean": np.mean(list(v.values())) / 1000}}
              for k, v in counts.items()]
    assert conclusions(levels, comps)[-1] == (
        f"No comparison above is significant after Holm's correction, so the highest mean ({C} {P}) is no evidence "
        "of a better setting; cells that differ in both factors were not compared.")
