"""Operations per window × version × slice × route vs numpy on the raw rows of each cell."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from tests.metrics_store import Data, cell_mask, day, generate, model_config, one_window, write
from triage.metrics.frame import MISSING_SEGMENT, Scope
from triage.metrics.operations import compute_operations
from triage.metrics.results import OperationsRow

TOL = 1e-9


def check_rows(data: Data, rows: list[OperationsRow], as_of, min_samples: int = 1) -> None:
    for row in rows:
        mask = cell_mask(
            data, row.window_start, row.window_end, row.version, row.segment, row.segment_value, as_of
        )
        if row.route is not None:
            mask &= data.route == row.route
        assert row.n == mask.sum() > 0
        if row.n < min_samples:
            assert not row.enough_data and row.latency_p50_ms is None and row.error_rate is None and row.note
            continue
        latency = data.latency[mask]
        latency = latency[~np.isnan(latency)]
        if len(latency):
            expected = np.percentile(latency, [50, 95, 99])
            assert [row.latency_p50_ms, row.latency_p95_ms, row.latency_p99_ms] == pytest.approx(
                expected, abs=TOL
            )
            # The p95's interval: its asymptotic standard error √(p(1−p)/n) / f, the density f at it
            # read off numpy's 94th and 96th percentiles.
            if len(latency) > 1:
                p94, p96 = np.percentile(latency, [94, 96])
                half = stats.norm.ppf(0.975) * math.sqrt(0.95 * 0.05 / len(latency)) * (p96 - p94) / 0.02
                ci = [row.latency_p95_ms_ci_low, row.latency_p95_ms_ci_high]
                assert ci == pytest.approx([expected[1] - half, expected[1] + half], abs=1e-7)
        else:
            assert row.latency_p50_ms is None and "latency" in row.note
        assert row.error_rate == pytest.approx(data.error[mask].mean(), abs=TOL)
        assert row.fallback_rate == pytest.approx(data.fallback[mask].mean(), abs=TOL)
        cost = data.cost[mask]
        if (~np.isnan(cost)).any():
            assert row.cost_per_1k == pytest.approx(1000 * np.nansum(cost) / row.n, abs=TOL)
            # The mean's 95 % normal interval over every row's cost (0 when absent), not floored.
            per_row = 1000 * np.nan_to_num(cost, nan=0.0)
            if row.n > 1:
                half = stats.norm.ppf(0.975) * stats.sem(per_row)
                expected_ci = [per_row.mean() - half, per_row.mean() + half]
                assert [row.cost_per_1k_ci_low, row.cost_per_1k_ci_high] == pytest.approx(
                    expected_ci, abs=1e-7
                )
            else:
                assert row.cost_per_1k_ci_low is None and row.cost_per_1k_ci_high is None
        else:
            assert row.cost_per_1k is None and "cost" in row.note
            assert row.cost_per_1k_ci_low is None and row.cost_per_1k_ci_high is None
        tokens = data.tokens[mask]
        if (~np.isnan(tokens)).any():
            assert row.tokens_per_request == pytest.approx(np.nanmean(tokens), abs=TOL)
        else:
            assert row.tokens_per_request is None and "tokens" in row.note


def test_every_cell_and_route_matches_numpy() -> None:
    con = duckdb.connect()
    model = model_config(segments=("country",))
    data = generate(3000, seed=2)
    write(con, model, data)
    as_of = day(3)
    rows = compute_operations(con, Scope.of(model, as_of=as_of))
    check_rows(data, rows, as_of)
    assert {r.route for r in rows} == {None, "primary", "canary"}
    assert all(r.segment is None for r in rows if r.route is not None)
    # Every cell over all routes, and window × version × route.
    overall = [r for r in rows if r.segment is None and r.route is None]
    assert len([r for r in rows if r.route is not None]) == 2 * len(overall)


def test_unmapped_route_and_all_null_signals() -> None:
    con = duckdb.connect()
    model = model_config(segments=(), route=False)
    data = one_window(np.array([0.2, 0.4, 0.6]), labels=np.zeros(3))  # no latency, cost or tokens logged
    write(con, model, data)
    rows = compute_operations(con, Scope.of(model, as_of=day(1)))
    assert {r.route for r in rows} == {None} and len(rows) == 2  # all versions and v1
    row = rows[0]
    assert row.n == 3 and row.error_rate == 0.0 and row.fallback_rate == 0.0
    assert row.latency_p50_ms is None and row.cost_per_1k is None and row.tokens_per_request is None
    assert row.note == "not logged: latency, cost, tokens"
    check_rows(data, rows, day(1))


def test_missing_route_is_its_own_slice_and_min_samples() -> None:
    con = duckdb.connect()
    model = model_config(segments=(), min_samples=3)
    data = one_window(np.array([0.2, 0.4, 0.6, 0.8]), labels=np.zeros(4))
    data.route = np.array(["a", "a", "a", None], dtype=object)
    data.latency = np.array([10.0, 20.0, 40.0, 5.0])
    write(con, model, data)
    rows = compute_operations(con, Scope.of(model, as_of=day(1)))
    by_route = {(r.version, r.route): r for r in rows}
    assert by_route[(None, "a")].latency_p95_ms == pytest.approx(np.percentile([10, 20, 40], 95))
    missing = by_route[(None, MISSING_SEGMENT)]
    assert missing.n == 1 and not missing.enough_data and missing.latency_p50_ms is None
    assert "min_samples" in missing.note


def test_values_too_large_to_sum_are_none_with_a_note() -> None:
    """Two finite costs (or token counts) near 1e308 overflow their sum: None and said, never an
    infinity that no JSON can carry."""
    con = duckdb.connect()
    model = model_config(segments=(), route=False)
    data = one_window(np.array([0.2, 0.4, 0.6, 0.8]), labels=np.zeros(4))
    data.cost = np.array([1e308, 1e308, 1.0, 1.0])
    data.tokens = np.array([1e308, 1e308, 1.0, 1.0])
    data.latency = np.array([1e308, 1.0, 2.0, 3.0])
    write(con, model, data)
    row = compute_operations(con, Scope.of(model, as_of=day(1)))[0]
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.sum(data.cost)) and not np.isfinite(np.mean(data.tokens))
    assert (row.cost_per_1k, row.tokens_per_request) == (None, None)
    latency = [row.latency_p50_ms, row.latency_p95_ms, row.latency_p99_ms]
    assert latency == pytest.approx(np.percentile(data.latency, [50, 95, 99]))
    assert row.note == (
        "too large to compute: cost_per_1k, tokens_per_request, cost_per_1k_ci_low, cost_per_1k_ci_high"
    )
    # A sum a double holds, a variance it does not (costs near 1e200): the mean stands alone.
    data.cost, data.tokens = np.array([1e200, 0.0, 0.0, 0.0]), np.ones(4)
    write(con, model, data)
    row = compute_operations(con, Scope.of(model, as_of=day(1)))[0]
    assert row.cost_per_1k == pytest.approx(1000 * 1e200 / 4)
    assert (row.cost_per_1k_ci_low, row.cost_per_1k_ci_high) == (None, None)
    assert row.note == "too large to compute: cost_per_1k_ci_low, cost_per_1k_ci_high"
    # Opposite costs near ±1e308 (a refund): DuckDB's deviation is not a number; no interval either.
    data.cost = np.array([-1e308, 1e308, 5.0, 0.0])
    write(con, model, data)
    row = compute_operations(con, Scope.of(model, as_of=day(1)))[0]
    assert (row.cost_per_1k_ci_low, row.cost_per_1k_ci_high) == (None, None)
    assert row.note == "too large to compute: cost_per_1k_ci_low, cost_per_1k_ci_high"


CON = duckdb.connect()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.floats(0, 1e5, allow_nan=False)),
            st.booleans(),
            st.sampled_from(["US", "DE"]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_property_latency_quantiles_match_numpy(values: list) -> None:
    model = model_config(segments=("country",))
    n = len(values)
    data = one_window(np.full(n, 0.5), np.zeros(n), segments={"country": np.array([v[2] for v in values])})
    data.latency = np.array([np.nan if v[0] is None else v[0] for v in values])
    data.error = np.array([v[1] for v in values])
    write(CON, model, data)
    check_rows(data, compute_operations(CON, Scope.of(model, as_of=day(1))), day(1))
