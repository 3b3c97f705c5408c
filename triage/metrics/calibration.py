"""Decision rate and calibration per window × version × slice (DESIGN §4).

- decision rate = share of rows with `_decision` true, over all rows of the cell (labelled or not);
- on the rows labelled as of T (label > 0 is positive), with p the score:
  - ECE = Σ_b (n_b/n)·|mean p_b − positive rate_b| over 10 equal-width bins, assigned exactly as
    scikit-learn's `calibration_curve(strategy="uniform")`: bin = #{inner edges e < p} with the
    inner edges of `np.linspace(0, 1, 11)`, so a bin is right-closed, 0 falls in the first and 1.0
    in the last;
  - equal-mass ECE: the same sum over `strategy="quantile"` bins — edges are `np.percentile` of
    the cell's labelled scores at `np.linspace(0, 1, 11) * 100` (numpy's linear method, reproduced
    step by step from the per-score counts), same assignment rule; duplicate edges leave empty
    bins, which weigh 0;
  - MCE = max_b |mean p_b − positive rate_b| over the non-empty equal-width bins;
  - reliability points: the non-empty equal-width bins;
  - Brier = mean (y − p)²; log loss = −mean(y·ln p' + (1−y)·ln(1−p')), p' = p clipped to
    [1e-15, 1 − 1e-15].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np

from triage.metrics.frame import Scope
from triage.metrics.results import CalibrationRow, ReliabilityPoint, not_enough
from triage.metrics.source import CellCounts, LabelledCells, ScoreCounts

N_BINS = 10
UNIFORM_EDGES = np.linspace(0.0, 1.0, N_BINS + 1)
# The quantiles np.percentile actually uses for calibration_curve(strategy="quantile").
MASS_QUANTILES = np.true_divide(np.linspace(0.0, 1.0, N_BINS + 1) * 100, 100)
LOG_LOSS_EPS = 1e-15


@dataclass(frozen=True)
class Bins:
    """One cell's bins: rows, Σ score and positives per bin (arrays of N_BINS)."""

    n: np.ndarray
    score_sum: np.ndarray
    positives: np.ndarray

    @staticmethod
    def of(scores: ScoreCounts, edges: np.ndarray) -> list[Bins]:
        """Each cell's bins `searchsorted(edges, score, side="left")`: calibration_curve's rule."""
        bounds = scores.bin_bounds(edges)
        n = scores.bin_sums(scores.n, bounds)
        score_sum = scores.bin_sums(scores.n * scores.score, bounds)
        positives = scores.bin_sums(scores.n_pos, bounds)
        return [Bins(n[c], score_sum[c], positives[c]) for c in range(len(n))]

    def filled(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(bin indices, counts, mean score, positive rate) of the non-empty bins."""
        index = np.flatnonzero(self.n)
        counts = self.n[index]
        return index, counts, self.score_sum[index] / counts, self.positives[index] / counts


@dataclass(frozen=True)
class CalibrationSums:
    """A cell's labelled, scored rows reduced to its bins and loss sums."""

    scored: int
    uniform: Bins
    mass: Bins
    squared_error: float  # Σ (y − p)²
    log_loss: float  # −Σ (y·ln p' + (1 − y)·ln(1 − p'))


def calibration_sums(scores: ScoreCounts) -> list[CalibrationSums]:
    """The `LabelledCells` reducer of calibration: one CalibrationSums per cell."""
    uniform = Bins.of(scores, UNIFORM_EDGES[1:-1])
    mass = Bins.of(scores, equal_mass_edges(scores))
    clipped = np.clip(scores.score, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    negatives = scores.n - scores.n_pos
    squared = scores.per_cell(scores.n_pos * (1 - scores.score) ** 2 + negatives * scores.score**2)
    log_loss = -scores.per_cell(scores.n_pos * np.log(clipped) + negatives * np.log(1 - clipped))
    return [
        CalibrationSums(int(scores.m[c]), uniform[c], mass[c], float(squared[c]), float(log_loss[c]))
        for c in range(len(scores.m))
    ]


def equal_mass_edges(scores: ScoreCounts) -> np.ndarray:
    """Per cell, the 9 inner edges `np.percentile(scores, MASS_QUANTILES * 100)` (linear method).

    numpy's definition, step by step: virtual index v = (m − 1)·q, neighbours ⌊v⌋ and ⌊v⌋ + 1
    (both the last value when v ≥ m − 1), γ = v − ⌊v⌋, and its `_lerp`: a + (b − a)·γ, or
    b − (b − a)·(1 − γ) when γ ≥ 0.5. Cells without labelled scores get NaN edges (no row uses them).
    """
    edges = np.full((len(scores.m), N_BINS - 1), np.nan)
    scored = np.flatnonzero(scores.m > 0)
    m = scores.m[scored][:, None]
    virtual = (m - 1) * MASS_QUANTILES[1:-1][None, :]
    above = virtual >= m - 1
    low = np.where(above, m - 1, np.floor(virtual))
    high = np.where(above, m - 1, low + 1)
    gamma = virtual - low
    cells = np.broadcast_to(scored[:, None], low.shape)
    a = scores.order_statistic(cells, low)
    b = scores.order_statistic(cells, high)
    diff = b - a
    edges[scored] = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return edges


def compute_calibration(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    source: str | None = None,
    labelled: LabelledCells | None = None,
) -> list[CalibrationRow]:
    """One CalibrationRow per cell of `source` (a SELECT of prediction rows; default: the scope's
    windows), or of `labelled` when built with the "calibration" reducer (`calibration_sums`)."""
    if scope.model.task == "regression":
        return []  # a regression model's score is no probability: nothing to calibrate
    labelled = labelled or LabelledCells.build(con, scope, {"calibration": calibration_sums}, source)
    return [
        _row(cell, sums, scope.model.min_samples)
        for cell, sums in zip(labelled.cells, labelled.reduced["calibration"], strict=True)
    ]


def _row(cell: CellCounts, sums: CalibrationSums, min_samples: int) -> CalibrationRow:
    scored = sums.scored
    decision_rate: float | None = None
    if cell.n < min_samples:
        note: str | None = not_enough(cell.n, min_samples)
    elif scored < min_samples:
        decision_rate = cell.n_decision / cell.n
        note = f"not enough labels: {scored} labelled rows < min_samples {min_samples}"
    else:
        note = None
    if note is not None:
        return CalibrationRow(
            **cell.cell,
            enough_data=cell.n >= min_samples,
            note=note,
            n_labeled=cell.n_labeled,
            decision_rate=decision_rate,
            ece=None,
            ece_equal_mass=None,
            mce=None,
            brier=None,
            log_loss=None,
        )
    filled, counts, mean_score, positive_rate = sums.uniform.filled()
    gaps = np.abs(mean_score - positive_rate)
    _, mass_counts, mass_score, mass_rate = sums.mass.filled()
    reliability = tuple(
        ReliabilityPoint(
            bin_low=float(UNIFORM_EDGES[b]),
            bin_high=float(UNIFORM_EDGES[b + 1]),
            n=int(n),
            mean_score=float(mean),
            positive_rate=float(rate),
        )
        for b, n, mean, rate in zip(filled, counts, mean_score, positive_rate, strict=True)
    )
    return CalibrationRow(
        **cell.cell,
        enough_data=True,
        note=None,
        n_labeled=cell.n_labeled,
        decision_rate=cell.n_decision / cell.n,
        ece=float(np.sum(counts / scored * gaps)),
        ece_equal_mass=float(np.sum(mass_counts / scored * np.abs(mass_score - mass_rate))),
        mce=float(gaps.max()),
        brier=sums.squared_error / scored,
        log_loss=sums.log_loss / scored,
        reliability=reliability,
    )


def pooled_reliability(rows: Sequence[CalibrationRow]) -> tuple[ReliabilityPoint, ...]:
    """The reliability points of the union of the rows' cells (e.g. every reference window).

    Equal-width bins have fixed edges, so pooling is exact: n = Σ n_b, mean score and positive
    rate are the n-weighted means of the cells' bins.
    """
    pooled: dict[tuple[float, float], list[float]] = {}
    for point in (point for row in rows for point in row.reliability):
        totals = pooled.setdefault((point.bin_low, point.bin_high), [0.0, 0.0, 0.0])
        totals[0] += point.n
        totals[1] += point.n * point.mean_score
        totals[2] += point.n * point.positive_rate
    return tuple(
        ReliabilityPoint(low, high, int(n), score / n, positives / n)
        for (low, high), (n, score, positives) in sorted(pooled.items())
    )
