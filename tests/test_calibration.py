"""Decision rate and calibration vs scikit-learn / numpy on the raw rows of each cell."""

from __future__ import annotations

import math
from datetime import timedelta

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss

from tests.metrics_store import Data, as_of_labels, cell_mask, day, generate, model_config, one_window, write
from triage.metrics.calibration import compute_calibration, pooled_reliability
from triage.metrics.frame import Scope
from triage.metrics.results import CalibrationRow

TOL = 1e-9


def labelled_cell(data: Data, row: CalibrationRow, as_of) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(all scores' decisions, labelled y, labelled scores) of the cell's raw rows."""
    mask = cell_mask(
        data, row.window_start, row.window_end, row.version, row.segment, row.segment_value, as_of
    )
    labels = as_of_labels(data, as_of)
    ids = data.ids[mask]
    has = np.array([str(i) in labels for i in ids], dtype=bool)
    y = np.array([labels[str(i)] > 0 for i in ids[has]], dtype=int)
    return data.decision[mask], y, data.score[mask][has]


def ece(
    y: np.ndarray, p: np.ndarray, strategy: str
) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray]:
    """ECE and MCE from sklearn's calibration_curve, weighted by the bin counts of its own bin rule."""
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy=strategy)
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, 11)
    else:
        edges = np.percentile(p, np.linspace(0, 1, 11) * 100)
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=10)
    counts = counts[counts > 0]
    gaps = np.abs(prob_true - prob_pred)
    return float(np.sum(counts / len(p) * gaps)), float(gaps.max()), counts, prob_pred, prob_true


def reference_log_loss(y: np.ndarray, p: np.ndarray) -> float:
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))


def check_rows(data: Data, rows: list[CalibrationRow], as_of, min_samples: int = 1) -> int:
    """Compare every row with sklearn; returns how many rows had labelled statistics."""
    checked = 0
    for row in rows:
        decisions, y, p = labelled_cell(data, row, as_of)
        assert len(decisions) == row.n
        assert len(y) == row.n_labeled
        if row.n < min_samples:
            assert row.decision_rate is None and row.ece is None and row.note and not row.enough_data
            continue
        assert row.enough_data
        assert row.decision_rate == pytest.approx(decisions.mean(), abs=TOL)
        if len(y) < min_samples:
            assert row.ece is None and row.brier is None and row.log_loss is None and row.note
            continue
        uniform, mce, counts, mean_score, positive_rate = ece(y, p, "uniform")
        mass, _, _, _, _ = ece(y, p, "quantile")
        assert row.ece == pytest.approx(uniform, abs=TOL)
        assert row.ece_equal_mass == pytest.approx(mass, abs=TOL)
        assert row.mce == pytest.approx(mce, abs=TOL)
        assert row.brier == pytest.approx(brier_score_loss(y, p), abs=TOL)
        assert row.log_loss == pytest.approx(reference_log_loss(y, p), abs=TOL)
        if 0 < y.sum() < len(y) and np.all((p > 1e-6) & (p < 1 - 1e-6)):
            assert row.log_loss == pytest.approx(log_loss(y, p), abs=TOL)
        assert [pt.n for pt in row.reliability] == counts.tolist()
        assert [pt.mean_score for pt in row.reliability] == pytest.approx(mean_score, abs=TOL)
        assert [pt.positive_rate for pt in row.reliability] == pytest.approx(positive_rate, abs=TOL)
        for point in row.reliability:
            assert point.bin_low - TOL <= point.mean_score <= point.bin_high + TOL
        checked += 1
    return checked


def expected_cells(data: Data, scope: Scope) -> set[tuple]:
    """(window_start, version, segment, value) of every non-empty cell, from the raw rows."""
    cells = set()
    for index in np.flatnonzero(data.ts <= np.datetime64(scope.as_of.replace(tzinfo=None), "us")):
        start = data.ts[index].astype("datetime64[D]")
        for version in (None, str(data.version[index])):
            cells.add((start, version, None, None))
            for segment in scope.segments:
                cells.add((start, version, segment, str(data.segments[segment][index])))
    return cells


def test_every_cell_matches_sklearn() -> None:
    con = duckdb.connect()
    model = model_config(segments=("country",))
    data = generate(4000, seed=3)
    write(con, model, data)
    as_of = day(2) + timedelta(hours=7, minutes=30)
    scope = Scope.of(model, as_of=as_of)
    rows = compute_calibration(con, scope)
    got = {
        (np.datetime64(r.window_start.replace(tzinfo=None), "D"), r.version, r.segment, r.segment_value)
        for r in rows
    }
    assert got == expected_cells(data, scope)
    assert check_rows(data, rows, as_of) == len(rows)


def test_continuous_scores_and_min_samples() -> None:
    con = duckdb.connect()
    model = model_config(segments=("country",), min_samples=150)
    data = generate(3000, seed=11, round_scores=None, labelled=0.35)
    write(con, model, data)
    as_of = day(3)
    rows = compute_calibration(con, Scope.of(model, as_of=as_of))
    checked = check_rows(data, rows, as_of, min_samples=150)
    assert 0 < checked < len(rows)
    assert any(r.decision_rate is not None and r.ece is None for r in rows)  # enough rows, too few labels
    assert any(r.decision_rate is None for r in rows)  # the small FR slices


def test_scores_on_bin_edges_follow_sklearn_rule() -> None:
    # Exact edges of np.linspace(0, 1, 11) and their decimal neighbours (0.3 < 0.30000000000000004).
    edges = np.linspace(0.0, 1.0, 11)
    scores = np.concatenate([edges, [0.3, 0.7, 0.6, 0.1 + 1e-17, np.nextafter(0.5, 1), np.nextafter(0.5, 0)]])
    data = one_window(scores, labels=np.arange(len(scores)) % 2)
    con = duckdb.connect()
    model = model_config(segments=())
    write(con, model, data)
    rows = compute_calibration(con, Scope.of(model, as_of=day(5)))
    assert check_rows(data, rows, day(5)) == len(rows) == 2  # all versions and v1


def test_label_after_as_of_does_not_count() -> None:
    con = duckdb.connect()
    model = model_config(segments=())
    data = one_window(np.array([0.2, 0.8, 0.9]), labels=np.array([0, 1, 1]), label_delay_h=10)
    # A correction of the first label arrives 20 h after it.
    data.label_ids = np.concatenate([data.label_ids, data.label_ids[:1]])
    data.label = np.concatenate([data.label, [1.0]])
    data.labeled_at = np.concatenate([data.labeled_at, data.labeled_at[:1] + np.timedelta64(20, "h")])
    write(con, model, data)

    def overall(as_of) -> CalibrationRow:
        rows = compute_calibration(con, Scope.of(model, as_of=as_of))
        return next(r for r in rows if r.version is None)

    before = overall(day(0) + timedelta(hours=9))
    assert before.n == 3 and before.n_labeled == 0 and before.ece is None
    labelled = overall(day(0) + timedelta(hours=11))
    assert labelled.n_labeled == 3
    assert labelled.brier == pytest.approx(np.mean((np.array([0, 1, 1]) - [0.2, 0.8, 0.9]) ** 2), abs=TOL)
    corrected = overall(day(0) + timedelta(hours=31))
    assert corrected.brier == pytest.approx(np.mean((np.array([1, 1, 1]) - [0.2, 0.8, 0.9]) ** 2), abs=TOL)
    assert check_rows(data, [corrected], day(0) + timedelta(hours=31)) == 1


def test_one_class_and_one_row_cells_are_defined() -> None:
    con = duckdb.connect()
    model = model_config(segments=("country",))
    scores = np.array([0.1, 0.4, 0.4, 0.95])
    data = one_window(scores, labels=np.zeros(4), segments={"country": np.array(["US", "US", "US", "DE"])})
    write(con, model, data)
    rows = compute_calibration(con, Scope.of(model, as_of=day(1)))
    assert check_rows(data, rows, day(1)) == len(rows) == 6
    one_row = next(r for r in rows if r.segment_value == "DE" and r.version is None)
    assert (
        one_row.n == 1
        and one_row.ece == pytest.approx(0.95)
        and one_row.ece_equal_mass == pytest.approx(0.95)
    )
    for row in rows:
        for value in (row.ece, row.ece_equal_mass, row.mce, row.brier, row.log_loss, row.decision_rate):
            assert value is not None and math.isfinite(value)


def test_no_rows_no_cells() -> None:
    con = duckdb.connect()
    model = model_config()
    write(con, model, generate(50, seed=1))
    assert compute_calibration(con, Scope.of(model, as_of=day(-1))) == []


@st.composite
def datasets(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 60))
    pool = draw(
        st.lists(
            st.one_of(
                st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0, 0.30000000000000004]),
                st.floats(0.0, 1.0, allow_nan=False),
            ),
            min_size=1,
            max_size=8,
        )
    )
    scores = np.array(draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n)))
    labels = np.array(draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n)))
    country = np.array(draw(st.lists(st.sampled_from(["US", "DE"]), min_size=n, max_size=n)))
    return scores, labels, country


CON = duckdb.connect()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_property_matches_sklearn(dataset: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    scores, labels, country = dataset
    model = model_config(segments=("country",))
    data = one_window(scores, labels, segments={"country": country})
    write(CON, model, data)
    rows = compute_calibration(CON, Scope.of(model, as_of=day(1)))
    assert check_rows(data, rows, day(1)) == len(rows)


def test_cells_without_labels_next_to_labelled_ones() -> None:
    con = duckdb.connect()
    model = model_config(segments=("country",))
    country = {"country": np.array(["DE", "DE", "US", "ZA"])}
    data = one_window(np.array([0.3, 0.6, 0.9, 0.2]), labels=np.array([0, 1, 1, 0]), segments=country)
    keep = data.label_ids != "s3"  # the ZA slice has no label
    data.label_ids, data.label, data.labeled_at = (
        data.label_ids[keep],
        data.label[keep],
        data.labeled_at[keep],
    )
    write(con, model, data)
    rows = compute_calibration(con, Scope.of(model, as_of=day(1)))
    assert check_rows(data, rows, day(1)) == len(rows) - 2  # ZA, all versions and v1
    assert {r.segment_value for r in rows if r.ece is None} == {"ZA"}


def test_pooled_reliability_equals_calibration_curve_on_the_union() -> None:
    con = duckdb.connect()
    model = model_config(segments=())
    data = generate(2000, seed=13)
    write(con, model, data)
    as_of = day(3)
    rows = [r for r in compute_calibration(con, Scope.of(model, as_of=as_of)) if r.version is None]
    assert len(rows) == 3
    labels = as_of_labels(data, as_of)
    has = np.array([str(i) in labels for i in data.ids])
    y = np.array([labels[str(i)] > 0 for i in data.ids[has]], dtype=int)
    _, _, counts, mean_score, positive_rate = ece(y, data.score[has], "uniform")
    points = pooled_reliability(rows)
    assert [p.n for p in points] == counts.tolist()
    assert [p.mean_score for p in points] == pytest.approx(mean_score, abs=TOL)
    assert [p.positive_rate for p in points] == pytest.approx(positive_rate, abs=TOL)
