"""Drift of every feature and of the score, per window × version × slice, against the slice's reference.

Definitions (DESIGN §4). Missing values (NULL; for numeric also NaN and ±inf) are left out of
every statistic; `n` and `n_reference` count the values that remain. The reference of a cell is
its slice's reference rows (all traffic, or the same segment value), whatever their version.

- PSI = Σ (a − e)·ln(a / e) over bins, a = window share, e = reference share, both floored at
  1e-4. Numeric bins: the slice reference's `linear` quantiles at 0.1 … 0.9 as inner edges
  (duplicates dropped), bins [e_k, e_k+1) with open outer bins; categorical: one bin per category
  in reference ∪ window.
- JS = Jensen–Shannon distance, base 2, on the same bins — on the *unfloored* shares, where it is
  finite anyway: this equals `scipy.spatial.distance.jensenshannon(window, reference, base=2)`
  on the bin counts. (The floor exists only to keep PSI's logarithm finite.)
- KS (numeric) D = sup |F_ref − F_win| over the raw values; p = `kstwo.sf(D, round(m·n/(m + n)))`,
  exactly `scipy.stats.ks_2samp(method="asymp")`.
- chi² (categorical) = `scipy.stats.chi2_contingency` on the 2×K table (reference counts,
  window counts) of the categories seen in either, scipy's default (Yates) correction.
- Wasserstein-1 (numeric) = ∫ |F_ref − F_win| dx over the raw values (`scipy.stats.wasserstein_distance`),
  and divided by the reference std (ddof 0, floored at 0.001).

How KS and Wasserstein stay exact without sorting the reference again: the profile stores each
slice's reference ECDF — per distinct value v: `cum` = #{r ≤ v} and G(v) = Σ_{r ≤ v} (v − r),
the integral of the cumulative count. Per numeric feature (`numeric_cells`), a few statements

1. give every window value x, once per slice family it belongs to (all traffic, each segment
   column), its place in that slice's reference by an ASOF join on the ECDF: le = #{r ≤ x},
   lt = #{r < x} and G(x) = g + cum·(x − v) for the last reference value v ≤ x;
2. collect each cell's values, sorted, into a list (GROUPING SETS over window × version × slice;
   list aggregates are several times cheaper in DuckDB than window functions): the i-th of n
   values has F_win = i/n at its last tie;
3. KS: D = max over the window's distinct values x_i of max(|le/m − i/n|, |lt/m − (i−1)/n|),
   with i the last resp. first position of x_i — F_ref and F_win are step functions, so these
   values contain every value |F_ref − F_win| takes;
4. Wasserstein: between consecutive window values a < b, F_win is the constant c = i/n and F_ref
   rises from le_a/m to lt_b/m. If F_ref ≥ c throughout, ∫_a^b |F_ref − c| = (G(b) − G(a))/m − c·(b − a);
   if F_ref ≤ c throughout, the negative of that; if F_ref is constant, |le_a/m − c|·(b − a)
   (no subtraction of nearly equal numbers). The tests are exact integer comparisons
   (le·n vs i·m). Only where F_ref crosses c inside (a, b) — rarely: both are monotone — is the
   crossing point x* needed (the first reference value with cum ≥ ⌈c·m⌉, a second ASOF join on
   those few intervals): c(x* − a) − (G(x*) − G(a))/m + (G(b) − G(x*))/m − c(b − x*).
   Below the first window value F_win = 0 (∫ = G(x_1)/m); above the last F_win = 1
   (∫ = (max_ref − x_n) − (G(max_ref) − G(x_n))/m).

G is accumulated in extended precision when the profile is built, so a difference G(b) − G(a)
is off by about one rounding of G: on 1 M rows the results equal scipy's to ~1e-15 of the value
range (KS D and p bit for bit). Cells below `min_samples` values (or whose slice reference has
fewer) are reported with their counts and no statistic, and are not computed at all.

Cost: each value is looked up once per slice family and sorted once per cell it belongs to, so
exact KS and Wasserstein cost O(rows × features × cells per row) — features run in parallel,
windows in batches of about BATCH_ROWS rows (memory), and each window's rows are cached
(`DriftCache`): a later call computes only the windows whose rows changed. A writable store
stores the cache (`Engine.warm` fills it after an ingest); a read-only one reads it.
PSI, JS and chi-square need only bin and category counts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime

import duckdb
import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

from triage.metrics.frame import Scope
from triage.metrics.profile import (
    ALL_SLICE,
    MAIN_TABLES,
    WRITE_LOCK,
    Feature,
    NumericProfile,
    Profile,
    SliceProfile,
    ensure_profile,
    slice_id_sql,
    writable,
)
from triage.metrics.quality import (
    CellCounts,
    categorical_counts,
    cell_counts,
    not_enough,
    only_windows_sql,
)
from triage.metrics.results import DriftRow
from triage.metrics.source import CellKey, aware, plain_rows_sql, window_end, window_rows_sql
from triage.store.tables import NUMERIC

CACHE_TABLE = "_triage_cache_drift"
CACHE_FORMAT = 1
# DuckDB types of DriftRow's fields, in field order.
_CACHE_TYPES = (
    *("TIMESTAMP", "TIMESTAMP", "VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "BOOLEAN", "VARCHAR"),
    *("VARCHAR", "VARCHAR", "BIGINT", *["DOUBLE"] * 8),
)
_CACHE_DDL = "cache_key VARCHAR, token VARCHAR, " + ", ".join(
    f"{f.name} {kind}" for f, kind in zip(fields(DriftRow), _CACHE_TYPES, strict=True)
)
PSI_FLOOR = 1e-4
STD_FLOOR = 0.001
MAX_EDGES = 9
BATCH_ROWS = 2_000_000  # window rows per batch of the numeric statistics


def naive_utc(value: datetime) -> datetime:
    """An aware time as the naive UTC timestamp the store keeps."""
    return value.astimezone(UTC).replace(tzinfo=None)


def psi(window: np.ndarray, reference: np.ndarray) -> float:
    """Σ (a − e)·ln(a/e), a and e the window's and reference's bin shares floored at 1e-4."""
    a = np.maximum(window / window.sum(), PSI_FLOOR)
    e = np.maximum(reference / reference.sum(), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def js(window: np.ndarray, reference: np.ndarray) -> float:
    """Jensen–Shannon distance, base 2, of the (unfloored) bin shares."""
    return float(jensenshannon(window, reference, base=2))


def ks_pvalue(d: float, n: int, m: int) -> float | None:
    """p of `ks_2samp(method="asymp")`: kstwo.sf(D, round(m·n/(m + n))), larger size first.

    None when m·n/(m + n) rounds to 0 (one value on each side), where scipy returns NaN.
    """
    big, small = sorted([float(n), float(m)], reverse=True)
    en = np.round(big * small / (big + small))
    if en < 1:
        return None
    return float(np.clip(stats.kstwo.sf(d, en), 0, 1))


def chi2(window: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """`chi2_contingency` on [reference, window] counts with all-zero columns dropped."""
    table = np.array([reference, window])
    table = table[:, table.sum(axis=0) > 0]
    result = stats.chi2_contingency(table)
    return float(result.statistic), float(result.pvalue)


@dataclass(frozen=True)
class NumericCell:
    """What the numeric query returns for one cell: value count, KS D, Wasserstein, PSI bin counts."""

    n: int
    ks_d: float
    wasserstein: float
    bins: dict[int, int]


# Wasserstein over [x_i, x_i+1) where F_win = i/n, in the cell list `l` of m reference values.
_NEXT = "l[i + 1]"
_INTERVAL = f"""CASE WHEN i = n OR {_NEXT}.x = e.x THEN 0
    WHEN e.le = {_NEXT}.lt THEN abs(e.le / m - i / n) * ({_NEXT}.x - e.x)
    WHEN e.le * n >= i * m THEN ({_NEXT}.g - e.g) / m - i / n * ({_NEXT}.x - e.x)
    WHEN {_NEXT}.lt * n <= i * m THEN i / n * ({_NEXT}.x - e.x) - ({_NEXT}.g - e.g) / m
    ELSE 0 END"""
_CROSSING = (
    f"{_NEXT}.x <> l[i].x AND l[i].le <> {_NEXT}.lt AND l[i].le * n < i * m AND {_NEXT}.lt * n > i * m"
)
_KS = """greatest(
    CASE WHEN i = n OR l[i + 1].x <> e.x THEN abs(e.le / m - i / n) ELSE 0 END,
    CASE WHEN i = 1 OR l[i - 1].x <> e.x THEN abs(e.lt / m - (i - 1) / n) ELSE 0 END)"""


def numeric_cells(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    profile: Profile,
    feature: Feature,
    by_version: bool,
    batches: Sequence[Sequence[datetime] | None] = (None,),
) -> dict[tuple[datetime, str | None, int], NumericCell]:
    """KS D, Wasserstein-1 and PSI bin counts of a numeric feature, by (window, version, slice id).

    `batches` lists the windows to compute, in groups computed together (None: every window).

    A few statements over temporary tables per batch of windows: DuckDB runs the ASOF join and
    the list aggregation several times faster on materialized inputs than inside one pipelined
    query, and a batch bounds the memory they take.
    """
    minimum = scope.model.min_samples
    found: dict[tuple[datetime, str | None, int], NumericCell] = {}
    with _temporary_tables(con) as t:
        con.execute(f"CREATE TEMP TABLE {t.ref} AS {profile.numeric_sql(feature.name)} AND n >= {minimum}")
        con.execute(f"CREATE TEMP TABLE {t.ecdf} AS {profile.ecdf_sql(feature.name)}")
        for windows in batches:
            for sql in _numeric_batch_sql(scope, feature, by_version, windows, t):
                con.execute(sql)
            for start, version, sid, n, ks, w, bins in con.execute(_numeric_result_sql(t)).fetchall():
                found[(aware(start), version, int(sid))] = NumericCell(
                    int(n), float(ks), float(w), dict(bins)
                )
            con.execute(f"DROP TABLE {t.looked}; DROP TABLE {t.terms}")
    return found


def numeric_histograms(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    profile: Profile,
    feature: Feature,
    windows: Sequence[datetime] | None = None,
) -> dict[tuple[datetime, str | None, int], dict[int, int]]:
    """PSI bin counts of a numeric feature per (window, version, slice id), bins of the slice's reference.

    Only the histograms (one scan, no ECDF): what a panel needs to draw reference vs window.
    """
    rows = plain_rows_sql(scope, window_rows_sql(scope), f"{feature.value_sql} AS _x")
    src = f"SELECT * FROM ({rows}) WHERE _x IS NOT NULL AND {only_windows_sql(windows)}"
    families = " UNION ALL ".join(
        f"SELECT window_start, _version, {slice_id_sql(segment)} AS _slice, _x FROM src"
        for segment in (None, *scope.segments)
    )
    result = con.execute(
        f"""WITH src AS ({src}), ref AS ({profile.numeric_sql(feature.name)})
        SELECT window_start, CASE WHEN grouping(_version) = 0 THEN _version END, _slice, _bin, count(*)
        FROM (SELECT f.*, {_bin_sql("r.edges", "f._x")} AS _bin FROM ({families}) AS f
            JOIN ref AS r ON r.slice_id = f._slice)
        GROUP BY GROUPING SETS ((window_start, _slice, _bin), (window_start, _version, _slice, _bin))"""
    ).fetchall()
    histograms: dict[tuple[datetime, str | None, int], dict[int, int]] = {}
    for start, version, sid, bin_, count in result:
        histograms.setdefault((aware(start), version, int(sid)), {})[int(bin_)] = int(count)
    return histograms


def _bin_sql(edges: str, value: str) -> str:
    """The PSI bin of a value: the number of the (at most MAX_EDGES) inner edges <= it."""
    return " + ".join(f"coalesce({edges}[{k}] <= {value}, false)::INTEGER" for k in range(1, MAX_EDGES + 1))


def _numeric_batch_sql(
    scope: Scope, feature: Feature, by_version: bool, windows: Sequence[datetime] | None, t: _Tables
) -> list[str]:
    """Statements filling `looked` (values with their reference position) and `terms` (per cell)."""
    minimum = scope.model.min_samples
    rows = plain_rows_sql(scope, window_rows_sql(scope), f"{feature.value_sql} AS _x")
    src = f"SELECT * FROM ({rows}) WHERE _x IS NOT NULL AND {only_windows_sql(windows)}"
    bins = _bin_sql("r.edges", "f._x")
    # Each value once per slice family it belongs to, with its place in that slice's reference;
    # all traffic is one slice, so its ASOF join needs no partition.
    families = []
    for segment in (None, *scope.segments):
        slice_id = slice_id_sql(segment)
        ecdf = f"(SELECT * FROM {t.ecdf} WHERE slice_id {'=' if segment is None else '<>'} {ALL_SLICE})"
        match = "" if segment is None else "e.slice_id = f._slice AND "
        families.append(
            f"""SELECT f.window_start, f._version, f._slice, f._x, {bins} AS _bin,
                coalesce(e.cum, 0) AS _le,
                coalesce(e.cum, 0) - CASE WHEN e.value = f._x THEN e.cnt ELSE 0 END AS _lt,
                coalesce(e.g + e.cum * (f._x - e.value), 0) AS _g
            FROM (SELECT window_start, _version, {slice_id} AS _slice, _x FROM src) AS f
            JOIN {t.ref} AS r ON r.slice_id = f._slice
            ASOF LEFT JOIN {ecdf} AS e ON {match}f._x >= e.value"""
        )
    sets = (
        "(window_start, _slice), (window_start, _version, _slice)" if by_version else "(window_start, _slice)"
    )
    version = "CASE WHEN grouping(_version) = 0 THEN _version END" if by_version else "NULL::VARCHAR"
    return [
        f"CREATE TEMP TABLE {t.looked} AS WITH src AS ({src}) {' UNION ALL '.join(families)}",
        f"""CREATE TEMP TABLE {t.terms} AS
        SELECT window_start, version, _slice, n, m, bins,
            list_max(list_transform(l, lambda e, i: {_KS})) AS ks,
            l[1].g / m + CASE WHEN l[n].x < rmax THEN (rmax - l[n].x) - (gmax - l[n].g) / m ELSE 0 END
                + list_sum(list_transform(l, lambda e, i: {_INTERVAL})) AS w,
            list_transform(list_filter(range(1, n), lambda i: {_CROSSING}), lambda i: struct_pack(
                i := i, a := l[i].x, b := l[i + 1].x, ga := l[i].g, gb := l[i + 1].g)) AS crossings
        FROM (
            SELECT c.*, r.n AS m, r."max" AS rmax, r.g_max AS gmax FROM (
                SELECT window_start, {version} AS version, _slice, count(*) AS n, histogram(_bin) AS bins,
                    list_sort(list(struct_pack(x := _x, le := _le, lt := _lt, g := _g))) AS l
                FROM {t.looked} GROUP BY GROUPING SETS ({sets}) HAVING count(*) >= {minimum}
            ) AS c JOIN {t.ref} AS r ON r.slice_id = c._slice
        )""",
    ]


def _numeric_result_sql(t: _Tables) -> str:
    """Each cell's KS D, Wasserstein-1 (adding the intervals where F_ref crosses F_win) and bins.

    Where F_ref crosses F_win = i/n inside (a, b): x* = the first reference value with
    cum >= ⌈i·m/n⌉, found by an ASOF join on the cumulative count.
    """
    return f"""WITH crossed AS (
            SELECT window_start, version, _slice, n, m, x.i, x.a, x.b, x.ga, x.gb,
                (x.i * m + n - 1) // n AS target
            FROM (SELECT window_start, version, _slice, n, m, unnest(crossings) AS x FROM {t.terms})
        ), across AS (
            SELECT c.window_start, c.version, c._slice, sum(
                c.i / c.n * (e.value - c.a) - (e.g - c.ga) / c.m
                + (c.gb - e.g) / c.m - c.i / c.n * (c.b - e.value)) AS w
            FROM crossed AS c ASOF JOIN {t.ecdf} AS e ON e.slice_id = c._slice AND c.target <= e.cum
            GROUP BY ALL
        )
        SELECT t.window_start, t.version, t._slice, t.n, t.ks, t.w + coalesce(a.w, 0), t.bins
        FROM {t.terms} AS t LEFT JOIN across AS a ON a.window_start = t.window_start
            AND a.version IS NOT DISTINCT FROM t.version AND a._slice = t._slice"""


@dataclass(frozen=True)
class _Tables:
    """Names of one call's temporary tables (unique, so concurrent cursors do not collide)."""

    ref: str
    ecdf: str
    looked: str
    terms: str


@contextmanager
def _temporary_tables(con: duckdb.DuckDBPyConnection) -> Iterator[_Tables]:
    """Temporary table names that are dropped when the block ends, however it ends."""
    suffix = uuid.uuid4().hex
    tables = _Tables(*(f"_triage_{name}_{suffix}" for name in ("ref", "ecdf", "looked", "terms")))
    try:
        yield tables
    finally:
        for table in (tables.ref, tables.ecdf, tables.looked, tables.terms):
            con.execute(f"DROP TABLE IF EXISTS {table}")


def compute_drift(con: duckdb.DuckDBPyConnection, scope: Scope) -> list[DriftRow]:
    """Drift of every feature (and `__score__`) in every window × version × slice cell of the scope.

    The rows of each window are cached (`_triage_cache_drift`) with the window's token; a later
    call recomputes only the windows whose rows changed or are new. A read-only connection uses
    the valid cached rows and computes the others without storing them.
    """
    profile = ensure_profile(con, scope.model, scope.segments, scope.as_of)
    if not profile.features:
        return []
    counts = cell_counts(con, scope, profile.features)
    tokens = {key[0]: cell.token for key, cell in counts.items() if key[1] is None and key[2] is None}
    cache = DriftCache(con, scope, profile)
    cached = cache.load(tokens)
    stale = sorted(set(tokens) - set(cached))
    rows = [row for window in cached.values() for row in window]
    if not stale:
        return rows
    versions = {version for _, version, _, _ in counts if version is not None}
    # With one version its cells equal the all-versions cells: compute those once.
    by_version = len(versions) > 1
    batches = _batches(stale, {window: counts[(window, None, None, None)].rows for window in stale})
    numeric = _numeric_features(con, scope, profile, by_version, batches)
    categories = categorical_counts(con, scope, profile.features, stale)
    fresh: list[DriftRow] = []
    for key, cell in counts.items():
        if key[0] in cached:
            continue
        reference = profile.slice(key[2], key[3])
        for f in profile.features:
            fresh.append(_row(scope, key, cell, f, reference, numeric.get(f.name), categories, by_version))
    if cache.writable:
        cache.store(fresh, {window: tokens[window] for window in stale})
    return rows + fresh


def _batches(windows: Sequence[datetime], rows: dict[datetime, int]) -> list[list[datetime]]:
    """Consecutive windows grouped so that a batch holds about BATCH_ROWS rows (at least one window)."""
    batches: list[list[datetime]] = []
    size = 0
    for window in windows:
        if not batches or size + rows[window] > BATCH_ROWS:
            batches.append([])
            size = 0
        batches[-1].append(window)
        size += rows[window]
    return batches


def _numeric_features(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    profile: Profile,
    by_version: bool,
    batches: Sequence[Sequence[datetime] | None],
) -> dict[str, dict[tuple[datetime, str | None, int], NumericCell]]:
    """Every numeric feature's cells, features in parallel on their own cursors when they can be.

    DuckDB runs parts of one feature's work (a list lambda over a few hundred cells, an ASOF join
    without partitions) on one thread; features are independent, so they fill the other cores.
    A profile kept in one connection's temporary tables is visible to that connection only.
    """
    features = [f for f in profile.features if f.kind == NUMERIC]
    workers = min(len(features), os.cpu_count() or 1)
    if workers <= 1 or profile.tables != MAIN_TABLES:
        return {f.name: numeric_cells(con, scope, profile, f, by_version, batches) for f in features}

    def run(feature: Feature) -> dict[tuple[datetime, str | None, int], NumericCell]:
        cursor = con.cursor()
        try:
            return numeric_cells(cursor, scope, profile, feature, by_version, batches)
        finally:
            cursor.close()

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip([f.name for f in features], pool.map(run, features), strict=True))


class DriftCache:
    """Drift rows per window, valid while the window's token (count and hash of its rows) holds.

    Keyed by the profile (so by the reference), the window size, the slice columns, min_samples
    and the features; as-of times that cut a window differently give it another token.
    A read-only connection only reads it (nothing when the store has no cache table).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, scope: Scope, profile: Profile) -> None:
        self.con = con
        definition = {
            "format": CACHE_FORMAT,
            "profile": list(profile.keys),
            "window": scope.window.text,
            "segments": list(scope.segments),
            "min_samples": scope.model.min_samples,
            "features": [[f.name, f.kind] for f in profile.features],
        }
        self.key = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:32]
        self.writable = writable(con)
        if self.writable:
            con.execute(f"CREATE TABLE IF NOT EXISTS {CACHE_TABLE} ({_CACHE_DDL})")

    def load(self, tokens: dict[datetime, str]) -> dict[datetime, list[DriftRow]]:
        """The cached rows of the windows whose token is unchanged."""
        if not tokens or not (self.writable or self._stored()):
            return {}
        found = self.con.execute(
            f"""SELECT c.* EXCLUDE (cache_key, token) FROM {CACHE_TABLE} AS c
            JOIN (SELECT unnest(?::TIMESTAMP[]) AS w, unnest(?::VARCHAR[]) AS token) AS v
                ON c.window_start = v.w AND c.token = v.token
            WHERE c.cache_key = ?""",
            [[naive_utc(w) for w in tokens], list(tokens.values()), self.key],
        ).fetchall()
        windows: dict[datetime, list[DriftRow]] = {}
        for values in found:
            row = DriftRow(aware(values[0]), aware(values[1]), *values[2:])
            windows.setdefault(row.window_start, []).append(row)
        return windows

    def _stored(self) -> bool:
        """Whether the store has the cache table (a read-only connection cannot create it)."""
        row = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [CACHE_TABLE]
        ).fetchone()
        return bool(row and row[0])

    def store(self, rows: Sequence[DriftRow], tokens: dict[datetime, str]) -> None:
        """Replace the cached rows of these windows."""
        columns = [field.name for field in fields(DriftRow)]
        values = [[getattr(row, name) for row in rows] for name in columns]
        values[0] = [naive_utc(w) for w in values[0]]
        values[1] = [naive_utc(w) for w in values[1]]
        token = [tokens[row.window_start] for row in rows]
        with WRITE_LOCK:
            self._replace(tokens, token, values)

    def _replace(self, tokens: dict[datetime, str], token: list[str], values: list[list[object]]) -> None:
        unnest = ", ".join(f"unnest(?::{kind}[])" for kind in _CACHE_TYPES)
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(
                f"DELETE FROM {CACHE_TABLE} "
                "WHERE cache_key = ? AND list_contains(?::TIMESTAMP[], window_start)",
                [self.key, [naive_utc(w) for w in tokens]],
            )
            self.con.execute(
                f"INSERT INTO {CACHE_TABLE} SELECT ?, unnest(?::VARCHAR[]), {unnest}",
                [self.key, token, *values],
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise


@dataclass(frozen=True)
class DriftStats:
    """The statistics of one drift row; None where they do not apply or cannot be computed."""

    psi: float | None = None
    js: float | None = None
    ks_d: float | None = None
    ks_p: float | None = None
    chi2: float | None = None
    chi2_p: float | None = None
    wasserstein: float | None = None
    wasserstein_norm: float | None = None

    def finite(self) -> DriftStats:
        """The same statistics with any non-finite value made None (never NaN in a report)."""
        return DriftStats(
            *(value if value is None or math.isfinite(value) else None for value in astuple(self))
        )


NUMERIC_STATS = ("psi", "js", "ks_d", "ks_p", "wasserstein", "wasserstein_norm")
CATEGORICAL_STATS = ("psi", "js", "chi2", "chi2_p")


def _undefined(found: DriftStats, names: Sequence[str]) -> str | None:
    """The note for a cell with enough data where some statistic is not defined (e.g. ks_p for 1 vs 1)."""
    missing = [name for name in names if getattr(found, name) is None]
    return f"not defined for this cell: {', '.join(missing)}" if missing else None


def numeric_stats(found: NumericCell, reference: NumericProfile, n_reference: int) -> DriftStats:
    """PSI and JS on the slice's bins, KS with its p-value, Wasserstein raw and over the reference std."""
    window_bins = np.array([found.bins.get(k, 0) for k in range(len(reference.counts))], dtype=float)
    reference_bins = np.array(reference.counts, dtype=float)
    return DriftStats(
        psi=psi(window_bins, reference_bins),
        js=js(window_bins, reference_bins),
        ks_d=found.ks_d,
        ks_p=ks_pvalue(found.ks_d, found.n, n_reference),
        wasserstein=found.wasserstein,
        wasserstein_norm=found.wasserstein / max(reference.std or 0.0, STD_FLOOR),
    )


def categorical_stats(window: dict[str, int], reference: dict[str, int]) -> DriftStats:
    """PSI, JS and chi-square over the categories of reference ∪ window."""
    names = sorted(set(window) | set(reference))
    window_counts = np.array([window.get(c, 0) for c in names], dtype=float)
    reference_counts = np.array([reference.get(c, 0) for c in names], dtype=float)
    statistic, p = chi2(window_counts, reference_counts)
    return DriftStats(
        psi=psi(window_counts, reference_counts),
        js=js(window_counts, reference_counts),
        chi2=statistic,
        chi2_p=p,
    )


def _row(
    scope: Scope,
    key: CellKey,
    cell: CellCounts,
    feature: Feature,
    reference: SliceProfile | None,
    numeric: dict[tuple[datetime, str | None, int], NumericCell] | None,
    categories: dict[tuple[CellKey, str], dict[str, int]],
    by_version: bool,
) -> DriftRow:
    start, version, segment, value = key
    minimum = scope.model.min_samples
    n = cell.values[feature.name]
    ref_numeric = reference.numeric.get(feature.name) if reference else None
    ref_categorical = reference.categorical.get(feature.name) if reference else None
    n_reference = ref_numeric.n if ref_numeric else ref_categorical.n if ref_categorical else 0
    found = DriftStats()
    note = None
    if n < minimum:
        note = not_enough(n, minimum)
    elif n_reference == 0:
        note = "no reference values for this slice"
    elif n_reference < minimum:
        note = not_enough(n_reference, minimum, "n_reference")
    elif ref_numeric is not None and numeric is not None and reference is not None:
        cell_key = (start, version if by_version else None, reference.slice_id)
        found = numeric_stats(numeric[cell_key], ref_numeric, n_reference).finite()
        note = _undefined(found, NUMERIC_STATS)
    elif ref_categorical is not None:
        window = categories.get((key, feature.name), {})
        found = categorical_stats(window, dict(ref_categorical.counts)).finite()
        note = _undefined(found, CATEGORICAL_STATS)
    return DriftRow(
        window_start=start,
        window_end=window_end(scope, start),
        version=version,
        segment=segment,
        segment_value=value,
        n=n,
        enough_data=n >= minimum and n_reference >= minimum,
        note=note,
        feature=feature.name,
        kind=feature.kind,
        n_reference=n_reference,
        psi=found.psi,
        js=found.js,
        ks_d=found.ks_d,
        ks_p=found.ks_p,
        chi2=found.chi2,
        chi2_p=found.chi2_p,
        wasserstein=found.wasserstein,
        wasserstein_norm=found.wasserstein_norm,
    )
