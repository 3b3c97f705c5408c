"""The reference profile: what "normal" looks like per slice and feature, computed once and stored.

A profile describes a model's reference rows (DESIGN §3) for one *part*: all traffic (part None,
one slice) or one segment column (one slice per value). Slices are named by a `slice_id`
(`slice_id_sql`), so window rows find their slice's reference without a string join. Per slice
and feature it holds:

- numeric: finite values `n`, missing values (NULL, NaN, ±inf), min, max, mean, std (ddof 0),
  the PSI bin edges — numpy `linear` quantiles at 0.1 … 0.9 with duplicates dropped, computed
  from the sorted values' order statistics with numpy's own arithmetic, so they equal
  `np.quantile` bit for bit — and the reference count of each bin, all from the slice's ECDF;
- categorical: the count of each category, and of missing values (a NULL category);
- numeric, G(max) = Σ (max − r), for Wasserstein above the window's largest value.

The exact structure behind KS and Wasserstein, the ECDF (`reference_ecdfs`: per slice, each
distinct value `v` with `cum` = #{r ≤ v} and `g` = G(v) = Σ_{r ≤ v} (v − r), the integral of the
cumulative count up to v; between them G is linear, G(x) = g + cum·(x − v) for the last v ≤ x, so
∫_a^b F_ref(x) dx = (G(b) − G(a)) / n for any a ≤ b) is not stored: it has a row per distinct
reference value, and computing it from the reference's values (one scan, one sort) is cheaper
than writing it to the store and reading it back. A long-lived process (the TUI, replay) keeps
the ECDFs it built in memory (`EcdfMemo`, within a byte budget); so does a drift grid that has
just computed the profile, whose ECDFs it then needs.

Tables `_triage_profile*`, keyed by `profile`: a hash of the reference definition, the reference
data's identity (row count, last file id, xor of row hashes, all as of T), the part and the
features. A writable store keeps profiles (and drops a part's older ones); a read-only connection
builds them in temporary tables for its own lifetime. Nothing is recomputed while the key holds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import TypeVar

import duckdb
import numpy as np

from triage.config import ModelConfig
from triage.metrics.ecdf_merge import accumulate, ascending_present, by_slice, moments
from triage.metrics.frame import Scope, grouped_sql, segment_value_sql, text_literal
from triage.metrics.source import reference_rows_sql
from triage.store.schema import predictions_table, quote, reference_table
from triage.store.tables import CATEGORICAL, NUMERIC, column_exists, stored_layout, table_exists

PROFILE_FORMAT = 2  # 2: no stored G(max); the ECDFs keep G as a (high, low) pair
SCORE_FEATURE = "__score__"
ALL_SLICE = 0
PSI_QUANTILES = np.arange(1, 10) / 10  # 0.1 … 0.9, each the double nearest k/10

PROFILE_TABLE = "_triage_profile"
SLICES_TABLE = "_triage_profile_slices"
NUMERIC_TABLE = "_triage_profile_numeric"
CATEGORIES_TABLE = "_triage_profile_categories"
# Where earlier versions stored the ECDF (a row per distinct value); dropped when a store builds a profile.
LEGACY_ECDF_TABLE = "_triage_profile_ecdf"
_DDL = {
    PROFILE_TABLE: "profile VARCHAR, model VARCHAR, part VARCHAR, definition VARCHAR, created_at TIMESTAMP",
    SLICES_TABLE: "profile VARCHAR, slice_id UBIGINT, segment VARCHAR, segment_value VARCHAR, n_rows BIGINT",
    NUMERIC_TABLE: "profile VARCHAR, slice_id UBIGINT, feature VARCHAR, n BIGINT, n_missing BIGINT, "
    '"min" DOUBLE, "max" DOUBLE, mean DOUBLE, std DOUBLE, edges DOUBLE[], counts BIGINT[]',
    CATEGORIES_TABLE: "profile VARCHAR, slice_id UBIGINT, feature VARCHAR, category VARCHAR, count BIGINT",
}
# Numeric values read into memory by one query (the drift grid's batches, the profile's reads):
# ≈ 270 MB of doubles.
VALUES_READ_AT_ONCE = 1 << 25
MAIN_TABLES, TEMP_TABLES = "main.", "temp.main."  # where a connection keeps its profiles
# Held while writing profiles or caches, so threads sharing a store never build the same twice.
WRITE_LOCK = threading.RLock()


@dataclass(frozen=True)
class Feature:
    """A watched column: its reported name, kind, and the column of the canonical tables."""

    name: str
    kind: str  # "numeric" | "categorical"
    column: str

    @property
    def sql(self) -> str:
        """The quoted column."""
        return quote(self.column)

    @property
    def value_sql(self) -> str:
        """The value, NULL when missing (numeric: NULL, NaN and ±inf are missing)."""
        return f"CASE WHEN isfinite({self.sql}) THEN {self.sql} END" if self.kind == NUMERIC else self.sql

    @property
    def raw_sql(self) -> str:
        """A numeric value as logged, NaN and ±inf included: for reads that mark the missing ones
        in numpy (`finite_or_nan`)."""
        return f"CAST({self.sql} AS DOUBLE)"


def finite_or_nan(column: np.ndarray) -> np.ndarray:
    """A fetched numeric column (`Feature.raw_sql`; NULLs masked) as float64, each missing value —
    NULL, NaN, ±inf — NaN, in place when the column is not masked.

    Marking them here, in the feature's own thread, rather than in the bulk query (`value_sql`):
    there DuckDB spent ≈ 6 ms of CPU per million values and feature, about a third of the read.
    """
    x = np.ma.filled(column, np.nan).astype(np.float64, copy=False)
    x[~np.isfinite(x)] = np.nan
    return x


def drift_features(con: duckdb.DuckDBPyConnection, model: ModelConfig) -> tuple[Feature, ...]:
    """The model's stored features (configured or inferred at ingest), then the score as `__score__`."""
    layout = stored_layout(con, model)
    if layout is None:
        return ()
    features = tuple(Feature(f.name, f.kind, f.name) for f in layout.features)
    return (*features, Feature(SCORE_FEATURE, NUMERIC, "_score"))


def slice_id_sql(segment: str | None, table: str = "") -> str:
    """The slice id of a row: 0 for all traffic, else hash(segment column, its value)."""
    if segment is None:
        return f"{ALL_SLICE}::UBIGINT"
    return f"hash({text_literal(segment)}, {segment_value_sql(segment, table)})"


@dataclass(frozen=True)
class NumericProfile:
    """A numeric feature in one reference slice (None stats when it has no finite value)."""

    n: int
    n_missing: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    edges: tuple[float, ...]  # PSI inner edges; bins are (-inf, e1), [e1, e2), …, [ek, inf)
    counts: tuple[int, ...]  # reference values per bin (len(edges) + 1)


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical feature in one reference slice."""

    n: int
    n_missing: int
    counts: Mapping[str, int]


@dataclass(frozen=True)
class SliceProfile:
    """One reference slice: all traffic (segment None) or one value of a segment column."""

    slice_id: int
    segment: str | None
    segment_value: str | None
    n_rows: int
    numeric: Mapping[str, NumericProfile] = field(default_factory=dict)
    categorical: Mapping[str, CategoricalProfile] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    """The stored profile of a model's reference for some parts (the ECDFs are built from the
    reference rows when needed: `reference_ecdfs`, `EcdfMemo`)."""

    model: str
    keys: tuple[str, ...]  # one per part
    features: tuple[Feature, ...]
    slices: Mapping[int, SliceProfile]
    n_rows: int
    tables: str  # "main." or "temp.main.": where the profile tables are
    reference: str  # SQL of the reference rows it describes (for `reference_ecdfs`)

    def slice(self, segment: str | None, value: str | None) -> SliceProfile | None:
        """The reference slice of a cell, or None when the reference has no row in it."""
        return self._by_cell.get((segment, value))

    @functools.cached_property
    def _by_cell(self) -> dict[tuple[str | None, str | None], SliceProfile]:
        """The slices by (segment, value): a check of thousands of slices looks one up per cell."""
        found: dict[tuple[str | None, str | None], SliceProfile] = {}
        for profile in self.slices.values():
            found.setdefault((profile.segment, profile.segment_value), profile)
        return found

    def _where(self, feature: str) -> str:
        keys = ", ".join(text_literal(key) for key in self.keys)
        return f"profile IN ({keys}) AND feature = {text_literal(feature)}"

    def numeric_sql(self, feature: str) -> str:
        """Per slice stats of a numeric feature: slice_id, n, min, max, std, edges, counts."""
        return (
            f'SELECT slice_id, n, "min", "max", std, edges, counts '
            f"FROM {self.tables}{NUMERIC_TABLE} WHERE {self._where(feature)}"
        )


def ensure_profile(
    con: duckdb.DuckDBPyConnection,
    model: ModelConfig,
    segments: Sequence[str] | None = None,
    as_of: datetime | None = None,
    ecdfs: EcdfMemo | None = None,
) -> Profile:
    """The profile of the model's reference as of `as_of` for all traffic and each of `segments`.

    Parts whose key is stored are read back; the others are computed (in one transaction each)
    into the store when it is writable, else into temporary tables. Computing a part builds its
    reference ECDFs (for the PSI edges); `ecdfs` keeps them for the drift grid that follows.
    """
    scope = Scope.of(model, as_of=as_of, segments=segments)
    features = drift_features(con, model)
    reference = _reference_sql(con, scope)
    identity = con.execute(
        f"SELECT count(*), max(_file_id), bit_xor(hash(_id, _file_id, _row)) FROM ({reference})"
    ).fetchone()
    assert identity is not None
    parts: tuple[str | None, ...] = (None, *scope.segments)
    definitions = {part: _definition(model, identity, part, features) for part in parts}
    keys = {part: hashlib.sha256(text.encode()).hexdigest()[:32] for part, text in definitions.items()}
    if _exists(con, MAIN_TABLES) and len(_stored_keys(con, MAIN_TABLES, keys.values())) == len(keys):
        tables = MAIN_TABLES
    else:
        # A read-only connection keeps what it computes in its own temporary tables.
        tables = MAIN_TABLES if writable(con) else TEMP_TABLES
        with WRITE_LOCK:
            _create_tables(con, tables)
            stored = _stored_keys(con, tables, keys.values())
            missing = [part for part in parts if keys[part] not in stored]
            stats = _numeric_slice_stats(
                con, reference, features, missing, tuple(keys.values()), ecdfs, int(identity[0])
            )
            for part in missing:
                _build(
                    con, tables, model, keys[part], definitions[part], part, reference, features, stats[part]
                )
    return _load(con, tables, model, tuple(keys.values()), features, int(identity[0]), reference)


def _reference_sql(con: duckdb.DuckDBPyConnection, scope: Scope) -> str:
    """The reference rows as of T; no rows when a file-set reference was never ingested."""
    if scope.model.reference.kind == "files" and not table_exists(con, reference_table(scope.model.name)):
        return f"SELECT * FROM {quote(predictions_table(scope.model.name))} WHERE false"
    return reference_rows_sql(scope)


def _definition(
    model: ModelConfig, identity: Sequence[object], part: str | None, features: Sequence[Feature]
) -> str:
    """What a profile part depends on, as canonical JSON (its hash is the profile key)."""
    reference = model.reference
    definition = {
        "format": PROFILE_FORMAT,
        "duckdb": duckdb.__version__,  # slice ids are DuckDB hashes
        "model": model.name,
        "reference": [
            reference.kind,
            reference.start.isoformat() if reference.start else None,
            reference.end.isoformat() if reference.end else None,
            reference.files,
            reference.version,
            reference.days,
        ],
        "identity": [str(value) for value in identity],
        "part": part,
        "features": [[f.name, f.kind, f.column] for f in features],
    }
    return json.dumps(definition, sort_keys=True)


def writable(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the connection may write to the store's database (not opened read-only)."""
    row = con.execute(
        "SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return not (row and row[0])


def _exists(con: duckdb.DuckDBPyConnection, tables: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary = ?",
        [PROFILE_TABLE, tables == TEMP_TABLES],
    ).fetchone()
    return bool(row and row[0])


def _create_tables(con: duckdb.DuckDBPyConnection, tables: str) -> None:
    temp = "TEMP " if tables == TEMP_TABLES else ""
    if not temp and column_exists(con, NUMERIC_TABLE, "g_max"):  # format 1's: its profiles are rebuilt
        for name in _DDL:
            con.execute(f"DROP TABLE IF EXISTS {tables}{name}")
    for name, columns in _DDL.items():
        target = name if temp else f"{tables}{name}"
        con.execute(f"CREATE {temp}TABLE IF NOT EXISTS {target} ({columns})")
    if not temp:
        con.execute(f"DROP TABLE IF EXISTS {tables}{LEGACY_ECDF_TABLE}")


def _stored_keys(con: duckdb.DuckDBPyConnection, tables: str, keys: Iterable[str]) -> set[str]:
    rows = con.execute(
        f"SELECT profile FROM {tables}{PROFILE_TABLE} WHERE list_contains(?, profile)", [list(keys)]
    ).fetchall()
    return {row[0] for row in rows}


def _numeric_slice_stats(
    con: duckdb.DuckDBPyConnection,
    reference: str,
    features: Sequence[Feature],
    parts: Sequence[str | None],
    keys: tuple[str, ...],
    ecdfs: EcdfMemo | None,
    n_rows: int,
) -> dict[str | None, dict[str, dict[int, _SliceStats]]]:
    """Per part, numeric feature and slice: its statistics, PSI edges, bin counts and G(max) from
    the slice's ECDF, one sort per feature (features in parallel). The reference's `n_rows` rows
    are read for as many features at once as VALUES_READ_AT_ONCE allows. `ecdfs` keeps the ECDFs
    built on the way, under the profile's `keys`."""
    found: dict[str | None, dict[str, dict[int, _SliceStats]]] = {part: {} for part in parts}
    if not parts:
        return found
    ids = {
        part: [
            int(row[0])
            for row in con.execute(f"SELECT DISTINCT {slice_id_sql(part)} FROM ({reference})").fetchall()
        ]
        for part in parts
    }

    def stats(values: _ReferenceValues, feature: Feature) -> dict[str | None, dict[int, _SliceStats]]:
        built = values.ecdfs(feature)
        if ecdfs is not None:
            ecdfs.keep(keys, feature, built)
        return {part: _slice_stats(ecdf) for part, ecdf in built.items()}

    for name, by_part in _per_reference_read(con, reference, features, ids, n_rows, stats).items():
        for part, slices in by_part.items():
            found[part][name] = slices
    return found


def _per_reference_read(
    con: duckdb.DuckDBPyConnection,
    reference: str,
    features: Sequence[Feature],
    parts: Mapping[str | None, Sequence[int]],
    n_rows: int,
    run: Callable[[_ReferenceValues, Feature], T],
    workers: int | None = None,
) -> dict[str, T]:
    """`run(values, feature)` for every numeric feature, the reference's `n_rows` rows read once
    for as many features as VALUES_READ_AT_ONCE allows (`_ReferenceValues`, the given slices of
    each part), the features of a read in parallel (`per_numeric_feature`)."""
    numeric = [f for f in features if f.kind == NUMERIC]
    at_once = max(1, VALUES_READ_AT_ONCE // max(n_rows, 1))
    found: dict[str, T] = {}
    for first in range(0, len(numeric), at_once):
        read = numeric[first : first + at_once]
        values = _ReferenceValues.read(con, reference, read, parts)
        found |= per_numeric_feature(con, read, partial(_on_values, run, values), workers)
    return found


def _on_values(
    run: Callable[[_ReferenceValues, Feature], T],
    values: _ReferenceValues,
    _: duckdb.DuckDBPyConnection,
    feature: Feature,
) -> T:
    return run(values, feature)


def _build(
    con: duckdb.DuckDBPyConnection,
    tables: str,
    model: ModelConfig,
    key: str,
    definition: str,
    part: str | None,
    reference: str,
    features: Sequence[Feature],
    stats: Mapping[str, Mapping[int, _SliceStats]],
) -> None:
    """Compute one part of the profile and store it, all or nothing."""
    con.execute("BEGIN TRANSACTION")
    try:
        _build_part(con, tables, key, part, reference, features, stats)
        older = (
            f"SELECT profile FROM {tables}{PROFILE_TABLE} WHERE model = ? "
            f"AND part IS NOT DISTINCT FROM ? AND profile <> ?"
        )
        for name in (SLICES_TABLE, NUMERIC_TABLE, CATEGORIES_TABLE, PROFILE_TABLE):
            con.execute(f"DELETE FROM {tables}{name} WHERE profile IN ({older})", [model.name, part, key])
        con.execute(
            f"INSERT INTO {tables}{PROFILE_TABLE} VALUES (?, ?, ?, ?, now()::TIMESTAMP)",
            [key, model.name, part, definition],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _build_part(
    con: duckdb.DuckDBPyConnection,
    tables: str,
    key: str,
    part: str | None,
    reference: str,
    features: Sequence[Feature],
    stats: Mapping[str, Mapping[int, _SliceStats]],
) -> None:
    numeric = [f for f in features if f.kind == NUMERIC]
    categorical = [f for f in features if f.kind == CATEGORICAL]
    slice_id = slice_id_sql(part)
    value = "NULL" if part is None else segment_value_sql(part)
    segment = "NULL" if part is None else text_literal(part)
    # Rows and missing categorical values per slice; the numeric statistics come from the ECDFs.
    missing = [f"count(*) - count({f.sql})" for f in categorical]
    rows = con.execute(
        f"SELECT {slice_id} AS _slice, any_value({value}), {', '.join(['count(*)', *missing])} "
        f"FROM ({reference}) GROUP BY _slice"
    ).fetchall()
    if not rows:
        return  # the reference has no row yet as of the evaluated time: an empty part
    con.executemany(
        f"INSERT INTO {tables}{SLICES_TABLE} VALUES (?, ?, {segment}, ?, ?)",
        [[key, row[0], row[1], row[2]] for row in rows],
    )
    numeric_rows = [
        [key, int(row[0]), f.name, *_numeric_row(stats[f.name].get(int(row[0])), int(row[2]))]
        for f in numeric
        for row in rows
    ]
    if numeric_rows:
        # One statement: the columns as lists, unnested side by side.
        unnested = ", ".join("unnest(?)" for _ in numeric_rows[0])
        columns = [list(column) for column in zip(*numeric_rows, strict=True)]
        con.execute(f"INSERT INTO {tables}{NUMERIC_TABLE} SELECT {unnested}", columns)
    if categorical:
        missing_rows = [
            [key, row[0], f.name, None, row[3 + index]] for row in rows for index, f in enumerate(categorical)
        ]
        con.executemany(f"INSERT INTO {tables}{CATEGORIES_TABLE} VALUES (?, ?, ?, ?, ?)", missing_rows)
        # Each feature's categories per slice: a grouping set each (cheaper than unpivoting).
        names = grouped_sql({f.sql: text_literal(f.name) for f in categorical}, "NULL")
        category = grouped_sql({f.sql: f.sql for f in categorical}, "NULL")
        sets = ", ".join(f"(_slice, {f.sql})" for f in categorical)
        con.execute(
            f"""INSERT INTO {tables}{CATEGORIES_TABLE} SELECT * FROM (
                SELECT {text_literal(key)}, _slice, {names}, {category} AS _category, count(*)
                FROM (SELECT {slice_id} AS _slice, * FROM ({reference})) GROUP BY GROUPING SETS ({sets})
            ) WHERE _category IS NOT NULL"""
        )


T = TypeVar("T")


def fetch_arrays(
    con: duckdb.DuckDBPyConnection, query: str, params: Sequence[object]
) -> dict[str, np.ndarray]:
    """A query's columns as numpy arrays, through DuckDB's relation API on a cursor of its own.

    On a wide result (a million rows of twenty values) the relation's fetchnumpy converts ≈ 30 %
    faster than `execute(…).fetchnumpy()`; the own cursor because DuckDB refuses a relation on a
    connection with an unfinished `execute` result. So `query` may read only the store's tables,
    not the connection's temporary ones nor its uncommitted writes.
    """
    cursor = con.cursor()
    try:
        return cursor.sql(query, params=params).fetchnumpy()
    finally:
        cursor.close()


def per_numeric_feature(
    con: duckdb.DuckDBPyConnection,
    features: Sequence[Feature],
    run: Callable[[duckdb.DuckDBPyConnection, Feature], T],
    workers: int | None = None,
) -> dict[str, T]:
    """`run(cursor, feature)` for every numeric one of `features`, in parallel on their own cursors
    (on up to `workers` threads; default: one per CPU).

    Most of a feature's work is sorting and merging on one thread that releases the GIL (numpy,
    the compiled `ecdf_merge` loops); features are independent, so they fill the other cores. The
    cursors read only the store's tables (a profile's own rows may live in one connection's
    temporary tables: `run` takes them from the `Profile`).
    """
    numeric = [f for f in features if f.kind == NUMERIC]
    workers = min(len(numeric), workers or os.cpu_count() or 1)
    if workers <= 1:
        return {f.name: run(con, f) for f in numeric}

    def on_cursor(feature: Feature) -> T:
        cursor = con.cursor()
        try:
            return run(cursor, feature)
        finally:
            cursor.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip([f.name for f in numeric], pool.map(on_cursor, numeric), strict=True))


@dataclass(frozen=True)
class Ecdf:
    """A numeric feature's reference ECDF in each slice of one part, ordered by (slice, value).

    Slice `slice_ids[k]` (ids ascending) is rows [start[k], end[k]): its distinct values, with
    cum = #{r ≤ value} and G(value) = Σ_{r ≤ value} (value − r) = g + g_low (`accumulate`).
    """

    slice_ids: np.ndarray  # uint64
    start: np.ndarray
    end: np.ndarray
    value: np.ndarray
    cum: np.ndarray  # int32 (int64 from 2³¹ values on)
    g: np.ndarray
    g_low: np.ndarray

    @property
    def nbytes(self) -> int:
        arrays = (self.slice_ids, self.start, self.end, self.value, self.cum, self.g, self.g_low)
        return sum(a.nbytes for a in arrays)

    def only(self, ids: np.ndarray) -> Ecdf:
        """The same ECDF restricted to the slices `ids` (ascending, each one of `slice_ids`)."""
        at = np.searchsorted(self.slice_ids, ids)
        return Ecdf(ids, self.start[at], self.end[at], self.value, self.cum, self.g, self.g_low)


# Bytes of reference ECDFs an `EcdfMemo` keeps by default: a 2.7 M-row reference of 12 numeric
# features × 5 slice families takes ~250 MB (values with many ties), all-distinct values 28 B a row.
ECDF_MEMO_BYTES = 1 << 30


class EcdfMemo:
    """Reference ECDFs kept between evaluations of one process (thread-safe), within `budget` bytes.

    An entry is keyed by the profile keys — which name the reference rows as of T by their count
    and hash — the part and the feature, so it holds exactly while they do, and serves any request
    for slices it covers (`ensure_profile` builds every slice; the drift grid asks for those with
    enough reference values). When a new entry does not fit, entries of other profiles go first
    (least recently used first); when it still does not fit it is not kept (evicting this
    profile's own entries would make features evaluated in turn push each other out on every
    refresh, each rebuilt anyway).
    """

    def __init__(self, budget: int = ECDF_MEMO_BYTES) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self._held: dict[tuple[object, ...], Ecdf] = {}
        self._size = 0

    def __len__(self) -> int:
        return len(self._held)

    def ecdfs(
        self,
        con: duckdb.DuckDBPyConnection,
        profile: Profile,
        feature: Feature,
        parts: Mapping[str | None, Sequence[int]],
    ) -> dict[str | None, Ecdf]:
        """`reference_ecdfs` of the profile's reference covering (at least) the parts' slices; the
        parts held here are not rebuilt."""
        keys = {part: (profile.keys, part, feature.name, feature.sql) for part in parts}
        found: dict[str | None, Ecdf] = {}
        with self._lock:
            for part, key in keys.items():
                if self._covers(key, parts[part]):
                    found[part] = self._held[key] = self._held.pop(key)  # the most recently used last
        missing = {part: ids for part, ids in parts.items() if part not in found}
        if missing:
            built = reference_ecdfs(con, profile.reference, feature, missing)
            self.keep(profile.keys, feature, built)
            found |= built
        return found

    def hold(self, con: duckdb.DuckDBPyConnection, profile: Profile, workers: int | None = None) -> None:
        """Build (on up to `workers` threads) and keep every numeric feature's ECDFs in every
        slice of the profile's parts, but those held already: the reference read once for as
        many features at once as fit (`_per_reference_read`)."""
        parts: dict[str | None, list[int]] = {}
        for sid, slice_ in sorted(profile.slices.items()):
            parts.setdefault(slice_.segment, []).append(sid)
        with self._lock:
            missing = [
                f
                for f in profile.features
                if not all(self._covers((profile.keys, part, f.name, f.sql), parts[part]) for part in parts)
            ]

        def keep(values: _ReferenceValues, feature: Feature) -> None:
            self.keep(profile.keys, feature, values.ecdfs(feature))

        _per_reference_read(con, profile.reference, missing, parts, profile.n_rows, keep, workers)

    def _covers(self, key: tuple[object, ...], ids: Sequence[int]) -> bool:
        """Whether an ECDF held under `key` has every slice of `ids` (call with the lock held)."""
        held = self._held.get(key)
        return held is not None and bool(np.isin(np.asarray(ids, dtype=np.uint64), held.slice_ids).all())

    def keep(self, keys: tuple[str, ...], feature: Feature, built: Mapping[str | None, Ecdf]) -> None:
        """Hold the ECDFs of a feature built for the profile with these keys, part by part."""
        with self._lock:
            for part, ecdf in built.items():
                self._keep((keys, part, feature.name, feature.sql), ecdf)

    def _keep(self, key: tuple[object, ...], ecdf: Ecdf) -> None:
        replaced = self._held.pop(key, None)
        if replaced is not None:
            self._size -= replaced.nbytes
        others = [k for k in self._held if k[0] != key[0]]
        while others and self._size + ecdf.nbytes > self.budget:
            self._size -= self._held.pop(others.pop(0)).nbytes
        if self._size + ecdf.nbytes <= self.budget:
            self._held[key] = ecdf
            self._size += ecdf.nbytes


def reference_ecdfs(
    con: duckdb.DuckDBPyConnection,
    reference: str,
    feature: Feature,
    parts: Mapping[str | None, Sequence[int]],
) -> dict[str | None, Ecdf]:
    """The ECDF of a numeric feature's finite reference values in the given slices of each part."""
    return _ReferenceValues.read(con, reference, [feature], parts).ecdfs(feature)


@dataclass(frozen=True)
class _ReferenceValues:
    """Reference rows read once for several numeric features: each row's value of each (NaN when
    missing), and per segment part each row's slice."""

    ids: dict[str | None, np.ndarray]  # per part: the asked slice ids, ascending
    # Per segment part: each row's slice, its index in `ids` (-1: a slice not asked for); all
    # traffic's one slice is every row.
    codes: dict[str | None, np.ndarray]
    values: dict[str, np.ndarray]

    @classmethod
    def read(
        cls,
        con: duckdb.DuckDBPyConnection,
        reference: str,
        features: Sequence[Feature],
        parts: Mapping[str | None, Sequence[int]],
    ) -> _ReferenceValues:
        ids = {part: np.array(sorted(parts[part]), dtype=np.uint64) for part in parts}
        # Each row's slice as its 1-based position in the part's ids (0: a slice not asked for).
        segments = [part for part in parts if part is not None]
        codes = [
            f"coalesce(list_position(?::UBIGINT[], {slice_id_sql(part)}), 0) AS _s{k}"
            for k, part in enumerate(segments)
        ]
        values = [f"{f.raw_sql} AS _x{i}" for i, f in enumerate(features)]
        query = f"SELECT {', '.join(values + codes)} FROM ({reference})"
        data = fetch_arrays(con, query, [ids[part].tolist() for part in segments])
        slices: dict[str | None, np.ndarray] = {
            part: np.asarray(data[f"_s{k}"], dtype=np.int32) - 1 for k, part in enumerate(segments)
        }
        found = {f.name: data[f"_x{i}"] for i, f in enumerate(features)}
        return cls(ids, slices, found)

    def ecdfs(self, feature: Feature) -> dict[str | None, Ecdf]:
        """Each part's ECDF of the feature. The values are sorted once (`ascending`; missing ones,
        NaN, sort last and are dropped) and each segment's slices take theirs from that order
        (`by_slice`: a counting pass, not a sort per slice); then `ecdf_merge.accumulate` runs
        through each slice: cum = running count, g = Σ_{i<j} cum_i·(v_{i+1} − v_i), compensated,
        per slice (a slice's g does not depend on which other slices are built with it); the
        distinct values overwrite the sorted values."""
        order, ordered = ascending_present(finite_or_nan(self.values[feature.name]))
        present = len(ordered)
        grouped: dict[str | None, tuple[np.ndarray, np.ndarray]] = {}
        for part, ids in self.ids.items():
            if part is not None:  # before all traffic's `accumulate` writes over `ordered`
                value, code = np.empty(present), np.empty(present, dtype=np.int32)
                kept = by_slice(ordered, np.take(self.codes[part], order), len(ids), value, code)
                grouped[part] = value[:kept], code[:kept]
            elif ALL_SLICE in ids:
                grouped[part] = ordered, np.zeros(present, dtype=np.int32)
            else:
                grouped[part] = ordered[:0], np.zeros(0, dtype=np.int32)
        found: dict[str | None, Ecdf] = {}
        for part, (value, code) in grouped.items():
            counts = np.empty(len(value), dtype=np.int32 if len(value) < 2**31 else np.int64)
            distinct, cum, g, g_low, start, end = accumulate(
                code, value, len(self.ids[part]), counts, np.empty(len(value)), np.empty(len(value))
            )
            arrays: tuple[np.ndarray, ...] = (distinct, cum, g, g_low)
            if 2 * len(distinct) < len(self.values[feature.name]):
                # Much-tied (or missing) values: on memory of their own, so that a held ECDF does
                # not keep alive the buffers `accumulate` wrote it into (one row per value; all
                # traffic's, the sort's, one per row) — a 2.7 M-row reference's 11 features × 5
                # slice families held 1.2 GB for 0.18 GB of ECDFs.
                arrays = tuple(array.copy() for array in arrays)
            found[part] = Ecdf(self.ids[part], start, end, *arrays)
        return found


@dataclass(frozen=True)
class _SliceStats:
    """A numeric feature's finite values in one reference slice: what the profile stores of them."""

    n: int
    low: float
    high: float
    mean: float
    std: float  # ddof 0
    edges: list[float]  # PSI inner edges
    counts: list[int]  # values per bin


def _numeric_row(stats: _SliceStats | None, n_rows: int) -> list[object]:
    """The stored columns n … counts of a slice of `n_rows` rows (without a finite value: n = 0)."""
    if stats is None:
        return [0, n_rows, None, None, None, None, [], [0]]
    s = stats
    return [s.n, n_rows - s.n, s.low, s.high, s.mean, s.std, s.edges, s.counts]


def _slice_stats(ecdf: Ecdf) -> dict[int, _SliceStats]:
    """Per slice with values: count, min, max, mean, std, PSI edges (numpy `linear` quantiles), bin
    counts and G(max), from its ECDF (mean and std: `ecdf_merge.moments`)."""
    found: dict[int, _SliceStats] = {}
    means, stds = moments(ecdf.value, ecdf.cum, ecdf.start, ecdf.end)
    for k, (sid, start, end) in enumerate(
        zip(ecdf.slice_ids.tolist(), ecdf.start.tolist(), ecdf.end.tolist(), strict=True)
    ):
        if start == end:
            continue
        values, counts = ecdf.value[start:end], ecdf.cum[start:end]
        n = int(counts[-1])
        low, high, _ = _quantile_positions(n)
        ranks = np.union1d(low, high)
        order_stat = dict(
            zip(ranks.tolist(), values[np.searchsorted(counts, ranks + 1)].tolist(), strict=True)
        )
        edges = np.unique(numpy_quantiles(order_stat, n))
        below = [int(counts[i - 1]) if i else 0 for i in np.searchsorted(values, edges, side="left")]
        found[int(sid)] = _SliceStats(
            n,
            float(values[0]),
            float(values[-1]),
            float(means[k]),
            float(stds[k]),
            edges.tolist(),
            np.diff([0, *below, n]).tolist(),
        )
    return found


def _quantile_positions(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy's `linear` method for n values: the 0-based ranks read below and above, and the weight."""
    h = (n - 1) * PSI_QUANTILES
    lower = np.floor(h)
    above = h >= n - 1
    low = np.where(above, n - 1, lower).astype(np.int64)
    high = np.where(above, n - 1, lower + 1).astype(np.int64)
    return low, high, h - lower


def numpy_quantiles(order_stat: Mapping[int, float], n: int) -> np.ndarray:
    """np.quantile(x, 0.1 … 0.9, method="linear") from x's order statistics (0-based rank → value).

    numpy's arithmetic, step by step: h = (n − 1)·q, i = ⌊h⌋, t = h − i, then
    a + (b − a)·t, or b − (b − a)·(1 − t) when t ≥ 0.5, with a = x[i], b = x[i + 1]
    (both x[n − 1] when h ≥ n − 1).
    """
    low, high, t = _quantile_positions(n)
    a = np.array([order_stat[int(i)] for i in low])
    b = np.array([order_stat[int(i)] for i in high])
    # Near ±1.7e308, b − a overflows as in numpy's own (an infinite edge): the same, unannounced.
    with np.errstate(over="ignore", invalid="ignore"):
        diff = b - a
        return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def _load(
    con: duckdb.DuckDBPyConnection,
    tables: str,
    model: ModelConfig,
    keys: tuple[str, ...],
    features: tuple[Feature, ...],
    n_rows: int,
    reference: str,
) -> Profile:
    where = "list_contains(?, profile)"
    numeric: dict[int, dict[str, NumericProfile]] = {}
    for sid, name, n, n_missing, low, high, mean, std, edges, counts in con.execute(
        f'SELECT slice_id, feature, n, n_missing, "min", "max", mean, std, edges, counts '
        f"FROM {tables}{NUMERIC_TABLE} WHERE {where}",
        [list(keys)],
    ).fetchall():
        numeric.setdefault(int(sid), {})[name] = NumericProfile(
            int(n), int(n_missing), low, high, mean, std, tuple(edges), tuple(counts)
        )
    counts_by: dict[tuple[int, str], dict[str | None, int]] = {}
    for sid, name, category, count in con.execute(
        f"SELECT slice_id, feature, category, count FROM {tables}{CATEGORIES_TABLE} WHERE {where}",
        [list(keys)],
    ).fetchall():
        counts_by.setdefault((int(sid), name), {})[category] = int(count)
    categorical: dict[int, dict[str, CategoricalProfile]] = {}
    for (sid, name), by_category in counts_by.items():
        present = {str(k): v for k, v in by_category.items() if k is not None}
        categorical.setdefault(sid, {})[name] = CategoricalProfile(
            sum(present.values()), by_category.get(None, 0), present
        )
    slices = {
        int(sid): SliceProfile(
            int(sid), segment, value, int(rows), numeric.get(int(sid), {}), categorical.get(int(sid), {})
        )
        for sid, segment, value, rows in con.execute(
            f"SELECT slice_id, segment, segment_value, n_rows FROM {tables}{SLICES_TABLE} WHERE {where}",
            [list(keys)],
        ).fetchall()
    }
    return Profile(model.name, keys, features, slices, n_rows, tables, reference)
