"""Statistics against scipy (the oracle) on fixed numbers, and properties of the Holm correction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats as sps

from convlens.stats import (
    holm,
    mean_ci,
    minimum_detectable_effect,
    paired_comparison,
    paired_t_power,
    sampling_noise,
    seeds_needed,
    verdict,
)

ACC_3x3 = [0.9180, 0.9132, 0.9166]  # REFERENCE.md: the write-ups' Keras recipe, random seeds 42, 1, 2
ACC_5x5 = [0.9125, 0.9101, 0.9150]  # made-up paired partner values


def test_mean_ci_matches_scipy():
    s = mean_ci(ACC_3x3)
    assert s.n == 3 and s.mean == pytest.approx(np.mean(ACC_3x3))
    assert s.std == pytest.approx(np.std(ACC_3x3, ddof=1))
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(ACC_3x3), scale=sps.sem(ACC_3x3))
    assert s.ci95 == pytest.approx((lo, hi))
    assert s.std * 100 == pytest.approx(0.246, abs=0.001)  # REFERENCE.md: std 0.25 pp


def test_mean_ci_of_one_value_has_no_spread():
    s = mean_ci([0.9])
    assert s.n == 1 and s.mean == 0.9 and math.isnan(s.std) and math.isnan(s.ci95[0])


def test_paired_comparison_matches_scipy_ttest_rel():
    c = paired_comparison(ACC_5x5, ACC_3x3)
    ref = sps.ttest_rel(ACC_5x5, ACC_3x3)
    d = np.subtract(ACC_5x5, ACC_3x3)
    assert c.n == 3 and c.diff == pytest.approx(d.mean())
    assert c.t == pytest.approx(ref.statistic) and c.p_value == pytest.approx(ref.pvalue)
    assert c.ci95 == pytest.approx(sps.t.interval(0.95, 2, loc=d.mean(), scale=sps.sem(d)))
    assert c.effect_size == pytest.approx(d.mean() / d.std(ddof=1))


def test_an_interval_past_what_an_accuracy_can_be_is_cut_to_it_and_one_within_is_not_touched():
    # two seeds of a tiny run: the t interval of the mean runs from about -68% to 126% (1 degree of freedom)
    wide = [0.2066, 0.3700]
    lo, hi = sps.t.interval(0.95, 1, loc=np.mean(wide), scale=sps.sem(wide))
    assert lo < 0 and hi > 1
    assert mean_ci(wide).ci95 == pytest.approx((lo, hi))  # without bounds: scipy's interval
    s = mean_ci(wide, bounds=(0, 1))
    assert s.ci95 == (0, 1) and s.mean == pytest.approx(np.mean(wide)) and s.std == pytest.approx(np.std(wide, ddof=1))
    assert mean_ci(ACC_3x3, bounds=(0, 1)).ci95 == pytest.approx(
        sps.t.interval(0.95, 2, loc=np.mean(ACC_3x3), scale=sps.sem(ACC_3x3)))
    assert mean_ci([0.995, 0.9999, 0.98], bounds=(0, 1)).ci95[1] == 1  # only the side that passes is cut
    # a paired difference in whole images, as fractions of 359: cut to what a difference can be (-1 to 1)
    c = paired_comparison([250, 128, 300], [90, 120, 60], scale=1 / 359, bounds=(-1, 1))
    d = (np.array([250, 128, 300]) - [90, 120, 60]) / 359
    raw = sps.t.interval(0.95, 2, loc=d.mean(), scale=sps.sem(d))
    assert raw[0] < -1 or raw[1] > 1
    assert c.ci95 == pytest.approx((max(raw[0], -1), min(raw[1], 1)))
    assert c.p_value == pytest.approx(sps.ttest_1samp(d, 0).pvalue)  # the test itself is untouched


def test_paired_comparison_without_spread_is_not_tested_and_shows_no_interval():
    c = paired_comparison([0.9102, 0.9201], [0.9101, 0.9200])  # the same difference on each seed: t undefined
    assert math.isnan(c.p_value) and all(math.isnan(x) for x in c.ci95) and not c.identical
    assert verdict(c, c.p_value) == "not tested (the same difference on all n=2 seeds)"
    with pytest.raises(ValueError, match="equal lengths"):
        paired_comparison([0.9, 0.8], [0.9])


def test_identical_predictions_are_identical_not_significant():
    # From counts (correct / n as float64) equal predictions give exactly equal accuracies...
    counts = [9180, 9132, 9166]
    same = paired_comparison([c / 10_000 for c in counts], [c / 10_000 for c in counts])
    assert same.identical and same.diff == 0 and math.isnan(same.p_value) and all(math.isnan(x) for x in same.ci95)
    assert verdict(same, math.nan) == "identical on every seed (n=3)"



def test_a_constant_gain_in_whole_images_has_no_spread_and_is_not_called_significant():
    counts = [9180, 9132, 9166]
    floats = paired_comparison([(c + 25) / 10_000 for c in counts], [c / 10_000 for c in counts])
    assert floats.p_value < 1e-20  # from fractions, rounding noise looks like an enormously significant effect
    exact = paired_comparison([c + 25 for c in counts], counts, scale=1 / 10_000)  # from counts: the truth
    assert exact.diff == 0.0025 and exact.std_diff == 0 and math.isnan(exact.p_value) and not exact.identical
    assert verdict(exact, math.nan) == "not tested (the same difference on all n=3 seeds)"
    assert all(math.isnan(x) for x in exact.ci95)


def test_power_and_minimum_detectable_effect_match_statsmodels():
    from statsmodels.stats.power import TTestPower
    oracle = TTestPower()
    for n, d in ((3, 1.5), (5, 0.8), (10, 0.5)):
        assert paired_t_power(d, n) == pytest.approx(oracle.power(effect_size=d, nobs=n, alpha=0.05), abs=1e-6)
    # strict alphas (a Holm family's first step), where scipy's noncentral t returns NaN in a tail
    for n, alpha in ((3, 0.01), (3, 0.05 / 5), (4, 0.05 / 3)):
        mde = minimum_detectable_effect(1.0, n, alpha)
        assert oracle.power(effect_size=mde, nobs=n, alpha=alpha) == pytest.approx(0.8, abs=1e-4)
    # n = 2 (one degree of freedom): statsmodels' own power() is NaN there, so simulate the paired t-test
    mde = minimum_detectable_effect(1.0, 2)
    assert mde == pytest.approx(oracle.solve_power(effect_size=None, nobs=2, alpha=0.05, power=0.8), abs=1e-3)
    d = np.random.default_rng(0).normal(mde, 1.0, size=(200_000, 2))
    t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(2))
    assert np.mean(np.abs(t) > sps.t.ppf(0.975, 1)) == pytest.approx(0.8, abs=0.005)  # not 6.5 sigma: no shortcut
    std = np.std(np.subtract(ACC_5x5, ACC_3x3), ddof=1)
    d80 = oracle.solve_power(effect_size=None, nobs=3, alpha=0.05, power=0.8)
    assert minimum_detectable_effect(std, 3) == pytest.approx(d80 * std, rel=1e-4)
    assert paired_comparison(ACC_5x5, ACC_3x3).mde == pytest.approx(d80 * std, rel=1e-4)
    assert math.isnan(minimum_detectable_effect(0.0, 3)) and math.isnan(minimum_detectable_effect(0.01, 1))
    # seeds needed: the first n whose power reaches 80%, checked on both sides
    n = seeds_needed(0.002, 0.003)
    assert oracle.power(effect_size=0.002 / 0.003, nobs=n, alpha=0.05) >= 0.8
    assert oracle.power(effect_size=0.002 / 0.003, nobs=n - 1, alpha=0.05) < 0.8


def test_sampling_noise_is_the_binomial_standard_error():
    assert sampling_noise(0.92, 10_000) == pytest.approx(math.sqrt(0.92 * 0.08 / 10_000))  # 0.27 pp


def test_holm_matches_hand_computation():
    # p sorted: 0.01 (x3 = 0.03), 0.02 (x2 = 0.04), 0.04 (x1 = 0.04); back in input order.
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    # sorted: 0.02 x 3 = 0.06, 0.03 x 2 = 0.06, 0.5 x 1 = 0.5
    assert holm([0.02, 0.03, 0.5]) == pytest.approx([0.06, 0.06, 0.5])
    # An untested comparison counts as p = 1: the family has 3 members, not 2 (0.01 x 3, then 0.2 x 2).
    adjusted = holm([0.2, math.nan, 0.01])
    assert adjusted[0] == pytest.approx(0.4) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.03)


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=12))
def test_holm_is_bounded_monotone_and_no_smaller_than_raw(p):
    adjusted = holm(p)
    assert all(a >= raw - 1e-12 and a <= 1.0 for a, raw in zip(adjusted, p))
    order = np.argsort(p, kind="stable")
    assert all(adjusted[order[i]] <= adjusted[order[i + 1]] + 1e-12 for i in range(len(p) - 1))
    assert min(adjusted) == pytest.approx(min(1.0, len(p) * min(p)))


def test_wording_follows_the_test_not_the_difference():
    strong = paired_comparison([0.93, 0.931, 0.929, 0.932], [0.91, 0.912, 0.909, 0.911])
    assert verdict(strong, strong.p_value) == "significantly higher (p<0.001, n=4)"  # not "p=<0.001"
    assert verdict(paired_comparison([0.91, 0.912, 0.909, 0.911], [0.93, 0.931, 0.929, 0.932]),
                   strong.p_value).startswith("significantly lower")
    noisy = paired_comparison([0.915, 0.910, 0.921], [0.918, 0.913, 0.917])
    assert verdict(noisy, noisy.p_value) == f"no significant difference (p={noisy.p_value:.3f}, n=3)"
    assert verdict(paired_comparison([0.92], [0.91]), math.nan) == "not tested (n=1: one seed has no spread)"


@pytest.mark.parametrize("p, text", [(0.012, "0.012"), (0.0004, "<0.001"), (0.5, "0.500"), (0.05, "0.050"),
                                     (0.0504, "0.050"), (0.04949, "0.049"), (0.04962, "0.0496"),
                                     (0.0499999, "0.0499999"), (0.049999999999, "<0.05")])
def test_a_printed_p_stays_on_its_side_of_alpha(p, text):
    """Three decimals, unless they would round a p below 0.05 up to '0.050' beside "significantly higher"."""
    from convlens.stats import format_p
    assert format_p(p) == text
    assert text.startswith("<") or (float(text) < 0.05) == (p < 0.05)  # "<0.05", "<0.001": below by definition
