"""Delayed-label performance vs scikit-learn / scipy / numpy on the raw rows of each cell."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from tests.metrics_store import Data, as_of_labels, cell_mask, day, generate, model_config, one_window, write
from triage.config import Costs, SegmentCost
from triage.metrics import source
from triage.metrics.frame import Scope
from triage.metrics.intervals import Z95, delong, mean_normal, wilson
from triage.metrics.performance import compute_performance
from triage.metrics.results import PerformanceRow
from triage.metrics.source import LabelledCells

TOL = 1e-9
COSTS = Costs(false_positive=5.0, false_negative=120.0)


def delong_raw(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """DeLong's interval from the O(P·N) pairwise definition of the structural components."""
    pos, neg = p[y == 1], p[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = math.sqrt(np.var(v10, ddof=1) / len(pos) + np.var(v01, ddof=1) / len(neg))
    return max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se)


def wilson_scipy(k: int, n: int) -> tuple[float, float]:
    interval = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return interval.low, interval.high


def check_rows(
    data: Data, rows: list[PerformanceRow], as_of, min_samples: int = 1, costs: Costs = COSTS
) -> int:
    """Compare every row with sklearn on its raw rows; returns how many had metrics. Each row's
    costs are `costs`, or those of its value of `costs.segment` when listed."""
    labels = as_of_labels(data, as_of)
    cut = np.datetime64(as_of.replace(tzinfo=None), "us")
    times = {}  # when the label that counts (the latest at or before T) arrived
    for i in np.argsort(data.labeled_at, kind="stable"):
        if data.labeled_at[i] <= cut:
            times[str(data.label_ids[i])] = data.labeled_at[i]
    checked = 0
    for row in rows:
        mask = cell_mask(
            data, row.window_start, row.window_end, row.version, row.segment, row.segment_value, as_of
        )
        ids, decision, score = data.ids[mask], data.decision[mask], data.score[mask]
        has = np.array([str(i) in labels for i in ids], dtype=bool)
        y = np.array([labels[str(i)] > 0 for i in ids[has]], dtype=int)
        assert (row.n, row.n_labeled) == (mask.sum(), has.sum())
        values = [v for v in (getattr(row, f.name) for f in dataclasses.fields(row)) if isinstance(v, float)]
        assert all(math.isfinite(v) for v in values), row
        if row.n < min_samples:
            assert row.label_coverage is None and row.precision is None and not row.enough_data and row.note
            continue
        assert row.label_coverage == pytest.approx(has.mean(), abs=TOL)
        if has.any():
            lag = np.array(
                [
                    (times[str(i)] - t) / np.timedelta64(1, "us") / 1e6
                    for i, t in zip(ids[has], data.ts[mask][has], strict=True)
                ]
            )
            assert row.label_lag_p50_s == pytest.approx(np.percentile(lag, 50), abs=1e-6)
            assert row.label_lag_p95_s == pytest.approx(np.percentile(lag, 95), abs=1e-6)
        if len(y) < min_samples:
            assert row.precision is None and row.auroc is None and not row.enough_data and row.note
            continue
        d, p = decision[has].astype(int), score[has]
        tn, fp, fn, tp = confusion_matrix(y, d, labels=[0, 1]).ravel()
        assert row.accuracy == pytest.approx(accuracy_score(y, d), abs=TOL)
        assert (row.accuracy_ci_low, row.accuracy_ci_high) == pytest.approx(
            wilson_scipy(tp + tn, len(y)), abs=TOL
        )
        if tp + fp:
            assert row.precision == pytest.approx(precision_score(y, d), abs=TOL)
            assert (row.precision_ci_low, row.precision_ci_high) == pytest.approx(
                wilson_scipy(tp, tp + fp), abs=TOL
            )
        else:
            assert row.precision is None and row.precision_ci_low is None and "precision" in row.note
        if tp + fn:
            assert row.recall == pytest.approx(recall_score(y, d), abs=TOL)
            assert row.fnr == pytest.approx(fn / (fn + tp), abs=TOL)
            assert (row.fnr_ci_low, row.fnr_ci_high) == pytest.approx(wilson_scipy(fn, fn + tp), abs=TOL)
        else:
            assert (
                row.recall is None and row.fnr is None and row.auroc is None and row.average_precision is None
            )
        if fp + tn:
            assert row.fpr == pytest.approx(fp / (fp + tn), abs=TOL)
            assert (row.fpr_ci_low, row.fpr_ci_high) == pytest.approx(wilson_scipy(fp, fp + tn), abs=TOL)
        else:
            assert row.fpr is None and row.auroc is None
        if tp + fp + fn:
            assert row.f1 == pytest.approx(f1_score(y, d), abs=TOL)
        else:
            assert row.f1 is None
        if 0 < y.sum() < len(y):
            assert row.auroc == pytest.approx(roc_auc_score(y, p), abs=TOL)
            if min(y.sum(), len(y) - y.sum()) >= 2:
                assert (row.auroc_ci_low, row.auroc_ci_high) == pytest.approx(delong_raw(y, p), abs=1e-9)
            else:  # a null needs its reason
                assert row.auroc_ci_low is None and "AUROC interval undefined" in (row.note or "")
        if y.sum():
            assert row.average_precision == pytest.approx(average_precision_score(y, p), abs=TOL)
        listed = {c.value: (c.false_positive, c.false_negative) for c in costs.by_value}
        values = data.segments[costs.segment][mask][has] if costs.segment else np.full(len(y), "")
        c_fp, c_fn = (
            np.array([listed.get(str(v), (costs.false_positive, costs.false_negative)) for v in values])
            .reshape(-1, 2)
            .T
        )
        row_costs = np.where((d == 1) & (y == 0), c_fp, 0.0) + np.where((d == 0) & (y == 1), c_fn, 0.0)
        assert row.expected_cost == pytest.approx(row_costs.mean(), abs=TOL)
        if len(y) >= 2:
            half = Z95 * row_costs.std(ddof=1) / math.sqrt(len(y))
            low, high = max(0.0, row_costs.mean() - half), row_costs.mean() + half
            assert (row.expected_cost_ci_low, row.expected_cost_ci_high) == pytest.approx(
                (low, high), abs=1e-9
            )
        assert row.enough_data
        checked += 1
    return checked


def computed(costs: Costs) -> tuple[Data, list[PerformanceRow], datetime]:
    """Three days of generated rows by country, and their performance rows as of the third evening."""
    con = duckdb.connect()
    model = model_config(segments=("country",), costs=costs)
    data = generate(3000, seed=5)
    write(con, model, data)
    as_of = day(2) + timedelta(hours=20)
    return data, compute_performance(con, Scope.of(model, as_of=as_of)), as_of


def test_every_cell_matches_sklearn() -> None:
    data, rows, as_of = computed(COSTS)
    assert check_rows(data, rows, as_of) == len(rows) > 20


def test_costs_per_segment_value() -> None:
    """A missed fraud costs more in the US and a false alarm more in France: each row costs its
    country's, the others the defaults — in the country cells and in every mix of them (all
    traffic, each version)."""
    costs = Costs(
        false_positive=5.0,
        false_negative=120.0,
        segment="country",
        by_value=(SegmentCost("US", 5.0, 300.0), SegmentCost("FR", 9.5, 80.0)),
    )
    data, rows, as_of = computed(costs)
    assert check_rows(data, rows, as_of, costs=costs) == len(rows) > 20
    default = computed(COSTS)[1]
    by_cell = {(r.window_start, r.version, r.segment_value): r.expected_cost for r in default}
    de = [r for r in rows if r.segment_value == "DE"]
    assert de and all(r.expected_cost == by_cell[(r.window_start, r.version, "DE")] for r in de)
    assert all(
        r.expected_cost != by_cell[(r.window_start, r.version, "US")] for r in rows if r.segment_value == "US"
    )


def test_continuous_scores_min_samples_and_last_windows() -> None:
    con = duckdb.connect()
    model = model_config(segments=("country",), min_samples=120, costs=COSTS)
    data = generate(3000, seed=8, round_scores=None, labelled=0.4, days=4)
    write(con, model, data)
    as_of = day(3) + timedelta(hours=23)  # the window holding as-of is the last of the N
    rows = compute_performance(con, Scope.of(model, as_of=as_of, last=2))
    assert {r.window_start for r in rows} == {day(2), day(3)}
    checked = check_rows(data, rows, as_of, min_samples=120)
    assert 0 < checked < len(rows)
    assert any(r.label_coverage is not None and r.precision is None for r in rows)


def test_late_label_does_not_count() -> None:
    con = duckdb.connect()
    model = model_config(segments=(), costs=COSTS)
    data = one_window(np.array([0.9, 0.8, 0.3, 0.2]), labels=np.array([1, 0, 0, 1]), label_delay_h=5)
    write(con, model, data)

    def overall(hours: float) -> PerformanceRow:
        rows = compute_performance(con, Scope.of(model, as_of=day(0) + timedelta(hours=hours)))
        return next(r for r in rows if r.version is None)

    early = overall(4)
    assert early.n == 4 and early.n_labeled == 0 and early.label_coverage == 0.0
    assert early.precision is None and early.label_lag_p50_s is None and not early.enough_data
    late = overall(6)
    assert late.n_labeled == 4 and late.precision == 0.5 and late.recall == 0.5 and late.auroc == 0.5
    assert late.label_lag_p50_s == late.label_lag_p95_s == 5 * 3600
    assert check_rows(data, [late], day(0) + timedelta(hours=6)) == 1


def test_undefined_metrics_are_none_with_a_note() -> None:
    con = duckdb.connect()
    model = model_config(segments=(), costs=COSTS)
    # No positive decisions, and only negative labels: precision, recall, AUROC and AP are undefined.
    write(con, model, one_window(np.array([0.1, 0.2, 0.2, 0.3]), labels=np.zeros(4)))
    row = compute_performance(con, Scope.of(model, as_of=day(1)))[0]
    assert (
        row.precision is None and row.recall is None and row.auroc is None and row.average_precision is None
    )
    assert row.fpr == 0.0 and row.accuracy == 1.0 and row.f1 is None and row.expected_cost == 0.0
    assert row.note.split("; ") == [
        "precision undefined: no positive decisions",
        "recall, FNR, AUROC and average precision undefined: no positive labels",
        "F1 undefined: no positive decisions or labels",
    ]
    # Only positive labels: AP = 1 (sklearn), AUROC undefined.
    write(con, model, one_window(np.array([0.1, 0.6, 0.7]), labels=np.ones(3)))
    row = compute_performance(con, Scope.of(model, as_of=day(1)))[0]
    assert row.average_precision == 1.0 and row.auroc is None and "no negative labels" in row.note
    # Many distinct scores, every label positive: AP sums many shares of 1, whose rounding passed 1.
    for n in (9, 11, 18, 20, 21, 25, 35, 36):
        write(con, model, one_window(np.linspace(0.05, 0.95, n), labels=np.ones(n)))
        assert compute_performance(con, Scope.of(model, as_of=day(1)))[0].average_precision == 1.0
    # One labelled row (min_samples 1): its cost is known, its interval (s with ddof 1) is not — said.
    write(con, replace(model, min_samples=1), one_window(np.array([0.7]), labels=np.zeros(1)))
    row = compute_performance(con, Scope.of(replace(model, min_samples=1), as_of=day(1)))[0]
    assert row.expected_cost == COSTS.false_positive and row.expected_cost_ci_low is None
    assert "expected cost interval undefined: one labelled row" in row.note


def test_intervals_match_references() -> None:
    for k, n in [(0, 1), (0, 10), (3, 10), (10, 10), (517, 1000)]:
        assert wilson(k, n) == pytest.approx(wilson_scipy(k, n), abs=1e-12)
    # No success (every one): the bound is 0 (1) exactly, not ~1e-18 off by rounding.
    assert [wilson(0, n)[0] for n in (1, 7, 300)] == [0.0, 0.0, 0.0]
    assert [wilson(n, n)[1] for n in (1, 7, 300)] == [1.0, 1.0, 1.0]
    assert wilson(0, 0) == (None, None)
    assert delong(0.7, 1, 5, 0.0, 0.0) == (None, None)
    assert mean_normal(1, 5.0, 25.0) == (None, None)
    values = np.array([0.0, 5.0, 0.0, 120.0, 0.0])
    half = Z95 * values.std(ddof=1) / math.sqrt(len(values))
    low, high = mean_normal(len(values), values.sum(), (values**2).sum())
    assert (low, high) == pytest.approx((max(0.0, values.mean() - half), values.mean() + half))


@st.composite
def labelled_sets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 50))
    pool = draw(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=1, max_size=6))
    scores = np.array(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)))
    labels = np.array(draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n)))
    country = np.array(draw(st.lists(st.sampled_from(["US", "DE", "FR"]), min_size=n, max_size=n)))
    return scores, labels, country


CON = duckdb.connect()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labelled_sets())
def test_property_matches_sklearn(dataset: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    scores, labels, country = dataset
    model = model_config(segments=("country",), costs=COSTS)
    data = one_window(scores, labels, segments={"country": country})
    write(CON, model, data)
    rows = compute_performance(CON, Scope.of(model, as_of=day(1)))
    assert check_rows(data, rows, day(1)) == len(rows)


def test_batches_of_windows_give_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    con = duckdb.connect()
    model = model_config(segments=("country",), costs=COSTS)
    data = generate(2000, seed=9, days=4)
    write(con, model, data)
    scope = Scope.of(model, as_of=day(4))
    whole = {
        (r.window_start, r.version, r.segment, r.segment_value): r for r in compute_performance(con, scope)
    }
    monkeypatch.setattr(source, "BATCH_SCORE_ROWS", 300)  # about one window per batch
    assert len(source._batches(LabelledCells.build(con, scope, {}).cells)) == 4
    batched = compute_performance(con, scope)
    assert {(r.window_start, r.version, r.segment, r.segment_value): r for r in batched} == whole
    assert check_rows(data, batched, day(4)) == len(batched)
