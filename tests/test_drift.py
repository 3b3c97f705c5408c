"""Drift statistics against scipy / numpy on the raw values of the same cell.

The canonical store tables are built directly from numpy arrays (the store is another part), and
every statistic triage reports for a cell is recomputed from that cell's raw values: PSI from the
definition with np.quantile and independent binning, JS with scipy's jensenshannon, KS with
ks_2samp(method="asymp"), chi-square with chi2_contingency, Wasserstein with wasserstein_distance.
"""

from __future__ import annotations

import bisect
import itertools
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from triage.config import Columns, ModelConfig, Reference, Window
from triage.metrics import drift, ecdf_merge
from triage.metrics import profile as profile_module
from triage.metrics.drift import chi2_tests, compute_drift
from triage.metrics.ecdf_merge import ascending, radix_sort
from triage.metrics.frame import MISSING_SEGMENT, Scope
from triage.metrics.profile import SCORE_FEATURE, EcdfMemo, ensure_profile
from triage.metrics.results import DriftRow
from triage.store.schema import predictions_table, reference_table
from triage.store.tables import column_exists, table_exists

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
CANONICAL = (
    ("_id", "VARCHAR"),
    ("_ts", "TIMESTAMP"),
    ("_version", "VARCHAR"),
    ("_score", "DOUBLE"),
    ("_decision", "BOOLEAN"),
    ("_latency_ms", "DOUBLE"),
    ("_cost", "DOUBLE"),
    ("_tokens", "DOUBLE"),
    ("_error", "BOOLEAN"),
    ("_fallback", "BOOLEAN"),
    ("_route", "VARCHAR"),
)


@dataclass
class Rows:
    """Raw columns of a predictions (or reference) table: NaN / None are missing values."""

    ts: np.ndarray  # datetime64[us], naive UTC
    version: np.ndarray
    score: np.ndarray
    segments: dict[str, np.ndarray] = field(default_factory=dict)
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ts)


def rows(
    n: int,
    rng: np.random.Generator,
    start: datetime = T0,
    days: int = 2,
    numeric: dict[str, np.ndarray] | None = None,
    categorical: dict[str, np.ndarray] | None = None,
    segments: dict[str, np.ndarray] | None = None,
    versions: tuple[str, ...] = ("v1", "v2"),
) -> Rows:
    """n rows spread over `days` days from `start`, with the given columns."""
    base = np.datetime64(start.replace(tzinfo=None), "us")
    ts = base + (rng.random(n) * days * 86_400e6).astype("timedelta64[us]")
    return Rows(
        ts=ts,
        version=rng.choice(np.array(versions), n),
        score=np.round(rng.beta(2, 3, n), 3),
        segments=segments or {},
        numeric=numeric or {},
        categorical=categorical or {},
    )


def write_table(con: duckdb.DuckDBPyConnection, table: str, data: Rows, segments: tuple[str, ...]) -> None:
    """A canonical table (schema.py) holding `data`; NaN → NULL for doubles (inf kept)."""
    n = len(data)
    columns: dict[str, np.ndarray] = {
        "_id": np.array([f"{table}-{i}" for i in range(n)]),
        "_ts": data.ts,
        "_version": data.version,
        "_score": data.score,
    }
    con.register("_src", {**columns, **{f"_n_{k}": v for k, v in data.numeric.items()}})
    con.register(
        "_cat",
        {f"_c_{k}": np.array(v, dtype=object) for k, v in {**data.segments, **data.categorical}.items()}
        or {"_none": np.zeros(n)},
    )
    select = ["_id::VARCHAR", "_ts::TIMESTAMP", "_version::VARCHAR", "_score::DOUBLE", "_score >= 0.5"]
    select += ["NULL::DOUBLE", "NULL::DOUBLE", "NULL::DOUBLE", "false", "false", "NULL::VARCHAR"]
    names = [name for name, _ in CANONICAL]
    for name in segments:
        select.append(f'c."_c_{name}"::VARCHAR')
        names.append(name)
    for name in data.numeric:
        select.append(f'CASE WHEN isnan(s."_n_{name}") THEN NULL ELSE s."_n_{name}" END::DOUBLE')
        names.append(name)
    for name in data.categorical:
        select.append(f'c."_c_{name}"::VARCHAR')
        names.append(name)
    select += ["1::INTEGER", "s.rn::BIGINT"]
    names += ["_file_id", "_row"]
    body = ", ".join(f'{expr} AS "{name}"' for expr, name in zip(select, names, strict=True))
    con.execute(
        f"""CREATE OR REPLACE TABLE {table} AS SELECT {body}
        FROM (SELECT *, row_number() OVER () AS rn FROM _src) s
        POSITIONAL JOIN _cat c"""
    )
    con.unregister("_src")
    con.unregister("_cat")


FILE_REFERENCE = Reference(files="reference.parquet")


def model_config(
    name: str = "m",
    numeric: tuple[str, ...] = (),
    categorical: tuple[str, ...] = (),
    segments: tuple[str, ...] = (),
    min_samples: int = 1,
    reference: Reference = FILE_REFERENCE,
) -> ModelConfig:
    return ModelConfig(
        name=name,
        predictions="unused",
        columns=Columns(id="id", timestamp="ts", score="score", version="version"),
        window=Window(1, "d"),
        numeric=numeric,
        categorical=categorical,
        features_inferred=not numeric and not categorical,
        segments=segments,
        min_samples=min_samples,
        reference=reference,
    )


def store(model: ModelConfig, window: Rows, reference: Rows) -> duckdb.DuckDBPyConnection:
    """An in-memory store with the model's predictions and file-set reference."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    write_table(con, predictions_table(model.name), window, model.segments)
    write_table(con, reference_table(model.name), reference, model.segments)
    return con


def scope_of(model: ModelConfig, days: int = 2) -> Scope:
    return Scope.of(model, as_of=T0 + timedelta(days=days) - timedelta(microseconds=1))


def cell_values(data: Rows, row: DriftRow, feature: str) -> np.ndarray:
    """The present values of `feature` in the reference slice of `row` (pass the reference rows)."""
    return _values(data, feature, _slice_mask(data, row))


def window_values(data: Rows, row: DriftRow, feature: str) -> np.ndarray:
    """The present values of `feature` in the cell of `row` (pass the window rows)."""
    start = np.datetime64(row.window_start.replace(tzinfo=None), "us")
    end = np.datetime64(row.window_end.replace(tzinfo=None), "us")
    mask = (data.ts >= start) & (data.ts < end) & _slice_mask(data, row)
    if row.version is not None:
        mask &= data.version == row.version
    return _values(data, feature, mask)


def _slice_mask(data: Rows, row: DriftRow) -> np.ndarray:
    if row.segment is None:
        return np.ones(len(data), dtype=bool)
    values = np.array([MISSING_SEGMENT if v is None else v for v in data.segments[row.segment]])
    return values == row.segment_value


def _values(data: Rows, feature: str, mask: np.ndarray) -> np.ndarray:
    if feature == SCORE_FEATURE:
        return data.score[mask]
    if feature in data.numeric:
        values = data.numeric[feature]
        return values[mask & np.isfinite(values)]
    values = data.categorical[feature]
    present = np.array([v is not None for v in values], dtype=bool)
    return values[mask & present]


def expected_psi_bins(window: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bin counts from the definition: np.quantile edges, deduplicated, left-closed, open ends."""
    edges = np.unique(np.quantile(reference, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]))

    def count(values: np.ndarray) -> np.ndarray:
        index = np.searchsorted(edges, values, side="right")  # the number of edges <= value
        return np.bincount(index, minlength=len(edges) + 1)

    return count(window), count(reference)


def expected_psi(a_counts: np.ndarray, e_counts: np.ndarray) -> float:
    a = np.maximum(a_counts / a_counts.sum(), 1e-4)
    e = np.maximum(e_counts / e_counts.sum(), 1e-4)
    return float(sum((ai - ei) * np.log(ai / ei) for ai, ei in zip(a, e, strict=True)))


def check_numeric(row: DriftRow, window: np.ndarray, reference: np.ndarray) -> None:
    """Every numeric statistic of `row` equals scipy / numpy on the raw values."""
    assert row.n == len(window) and row.n_reference == len(reference)
    assert row.ks_d == pytest.approx(stats.ks_2samp(reference, window, method="asymp").statistic, abs=1e-12)
    p = stats.ks_2samp(reference, window, method="asymp").pvalue
    if np.isnan(p):  # one value on each side: scipy's NaN is reported as None, with a note
        assert row.ks_p is None and row.note
    else:
        assert row.ks_p == pytest.approx(p, rel=1e-6, abs=1e-300)
    w = stats.wasserstein_distance(reference, window)
    assert row.wasserstein == pytest.approx(w, abs=1e-9, rel=1e-12)
    assert row.wasserstein_norm == pytest.approx(w / max(np.std(reference), 0.001), abs=1e-9, rel=1e-12)
    a, e = expected_psi_bins(window, reference)
    assert row.psi == pytest.approx(expected_psi(a, e), abs=1e-9)
    assert row.js == pytest.approx(jensenshannon(a, e, base=2), abs=1e-9)
    assert row.chi2 is None and row.chi2_p is None


def cochran_pooled_p(window: np.ndarray, reference: np.ndarray) -> float:
    """scipy's chi2_contingency on the table with every category whose expected count in the smaller
    row is below 5 merged into one column (and that column into the smallest other one while it is
    below 5 too); 1 with a single column left."""
    n, m = int(window.sum()), int(reference.sum())
    columns = [(int(r), int(w)) for r, w in zip(reference, window, strict=True) if r + w > 0]

    def expected(column: tuple[int, int]) -> float:
        return min(n, m) * (column[0] + column[1]) / (n + m)

    kept = [c for c in columns if expected(c) >= 5]
    rare = [c for c in columns if expected(c) < 5]
    if rare:
        pool = (sum(r for r, _ in rare), sum(w for _, w in rare))
        if expected(pool) < 5 and kept:
            smallest = min(kept, key=lambda c: c[0] + c[1])
            kept.remove(smallest)
            pool = (pool[0] + smallest[0], pool[1] + smallest[1])
        kept.append(pool)
    if len(kept) < 2:
        return 1.0
    return float(stats.chi2_contingency(np.array(kept).T).pvalue)


def check_categorical(row: DriftRow, window: np.ndarray, reference: np.ndarray) -> None:
    """Every categorical statistic of `row` equals scipy / numpy on the raw values."""
    names = sorted(set(window) | set(reference))
    a = np.array([np.sum(window == c) for c in names])
    e = np.array([np.sum(reference == c) for c in names])
    assert row.n == len(window) and row.n_reference == len(reference)
    table = np.array([e, a])
    result = stats.chi2_contingency(table[:, table.sum(axis=0) > 0])
    assert row.chi2 == pytest.approx(result.statistic, abs=1e-9)
    assert row.chi2_p == pytest.approx(result.pvalue, rel=1e-6, abs=1e-300)
    assert row.chi2_pooled_p == pytest.approx(cochran_pooled_p(a, e), rel=1e-6, abs=1e-300)
    assert row.psi == pytest.approx(expected_psi(a, e), abs=1e-9)
    assert row.js == pytest.approx(jensenshannon(a, e, base=2), abs=1e-9)
    assert row.ks_d is None and row.wasserstein is None


def check_all(result: list[DriftRow], window: Rows, reference: Rows, min_samples: int = 1) -> int:
    """Check every cell with enough data against scipy; return how many were checked."""
    checked = 0
    for row in result:
        stats_ = (
            row.psi,
            row.js,
            row.ks_d,
            row.ks_p,
            row.chi2,
            row.chi2_p,
            row.chi2_pooled_p,
            row.wasserstein,
            row.wasserstein_norm,
        )
        assert all(v is None or np.isfinite(v) for v in stats_), row
        w = window_values(window, row, row.feature)
        r = cell_values(reference, row, row.feature)
        assert row.n == len(w) and row.n_reference == len(r), row
        if len(w) < min_samples or len(r) < min_samples:
            assert not row.enough_data and row.note and all(v is None for v in stats_), row
            continue
        assert row.enough_data and (row.note is None or row.ks_p is None), row
        if row.kind == "numeric":
            check_numeric(row, w.astype(float), r.astype(float))
        else:
            check_categorical(row, w, r)
        checked += 1
    return checked


def test_generated_data_matches_scipy_in_every_cell() -> None:
    rng = np.random.default_rng(7)

    def make(n: int, shift: float) -> Rows:
        x = rng.normal(shift, 1.0, n)
        x[rng.random(n) < 0.05] = np.nan
        x[rng.random(n) < 0.01] = np.inf
        country = rng.choice(np.array(["US", "DE", "FR"], dtype=object), n, p=[0.5, 0.3, 0.2])
        country[rng.random(n) < 0.03] = None
        colour = rng.choice(
            np.array(["red", "green", "blue", "cyan"], dtype=object), n, p=[0.4, 0.3, 0.2, 0.1]
        )
        colour[rng.random(n) < 0.05] = None
        return rows(
            n,
            rng,
            numeric={"x": x, "ties": rng.integers(0, 6, n).astype(float), "heavy": rng.lognormal(0, 2, n)},
            categorical={"colour": colour},
            segments={"country": country},
        )

    window, reference = make(1500, 0.3), make(2000, 0.0)
    model = model_config(segments=("country",), min_samples=30)
    con = store(model, window, reference)
    result = compute_drift(con, scope_of(model))
    assert {r.feature for r in result} == {"x", "ties", "heavy", "colour", SCORE_FEATURE}
    # The same cells again through an ECDF memo (every slice's ECDF held, the needed ones picked).
    memo = EcdfMemo()
    fresh_store = store(model, window, reference)
    assert sorted(compute_drift(fresh_store, scope_of(model), ecdfs=memo), key=_order) == sorted(
        result, key=_order
    )
    assert {r.segment_value for r in result} == {None, "US", "DE", "FR", MISSING_SEGMENT}
    assert check_all(result, window, reference, 30) > 100
    # On a store without a profile, the profile's ECDFs (one build per numeric feature) serve the
    # grid too; with the profile stored, the grid builds them itself.
    built: list[str] = []
    original = profile_module._ReferenceValues.ecdfs

    def spy(*args: Any) -> Any:
        built.append(args[1].name)
        return original(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(profile_module._ReferenceValues, "ecdfs", spy)
        assert sorted(compute_drift(store(model, window, reference), scope_of(model)), key=_order) == sorted(
            result, key=_order
        )
        assert sorted(built) == sorted(["x", "ties", "heavy", SCORE_FEATURE])
        con.execute(f"DELETE FROM {drift.CACHE_TABLE}")
        assert sorted(compute_drift(con, scope_of(model)), key=_order) == sorted(result, key=_order)
        assert len(built) == 8
    # The panels' cheap histograms are the same bin counts.
    profile = ensure_profile(con, model, model.segments)
    x = next(f for f in profile.features if f.name == "x")
    versions = sorted({r.version for r in result if r.version is not None})
    windows = sorted({r.window_start for r in result})
    cells = drift.numeric_cells(con, scope_of(model), profile, [x], versions, [windows])["x"]
    assert {version for _, version, _ in cells} == {None, *versions}
    histograms = drift.numeric_histograms(con, scope_of(model), profile, x)
    assert {key: cell.bins for key, cell in cells.items()} == {key: histograms[key] for key in cells}


values_pool = st.sampled_from([-3.0, -0.5, 0.0, 0.0, 0.25, 1.0, 1.0, 2.5, 7.0])
finite = st.floats(-50, 50, allow_nan=False).map(lambda v: round(v, 3))
numbers = st.lists(st.one_of(values_pool, finite, st.just(float("nan"))), min_size=0, max_size=40)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # scipy's own 1-vs-1 KS p-value
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    window=numbers,
    reference=st.lists(st.one_of(values_pool, finite, st.just(float("nan"))), min_size=1, max_size=50),
    constant=st.sampled_from([None, "window", "reference", "both"]),
    seed=st.integers(0, 2**16),
)
def test_numeric_statistics_match_scipy_on_random_inputs(
    window: list[float], reference: list[float], constant: str | None, seed: int
) -> None:
    """Ties, constant columns, all-missing columns, one-row slices and per-slice references."""
    rng = np.random.default_rng(seed)
    w, r = np.array([*window, 1.0]), np.array(reference)
    if constant in ("window", "both"):
        w[np.isfinite(w)] = 1.0
    if constant in ("reference", "both"):
        r[np.isfinite(r)] = 1.0
    segment = np.array(["a", "b", None], dtype=object)
    window_rows = rows(len(w), rng, days=1, numeric={"x": w}, segments={"s": rng.choice(segment, len(w))})
    reference_rows = rows(len(r), rng, days=1, numeric={"x": r}, segments={"s": rng.choice(segment, len(r))})
    model = model_config(segments=("s",))
    result = compute_drift(store(model, window_rows, reference_rows), scope_of(model, days=1))
    check_all(result, window_rows, reference_rows)


labels = st.sampled_from(["a", "b", "c", "d", "e"])


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # scipy's own 1-vs-1 KS p-value
@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    window=st.lists(st.one_of(labels, st.just("new"), st.none()), min_size=0, max_size=40),
    reference=st.lists(st.one_of(labels, st.none()), min_size=1, max_size=40),
    seed=st.integers(0, 2**16),
)
def test_categorical_statistics_match_scipy_on_random_inputs(
    window: list[str | None], reference: list[str | None], seed: int
) -> None:
    """Unseen and vanished categories, a single category, missing values, empty windows."""
    rng = np.random.default_rng(seed)
    w = np.array([*window, "a"], dtype=object)
    r = np.array(reference, dtype=object)
    window_rows = rows(len(w), rng, days=1, categorical={"c": w}, versions=("v1",))
    reference_rows = rows(len(r), rng, days=1, categorical={"c": r}, versions=("v1",))
    model = model_config()
    result = compute_drift(store(model, window_rows, reference_rows), scope_of(model, days=1))
    assert {row.version for row in result} == {None, "v1"}
    check_all(result, window_rows, reference_rows)


def exact_wasserstein(u: np.ndarray, v: np.ndarray) -> Fraction:
    """W1 of two samples in rational arithmetic: Σ |F_u − F_v| over the gaps between all values."""
    a, b = sorted(map(Fraction, u.tolist())), sorted(map(Fraction, v.tolist()))
    points = sorted(set(a) | set(b))
    return sum(
        (
            abs(Fraction(bisect.bisect_right(a, low), len(a)) - Fraction(bisect.bisect_right(b, low), len(b)))
            * (high - low)
            for low, high in itertools.pairwise(points)
        ),
        Fraction(0),
    )


def test_wasserstein_of_large_values_is_as_exact_as_scipy() -> None:
    """Epoch seconds (1.7e9, W ≈ 4e5) and amounts in cents (1e7, W ≈ 1e6): the reference ECDF's
    running integral G is far larger than the steps between values, and one rounded double of G
    lost up to 3e-9 of W here (1.5e-8 on an audit's data). G kept as a (high, low) pair and the
    area summed with compensation: within 1e-9 of the exact rational value, or 16 ulps of W where
    1e-9 is less (W ≈ 1e6: scipy's own `wasserstein_distance` is 1–3 ulps off it)."""
    rng = np.random.default_rng(5)
    segment = np.array(["a", "b"], dtype=object)

    def sample(n: int, shift: float) -> Rows:
        numeric = {
            "epoch": 1.7e9 + rng.normal(shift, 2e6, n).round(3),
            "cents": rng.gamma(2.0, 5e6, n).round() + shift,
        }
        return rows(n, rng, days=1, numeric=numeric, segments={"s": rng.choice(segment, n)})

    window_rows, reference_rows = sample(1200, 3e5), sample(1600, 0.0)
    model = model_config(segments=("s",))
    result = compute_drift(store(model, window_rows, reference_rows), scope_of(model, days=1))
    checked = 0
    for row in result:
        if row.feature == SCORE_FEATURE or row.wasserstein is None:
            continue
        w = window_values(window_rows, row, row.feature).astype(float)
        r = cell_values(reference_rows, row, row.feature).astype(float)
        exact = exact_wasserstein(w, r)
        bound = max(1e-9, 16 * float(np.spacing(float(exact))))
        assert abs(Fraction(row.wasserstein) - exact) <= Fraction(bound), (row.feature, row.segment_value)
        checked += 1
    assert checked == 18  # two features × (all, a, b) × (all versions, v1, v2)


def _wasserstein_rows(window: np.ndarray, reference: np.ndarray) -> list[DriftRow]:
    rng = np.random.default_rng(0)
    window_rows = rows(len(window), rng, days=1, numeric={"x": window}, versions=("v1",))
    reference_rows = rows(len(reference), rng, days=1, numeric={"x": reference}, versions=("v1",))
    model = model_config()
    result = compute_drift(store(model, window_rows, reference_rows), scope_of(model, days=1))
    return [row for row in result if row.feature == "x" and row.version is None]


NORMAL = np.random.default_rng(3).normal(size=250)


@pytest.mark.parametrize(
    ("window", "reference"),
    [
        ([-1e17, 1.0], [-1e17, 0.0]),
        ([-1e17, 1.0, 1e17], [-1e17, 0.0, 1e17]),
        ([-1e16, 1.0, 1e16], [-1e16, 0.0, 1e16]),
        ([-1e10, 1.0, 1e10], [-1e10, 0.0, 1e10]),
        # F_ref = c on [1, 1e17), inside a crossing
        ([0.0, 0.5, 1e17 + 16, 1e17 + 32], [0.125, 1.0, 1e17, 1e17 + 48]),
        ([*(NORMAL + 0.5), -1e12], [*NORMAL, -1e12]),  # a sentinel both log, in the same share
        ([*(NORMAL + 0.5), 1e12], [*NORMAL, 1e12]),
    ],
)
def test_wasserstein_where_a_far_value_is_shared_is_exact(
    window: list[float], reference: list[float]
) -> None:
    """Between a far value and the rest the two ECDFs can be equal (a sentinel both samples log,
    in the same share): no area there. Measured as ∫F_ref − c·(b − a) across the gap, 1e17 − 1e17
    lost the 0.5 that the step after it adds (audit 45: W 0 for 0.5; 5.7e-7 off with a −1e12
    sentinel under 250 normal values)."""
    (row,) = _wasserstein_rows(np.array(window), np.array(reference))
    exact = exact_wasserstein(np.array(window), np.array(reference))
    assert row.wasserstein is not None
    bound = max(1e-9, 16 * float(np.spacing(float(exact))))
    assert abs(Fraction(row.wasserstein) - exact) <= Fraction(bound), (row.wasserstein, float(exact))


NEAR = [-3.25, 0.0, 1.0 / 3.0, 1.0, 2.5]


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    near=st.lists(st.tuples(st.sampled_from(NEAR), st.sampled_from(NEAR)), min_size=1, max_size=6),
    far=st.lists(st.sampled_from([-1e17, -1e12, 1e12, 1e17]), min_size=1, max_size=3),
)
def test_wasserstein_across_far_shared_values_is_exact(
    near: list[tuple[float, float]], far: list[float]
) -> None:
    """Samples of one size sharing far values: the ECDFs are equal across each far gap, whose
    area must come out 0 — not the rounding of two large integrals' difference."""
    window = np.array([w for w, _ in near] + far)
    reference = np.array([r for _, r in near] + far)
    (row,) = _wasserstein_rows(window, reference)
    exact = exact_wasserstein(window, reference)
    assert row.wasserstein is not None
    bound = max(1e-9, 16 * float(np.spacing(float(exact))))
    assert abs(Fraction(row.wasserstein) - exact) <= Fraction(bound), (row.wasserstein, float(exact))


def test_values_near_the_largest_double_say_what_is_too_large_to_compute() -> None:
    """Values near ±1.7e308 (an outside audit's): W1's running sums overflow, so W1 is summed step
    by step as scipy does (the cell spans gaps far too wide for them); the reference's variance
    overflows, so W1/σ is null and the note says it is too large, not undefined; KS and PSI are
    computed as ever. So too near ±1e200. Where W1 itself passes the largest double (the window
    at +1.7e308, the reference at −1.7e308) it is null too, with the same note."""
    rng = np.random.default_rng(9)
    cases = (
        (rng.uniform(-1, 1, 300) * 1.7e308, rng.uniform(-1, 1, 300) * 1.7e308 * 0.9, "wasserstein_norm"),
        (rng.uniform(-1, 1, 300) * 1e200, rng.uniform(-1, 1, 300) * 1e200 * 0.9, "wasserstein_norm"),
        (
            rng.uniform(0.5, 1, 300) * 1.7e308,
            -rng.uniform(0.5, 1, 300) * 1.7e308,
            "wasserstein, wasserstein_norm",
        ),
    )
    for window, reference, large in cases:
        window_rows = rows(300, rng, days=1, numeric={"x": window})
        reference_rows = rows(300, rng, days=1, numeric={"x": reference})
        model = model_config()
        result = compute_drift(store(model, window_rows, reference_rows), scope_of(model, days=1))
        (row,) = [r for r in result if r.feature == "x" and r.version is None]
        w, r = window_values(window_rows, row, "x"), cell_values(reference_rows, row, "x")
        assert row.note == f"too large to compute: {large}"
        assert row.wasserstein_norm is None and row.psi is not None
        assert row.ks_d == pytest.approx(stats.ks_2samp(w, r).statistic, abs=1e-12)
        if large == "wasserstein_norm":
            assert row.wasserstein == pytest.approx(stats.wasserstein_distance(w, r), rel=1e-12)
        else:
            assert row.wasserstein is None


@pytest.mark.parametrize(
    ("window", "reference"),
    [
        (np.full(300, 1e307), np.random.default_rng(1).normal(0, 1, 300)),
        (np.full(300, 8e307), np.full(300, -8e307)),
    ],
)
def test_a_wasserstein_below_the_largest_double_is_computed(
    window: np.ndarray, reference: np.ndarray
) -> None:
    """The reference ECDF's running integral overflows (m × 1e307) where W1 does not: the cell is
    summed step by step, as scipy sums it (audit 46: null, "too large to compute")."""
    (row,) = _wasserstein_rows(window, reference)
    assert row.wasserstein == pytest.approx(stats.wasserstein_distance(window, reference), rel=1e-12)


def test_equal_samples_at_both_ends_of_the_doubles_are_zero_apart() -> None:
    """Between −1.7e308 and +1.7e308 the distance is past a double, but the ECDFs are equal there:
    W1 is 0 (scipy: 0 · inf, NaN), not null."""
    values = np.array([-1.7e308] * 150 + [1.7e308] * 150)
    (row,) = _wasserstein_rows(values, values.copy())
    assert row.wasserstein == 0.0


def test_a_normalised_wasserstein_too_large_warns_nothing() -> None:
    """W1 of 5e305 is finite but W1/σ over a constant reference (σ floored at 0.001) is not: null
    with its note, and no numpy overflow warning (an outside audit saw it on `ingest`'s stderr)."""
    rng = np.random.default_rng(3)
    window_rows = rows(100, rng, days=1, numeric={"x": np.full(100, 5e305)})
    reference_rows = rows(100, rng, days=1, numeric={"x": np.zeros(100)})
    model = model_config()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compute_drift(store(model, window_rows, reference_rows), scope_of(model, days=1))
    (row,) = [r for r in result if r.feature == "x" and r.version is None]
    assert row.wasserstein == pytest.approx(5e305, rel=1e-12)
    assert row.wasserstein_norm is None and row.note == "too large to compute: wasserstein_norm"


def test_ks_pvalues_equal_scipy_in_every_branch() -> None:
    """Sizes and D across every branch of scipy's kstwo.sf, the two vectorised ones included
    (Smirnov tail, Pelz–Good body): small n, tiny and huge n·D², D ≥ 0.5, sizes past 100 000, the
    subnormal far tail and undefined one-vs-one cells."""
    rng = np.random.default_rng(11)
    cells = 600
    n = rng.integers(1, 60_000, cells)
    m = rng.integers(1, 2_000_000, cells)
    n[20:25], m[20:25] = 1, 1
    n[25:45], m[25:45] = 5000, 10**9  # en = 5000
    n[45:70], m[45:70] = 300_000, 10**7  # en > 100 000: Pelz–Good even for the smallest D
    en = np.round(np.maximum(n, m) * np.minimum(n, m) / (n + m))
    # n·D² over 0 … 2.2 (Pelz–Good body) for half the cells, over 2.2 … 400 for the others.
    nd2 = np.where(np.arange(cells) % 2 == 0, rng.uniform(0, 2.2, cells), rng.uniform(2.2, 400, cells))
    d = np.minimum(np.sqrt(nd2 / np.maximum(en, 1)), 1.0)
    d[:20] = rng.uniform(0.5, 1.0, 20)
    d[25:45] = np.sqrt(np.linspace(350, 369.9, 20) / 5000)  # p near and below the smallest normal
    d[45:50] = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3]
    found = drift.ks_pvalues(d, n, m)
    branches = {"tail": 0, "body": 0}
    for k, p in enumerate(found):
        # ks_2samp(method="asymp")'s p-value, from its definition (scipy's NaN for en = 0).
        expected = np.clip(stats.kstwo.sf(d[k], en[k]), 0, 1) if en[k] >= 1 else None
        if expected is None:
            assert p is None
            continue
        if en[k] > 140 and en[k] * d[k] > 1 and d[k] < 0.5:
            branches["tail" if en[k] * d[k] ** 2 >= 2.2 else "body"] += 1
        assert p == pytest.approx(expected, rel=1e-6, abs=1e-300)
    assert branches["tail"] > 200 and branches["body"] > 200


def test_smirnov_equals_scipy() -> None:
    """Exact sums up to a million values, scipy's own approximation beyond (it differs from the
    exact sum by up to ~1e-3 relative there)."""
    n = np.array([141, 1012, 1013, 5000, 33_333, 250_000, 1_000_000, 1_000_001, 1_500_000, 5_000_000])
    d = np.sqrt(np.array([8.0, 3.0, 3.0, 4.5, 4.0, 4.0, 2.5, 50.0, 50.0, 2.5]) / n)
    assert drift.smirnov(n, d) == pytest.approx(special.smirnov(n, d), rel=1e-8)


@pytest.mark.parametrize(
    "case",
    [
        *("normal", "strided", "ties", "signed zeros and infinities", "ulp clusters", "ulp grid"),
        *("wide", "one varying digit", "empty", "one"),
    ],
)
@pytest.mark.parametrize("radix", [True, False])
def test_ascending_is_a_sorting_permutation(case: str, radix: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The packed-key sort against numpy's, with the keys sorted by numpy and (from RADIX_FROM
    values on) by the radix sort, whichever this machine would pick: runs of values a few ulps
    apart (which share the kept bits, in index order) are reordered, and a grid finer than the
    kept bits everywhere falls back to an argsort."""
    monkeypatch.setattr(ecdf_merge, "radix_pays", lambda: radix)
    rng = np.random.default_rng(17)
    base = rng.normal(size=50_000)
    x = {
        "normal": base,
        "strided": base[::2],
        "ties": np.round(base, 1),
        "signed zeros and infinities": np.concatenate([[0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324], base]),
        # 2 000 values within 2 000 ulps of 1 and of -3 (16 index bits: they share the kept bits).
        "ulp clusters": np.concatenate(
            [
                base,
                np.nextafter(1.0, 2.0) + rng.integers(0, 2000, 1000) * 2.0**-52,
                -3.0 - rng.integers(0, 2000, 1000) * 2.0**-51,
            ]
        ),
        "ulp grid": 1.0 + rng.integers(0, 1 << 15, 50_000) * 2.0**-52,
        # Both signs over 40 binary orders of magnitude: every radix digit varies.
        "wide": rng.choice([-1.0, 1.0], 300_000) * np.exp2(rng.uniform(-20, 20, 300_000)),
        # Only the 11 bits above the index bits (16 here) vary: every other radix pass is skipped.
        "one varying digit": 1.0 + rng.integers(0, 1 << 11, 50_000) * 2.0**-25,
        "empty": np.array([]),
        "one": np.array([2.5]),
    }[case]
    order, ordered = ascending(x)
    assert np.array_equal(np.sort(order), np.arange(len(x)))
    assert np.array_equal(x[order], np.sort(x))
    assert np.array_equal(ordered, np.sort(x))


@pytest.mark.parametrize("low", [0, 7, 20, 40, 63])
def test_radix_sort_is_a_stable_sort_of_the_high_bits(low: int) -> None:
    """Against numpy's stable sort of the keys shifted right by `low`: keys equal in the sorted
    bits keep their order. The keys are random in all 64 bits, then in only a few (most passes
    skipped)."""
    rng = np.random.default_rng(low)
    for keys in (
        rng.integers(0, np.iinfo(np.uint64).max, 100_000, dtype=np.uint64, endpoint=True),
        rng.integers(0, 1 << 12, 100_000, dtype=np.uint64) << np.uint64(min(low, 52)),
    ):
        expected = keys[np.argsort(keys >> np.uint64(low), kind="stable")]
        assert np.array_equal(radix_sort(keys.copy(), np.empty_like(keys), low), expected)


def test_shift_in_one_segment_is_high_psi_in_that_slice_only() -> None:
    rng = np.random.default_rng(3)
    n = 6000
    country = rng.choice(np.array(["US", "DE", "FR"], dtype=object), n)
    x = rng.normal(0, 1, n)
    shifted = x + np.where(country == "DE", 1.5, 0.0)
    window = rows(n, rng, days=1, numeric={"x": shifted}, segments={"country": country})
    reference = rows(n, rng, days=1, numeric={"x": rng.normal(0, 1, n)}, segments={"country": country})
    model = model_config(segments=("country",), min_samples=200)
    result = compute_drift(store(model, window, reference), scope_of(model, days=1))
    by_slice = {r.segment_value: r for r in result if r.feature == "x" and r.version is None}
    assert by_slice["DE"].psi is not None and by_slice["DE"].psi > 0.25
    assert by_slice["DE"].ks_p is not None and by_slice["DE"].ks_p < 1e-6
    for other in ("US", "FR"):
        assert by_slice[other].psi is not None and by_slice[other].psi < 0.05
        assert by_slice[other].wasserstein_norm is not None and by_slice[other].wasserstein_norm < 0.1
    assert 0.05 < (by_slice[None].psi or 0) < by_slice["DE"].psi


def test_small_cells_and_missing_columns_report_counts_without_statistics() -> None:
    rng = np.random.default_rng(5)
    n = 400
    window = rows(
        n,
        rng,
        numeric={"x": rng.normal(size=n), "gone": np.full(n, np.nan)},
        categorical={"c": rng.choice(np.array(["a", "b"], dtype=object), n)},
        segments={"s": np.where(np.arange(n) < 20, "rare", "common").astype(object)},
        days=1,
    )
    reference = rows(
        n,
        rng,
        numeric={"x": rng.normal(size=n), "gone": rng.normal(size=n)},
        categorical={"c": np.full(n, None, dtype=object)},
        segments={"s": np.where(np.arange(n) < 30, "rare", "common").astype(object)},
        days=1,
    )
    model = model_config(segments=("s",), min_samples=50)
    result = compute_drift(store(model, window, reference), scope_of(model, days=1))
    rows_by = {(r.version, r.segment_value, r.feature): r for r in result}
    rare = rows_by[(None, "rare", "x")]
    note = "not enough data: 20 values < min_samples 50"
    assert (rare.n, rare.enough_data, rare.psi, rare.note) == (20, False, None, note)
    gone = rows_by[(None, None, "gone")]
    assert (gone.n, gone.n_reference, gone.enough_data, gone.ks_d) == (0, n, False, None)
    empty_reference = rows_by[(None, None, "c")]
    assert empty_reference.n == n and empty_reference.n_reference == 0
    assert empty_reference.note == "no reference values for this slice" and empty_reference.chi2 is None
    assert check_all(result, window, reference, 50) > 0


def test_one_version_gives_the_all_versions_numbers() -> None:
    rng = np.random.default_rng(11)
    n = 800
    window = rows(n, rng, numeric={"x": rng.gamma(2, 1, n)}, versions=("only",))
    reference = rows(n, rng, numeric={"x": rng.gamma(2.2, 1, n)}, versions=("only",))
    model = model_config()
    result = compute_drift(store(model, window, reference), scope_of(model))
    by_cell = {(r.window_start, r.version, r.feature): r for r in result}
    for (start, version, feature), row in by_cell.items():
        if version == "only":
            everyone = by_cell[(start, None, feature)]
            assert (row.psi, row.ks_d, row.wasserstein) == (everyone.psi, everyone.ks_d, everyone.wasserstein)
    assert check_all(result, window, reference) == len(result)


def test_the_session_time_zone_does_not_move_windows() -> None:
    """Window starts reach DuckDB as naive UTC: a session in another zone computes the same cells."""
    rng = np.random.default_rng(12)
    n = 900
    window = rows(n, rng, days=3, numeric={"x": rng.normal(0.2, 1, n)}, versions=("v1", "v2"))
    reference = rows(n, rng, numeric={"x": rng.normal(0, 1, n)}, versions=("v1", "v2"))
    model = model_config(min_samples=50)
    con = store(model, window, reference)
    con.execute("SET GLOBAL TimeZone = 'America/New_York'")  # cursors too
    result = compute_drift(con, scope_of(model, days=3))
    assert len({r.window_start for r in result if r.ks_d is not None}) == 3
    assert check_all(result, window, reference, 50) == len(result)


def test_cached_windows_are_reused_and_changed_windows_recomputed(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(13)
    n = 600
    window = rows(n, rng, numeric={"x": rng.normal(size=n)}, days=3)
    reference = rows(n, rng, numeric={"x": rng.normal(size=n)}, days=1)
    model = model_config()
    con = store(model, window, reference)
    scope = scope_of(model, days=3)
    memo = EcdfMemo()  # as the engine's: the late window below is measured against the held ECDF
    first = compute_drift(con, scope, ecdfs=memo)
    computed: list[list[datetime]] = []
    original = drift.numeric_cells

    def spy(*args: object) -> object:
        computed.append([w for batch in args[5] for w in batch])  # type: ignore[attr-defined]
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(drift, "numeric_cells", spy)
    assert sorted(compute_drift(con, scope), key=_order) == sorted(first, key=_order)
    assert computed == []
    # Rows arrive late for the second day: only that window is recomputed, and it is right.
    late = rows(50, rng, start=T0 + timedelta(days=1), days=1, numeric={"x": rng.normal(3, 1, 50)})
    write_table(con, "late", late, ())
    con.execute(
        f"INSERT INTO {predictions_table(model.name)} SELECT * REPLACE (_id || '-late' AS _id) FROM late"
    )
    again = compute_drift(con, scope, ecdfs=memo)
    assert computed and all(windows == [T0 + timedelta(days=1)] for windows in computed)
    merged = Rows(
        ts=np.concatenate([window.ts, late.ts]),
        version=np.concatenate([window.version, late.version]),
        score=np.concatenate([window.score, late.score]),
        numeric={"x": np.concatenate([window.numeric["x"], late.numeric["x"]])},
    )
    assert check_all(again, merged, reference) == len(again)


def test_the_cache_of_an_earlier_triage_is_dropped_and_its_name_left_to_it() -> None:
    """The cache table is named by its layout: an earlier triage on a store this one wrote finds no
    table of another layout under its own name (it read `_triage_cache_drift` by position and broke
    on a new column); this one drops that table of the earlier layout."""
    rng = np.random.default_rng(19)
    n = 300
    window = rows(n, rng, numeric={"x": rng.normal(size=n)})
    reference = rows(n, rng, numeric={"x": rng.normal(size=n)})
    model = model_config()
    con = store(model, window, reference)
    con.execute("CREATE TABLE _triage_cache_drift (cache_key VARCHAR, token VARCHAR)")
    found = compute_drift(con, scope_of(model))
    assert check_all(found, window, reference) == len(found)
    assert not table_exists(con, "_triage_cache_drift") and table_exists(con, drift.CACHE_TABLE)
    assert drift.CACHE_TABLE != "_triage_cache_drift"


@pytest.mark.parametrize("newer", ["chi2_pooled_p", "ks_d_psi_blind"])
def test_a_cache_table_of_an_earlier_layout_is_replaced_not_misread(newer: str) -> None:
    """A store cached drift rows before a field existed (`chi2_pooled_p`, `ks_d_psi_blind`): reading
    that table would shift every field after it, or miss one. Such a table is dropped and its
    windows computed again."""
    rng = np.random.default_rng(17)
    n = 400
    colour = np.array(["red", "green", "blue"], dtype=object)
    window = rows(n, rng, numeric={"x": rng.normal(size=n)}, categorical={"c": rng.choice(colour, n)})
    reference = rows(n, rng, numeric={"x": rng.normal(size=n)}, categorical={"c": rng.choice(colour, n)})
    model = model_config(categorical=("c",))
    con = store(model, window, reference)
    first = compute_drift(con, scope_of(model))
    con.execute(f"ALTER TABLE {drift.CACHE_TABLE} DROP COLUMN {newer}")
    again = compute_drift(con, scope_of(model))
    assert sorted(again, key=_order) == sorted(first, key=_order)
    assert check_all(again, window, reference) == len(again)
    assert column_exists(con, drift.CACHE_TABLE, newer)


def test_two_segment_columns_three_versions_every_cell_matches_scipy() -> None:
    """Each segment column is a slice family of its own, read in the same pass: every cell of
    each (window, version or all, country or device value or all traffic) equals scipy."""
    rng = np.random.default_rng(29)

    def make(n: int, shift: float) -> Rows:
        x = rng.normal(shift, 1.0, n)
        x[rng.random(n) < 0.05] = np.nan
        country = rng.choice(np.array(["US", "DE", "FR"], dtype=object), n, p=[0.5, 0.3, 0.2])
        device = rng.choice(np.array(["ios", "android"], dtype=object), n)
        device[rng.random(n) < 0.02] = None
        colour = rng.choice(np.array(["red", "green", "blue"], dtype=object), n, p=[0.5, 0.3, 0.2])
        return rows(
            n,
            rng,
            numeric={"x": x, "ties": rng.integers(0, 4, n).astype(float)},
            categorical={"colour": colour},
            segments={"country": country, "device": device},
            versions=("a", "b", "c"),
        )

    window, reference = make(2400, 0.4), make(2000, 0.0)
    model = model_config(segments=("country", "device"), min_samples=25)
    result = compute_drift(store(model, window, reference), scope_of(model))
    cells = {(r.version, r.segment, r.segment_value) for r in result}
    assert {version for version, _, _ in cells} == {None, "a", "b", "c"}
    assert {(segment, value) for _, segment, value in cells} == {
        (None, None), ("country", "US"), ("country", "DE"), ("country", "FR"),
        ("device", "ios"), ("device", "android"), ("device", MISSING_SEGMENT),
    }  # fmt: skip
    assert check_all(result, window, reference, 25) > 150  # of 256 rows: the rest are checked as too small


@pytest.mark.parametrize(
    ("bound", "value"),
    [("VALUES_READ_AT_ONCE", 3), ("BATCH_ROWS", 1)],  # 3 numeric features: one row; or one row
)
def test_windows_in_several_batches_give_the_same_rows(
    monkeypatch: pytest.MonkeyPatch, bound: str, value: int
) -> None:
    """A batch bounds the values and the rows read at once: one window per batch gives the same
    rows as one batch, and the ECDFs built for the first batch serve the others."""
    rng = np.random.default_rng(31)
    country = np.array(["US", "DE"], dtype=object)

    def make(n: int, shift: float) -> Rows:
        numeric = {"x": rng.normal(shift, 1, n), "ties": rng.integers(0, 5, n).astype(float)}
        return rows(n, rng, days=3, numeric=numeric, segments={"country": rng.choice(country, n)})

    window, reference = make(1200, 0.2), make(900, 0.0)
    model = model_config(segments=("country",), min_samples=30)
    whole = compute_drift(store(model, window, reference), scope_of(model, days=3))
    read: list[int] = []
    built: list[str] = []
    original_read, original_build = drift._read_batch, profile_module._ReferenceValues.ecdfs

    def read_batch(*args: Any) -> Any:
        read.append(len(args[5]))
        return original_read(*args)

    def build(*args: Any) -> Any:
        built.append(args[1].name)
        return original_build(*args)

    monkeypatch.setattr(drift, "_read_batch", read_batch)
    monkeypatch.setattr(profile_module._ReferenceValues, "ecdfs", build)
    monkeypatch.setattr(drift, bound, value)  # one row, i.e. one window, per batch
    batched = compute_drift(store(model, window, reference), scope_of(model, days=3))
    assert read == [1, 1, 1]
    assert sorted(built) == ["__score__", "ties", "x"]  # by the profile, once per feature
    assert sorted(batched, key=_order) == sorted(whole, key=_order)
    assert check_all(batched, window, reference, 30) > 40


def _order(row: DriftRow) -> tuple[object, ...]:
    return (row.window_start, row.version or "", row.segment or "", row.segment_value or "", row.feature)


def test_slicing_by_a_categorical_feature() -> None:
    """`triage check --slice COLUMN` may name a categorical feature: its values are the slices."""
    rng = np.random.default_rng(17)
    n = 900

    def make(shift: float) -> Rows:
        colour = rng.choice(np.array(["red", "blue"], dtype=object), n)
        x = rng.normal(shift, 1, n) + np.where(colour == "red", 1.0, 0.0)
        return rows(n, rng, days=1, numeric={"x": x}, categorical={"colour": colour})

    window, reference = make(0.2), make(0.0)
    model = model_config()
    scope = Scope.of(model, as_of=T0 + timedelta(days=1) - timedelta(microseconds=1), segments=("colour",))
    result = compute_drift(store(model, window, reference), scope)
    assert {r.segment_value for r in result} == {None, "red", "blue"}
    for data in (window, reference):
        data.segments["colour"] = data.categorical["colour"]
    assert check_all(result, window, reference) == len(result)


def test_kernels_compile_where_nothing_can_be_cached() -> None:
    """A read-only install without a writable home: numba finds no place for its cache, and the
    compiled loops are compiled in each process instead of failing at import."""
    code = (
        "import numba.core.caching as caching\n"
        "caching.CacheImpl._locator_classes = []\n"
        "import numpy as np\n"
        "from triage.metrics.ecdf_merge import accumulate\n"
        "counts = np.empty(3, np.int32)\n"
        "found = accumulate(np.zeros(3, np.int64), np.array([1.0, 1.0, 4.0]), 1, counts, np.empty(3), "
        "np.empty(3))\n"
        "print(found[2].tolist())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[0.0, 6.0]"  # G(1) = 0, G(4) = 2·(4 − 1)


def test_chi_square_of_many_pairs_at_once_equals_scipy_pair_by_pair() -> None:
    """The grid tests every pair at once, padded to one width: each pair's statistic and p equal
    chi2_contingency on its own table, and its pooled p Cochran's pooling — with 2 categories
    (Yates' correction), a rare pool that takes the smallest other category, one category, a
    column both leave empty, ties."""
    rng = np.random.default_rng(11)
    pairs = [
        (np.array([30, 170]), np.array([400, 600])),
        (np.array([1, 2, 100, 97]), np.array([3, 1, 500, 496])),
        (np.array([200]), np.array([300])),
        (np.array([0, 50, 50, 3, 0]), np.array([10, 200, 200, 0, 0])),
    ]
    for _ in range(300):
        shares = rng.dirichlet(np.full(int(rng.integers(1, 9)), 0.4))
        pairs.append(
            (
                rng.multinomial(int(rng.integers(20, 300)), shares),
                rng.multinomial(int(rng.integers(20, 3000)), shares),
            )
        )
    window = np.zeros((len(pairs), max(len(w) for w, _ in pairs)))
    reference = np.zeros_like(window)
    for row, (w, r) in enumerate(pairs):
        window[row, : len(w)], reference[row, : len(r)] = w, r
    statistic, p, pooled = chi2_tests(window, reference)
    yates = 0
    for row, (w, r) in enumerate(pairs):
        table = np.array([r, w])[:, r + w > 0]
        expected = (0.0, 1.0)
        if table.shape[1] > 1:
            result = stats.chi2_contingency(table)
            expected = (result.statistic, result.pvalue)
            yates += table.shape[1] == 2
        assert statistic[row] == pytest.approx(expected[0], abs=1e-9), row
        assert p[row] == pytest.approx(expected[1], rel=1e-6, abs=1e-300), row
        assert pooled[row] == pytest.approx(cochran_pooled_p(w, r), rel=1e-6, abs=1e-300), row
    assert yates > 10


def test_the_pooled_chi_square_is_calibrated_on_sparse_tables_where_chi2_p_is_not() -> None:
    """250 window rows against 2 600 reference rows over 300 Zipf-distributed categories, both from
    the same distribution: chi2_p falls below 1e-3 several times as often as it should (what BH
    across a grid picks up as drift), the pooled p (Cochran) about as often as it should."""
    rng = np.random.default_rng(5)
    shares = 1.0 / np.arange(1, 301) ** 1.1
    shares /= shares.sum()
    raw, pooled = [], []
    for _ in range(1000):
        reference = rng.multinomial(2600, shares)
        window = rng.multinomial(250, shares)
        raw.append(stats.chi2_contingency(np.array([reference, window])[:, reference + window > 0]).pvalue)
        pooled.append(float(chi2_tests(window[None, :], reference[None, :])[2][0]))
        assert pooled[-1] == pytest.approx(cochran_pooled_p(window, reference), rel=1e-6, abs=1e-300)
    assert np.mean(np.array(raw) < 1e-3) > 0.006
    assert np.mean(np.array(pooled) < 1e-3) < 0.003
    assert np.mean(np.array(pooled) < 0.01) < 0.02
    assert np.mean(np.array(pooled) < 0.5) == pytest.approx(0.5, abs=0.06)
    # A category new in the window at 6 %: its own column once its expected count reaches 5 (in a
    # small cell it is pooled with the rare ones, and the unseen-categories rule is what finds it).
    reference = np.append(rng.multinomial(26_000, shares), 0)
    window = np.append(rng.multinomial(2_350, shares), 150)
    assert chi2_tests(window[None, :], reference[None, :])[2][0] < 1e-20


def test_categorical_stats_in_batches_equal_each_pair_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pairs of 2 to 400 categories, tabulated a few at a time (CATEGORY_BATCH 1 000 counts) in
    order of width: each pair's statistics are those it has alone (to rounding: the padding changes
    numpy's summation order), in the order given, and its chi-square scipy's."""
    rng = np.random.default_rng(5)
    pairs = []
    for width in rng.integers(2, 400, 40):
        categories = [f"c{i}" for i in range(width)]
        reference = {c: int(n) for c, n in zip(categories, rng.integers(1, 50, width), strict=True)}
        window = {c: int(n) for c, n in zip(categories, rng.integers(0, 30, width), strict=True) if n}
        pairs.append((window, reference))
    alone = [drift.categorical_stats([pair])[0] for pair in pairs]
    monkeypatch.setattr(drift, "CATEGORY_BATCH", 1000)
    batched = drift.categorical_stats(pairs)
    for one, found in zip(alone, batched, strict=True):  # equal but for summation order (padding)
        for name in ("psi", "js", "chi2", "chi2_p", "chi2_pooled_p"):
            assert getattr(found, name) == pytest.approx(getattr(one, name), rel=1e-12), name
    for (window, reference), found in zip(pairs, batched, strict=True):
        names = sorted(set(window) | set(reference))
        table = [[reference.get(c, 0) for c in names], [window.get(c, 0) for c in names]]
        expected = stats.chi2_contingency(table)
        assert found.chi2 == pytest.approx(expected.statistic, abs=1e-9)
