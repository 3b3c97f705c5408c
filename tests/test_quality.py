"""Data quality per cell and schema changes, against numpy on the raw rows."""

from __future__ import annotations

import collections
from datetime import datetime, timedelta

import numpy as np
import pytest

from tests.test_drift import T0, Rows, model_config, rows, scope_of, store
from triage.metrics.frame import MISSING_SEGMENT
from triage.metrics.quality import compute_quality, schema_changes
from triage.metrics.results import DataQualityRow, SchemaChange
from triage.metrics.source import naive_utc
from triage.store.schema import QUARANTINE_TABLE
from triage.store.tables import create_shared_tables


def _slice(data: Rows, row: DataQualityRow) -> np.ndarray:
    if row.segment is None:
        return np.ones(len(data), dtype=bool)
    values = np.array([MISSING_SEGMENT if v is None else v for v in data.segments[row.segment]])
    return values == row.segment_value


def _cell(data: Rows, row: DataQualityRow) -> np.ndarray:
    start = np.datetime64(row.window_start.replace(tzinfo=None), "us")
    end = np.datetime64(row.window_end.replace(tzinfo=None), "us")
    mask = (data.ts >= start) & (data.ts < end) & _slice(data, row)
    return mask & (data.version == row.version) if row.version is not None else mask


def _present(data: Rows, feature: str) -> np.ndarray:
    if feature in data.numeric:
        return np.isfinite(data.numeric[feature])
    if feature in data.categorical:
        return np.array([v is not None for v in data.categorical[feature]])
    return np.isfinite(data.score)


def test_quality_matches_numpy_in_every_cell() -> None:
    rng = np.random.default_rng(21)

    def make(n: int, categories: list[str], spread: float, missing: float) -> Rows:
        x = rng.normal(0, spread, n)
        x[rng.random(n) < missing] = np.nan
        x[rng.random(n) < 0.01] = -np.inf
        c = rng.choice(np.array(categories, dtype=object), n)
        rare = rng.random(n) < 0.01  # a tail of rare categories: some seen once per slice
        c[rare] = [f"rare{k}" for k in rng.integers(0, 40, rare.sum())]
        c[rng.random(n) < missing] = None
        segment = rng.choice(np.array(["north", "south", None], dtype=object), n, p=[0.6, 0.35, 0.05])
        return rows(n, rng, numeric={"x": x}, categorical={"c": c}, segments={"region": segment})

    window = make(2500, ["a", "b", "c", "new1", "new2", "new3", "new4", "new5", "new6"], 1.5, 0.1)
    reference = make(2000, ["a", "b", "c", "d"], 1.0, 0.02)
    model = model_config(segments=("region",), min_samples=40)
    con = store(model, window, reference)
    result = compute_quality(con, scope_of(model))
    assert schema_changes(con, scope_of(model)) == []
    checked = 0
    for row in result:
        cell = _cell(window, row)
        assert row.n == cell.sum()
        assert row.n_reference == _slice(reference, row).sum()  # the reference missing rate's rows
        if row.n < 40:
            assert not row.enough_data and row.missing_rate is None
            assert row.note == f"not enough data: {row.n} rows < min_samples 40"
            continue
        present = _present(window, row.feature)
        ref_slice = _slice(reference, row)
        ref_present = _present(reference, row.feature)
        missing = 1 - (cell & present).sum() / cell.sum()
        missing_reference = 1 - (ref_slice & ref_present).sum() / ref_slice.sum()
        assert row.missing_rate == pytest.approx(missing, abs=1e-12)
        assert row.missing_rate_reference == pytest.approx(missing_reference, abs=1e-12)
        assert row.missing_rate_change == pytest.approx(missing - missing_reference, abs=1e-12)
        if row.feature == "c":
            values = window.categorical["c"][cell & present]
            known = set(reference.categorical["c"][ref_slice & ref_present])
            new = [v for v in values if v not in known]
            assert row.unseen_share == pytest.approx(len(new) / len(values), abs=1e-12)
            seen = collections.Counter(reference.categorical["c"][ref_slice & ref_present])
            once = sum(count == 1 for count in seen.values())
            twice = sum(count == 2 for count in seen.values())
            m = int((ref_slice & ref_present).sum())
            assert row.unseen_share_expected == pytest.approx(once / m, abs=1e-12)
            # Esty (1983): √n (N1/n − missing mass) → N(0, N1/n + 2·N2/n − (N1/n)²).
            variance = (once / m + 2 * twice / m - (once / m) ** 2) / m
            assert row.unseen_share_expected_se == pytest.approx(np.sqrt(variance), abs=1e-12)
            counts = {v: new.count(v) for v in set(new)}
            assert list(row.unseen_categories) == sorted(counts, key=lambda v: (-counts[v], v))[:5]
            assert len(row.unseen_categories) == min(5, len(counts)) and row.out_of_range_share is None
        else:
            source = window.numeric.get(row.feature, window.score)
            ref_source = reference.numeric.get(row.feature, reference.score)
            values = source[cell & present]
            ref_values = ref_source[ref_slice & ref_present]
            outside = (values < ref_values.min()) | (values > ref_values.max())
            assert row.out_of_range_share == pytest.approx(outside.mean(), abs=1e-12)
            assert row.unseen_share is None and row.unseen_categories == ()
        checked += 1
    assert checked > 40
    assert any(row.unseen_share_expected for row in result)  # the rare tail left singletons


def test_a_slice_reference_too_small_to_predict_unseen_categories_says_so() -> None:
    """A slice whose reference holds fewer than min_samples values of a categorical feature
    predicts no unseen share (its Good–Turing estimate is too rough to test against), as drift
    compares no such slice; the share itself is still measured, and larger slices predict one."""
    rng = np.random.default_rng(5)

    def make(n: int, small: int) -> Rows:
        c = np.array([f"m{k}" for k in rng.zipf(1.5, n) % 300], dtype=object)
        segment = np.array(["big"] * (n - small) + ["small"] * small, dtype=object)
        return rows(
            n, rng, numeric={"x": rng.normal(0, 1, n)}, categorical={"c": c}, segments={"region": segment}
        )

    model = model_config(segments=("region",), min_samples=40)
    con = store(model, make(600, 300), make(600, 30))
    found = {
        row.segment_value: row
        for row in compute_quality(con, scope_of(model))
        if row.feature == "c" and row.version is None and row.segment == "region"
    }
    small, big = found["small"], found["big"]
    assert small.enough_data and small.unseen_share is not None
    assert small.unseen_share_expected is None and small.unseen_share_expected_se is None
    assert small.note == "unseen share not tested: 30 reference values < min_samples 40"
    assert big.unseen_share_expected is not None and big.unseen_share_expected_se is not None
    assert big.note is None


def test_schema_changes_name_missing_added_and_retyped_columns() -> None:
    rng = np.random.default_rng(8)
    n = 300
    window = rows(
        n,
        rng,
        numeric={"kept": rng.normal(size=n), "dropped": np.full(n, np.nan), "new": rng.normal(size=n)},
        categorical={"label": rng.choice(np.array(["x", "y"], dtype=object), n), "ghost": np.full(n, None)},
    )
    reference = rows(
        n,
        rng,
        numeric={"kept": rng.normal(size=n), "dropped": rng.normal(size=n), "new": np.full(n, np.nan)},
        categorical={"label": np.full(n, None, dtype=object), "ghost": np.full(n, None)},
    )
    model = model_config(numeric=("kept", "dropped", "new", "renamed"), categorical=("label", "ghost"))
    con = store(model, window, reference)
    create_shared_tables(con)

    def quarantine(rows: int, at: datetime | None, kind: str = "predictions", column: str = "kept") -> None:
        """`rows` rows of `column` quarantined as a bad type, each with its own time `at`."""
        con.executemany(
            f"INSERT INTO {QUARANTINE_TABLE} (model, kind, reason, detail, row_ts) VALUES (?, ?, ?, ?, ?)",
            [[model.name, kind, "bad type", f"{column}: 'n/a' is not a number", at and naive_utc(at)]] * rows,
        )

    # The window holds 300 numbers of `kept`: fewer bad rows than that are not a retyped column,
    # nor are rows after T, rows without a time of their own (a store made before it was kept) or labels.
    quarantine(n // 2, T0 + timedelta(hours=1))
    quarantine(n, None)
    quarantine(n, T0 + timedelta(days=3))
    quarantine(n, T0 + timedelta(hours=1), kind="labels")
    expected = [
        SchemaChange("dropped", "missing", "DOUBLE", None),
        SchemaChange("ghost", "missing", None, None),  # configured, but in neither
        SchemaChange("label", "added", None, "VARCHAR"),
        SchemaChange("new", "added", None, "DOUBLE"),
        SchemaChange("renamed", "missing", "DOUBLE", None),
    ]
    assert sorted(schema_changes(con, scope_of(model)), key=lambda c: (c.column, c.change)) == expected
    quarantine(n - n // 2, T0 + timedelta(days=1))  # as many bad rows as numbers: retyped
    retyped = SchemaChange("kept", "retyped", "DOUBLE", "VARCHAR")
    changes = schema_changes(con, scope_of(model))
    assert sorted(changes, key=lambda c: (c.column, c.change)) == sorted(
        [*expected, retyped], key=lambda c: (c.column, c.change)
    )
    # A column with no number in the reference (an audit's booleans, all bad values there) and
    # mostly other types in the window: retyped, from no reference type — it never was DOUBLE.
    quarantine(n, T0 + timedelta(days=1), column="new")
    changes = schema_changes(con, scope_of(model))
    assert [c for c in changes if c.column == "new"] == [SchemaChange("new", "retyped", None, "VARCHAR")]
