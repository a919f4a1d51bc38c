"""Statistics for comparisons over seeds: pure functions, no I/O.

Runs of one experiment are paired by seed: the same seed gives the same validation split and data order
(and, for levels with the same architecture shape, the same initialisation stream), so differences are taken
per seed and tested with a paired t-test. Several levels against one reference are corrected with Holm's
step-down method. Wording follows the test, never the raw difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

ALPHA = 0.05


@dataclass(frozen=True)
class MeanCI:
    """n, mean, sample std (ddof=1) and the 95% t confidence interval of the mean."""

    n: int
    mean: float
    std: float
    ci95: tuple[float, float]

    def to_dict(self) -> dict:
        return asdict(self)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> MeanCI:
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return MeanCI(0, math.nan, math.nan, (math.nan, math.nan))
    mean = float(x.mean())
    if n == 1:
        return MeanCI(1, mean, math.nan, (math.nan, math.nan))
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return MeanCI(n, mean, std, (mean - half, mean + half))


@dataclass(frozen=True)
class PairedComparison:
    """``level - reference``, paired by seed."""

    n: int
    diff: float  # mean of the per-seed differences
    ci95: tuple[float, float]
    t: float
    p_value: float  # two-sided paired t-test
    effect_size: float  # Cohen's d_z: mean difference / std of the differences

    def to_dict(self) -> dict:
        return asdict(self)


def paired_comparison(level: Sequence[float], reference: Sequence[float]) -> PairedComparison:
    """Paired t-test of ``level`` against ``reference`` (equal length, same seed order)."""
    a, b = np.asarray(level, dtype=float), np.asarray(reference, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal lengths, got {len(a)} and {len(b)}")
    d = a - b
    n = len(d)
    s = mean_ci(d)
    if n < 2 or s.std == 0:  # no spread: the t-test is undefined
        return PairedComparison(n, s.mean, s.ci95, math.nan, math.nan, math.nan)
    result = sps.ttest_rel(a, b)
    return PairedComparison(n, s.mean, s.ci95, float(result.statistic), float(result.pvalue), s.mean / s.std)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN and is not counted."""
    p = np.asarray(p_values, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), math.nan)
    m = len(valid)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def format_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


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
    if math.isnan(p_adjusted):
        return f"not tested (identical differences across all n={n} seeds)"
    if p_adjusted < alpha:
        word = higher if comparison.diff > 0 else lower
        return f"significantly {word} ({p_equals(p_adjusted)}, n={n})"
    return f"no significant difference ({p_equals(p_adjusted)}, n={n})"
