"""95 % confidence intervals computed from aggregates: Wilson, DeLong, normal approximation.

Every function takes counts or sums (never raw rows) and returns `(low, high)`, or `(None, None)`
when the interval is undefined (no trials, a single class). Bounds are clipped to the statistic's
range so a CI never leaves [0, 1] for a proportion or goes below zero for a cost.
"""

from __future__ import annotations

import math

from scipy.stats import norm

Z95 = float(norm.ppf(0.975))  # 1.959963984540054

Interval = tuple[float | None, float | None]


def wilson(successes: int, trials: int, z: float = Z95) -> Interval:
    """Wilson score interval: (p + z²/2n ± z·√(p(1−p)/n + z²/4n²)) / (1 + z²/n); None without trials."""
    if trials <= 0:
        return None, None
    p = successes / trials
    z2 = z * z
    denominator = 1.0 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / trials + z2 / (4.0 * trials * trials)) / denominator
    # At p = 0 (or 1) the bound is exactly 0 (or 1); in floating point centre − half is ~1e-18.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    return low, 1.0 if successes == trials else min(1.0, centre + half)


def delong(
    auc: float, n_pos: int, n_neg: int, s10_sum_sq: float, s01_sum_sq: float, z: float = Z95
) -> Interval:
    """DeLong interval for AUROC: AUC ± z·√(S10/P + S01/N), clipped to [0, 1].

    `s10_sum_sq` = Σ over positives (V10 − AUC)² and `s01_sum_sq` = Σ over negatives (V01 − AUC)²,
    where V10(x) = (#neg < x + ½ #neg = x)/N and V01(y) = (#pos > y + ½ #pos = y)/P are the
    structural components; S10 and S01 are those sums over P − 1 and N − 1 (DeLong et al., 1988).
    Needs at least two rows of each class.
    """
    if n_pos < 2 or n_neg < 2:
        return None, None
    variance = max(0.0, s10_sum_sq) / (n_pos - 1) / n_pos + max(0.0, s01_sum_sq) / (n_neg - 1) / n_neg
    half = z * math.sqrt(variance)
    return max(0.0, auc - half), min(1.0, auc + half)


def mean_normal(n: int, total: float, total_sq: float, z: float = Z95) -> Interval:
    """Normal-approximation interval of a mean from Σx and Σx²: x̄ ± z·s/√n (s with ddof 1), floored at 0."""
    if n < 2:
        return None, None
    mean = total / n
    return normal(n, mean, max(0.0, (total_sq - n * mean * mean) / (n - 1)), z)


def normal(n: int, mean: float, variance: float | None, z: float = Z95) -> Interval:
    """x̄ ± z·√(s²/n) from the mean and the sample variance s² (ddof 1), floored at 0; None below two."""
    if n < 2 or variance is None:
        return None, None
    half = z * math.sqrt(max(0.0, variance) / n)
    return max(0.0, mean - half), mean + half
