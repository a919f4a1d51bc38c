"""Statistics for comparisons over seeds: pure functions, no I/O.

Runs of one experiment are paired by seed: the same seed gives the same validation split and data order
(and, for levels with the same architecture shape, the same initialisation stream), so differences are taken
per seed and tested with a paired t-test. The comparisons one report prints together are one family, corrected
with Holm's step-down method; a comparison that cannot be tested counts in the family as p = 1. Wording follows
the (corrected) test, never the raw difference, and every "no significant difference" comes with the smallest
effect the test could have seen (``minimum_detectable_effect``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize
from scipy import stats as sps

ALPHA = 0.05
POWER = 0.8  # for the minimum detectable effect


@dataclass(frozen=True)
class MeanCI:
    """n, mean, sample std (ddof=1) and the 95% t confidence interval of the mean (cut to the bounds given)."""

    n: int
    mean: float
    std: float
    ci95: tuple[float, float]

    def to_dict(self) -> dict:
        return asdict(self)


def _within(ci: tuple[float, float], bounds: tuple[float, float] | None) -> tuple[float, float]:
    """``ci`` cut to the values the quantity can take (an accuracy's 0 to 1). The mean lies there for certain, so
    the cut interval covers it exactly as often as the t interval; with 2 seeds that one can run to -68% or 126%.
    The cut interval is no longer symmetric about the mean."""
    if bounds is None or math.isnan(ci[0]):
        return ci
    return float(max(ci[0], bounds[0])), float(min(ci[1], bounds[1]))


def mean_ci(values: Sequence[float], confidence: float = 0.95, bounds: tuple[float, float] | None = None) -> MeanCI:
    """``bounds``: the range the values' mean can take; the interval is cut to it."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return MeanCI(0, math.nan, math.nan, (math.nan, math.nan))
    mean = float(x.mean())
    if n == 1:
        return MeanCI(1, mean, math.nan, (math.nan, math.nan))
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return MeanCI(n, mean, std, _within((mean - half, mean + half), bounds))


@dataclass(frozen=True)
class PairedComparison:
    """``level - reference``, paired by seed."""

    n: int
    diff: float  # mean of the per-seed differences
    ci95: tuple[float, float]  # NaN when the differences have no spread: a zero-width interval is never shown
    t: float
    p_value: float  # two-sided paired t-test; NaN when it cannot be computed (see ``identical``)
    effect_size: float  # Cohen's d_z: mean difference / std of the differences
    std_diff: float  # sample std of the per-seed differences
    mde: float  # smallest |diff| this test detects with 80% power at alpha 0.05, given n and std_diff
    identical: bool  # the difference is exactly 0 on every seed (e.g. the same predictions): nothing to test

    def to_dict(self) -> dict:
        return asdict(self)


def paired_comparison(level: Sequence[float], reference: Sequence[float], *, scale: float = 1.0,
                      mde_alpha: float = ALPHA, bounds: tuple[float, float] | None = None) -> PairedComparison:
    """Paired t-test of ``level`` against ``reference`` (equal length, same seed order).

    Give integer counts (images correct) and ``scale`` = 1 / images: the differences are then exact integers, so
    equal predictions differ by exactly 0 and a constant gain has exactly no spread, instead of float noise
    that a t-test would call significant; differences, intervals and the MDE are reported times ``scale``.
    ``mde_alpha``: the level at which the minimum detectable effect is computed (the family's strictest).
    ``bounds``: the range the mean difference can take (after ``scale``); the interval is cut to it.
    """
    a, b = np.asarray(level), np.asarray(reference)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    d = (a - b).astype(float)
    n = len(d)
    s = mean_ci(d)
    identical = n > 0 and bool(np.all(d == 0))
    if n < 2 or s.std == 0:  # no spread: the t-test and the interval are undefined
        return PairedComparison(n, s.mean * scale, (math.nan, math.nan), math.nan, math.nan, math.nan,
                                s.std * scale, math.nan, identical)
    result = sps.ttest_1samp(d, 0.0)  # the paired t-test, on the exact differences
    return PairedComparison(n, s.mean * scale, _within((s.ci95[0] * scale, s.ci95[1] * scale), bounds),
                            float(result.statistic),
                            float(result.pvalue), s.mean / s.std, s.std * scale,
                            minimum_detectable_effect(s.std, n, mde_alpha) * scale, False)


def paired_t_power(effect: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t-test with n pairs for a standardised effect d_z = mean / std of diffs."""
    df, crit = n - 1, float(sps.t.ppf(1 - alpha / 2, n - 1))
    shift = abs(effect) * math.sqrt(n)  # noncentrality
    # scipy's nct returns NaN deep in a tail: the wrong-side tail is then ~0, never a reason to call power 1
    upper = float(sps.nct.sf(crit, df, shift))
    lower = float(np.nan_to_num(sps.nct.cdf(-crit, df, shift), nan=0.0))
    return min(1.0, (upper if not math.isnan(upper) else 1.0) + lower)


def minimum_detectable_effect(std_diff: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest |mean difference| the paired t-test at ``alpha`` detects with probability ``power``, for n
    seeds whose differences spread like ``std_diff`` (noncentral t). NaN when n < 2 or there is no spread."""
    if n < 2 or not std_diff > 0:
        return math.nan
    high = 1.0
    while paired_t_power(high, n, alpha) < power:  # bracket the root; power rises with the effect
        high *= 2
    d = optimize.brentq(lambda e: paired_t_power(e, n, alpha) - power, 1e-9, high, xtol=1e-10)
    return float(d * std_diff)


def seeds_needed(effect: float, std_diff: float, alpha: float = ALPHA, power: float = POWER,
                 max_seeds: int = 10_000) -> int | None:
    """The fewest seeds (pairs) with which the paired t-test detects ``effect`` with ``power``; None above max or
    when the differences show no spread to plan from."""
    if not std_diff > 0:
        return None
    enough = lambda n: paired_t_power(abs(effect) / std_diff, n, alpha) >= power  # noqa: E731 (rises with n)
    low, high = 1, 2
    while not enough(high):  # double until enough, then bisect: O(log n) power evaluations
        if high >= max_seeds:
            return None
        low, high = high, min(2 * high, max_seeds)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def sampling_noise(accuracy: float, n_test: int) -> float:
    """The standard error of one run's test accuracy from the finite test set alone: sqrt(p (1 - p) / N)."""
    return math.sqrt(accuracy * (1 - accuracy) / n_test)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p for two classifiers on the same images: b images only the first gets right, c only
    the second; under no difference each discordant image is a fair coin (binomial test of b of b + c at 1/2)."""
    n = b + c
    return 1.0 if n == 0 else float(sps.binomtest(b, n, 0.5).pvalue)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1).

    NaN marks a comparison that could not be tested: it stays NaN in the output but counts in the family
    as p = 1, so leaving a comparison untested never makes the others look stronger.
    """
    p = np.asarray(p_values, dtype=float)
    q = np.where(np.isnan(p), 1.0, p)
    m = len(q)
    adjusted = np.empty(m)
    running = 0.0
    for rank, idx in enumerate(np.argsort(q, kind="stable")):
        running = max(running, min(1.0, (m - rank) * q[idx]))
        adjusted[idx] = running
    adjusted[np.isnan(p)] = math.nan
    return adjusted.tolist()


def format_p(p: float, alpha: float = ALPHA) -> str:
    """'0.012', '<0.001'; with more decimals where three would put p on the other side of ``alpha`` than it is
    ('0.0496', not '0.050' beside "significantly higher")."""
    if math.isnan(p):
        return "n/a"
    if p < 0.001:
        return "<0.001"
    for decimals in range(3, 9):
        text = f"{p:.{decimals}f}"
        if (float(text) < alpha) == (p < alpha):
            return text
    return f"<{alpha:g}"  # within 1e-8 below alpha: the side is what matters


def p_equals(p: float) -> str:
    """'p=0.012' or 'p<0.001'."""
    text = format_p(p)
    return f"p{text}" if text.startswith("<") else f"p={text}"


def verdict(comparison: PairedComparison, p_adjusted: float, *, alpha: float = ALPHA,
            higher: str = "higher", lower: str = "lower") -> str:
    """The sentence a report may print: it follows the (adjusted) test, never the raw difference."""
    n = comparison.n
    if n == 0:
        return "not tested (no seed finished in both levels)"
    if n < 2:
        return f"not tested (n={n}: one seed has no spread)"
    if comparison.identical:
        return f"identical on every seed (n={n})"
    if math.isnan(p_adjusted):
        return f"not tested (the same difference on all n={n} seeds)"
    if p_adjusted < alpha:
        word = higher if comparison.diff > 0 else lower
        return f"significantly {word} ({p_equals(p_adjusted)}, n={n})"
    return f"no significant difference ({p_equals(p_adjusted)}, n={n})"
