"""Benjamini–Hochberg control of the false discovery rate across a grid of p-values.

With m p-values sorted ascending p(1) ≤ … ≤ p(m), BH rejects the k smallest where k is the largest
i with p(i) ≤ i·q/m. The adjusted p-value of p(i) is min over j ≥ i of min(1, m·p(j)/j), the same
as `scipy.stats.false_discovery_control(p, method="bh")`; a p-value is rejected at level q exactly
when its adjusted p-value is ≤ q.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_Q = 0.05


def bh_adjusted(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values, in the input order (empty in, empty out)."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError("p-values must be a flat sequence")
    if p.size == 0:
        return p.copy()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("p-values must lie in [0, 1]")
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    # The running minimum from the largest p-value down keeps the adjusted values monotone.
    monotone = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(monotone, 1.0)
    return adjusted


def bh_reject(p_values: Sequence[float], q: float = DEFAULT_Q) -> np.ndarray:
    """Which hypotheses Benjamini–Hochberg rejects at false discovery rate `q` (booleans)."""
    if not 0 < q < 1:
        raise ValueError(f"q must lie in (0, 1), got {q}")
    return bh_adjusted(p_values) <= q
