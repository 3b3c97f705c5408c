"""Delayed-label performance per window × version × slice (DESIGN §4), as of T.

With the labels that count as of T (label > 0 is positive) and the logged decision:
- label coverage = labelled rows / rows, and of the rows decided positive (precision's); label
  lag p50/p95 = `quantile_cont` of seconds from `_ts` to the counting label's `_labeled_at`
  (numpy's linear percentile);
- precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN), FPR = FP/(FP+TN),
  FNR = FN/(FN+TP), accuracy = (TP+TN)/n_labeled, each proportion with a 95 % Wilson interval;
- AUROC = Mann–Whitney U/(P·N) with ties counted ½ (= `roc_auc_score`), from counts per distinct
  score, with a 95 % DeLong interval (AUC ± 1.96·√(S10/P + S01/N), clipped to [0, 1]);
- average precision = Σ_s (pos_s/P)·precision(score ≥ s) over distinct scores (= `average_precision_score`);
- expected cost per labelled prediction = (FP·cost_fp + FN·cost_fn)/n_labeled — the costs of each
  row's cost class (`config.Costs.classes`: per value of one segment, when configured) — with a
  95 % normal-approximation interval (mean ± 1.96·s/√n over the per-row costs, floored at 0).
A regression model's cells (the score is the prediction, the label the true value; e = score −
label) have instead MAE = mean |e|, RMSE = √(mean e²) and MAPE = mean |e| / max(|label|, ε) (ε the
float64 epsilon: scikit-learn's `mean_absolute_error`, `root_mean_squared_error`,
`mean_absolute_percentage_error`), each with a 95 % normal-approximation interval of its mean
(RMSE's: the square roots of the mean squared error's bounds); the classifier's fields are None.
An undefined statistic (no positive decisions, a single class) is None with a note, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields

import duckdb
import numpy as np

from triage.config import Costs
from triage.metrics.frame import Scope
from triage.metrics.intervals import delong, mean_normal, normal, wilson
from triage.metrics.results import PerformanceRow, not_enough
from triage.metrics.source import CellCounts, CellFields, ErrorSums, LabelledCells, ScoreCounts


@dataclass(frozen=True)
class RankStats:
    """Score-ranking aggregates of one cell's labelled rows."""

    m: int  # labelled rows with a score
    p: int  # of which positive
    u: float  # Σ over positives of (#neg below + ½ #neg tied): the Mann–Whitney U
    v10_sq: float  # Σ over positives of V10²
    v01_sq: float  # Σ over negatives of V01²
    ap: float


def rank_stats(scores: ScoreCounts) -> list[RankStats]:
    """The `LabelledCells` reducer of performance: per cell, U, the DeLong second moments and AP
    from the score-sorted cumulative counts.

    V10 of a positive at score s = (#neg < s + ½ #neg = s)/N; V01 of a negative = (#pos > s + ½ #pos = s)/P;
    AP = Σ_s (pos_s/P)·(#pos ≥ s)/(#rows ≥ s).
    """
    positives, negatives = scores.p[scores.cell], (scores.m - scores.p)[scores.cell]
    n_neg = scores.n - scores.n_pos
    neg_below = scores.n_below - scores.pos_below
    pos_above = positives - scores.pos_below - scores.n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        wins = neg_below + 0.5 * n_neg
        v10, v01 = wins / negatives, (pos_above + 0.5 * scores.n_pos) / positives
        precision = (positives - scores.pos_below) / (scores.m[scores.cell] - scores.n_below)
        ap_terms = np.where(scores.n_pos > 0, scores.n_pos / positives * precision, 0.0)
    u = scores.per_cell(scores.n_pos * wins)
    v10_sq = scores.per_cell(np.where(scores.n_pos > 0, scores.n_pos * v10**2, 0.0))
    v01_sq = scores.per_cell(np.where(n_neg > 0, n_neg * v01**2, 0.0))
    ap = scores.per_cell(ap_terms)
    return [
        RankStats(int(scores.m[i]), int(scores.p[i]), u[i], v10_sq[i], v01_sq[i], ap[i])
        for i in range(len(scores.m))
    ]


def compute_performance(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    source: str | None = None,
    labelled: LabelledCells | None = None,
) -> list[PerformanceRow]:
    """One PerformanceRow per cell of `source` (a SELECT of prediction rows; default: the scope's
    windows), or of `labelled` when built with the "performance" reducer (`rank_stats`)."""
    model = scope.model
    if model.task == "regression":
        labelled = labelled or LabelledCells.build(con, scope, {}, source)
        return [_regression_row(cell, model.min_samples) for cell in labelled.cells]
    labelled = labelled or LabelledCells.build(con, scope, {"performance": rank_stats}, source)
    return [
        _row(cell, ranks, model.costs, model.min_samples)
        for cell, ranks in zip(labelled.cells, labelled.reduced["performance"], strict=True)
    ]


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


# Every statistic of a PerformanceRow, None until computed.
_STATISTICS = {
    f.name: None
    for f in fields(PerformanceRow)
    if f.name not in (*CellFields.__annotations__, "enough_data", "note", "n_labeled")
}


def _row(cell: CellCounts, ranks: RankStats, costs: Costs, min_samples: int) -> PerformanceRow:
    decided = cell.tp + cell.fp + cell.fn + cell.tn
    return _labelled_row(
        cell, decided, min_samples, lambda values: _statistics(values, cell, ranks, costs, decided)
    )


def _regression_row(cell: CellCounts, min_samples: int) -> PerformanceRow:
    errors = cell.errors
    if errors is None:
        raise RuntimeError("a regression cell without its error sums; report this as a bug")
    return _labelled_row(
        cell, cell.n_labeled, min_samples, lambda values: _errors(values, errors, cell.n_labeled)
    )


def _labelled_row(
    cell: CellCounts,
    labelled: int,
    min_samples: int,
    statistics: Callable[[dict[str, float | None]], str | None],
) -> PerformanceRow:
    """A cell's row: coverage and lag with `min_samples` rows, `statistics` (which fills the values
    and returns the note on what is undefined) with `min_samples` of them `labelled`."""
    values: dict[str, float | None] = dict(_STATISTICS)
    note: str | None
    if cell.n < min_samples:
        note = not_enough(cell.n, min_samples)
    else:
        values.update(
            label_coverage=cell.n_labeled / cell.n,
            decision_label_coverage=_ratio(cell.tp + cell.fp, cell.n_decision),
            label_lag_p50_s=cell.lag_p50_s,
            label_lag_p95_s=cell.lag_p95_s,
        )
        if labelled < min_samples:
            note = f"not enough labels: {labelled} labelled rows < min_samples {min_samples}"
        else:
            note = statistics(values)
    return PerformanceRow(
        **cell.cell, enough_data=labelled >= min_samples, note=note, n_labeled=cell.n_labeled, **values
    )


def _errors(values: dict[str, float | None], errors: ErrorSums, n: int) -> str | None:
    """Fill MAE, RMSE and MAPE of a regression cell with enough labels, each with its interval; the
    note on what is undefined or surprising."""
    notes: list[str] = []
    mae, mse, mape = errors.abs_sum / n, errors.sq_sum / n, errors.ape_sum / n
    mae_ci, (mse_low, mse_high) = normal(n, mae, errors.abs_var), normal(n, mse, errors.sq_var)
    mape_ci = normal(n, mape, errors.ape_var)
    if mae_ci[0] is None:
        notes.append("intervals undefined: one labelled row (s needs two)")
    if errors.zero_labels:
        labels = "a label" if errors.zero_labels == 1 else f"{errors.zero_labels} labels"
        notes.append(f"MAPE divides by machine epsilon for {labels} of 0 (as scikit-learn does)")
    values.update(
        mae=mae,
        mae_ci_low=mae_ci[0],
        mae_ci_high=mae_ci[1],
        rmse=math.sqrt(mse),
        rmse_ci_low=None if mse_low is None else math.sqrt(mse_low),
        rmse_ci_high=None if mse_high is None else math.sqrt(mse_high),
        mape=mape,
        mape_ci_low=mape_ci[0],
        mape_ci_high=mape_ci[1],
    )
    for name, value in list(values.items()):  # e⁴ or an epsilon-divided error beyond a double
        if value is not None and not math.isfinite(value):
            values[name] = None
            notes.append(f"{name} overflows a double")
    return "; ".join(notes) or None


def _statistics(
    values: dict[str, float | None], cell: CellCounts, ranks: RankStats, costs: Costs, decided: int
) -> str | None:
    """Fill the statistics of a cell with enough labels; the note on what is undefined."""
    notes: list[str] = []
    tp, fp, fn, tn = cell.tp, cell.fp, cell.fn, cell.tn
    if tp + fp == 0:
        notes.append("precision undefined: no positive decisions")
    if tp + fn == 0:
        notes.append("recall, FNR, AUROC and average precision undefined: no positive labels")
    if fp + tn == 0:
        notes.append("FPR and AUROC undefined: no negative labels")
    if tp + fp + fn == 0:
        notes.append("F1 undefined: no positive decisions or labels")
    cost_sum = cost_sq = 0.0
    for fps, fns, (c_fp, c_fn) in zip(cell.fp_by_class, cell.fn_by_class, costs.classes, strict=True):
        cost_sum += fps * c_fp + fns * c_fn
        cost_sq += fps * c_fp**2 + fns * c_fn**2
    precision_ci, recall_ci = wilson(tp, tp + fp), wilson(tp, tp + fn)
    fpr_ci, fnr_ci, accuracy_ci = wilson(fp, fp + tn), wilson(fn, fn + tp), wilson(tp + tn, decided)
    cost_ci = mean_normal(decided, cost_sum, cost_sq)
    if cost_ci[0] is None:
        notes.append("expected cost interval undefined: one labelled row (s needs two)")
    values.update(
        precision=_ratio(tp, tp + fp),
        precision_ci_low=precision_ci[0],
        precision_ci_high=precision_ci[1],
        recall=_ratio(tp, tp + fn),
        recall_ci_low=recall_ci[0],
        recall_ci_high=recall_ci[1],
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        fpr=_ratio(fp, fp + tn),
        fpr_ci_low=fpr_ci[0],
        fpr_ci_high=fpr_ci[1],
        fnr=_ratio(fn, fn + tp),
        fnr_ci_low=fnr_ci[0],
        fnr_ci_high=fnr_ci[1],
        accuracy=(tp + tn) / decided,
        accuracy_ci_low=accuracy_ci[0],
        accuracy_ci_high=accuracy_ci[1],
        expected_cost=cost_sum / decided,
        expected_cost_ci_low=cost_ci[0],
        expected_cost_ci_high=cost_ci[1],
    )
    if ranks.p > 0:
        # A sum of shares of 1: its rounding can pass 1 by an ulp or two (every label positive).
        values["average_precision"] = min(float(ranks.ap), 1.0)
    if 0 < ranks.p < ranks.m:
        n_neg = ranks.m - ranks.p
        auc = ranks.u / (ranks.p * n_neg)
        low, high = delong(
            auc, ranks.p, n_neg, ranks.v10_sq - ranks.p * auc * auc, ranks.v01_sq - n_neg * auc * auc
        )
        values.update(auroc=auc, auroc_ci_low=low, auroc_ci_high=high)
        if low is None:
            notes.append("AUROC interval undefined: DeLong needs two labels of each class")
    return "; ".join(notes) or None
