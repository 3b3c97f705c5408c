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
  window counts) of the categories seen in either, scipy's default (Yates) correction; and
  `chi2_pooled_p`, the same test's p with the categories whose expected count is below 5 pooled
  into one (Cochran's rule): chi-square's p is valid only with such counts, and a table of many
  rare categories in a small cell reads as drift without it. The alert rules gate on the pooled p.
- Wasserstein-1 (numeric) = ∫ |F_ref − F_win| dx over the raw values (`scipy.stats.wasserstein_distance`),
  and divided by the reference std (ddof 0, floored at 0.001).

How KS and Wasserstein stay exact: through each slice's reference ECDF (`reference_ecdfs`) — per
distinct value v: `cum` = #{r ≤ v} and G(v) = Σ_{r ≤ v} (v − r), the integral of the cumulative
count. Per batch of windows, DuckDB reads every row's window, version and slice ids once and
every numeric feature's value (`_read_batch`); per feature the values are sorted once
(`ecdf_merge.ascending`: a sort of packed keys), and for each slice family (all traffic,
each segment column) one compiled pass (`ecdf_merge.family_cells`) walks them in ascending order:

1. place every value x in its slice's ECDF — one pointer per slice walks forward as x rises, a
   merge: le = #{r ≤ x}, lt = #{r < x} and G(x) = g + cum·(x − v) for the last reference value
   v ≤ x;
2. hand the value to each of its cells (window, and window and version, within the slice): a
   cell's values arrive ascending, so the i-th of its n values has F_win = i/n at its last tie,
   and the cell keeps only its last distinct value to do 3 and 4 as the next one arrives;
3. KS: D = max over the window's distinct values x_i of max(|le/m − i/n|, |lt/m − (i−1)/n|),
   with i the last resp. first position of x_i — F_ref and F_win are step functions, so these
   values contain every value |F_ref − F_win| takes;
4. Wasserstein: between consecutive window values a < b, F_win is the constant c = i/n and F_ref
   rises from le_a/m to lt_b/m. If F_ref ≥ c throughout, ∫_a^b |F_ref − c| = (G(b) − G(a))/m − c·(b − a);
   if F_ref ≤ c throughout, the negative of that; if F_ref is constant, |le_a/m − c|·(b − a)
   (no subtraction of nearly equal numbers). The tests are exact integer comparisons
   (le·n vs i·m). Only where F_ref crosses c inside (a, b) — rarely: both are monotone — is the
   crossing point x* needed (the first reference value with cum ≥ ⌈c·m⌉, a binary search in cum):
   c(x* − a) − (G(x*) − G(a))/m + (G(b) − G(x*))/m − c(b − x*).
   Below the first window value F_win = 0 (∫ = G(x_1)/m); above the last F_win = 1
   (∫ = (max_ref − x_n) − (G(max_ref) − G(x_n))/m).

G is accumulated with a compensated sum and kept as its (high, low) pair, subtracted part by part,
so a difference G(b) − G(a) is rounded about as much as the difference itself, not as G (which at
1e7 or epoch seconds would cost ~1e-9 of W a step); the steps are summed with compensation too.
Those differences are still as large as the gaps they span: where a cell's areas span a gap so
wide that a few of its ulps could reach a billionth of W (a sentinel: −1e12 under values of 1,
the ECDFs equal across it when both samples log it in the same share, so the area is 0 less
1e12 − 1e12), or W overflowed, the cell's W is summed again step by step over its values merged
with the reference ECDF, as scipy sums it (`ecdf_merge._redo_far_cells`; audit 45: W 0 for 0.5
beside a shared −1e17).
W then lies within ~1e-10 of the exact rational value where scipy's is (~1e-9, a few ulps, at W ≈
1e6); KS D equals scipy's bit for bit, p to ~1e-10 relative (`ks_pvalues`). Cells below
`min_samples` values (or whose slice reference has fewer) are reported with their counts and no
statistic, and are not computed at all.

Cost: O(rows · log rows) per feature — one float sort per batch, then per slice family one merge
with the reference. The reference's ECDF is computed once per call (a sort of its values;
cheaper than storing one row per distinct value and reading it back): by the profile when the
call computes that (it hands its ECDFs over), or once per process with an `EcdfMemo` (the
engine's: a live refresh or a replay step then costs the recomputed windows' rows, not the
reference's, while the memo's budget holds). Features run in parallel threads (numpy's sorts and
the compiled loops release the GIL), windows in batches of at most VALUES_READ_AT_ONCE numeric
values and BATCH_ROWS rows (memory), and each window's rows are cached (`DriftCache`): a later
call computes only the windows whose rows changed. A writable store stores the cache
(`Engine.warm` fills it after an ingest); a read-only one reads it.
PSI, JS and chi-square need only bin and category counts.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime
from functools import partial

import duckdb
import numpy as np
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from triage.metrics.codec import repeating_fields, sharing
from triage.metrics.ecdf_merge import ascending_present, family_cells, smirnov_log_sums
from triage.metrics.frame import Scope
from triage.metrics.profile import (
    VALUES_READ_AT_ONCE,
    WRITE_LOCK,
    EcdfMemo,
    Feature,
    NumericProfile,
    Profile,
    SliceProfile,
    ensure_profile,
    fetch_arrays,
    finite_or_nan,
    per_numeric_feature,
    slice_id_sql,
    writable,
)
from triage.metrics.quality import (
    CellCounts,
    categorical_counts,
    cell_counts,
    only_windows_sql,
)
from triage.metrics.results import DriftRow, not_enough
from triage.metrics.source import CellKey, aware, naive_utc, plain_rows_sql, window_end, window_rows_sql
from triage.store.tables import NUMERIC, table_columns, table_exists

# Counts (pairs × categories) that `categorical_stats` tabulates at once: ≈ 16 MB a table, a few
# hundred MB with chi2_tests' temporaries.
CATEGORY_BATCH = 1 << 21
# Named by its layout: an earlier triage reading a store this one wrote (a rollback, two installs)
# finds no table of another layout under its own name (its code reads columns by position).
CACHE_TABLE = "_triage_cache_drift_3"
_EARLIER_CACHE_TABLES = ("_triage_cache_drift",)
_ROWS_VIEW = "_triage_drift_rows"  # the rows being cached, as numpy arrays (per connection)
CACHE_FORMAT = 2
# DuckDB types of DriftRow's fields, in field order.
_CACHE_TYPES = (
    *("TIMESTAMP", "TIMESTAMP", "VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "BOOLEAN", "VARCHAR"),
    *("VARCHAR", "VARCHAR", "BIGINT", *["DOUBLE"] * 10),
)
_CACHE_DDL = "cache_key VARCHAR, token VARCHAR, " + ", ".join(
    f"{f.name} {kind}" for f, kind in zip(fields(DriftRow), _CACHE_TYPES, strict=True)
)
_REPEATING = repeating_fields(DriftRow)  # the text and times that `DriftCache.load` shares
# The cache table's columns: a table with others holds rows of an earlier DriftRow.
_CACHE_COLUMNS = ["cache_key", "token", *(f.name for f in fields(DriftRow))]
PSI_FLOOR = 1e-4
STD_FLOOR = 0.001
MAX_EDGES = 9
BATCH_ROWS = 2_000_000  # at most, whatever the features: each thread sorts a batch's values
SMIRNOV_EXACT_N = 1_000_000  # scipy's SMIRNOV_MAX_COMPUTE_N: above it, scipy.special.smirnov approximates


def psi(window: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Σ (a − e)·ln(a/e), a and e the window's and reference's bin shares floored at 1e-4, over the
    last axis (a bin that both leave empty adds 0)."""
    a = np.maximum(window / window.sum(axis=-1, keepdims=True), PSI_FLOOR)
    e = np.maximum(reference / reference.sum(axis=-1, keepdims=True), PSI_FLOOR)
    return np.sum((a - e) * np.log(a / e), axis=-1)


def js(window: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Jensen–Shannon distance, base 2, of the (unfloored) bin shares, over the last axis."""
    return np.asarray(jensenshannon(window, reference, base=2, axis=-1))


def ks_pvalues(d: np.ndarray, n: np.ndarray, m: np.ndarray) -> list[float | None]:
    """p of `ks_2samp(method="asymp")` per cell: kstwo.sf(D, round(m·n/(m + n))), larger size first.

    None when m·n/(m + n) rounds to 0 (one value on each side), where scipy returns NaN.
    scipy's kstwo.sf runs in Python one cell at a time; its two branches that nearly every cell of
    a large grid takes are computed here for all cells at once (agreeing to ~1e-10 relative), each
    cell routed by scipy's own tests (`_ksstats._kolmogn`, written the same way so they decide
    alike). With en > 140, 1 < en·D < en − 1 and D < 0.5:
    - 2.2 ≤ en·D² < 370: twice the exact one-sided Smirnov sum (`smirnov`);
    - en·D² < 2.2 and not (en ≤ 100 000 and en·D^1.5 ≤ 1.4): 1 − the Pelz–Good approximation
      (`pelz_good_cdf`).
    """
    big = np.maximum(n, m).astype(np.float64)
    small = np.minimum(n, m).astype(np.float64)
    en = np.round(big * small / (big + small))
    defined = en >= 1
    en = np.where(defined, en, 1.0)
    d = np.asarray(d, dtype=np.float64)
    t = en * d
    nxsquared = t * d
    large = (en > 140) & (t > 1.0) & (t < en - 1) & (d < 0.5)
    tail = large & (nxsquared >= 2.2) & (nxsquared < 370.0)
    body = large & (nxsquared < 2.2) & ~((en <= 100_000) & (en * d**1.5 <= 1.4))
    rest = ~tail & ~body
    p = np.empty(len(d))
    p[tail] = np.clip(2 * smirnov(en[tail].astype(np.int64), d[tail]), 0, 1)
    p[body] = np.clip(1.0 - pelz_good_cdf(en[body], d[body]), 0, 1)
    p[rest] = np.clip(stats.kstwo.sf(d[rest], en[rest]), 0, 1)
    return [float(value) if ok else None for value, ok in zip(p.tolist(), defined.tolist(), strict=True)]


def pelz_good_cdf(n: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The Pelz–Good approximation of P(Dₙ ≤ x) per cell: scipy's `_kolmogn_PelzGood` step for
    step, vectorised — K0(z) + K1(z)/√n + K2(z)/n + K3(z)/n^1.5 with z = x·√n, each K a Horner sum
    over odd m = 2k − 1 for k = ⌈16z/π⌉ … 1 (each cell its own count) plus the K2 and K3 sums over
    every k; 0 when −π²/(8z²) < −708."""
    z = np.sqrt(n) * x
    zsquared, zthree, zfour, zsix = z**2, z**3, z**4, z**6
    qlog = -(np.pi**2) / 8 / zsquared
    q = np.exp(qlog)
    k1a, k1b = -zsquared, np.pi**2 / 4
    k2a = 6 * zsix + 2 * zfour
    k2b = (2 * zfour - 5 * zsquared) * np.pi**2 / 4
    k2c = np.pi**4 * (1 - 2 * zsquared) / 16
    k3d = np.pi**6 * (5 - 30 * zsquared) / 64
    k3c = np.pi**4 * (-60 * zsquared + 212 * zfour) / 16
    k3b = np.pi**2 * (135 * zfour - 96 * zsix) / 4
    k3a = -30 * zsix - 90 * z**8
    terms = np.ceil(16 * z / np.pi).astype(np.int64)
    top = int(terms.max()) if len(terms) else 0
    k_sums = np.zeros((4, len(z)))
    for k in range(top, 0, -1):
        odd = 2 * k - 1
        coefficients = np.array(
            [
                np.ones(len(z)),
                k1a + k1b * odd**2,
                k2a + k2b * odd**2 + k2c * odd**4,
                k3a + k3b * odd**2 + k3c * odd**4 + k3d * odd**6,
            ]
        )
        k_sums = np.where(k <= terms, k_sums * np.power(q, 8 * k) + coefficients, k_sums)
    k_sums *= q
    k_sums *= np.sqrt(2 * np.pi)
    k_sums /= np.array([z, 6 * zfour, 72 * z**7, 6480 * z**10])
    ks = np.arange(top, 0, -1)[:, None]
    powers = np.where(ks <= terms, np.exp(-(np.pi**2) / 2 / zsquared) ** (ks**2), 0.0)
    k_sums[2] += np.sum(ks**2 * powers, axis=0) * (np.pi**2 * np.sqrt(2 * np.pi) / (-36 * zthree))
    sqrt3z, kspi = np.sqrt(3) * z, np.pi * ks
    k_sums[3] += np.sum((sqrt3z + kspi) * (sqrt3z - kspi) * ks**2 * powers, axis=0) * (
        np.pi**2 * np.sqrt(2 * np.pi) / (216 * zsix)
    )
    k_sums /= np.power(n * 1.0, np.arange(4)[:, None] / 2.0)
    return np.where(qlog < -708, 0.0, k_sums[0] + k_sums[1] + k_sums[2] + k_sums[3])


def smirnov(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """P(D⁺ₙ ≥ d) per (n, d), 0 < d < 1: `scipy.special.smirnov`, for all cells at once.

    Up to n = SMIRNOV_EXACT_N scipy computes the exact sum (O(n) a cell) and so does
    `_smirnov_sum`, compiled; beyond it scipy switches to an approximation, which is
    what it is called for here.
    """
    out = np.empty(len(n))
    summed = n <= SMIRNOV_EXACT_N
    out[~summed] = special.smirnov(n[~summed], d[~summed])
    out[summed] = _smirnov_sum(n[summed], d[summed])
    return out


def _smirnov_sum(n: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The exact sum d·Σ_{v=0}^{⌊n(1−d)⌋} C(n, v)·(d + v/n)^(v−1)·(1 − d − v/n)^(n−v) per cell,
    in logs (`ecdf_merge.smirnov_log_sums`).

    Below the smallest normal double the result would have lost its relative precision, so those
    (rare: n·d² ≳ 354) come from scipy's own function.
    """
    if not len(n):
        return np.empty(0)
    log_factorial = special.gammaln(np.arange(1, int(n.max()) + 2, dtype=np.float64))  # [k] = log k!
    out = smirnov_log_sums(n, d, log_factorial)
    tiny = out < math.log(np.finfo(np.float64).tiny)
    out = np.exp(out)
    out[tiny] = special.smirnov(n[tiny], d[tiny])
    return out


COCHRAN_MIN_EXPECTED = 5.0


def chi2_tests(window: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of (pairs × categories) counts — categories padded with columns both leave empty —
    `chi2_contingency` on [reference, window] with all-zero columns dropped: its statistic and p,
    and the p once sparse categories are pooled.

    scipy's arithmetic, for all pairs at once and without its per-call checks: expected =
    outer(row sums, column sums) / total; with one degree of freedom, Yates' correction moves
    each observed count half a unit (at most) towards its expectation; the statistic is
    Σ (observed − expected)² / expected and p = chi2.sf(statistic, K − 1) (`special.chdtrc`);
    K = 1 is 0 and p 1.

    Pooling: the categories whose smaller expected count (the smaller row's) is below 5 become
    one column; a pool still below 5 takes the smallest other category. Cochran's rule: the
    chi-square distribution fits the statistic only with expected counts of about 5 or more.
    Three hundred rows over a hundred categories give most categories an expected count below 1,
    where a category seen once adds ~10 to the statistic: p ≈ 1e-6 on no change.
    """
    table = np.stack([reference, window], axis=1).astype(np.float64)  # pair, row, category
    present = table.sum(axis=1) > 0
    statistic, p = _chi2(table, present)
    totals = table.sum(axis=1)
    rows = table.sum(axis=2)
    smaller = rows.min(axis=1) / np.maximum(rows.sum(axis=1), 1.0)
    rare = present & (totals * smaller[:, None] < COCHRAN_MIN_EXPECTED)
    kept = present & ~rare
    pool = np.where(rare[:, None, :], table, 0.0).sum(axis=2)
    # A pool still below 5 takes the smallest kept category (the first of equals, as argmin).
    joins = np.flatnonzero(
        rare.any(axis=1) & (pool.sum(axis=1) * smaller < COCHRAN_MIN_EXPECTED) & kept.any(axis=1)
    )
    smallest = np.argmin(np.where(kept, totals, np.inf), axis=1)[joins]
    pool[joins] += table[joins, :, smallest]
    kept[joins, smallest] = False
    pooled = np.concatenate([np.where(kept[:, None, :], table, 0.0), pool[:, :, None]], axis=2)
    pooled_p = _chi2(pooled, np.concatenate([kept, rare.any(axis=1)[:, None]], axis=1))[1]
    return statistic, p, np.where(rare.any(axis=1), pooled_p, p)


def _chi2(table: np.ndarray, present: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`chi2_tests`' statistic and p of each pair's table over its `present` categories."""
    dof = present.sum(axis=1) - 1
    expected = table.sum(axis=2, keepdims=True) * table.sum(axis=1, keepdims=True)
    expected = expected / table.sum(axis=(1, 2), keepdims=True)
    diff = expected - table
    observed = np.where(
        (dof == 1)[:, None, None], table + np.sign(diff) * np.minimum(0.5, np.abs(diff)), table
    )
    inside = np.broadcast_to(present[:, None, :], table.shape)
    terms = np.where(inside, (observed - expected) ** 2 / np.where(inside, expected, 1.0), 0.0)
    statistic = np.where(dof > 0, terms.sum(axis=(1, 2)), 0.0)
    return statistic, np.where(dof > 0, special.chdtrc(np.maximum(dof, 1), statistic), 1.0)


@dataclass(frozen=True)
class NumericCell:
    """What the numeric query returns for one cell: value count, KS D, Wasserstein, PSI bin counts."""

    n: int
    ks_d: float
    ks_p: float | None  # `ks_pvalues` against the slice's reference
    wasserstein: float
    bins: dict[int, int]


Slices = set[tuple[str | None, str | None]]  # (segment, value); (None, None) is all traffic


@dataclass(frozen=True)
class _Reference:
    """One slice family's reference ECDFs, ordered by (slice, value); slice k is rows [start[k], end[k])."""

    slice_ids: np.ndarray  # uint64, ascending: the family's slices with at least min_samples values
    start: np.ndarray
    end: np.ndarray
    value: np.ndarray
    cum: np.ndarray  # #{r <= value}
    g: np.ndarray  # G(value) = Σ_{r <= value} (value − r) = g + g_low (`ecdf_merge.accumulate`)
    g_low: np.ndarray
    m: np.ndarray  # per slice: its reference values
    rmax: np.ndarray  # per slice: the largest reference value
    edges: np.ndarray  # slice k's PSI inner edges are edges[edge_start[k] : edge_end[k]]
    edge_start: np.ndarray
    edge_end: np.ndarray


def _references(
    con: duckdb.DuckDBPyConnection,
    profile: Profile,
    feature: Feature,
    parts: Sequence[str | None],
    minimum: int,
    memo: EcdfMemo,
    needed: Slices | None = None,
) -> list[_Reference]:
    """Each part's reference ECDFs (from `memo`, which builds every slice's once), of the slices
    that have at least `minimum` reference values and are `needed`, when given: the others'
    cells are not computed."""
    numeric = _numeric_slices(profile, feature, minimum)
    built = _reference_slices(profile, numeric, parts)
    held = memo.ecdfs(con, profile, feature, built)
    slices = profile.slices
    found = []
    for part in parts:
        ids = [sid for sid in built[part] if needed is None or (part, slices[sid].segment_value) in needed]
        ecdf, stats = held[part].only(np.array(ids, dtype=np.uint64)), [numeric[sid] for sid in ids]
        edge_end = np.cumsum([len(s.edges) for s in stats], dtype=np.int64)
        found.append(
            _Reference(
                slice_ids=ecdf.slice_ids,
                start=ecdf.start,
                end=ecdf.end,
                value=ecdf.value,
                cum=ecdf.cum,
                g=ecdf.g,
                g_low=ecdf.g_low,
                m=np.array([s.n for s in stats], dtype=np.int64),
                rmax=np.array([s.max for s in stats], dtype=np.float64),
                edges=np.array([e for s in stats for e in s.edges], dtype=np.float64),
                edge_start=edge_end - [len(s.edges) for s in stats],
                edge_end=edge_end,
            )
        )
    return found


def _numeric_slices(profile: Profile, feature: Feature, minimum: int) -> dict[int, NumericProfile]:
    """The slices with at least `minimum` (and one) reference values of a numeric feature, by id."""
    return {
        sid: s.numeric[feature.name]
        for sid, s in profile.slices.items()
        if feature.name in s.numeric and s.numeric[feature.name].n >= max(minimum, 1)
    }


def _reference_slices(
    profile: Profile, numeric: Mapping[int, NumericProfile], parts: Sequence[str | None]
) -> dict[str | None, list[int]]:
    """Per part, the ids (ascending) of its slices among `numeric`'s."""
    return {part: sorted(sid for sid in numeric if profile.slices[sid].segment == part) for part in parts}


def numeric_cells(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    profile: Profile,
    features: Sequence[Feature],
    versions: Sequence[str],
    batches: Sequence[Sequence[datetime]],
    needed: Mapping[str, Slices] | None = None,
    memo: EcdfMemo | None = None,
) -> dict[str, dict[tuple[datetime, str | None, int], NumericCell]]:
    """Per numeric feature, KS D, Wasserstein-1 and PSI bin counts by (window, version, slice id).

    `batches` lists the windows to compute, in groups computed together; `versions`, the model
    versions there may be (with more than one, each version's cells too); `needed`, per feature,
    the slices with a cell of at least min_samples values in them (None: any slice) — only
    their cells are computed. The reference ECDFs come from `memo` (built there when missing; a
    memo of this call's own without one).

    Each batch is read once for all features (`_read_batch`), then the features run in parallel
    (`per_numeric_feature`: sorts and compiled loops that release the GIL).
    """
    numeric = [f for f in features if f.kind == NUMERIC]
    held = memo if memo is not None else EcdfMemo()
    found: dict[str, dict[tuple[datetime, str | None, int], NumericCell]] = {f.name: {} for f in numeric}
    for windows in batches:
        batch = _read_batch(con, scope, profile, numeric, versions, windows)
        cells = partial(_feature_cells, scope, profile, batch, needed, held)
        for name, in_batch in per_numeric_feature(con, numeric, cells).items():
            found[name] |= in_batch
    return found


def _feature_cells(
    scope: Scope,
    profile: Profile,
    batch: _Batch,
    needed: Mapping[str, Slices] | None,
    memo: EcdfMemo,
    cursor: duckdb.DuckDBPyConnection,
    feature: Feature,
) -> dict[tuple[datetime, str | None, int], NumericCell]:
    """One numeric feature's cells in a batch: its references (`_references`), then `_batch_cells`."""
    minimum = scope.model.min_samples
    wanted = None if needed is None else needed[feature.name]
    references = _references(cursor, profile, feature, (None, *scope.segments), minimum, memo, wanted)
    return _batch_cells(batch, feature, references, len(batch.versions) - 1, minimum)


@dataclass(frozen=True)
class _Batch:
    """The rows of a batch of windows: each row's cell codes and numeric features' values."""

    starts: list[datetime]  # the windows, ascending
    versions: list[str | None]  # [None, *versions]: codes[:, 1] indexes it (0: not a known version)
    # Per row: window (index into starts), version, then per segment the position + 1 of its
    # slice among the profile's slices of that segment (0: a slice without reference); then 0s.
    codes: np.ndarray
    slice_ids: list[np.ndarray]  # per part (all traffic, then each segment): its profile slices
    values: dict[str, np.ndarray]  # per feature: its value in each row, as read (`finite_or_nan`)


def _read_batch(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    profile: Profile,
    features: Sequence[Feature],
    versions: Sequence[str],
    windows: Sequence[datetime],
) -> _Batch:
    """One query for the batch's rows: window, version, slice ids and the features' values.

    Each row's cell codes are computed once for all the features (not once per feature), and a
    segment's slice is looked up among the profile's by id (ids ascending).
    """
    starts = sorted(windows)
    parts: tuple[str | None, ...] = (None, *scope.segments)
    names = [f"_x{i}" for i in range(len(features))]
    values = ", ".join(f"{f.raw_sql} AS {name}" for f, name in zip(features, names, strict=True))
    slices = "".join(f", {slice_id_sql(part)} AS _s{k}" for k, part in enumerate(parts) if part is not None)
    rows = plain_rows_sql(scope, window_rows_sql(scope), values)
    data = fetch_arrays(
        con,
        f"""SELECT list_position(?::TIMESTAMP[], window_start) - 1 AS _w,
            coalesce(list_position(?::VARCHAR[], _version), 0) AS _v{slices}, {", ".join(names)}
        FROM ({rows}) WHERE {only_windows_sql(windows)}""",
        [[naive_utc(start) for start in starts], list(versions)],
    )
    slice_ids = [
        np.array(sorted(sid for sid, s in profile.slices.items() if s.segment == part), dtype=np.uint64)
        for part in parts
    ]
    # Rows padded to a power-of-two width (unused columns 0): numpy gathers such rows (the sort
    # in `_batch_cells`) twice as fast as rows of, say, three int32.
    codes = np.zeros((len(data["_w"]), 1 << len(parts).bit_length()), dtype=np.int32)
    codes[:, 0] = data["_w"]
    codes[:, 1] = data["_v"]
    for k in range(1, len(parts)):
        sid = np.asarray(data[f"_s{k}"], dtype=np.uint64)
        place = np.searchsorted(slice_ids[k], sid)
        known = place < len(slice_ids[k])
        known[known] = slice_ids[k][place[known]] == sid[known]
        codes[:, 1 + k] = np.where(known, place + 1, 0)
    return _Batch(
        starts,
        [None, *versions],
        codes,
        slice_ids,
        {f.name: data[name] for f, name in zip(features, names, strict=True)},
    )


def _batch_cells(
    batch: _Batch, feature: Feature, references: Sequence[_Reference], n_versions: int, minimum: int
) -> dict[tuple[datetime, str | None, int], NumericCell]:
    """A numeric feature's cells in one batch, per slice family (`ecdf_merge.family_cells`).

    The values are sorted once (missing ones, NaN, last) and each family's cells are reduced in
    one pass over them: the arithmetic of the module docstring, many times faster than an ASOF
    join and sorted lists in DuckDB.
    """
    # Missing values (NaN) left out. Ties in any order: equal values are one step.
    by_value, x = ascending_present(finite_or_nan(batch.values[feature.name]))
    codes = np.take(batch.codes, by_value, axis=0)  # several times faster than [by_value]
    found: dict[tuple[datetime, str | None, int], NumericCell] = {}
    for k, ref in enumerate(references):
        if not len(ref.slice_ids) or not len(x):
            continue
        # Position + 1 among the part's profile slices -> index among the reference's (-1: none).
        at = np.searchsorted(ref.slice_ids, batch.slice_ids[k])
        inside = np.minimum(at, len(ref.slice_ids) - 1)
        slot = np.concatenate([[-1], np.where(ref.slice_ids[inside] == batch.slice_ids[k], inside, -1)])
        slice_of, window_of, version_of, sizes, ks_max, w, counts = family_cells(
            x,
            codes,
            k + 1 if k else -1,
            slot,
            len(batch.starts),
            n_versions,
            minimum,
            ref.value,
            ref.cum,
            ref.g,
            ref.g_low,
            ref.start,
            ref.end,
            ref.m,
            ref.rmax,
            ref.edges,
            ref.edge_start,
            ref.edge_end,
            MAX_EDGES + 1,
        )
        p = ks_pvalues(ks_max, sizes, ref.m[slice_of])
        cells = zip(slice_of.tolist(), window_of.tolist(), version_of.tolist(), strict=True)
        stats = zip(sizes.tolist(), ks_max.tolist(), w.tolist(), counts.tolist(), p, strict=True)
        for (s, window, version), (n, d, area, row, p_value) in zip(cells, stats, strict=True):
            bins = {index: count for index, count in enumerate(row) if count}
            key = (aware(batch.starts[window]), batch.versions[version + 1], int(ref.slice_ids[s]))
            found[key] = NumericCell(n, d, p_value, area, bins)
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


def compute_drift(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    counts: dict[CellKey, CellCounts] | None = None,
    profile: Profile | None = None,
    ecdfs: EcdfMemo | None = None,
    store: bool = True,
) -> list[DriftRow]:
    """Drift of every feature (and `__score__`) in every window × version × slice cell of the scope.

    The rows of each window are cached (`CACHE_TABLE`) with the window's token; a later
    call recomputes only the windows whose rows changed or are new. A read-only connection (or
    `store` False: a look back) uses the valid cached rows and computes the others without storing
    them. `counts` are the scope's
    `cell_counts` when the caller has them already (the data-quality pass counts the same cells),
    `profile` its `ensure_profile`; `ecdfs` keeps the reference ECDFs for the caller's next call.
    """
    if profile is None:
        # A profile computed here builds the reference ECDFs the grid needs: keep them for it.
        kept = ecdfs if ecdfs is not None else EcdfMemo()
        profile = ensure_profile(con, scope.model, scope.segments, scope.as_of, kept)
        if ecdfs is None and len(kept):
            ecdfs = kept
    if not profile.features:
        return []
    if counts is None:
        counts = cell_counts(con, scope, profile.features)
    tokens = {key[0]: cell.token for key, cell in counts.items() if key[1] is None and key[2] is None}
    cache = DriftCache(con, scope, profile, store)
    cached = cache.load(tokens)
    stale = sorted(set(tokens) - set(cached))
    rows = [row for window in cached.values() for row in window]
    if not stale:
        return rows
    versions = sorted({version for _, version, _, _ in counts if version is not None})
    # With one version its cells equal the all-versions cells: compute those once.
    by_version = len(versions) > 1
    n_numeric = sum(f.kind == NUMERIC for f in profile.features)
    rows_of = {window: counts[(window, None, None, None)].rows for window in stale}
    batches = _batches(stale, rows_of, min(BATCH_ROWS, VALUES_READ_AT_ONCE // max(n_numeric, 1)))
    minimum = scope.model.min_samples
    needed = {
        f.name: {
            (key[2], key[3])
            for key, cell in counts.items()
            if key[0] in stale and cell.values.get(f.name, 0) >= minimum
        }
        for f in profile.features
    }
    cursor = con.cursor()
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:  # alongside the numeric features
            categorical_work = pool.submit(_categorical_features, cursor, scope, profile, stale)
            numeric = _numeric_features(con, scope, profile, versions, batches, needed, ecdfs)
            categorical = categorical_work.result()
    finally:
        cursor.close()
    fresh: list[DriftRow] = []
    for key, cell in counts.items():
        if key[0] in cached:
            continue
        reference = profile.slice(key[2], key[3])
        for f in profile.features:
            fresh.append(_row(scope, key, cell, f, reference, numeric.get(f.name), categorical, by_version))
    if cache.writable:
        cache.store(fresh, {window: tokens[window] for window in stale})
    return rows + fresh


def cached_drift(
    con: duckdb.DuckDBPyConnection, scope: Scope, profile: Profile, tokens: dict[datetime, str]
) -> dict[datetime, list[DriftRow]]:
    """The stored drift rows of the windows whose token (`quality.CellCounts.token` of the window's
    all-traffic cell) is unchanged, against the scope's `profile`."""
    return DriftCache(con, scope, profile).load(tokens) if profile.features else {}


def _batches(windows: Sequence[datetime], rows: dict[datetime, int], limit: int) -> list[list[datetime]]:
    """Consecutive windows grouped so that a batch holds at most `limit` rows, or one window."""
    batches: list[list[datetime]] = []
    size = 0
    for window in windows:
        if not batches or size + rows[window] > limit:
            batches.append([])
            size = 0
        batches[-1].append(window)
        size += rows[window]
    return batches


def _numeric_features(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    profile: Profile,
    versions: Sequence[str],
    batches: Sequence[Sequence[datetime]],
    needed: Mapping[str, Slices],
    ecdfs: EcdfMemo | None,
) -> dict[str, dict[tuple[datetime, str | None, int], DriftStats]]:
    """Every numeric feature's cells (`numeric_cells`) and their statistics (`numeric_stats`)."""
    cells = numeric_cells(con, scope, profile, profile.features, versions, batches, needed, ecdfs)
    return {name: numeric_stats(found, profile, name) for name, found in cells.items()}


class DriftCache:
    """Drift rows per window, valid while the window's token (count and hash of its rows) holds.

    Keyed by the profile (so by the reference), the window size, the slice columns, min_samples
    and the features; as-of times that cut a window differently give it another token.
    A read-only connection (or `store` False) only reads it (nothing when the store has no cache
    table).
    """

    def __init__(
        self, con: duckdb.DuckDBPyConnection, scope: Scope, profile: Profile, store: bool = True
    ) -> None:
        self.con = con
        definition = {
            "format": CACHE_FORMAT,
            "profile": list(profile.keys),
            "window": scope.window.key,
            "segments": list(scope.segments),
            "min_samples": scope.model.min_samples,
            "features": [[f.name, f.kind] for f in profile.features],
        }
        self.key = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:32]
        self.writable = store and writable(con) and not scope.window.trailing
        if self.writable:
            with WRITE_LOCK:
                for earlier in _EARLIER_CACHE_TABLES:  # their rows are recomputed into this one
                    con.execute(f"DROP TABLE IF EXISTS {earlier}")
                if table_exists(con, CACHE_TABLE) and table_columns(con, CACHE_TABLE) != _CACHE_COLUMNS:
                    con.execute(f"DROP TABLE {CACHE_TABLE}")  # rows of an earlier layout: recomputed
                con.execute(f"CREATE TABLE IF NOT EXISTS {CACHE_TABLE} ({_CACHE_DDL})")

    def load(self, tokens: dict[datetime, str]) -> dict[datetime, list[DriftRow]]:
        """The cached rows of the windows whose token is unchanged (none from an earlier layout)."""
        if not tokens or table_columns(self.con, CACHE_TABLE) != _CACHE_COLUMNS:
            return {}
        found = self.con.execute(
            f"""SELECT c.* EXCLUDE (cache_key, token) FROM {CACHE_TABLE} AS c
            JOIN (SELECT unnest(?::TIMESTAMP[]) AS w, unnest(?::VARCHAR[]) AS token) AS v
                ON c.window_start = v.w AND c.token = v.token
            WHERE c.cache_key = ?""",
            [[naive_utc(w) for w in tokens], list(tokens.values()), self.key],
        ).fetchall()
        windows: dict[datetime, list[DriftRow]] = {}
        share = sharing()
        for values in found:
            fields_of_row = [aware(values[0]), aware(values[1]), *values[2:]]
            for k in _REPEATING:
                fields_of_row[k] = share(fields_of_row[k])
            row = DriftRow(*fields_of_row)
            windows.setdefault(row.window_start, []).append(row)
        return windows

    def store(self, rows: Sequence[DriftRow], tokens: dict[datetime, str]) -> None:
        """Replace the cached rows of these windows."""
        columns = {field.name: [getattr(row, field.name) for row in rows] for field in fields(DriftRow)}
        for name in ("window_start", "window_end"):
            columns[name] = [naive_utc(w) for w in columns[name]]
        columns["token"] = [tokens[row.window_start] for row in rows]
        with WRITE_LOCK:
            self._replace(tokens, {name: np.array(values, dtype=object) for name, values in columns.items()})

    def _replace(self, tokens: dict[datetime, str], columns: dict[str, np.ndarray]) -> None:
        """Delete the windows' rows and insert `columns` (the rows' fields and token, as numpy
        arrays DuckDB scans: ≈ 40× faster than binding them as lists of parameters)."""
        typed = zip(fields(DriftRow), _CACHE_TYPES, strict=True)
        casts = ", ".join(f"CAST({field.name} AS {kind})" for field, kind in typed)
        self.con.register(_ROWS_VIEW, columns)
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(
                f"DELETE FROM {CACHE_TABLE} "
                "WHERE cache_key = ? AND list_contains(?::TIMESTAMP[], window_start)",
                [self.key, [naive_utc(w) for w in tokens]],
            )
            insert = f"INSERT INTO {CACHE_TABLE} SELECT ?, token, {casts} FROM {_ROWS_VIEW}"
            self.con.execute(insert, [self.key])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        finally:
            self.con.unregister(_ROWS_VIEW)


@dataclass(frozen=True)
class DriftStats:
    """The statistics of one drift row; None where they do not apply or cannot be computed."""

    psi: float | None = None
    js: float | None = None
    ks_d: float | None = None
    ks_p: float | None = None
    chi2: float | None = None
    chi2_p: float | None = None
    chi2_pooled_p: float | None = None
    wasserstein: float | None = None
    wasserstein_norm: float | None = None


NUMERIC_STATS = ("psi", "js", "ks_d", "ks_p", "wasserstein", "wasserstein_norm")
CATEGORICAL_STATS = ("psi", "js", "chi2", "chi2_p", "chi2_pooled_p")


def _finite(values: np.ndarray) -> list[float | None]:
    """The values, None where not finite (never NaN in a report)."""
    finite = np.isfinite(values).tolist()
    return [value if ok else None for value, ok in zip(values.tolist(), finite, strict=True)]


_OVERFLOWING = ("wasserstein", "wasserstein_norm")


def _undefined(found: DriftStats, names: Sequence[str]) -> str | None:
    """The note for a cell with enough data where some statistic is null: not defined (e.g. ks_p
    for 1 vs 1), or — W1 and W1/σ, defined for any two samples — beyond a double (W1 itself, or
    the distance between two neighbouring values, past ≈ 1.8e308; W1/σ also where the reference's
    variance or the quotient is)."""
    missing = [name for name in names if getattr(found, name) is None]
    large = [name for name in missing if name in _OVERFLOWING and found.ks_d is not None]
    undefined = [name for name in missing if name not in large]
    notes = [f"too large to compute: {', '.join(large)}"] if large else []
    notes += [f"not defined for this cell: {', '.join(undefined)}"] if undefined else []
    return "; ".join(notes) or None


def numeric_stats(
    cells: Mapping[tuple[datetime, str | None, int], NumericCell], profile: Profile, feature: str
) -> dict[tuple[datetime, str | None, int], DriftStats]:
    """Per cell of a numeric feature: PSI and JS on its slice's bins, KS with its p-value,
    Wasserstein raw and over the reference std (finite or None), all cells at once."""
    keys = list(cells)
    references = [profile.slices[key[2]].numeric[feature] for key in keys]
    window_bins = np.zeros((len(keys), MAX_EDGES + 1))
    reference_bins = np.zeros((len(keys), MAX_EDGES + 1))
    for row, (key, reference) in enumerate(zip(keys, references, strict=True)):
        for index, count in cells[key].bins.items():
            window_bins[row, index] = count
        reference_bins[row, : len(reference.counts)] = reference.counts
    found = [cells[key] for key in keys]
    w = np.array([cell.wasserstein for cell in found], dtype=np.float64)
    std = np.array([max(reference.std or 0.0, STD_FLOOR) for reference in references])
    # A finite W1 near 1e308 over a small std is infinite: null with its note (`_undefined`), not a
    # numpy warning on stderr, where cron wrappers read triage's own notes.
    with np.errstate(over="ignore"):
        normalised = w / std
    columns = [
        psi(window_bins, reference_bins),
        js(window_bins, reference_bins),
        np.array([cell.ks_d for cell in found], dtype=np.float64),
        np.array([math.nan if cell.ks_p is None else cell.ks_p for cell in found], dtype=np.float64),
        w,
        normalised,
    ]
    rows = zip(*(_finite(column) for column in columns), strict=True)
    return {
        key: DriftStats(psi=a, js=b, ks_d=c, ks_p=d, wasserstein=e, wasserstein_norm=f)
        for key, (a, b, c, d, e, f) in zip(keys, rows, strict=True)
    }


def categorical_stats(
    pairs: Sequence[tuple[Mapping[str, int], Mapping[str, int]]],
) -> list[DriftStats]:
    """PSI, JS and chi-square of each (window, reference) pair of category counts, over the
    categories of reference ∪ window (`_category_batch`), in batches of pairs of similar width
    whose (pairs × categories) tables hold at most CATEGORY_BATCH counts: a feature with 50 000
    categories in thousands of cells would otherwise need tables of tens of GB at once."""
    names = [sorted(set(window) | set(reference)) for window, reference in pairs]
    by_width = sorted(range(len(pairs)), key=lambda i: len(names[i]))
    found: dict[int, DriftStats] = {}
    start = 0
    while start < len(by_width):
        end = start + 1  # widths ascend: a batch is as wide as its last pair
        while end < len(by_width) and (end + 1 - start) * len(names[by_width[end]]) <= CATEGORY_BATCH:
            end += 1
        batch = by_width[start:end]
        stats = _category_batch([pairs[i] for i in batch], [names[i] for i in batch])
        found |= zip(batch, stats, strict=True)
        start = end
    return [found[i] for i in range(len(pairs))]


def _category_batch(
    pairs: Sequence[tuple[Mapping[str, int], Mapping[str, int]]], names: Sequence[Sequence[str]]
) -> list[DriftStats]:
    """`categorical_stats` of pairs at once, each pair's categories (`names`) in sorted order,
    padded with bins both leave empty, which add nothing."""
    width = max((len(n) for n in names), default=0)
    window_counts = np.zeros((len(pairs), width))
    reference_counts = np.zeros((len(pairs), width))
    for row, ((window, reference), categories) in enumerate(zip(pairs, names, strict=True)):
        window_counts[row, : len(categories)] = [window.get(c, 0) for c in categories]
        reference_counts[row, : len(categories)] = [reference.get(c, 0) for c in categories]
    columns = [
        psi(window_counts, reference_counts),
        js(window_counts, reference_counts),
        *chi2_tests(window_counts, reference_counts),
    ]
    rows = zip(*(_finite(column) for column in columns), strict=True)
    return [DriftStats(psi=a, js=b, chi2=c, chi2_p=d, chi2_pooled_p=e) for a, b, c, d, e in rows]


def _categorical_features(
    con: duckdb.DuckDBPyConnection, scope: Scope, profile: Profile, windows: Sequence[datetime]
) -> dict[tuple[CellKey, str], DriftStats]:
    """The statistics of every cell of every categorical feature with at least min_samples values
    in the window and in its slice's reference (`categorical_counts`, then `categorical_stats`)."""
    minimum = scope.model.min_samples
    found = categorical_counts(con, scope, profile.features, windows)
    pairs: dict[tuple[CellKey, str], tuple[dict[str, int], dict[str, int]]] = {}
    for (key, feature), window in found.items():
        reference = profile.slice(key[2], key[3])
        counts = reference.categorical.get(feature) if reference else None
        if counts is not None and counts.n >= minimum and sum(window.values()) >= minimum:
            pairs[(key, feature)] = (window, dict(counts.counts))
    return dict(zip(pairs, categorical_stats(list(pairs.values())), strict=True))


def _row(
    scope: Scope,
    key: CellKey,
    cell: CellCounts,
    feature: Feature,
    reference: SliceProfile | None,
    numeric: dict[tuple[datetime, str | None, int], DriftStats] | None,
    categorical: dict[tuple[CellKey, str], DriftStats],
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
        note = not_enough(n, minimum, "values")
    elif n_reference == 0:
        note = "no reference values for this slice"
    elif n_reference < minimum:
        note = not_enough(n_reference, minimum, "reference values")
    elif ref_numeric is not None and numeric is not None and reference is not None:
        cell_key = (start, version if by_version else None, reference.slice_id)
        found = numeric[cell_key]
        note = _undefined(found, NUMERIC_STATS)
    elif ref_categorical is not None:
        found = categorical[(key, feature.name)]
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
        chi2_pooled_p=found.chi2_pooled_p,
        wasserstein=found.wasserstein,
        wasserstein_norm=found.wasserstein_norm,
        ks_d_psi_blind=found.ks_d if ref_numeric is not None and len(ref_numeric.edges) == 1 else None,
    )
