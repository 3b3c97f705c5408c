"""Data quality per window × version × slice and feature, and schema changes against the reference.

Per cell and feature (the score included, as `__score__`), against the reference rows of the
cell's slice (all traffic, or the same segment value), version ignored:

- `missing_rate` = rows without a value / rows (NULL; for numeric also NaN and ±inf), with the
  reference's own rate and `missing_rate_change` = window − reference;
- `unseen_share` (categorical) = values whose category never occurs in the slice's reference /
  values, and `unseen_categories`, the most frequent of them (up to 5, ties by name);
  `unseen_share_expected` = the slice reference's categories seen once / its values: Good–Turing's
  estimate of the share a new sample puts on categories the reference lacks, with nothing changed
  (a long tail of rare categories leaves some out of any reference; the alert rules test
  `unseen_share` against it), and `unseen_share_expected_se` its standard error, Esty's (1983)
  √((N1/n + 2·N2/n − (N1/n)²)/n) with N1, N2 the categories seen once and twice among the n
  values — both null, with a note, for a slice reference of fewer than `min_samples` values;
- `out_of_range_share` (numeric) = values below the slice reference's min or above its max / values.

Cells with fewer than `min_samples` rows are reported with their `n` and no statistic. Everything
is one aggregation over the evaluated rows (GROUPING SETS, see `frame.cell_grouping`); the
reference side comes from the stored profile (`profile.ensure_profile`).

Schema changes compare the columns the model watches in the latest evaluated window with what the
reference holds: a feature with values in the reference but none in the window is `missing`, one
with values only in the window is `added` (a file-set reference whose files lack a column stores it
as NULL), a configured feature the predictions table does not have, or with values on neither side,
is `missing`, and a numeric feature whose log values stopped being numbers is `retyped`: in the
window (as of T), at least as many of its values of another type (stored NULL in kept rows, or
quarantined with their row as "bad type" by an earlier triage) as numbers. A few malformed values
are quarantine's business, not a schema change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import duckdb

from triage.metrics.frame import Scope, cell_grouping, grouped_sql, segment_value_sql, timestamp_sql
from triage.metrics.profile import SCORE_FEATURE, Feature, Profile, ensure_profile, slice_id_sql
from triage.metrics.results import DataQualityRow, SchemaChange, not_enough
from triage.metrics.source import CellKey, aware, naive_utc, plain_rows_sql, window_end, window_rows_sql
from triage.store.schema import QUARANTINE_TABLE, REASON_BAD_TYPE, REASON_BAD_VALUE, quote
from triage.store.tables import CATEGORICAL, NUMERIC, column_exists, stored_layout, table_exists

UNSEEN_LISTED = 5


@dataclass
class CellCounts:
    """Rows of one cell, and per feature its values and (numeric) values outside the reference range.

    `token` identifies the cell's rows (their count and the xor of their row hashes): a cell whose
    token is unchanged holds exactly the rows it held before.
    """

    rows: int
    token: str
    values: dict[str, int] = field(default_factory=dict)
    out_of_range: dict[str, int] = field(default_factory=dict)


def feature_columns_sql(features: Sequence[Feature]) -> str:
    """Each feature's value (NULL when missing) as `_x0`, `_x1`, … in feature order."""
    return ", ".join(f"{f.value_sql} AS _x{i}" for i, f in enumerate(features))


def cell_counts(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    features: Sequence[Feature],
    profile: Profile | None = None,
) -> dict[CellKey, CellCounts]:
    """Rows and values per cell and feature; with a profile, also values outside the slice's range.

    One pass for the counts; the range tests then take one pass per slice family (all traffic,
    each segment column), grouped by that family's cells only: in one pass every cell would
    count the range tests of every family.
    """
    grouping = cell_grouping(scope)
    columns = f"hash(p._id, p._file_id, p._row) AS _h, {feature_columns_sql(features)}"
    rows_sql = plain_rows_sql(scope, window_rows_sql(scope), columns)
    aggregates = ["count(*)", "bit_xor(_h)", *(f"count(_x{i})" for i in range(len(features)))]
    result = con.execute(
        f"SELECT {grouping.select}, {', '.join(aggregates)} FROM ({rows_sql}) GROUP BY {grouping.group_by}"
    ).fetchall()
    counts: dict[CellKey, CellCounts] = {}
    for row in result:
        cell = CellCounts(
            int(row[4]), f"{row[4]}:{row[5]}", {f.name: int(row[6 + i]) for i, f in enumerate(features)}
        )
        counts[(aware(row[0]), row[1], row[2], row[3])] = cell
    numeric = [i for i, f in enumerate(features) if f.kind == NUMERIC]
    if profile is not None and numeric:
        for segment in (None, *scope.segments):
            for key, outside in _out_of_range(
                con, scope, rows_sql, features, numeric, profile, segment
            ).items():
                if key in counts:
                    counts[key].out_of_range = outside
    return counts


def _out_of_range(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    rows_sql: str,
    features: Sequence[Feature],
    numeric: Sequence[int],
    profile: Profile,
    segment: str | None,
) -> dict[CellKey, dict[str, int]]:
    """Per cell of one slice family, the values of each numeric feature outside its slice's range."""
    slices = [s for s in profile.slices.values() if s.segment == segment]
    bounds = ", ".join(f"unnest(?::DOUBLE[]) AS _lo{i}, unnest(?::DOUBLE[]) AS _hi{i}" for i in numeric)
    params: list[list[object]] = [[s.slice_id for s in slices]]
    for i in numeric:
        stats = [s.numeric.get(features[i].name) for s in slices]
        params.append([st.min if st else None for st in stats])
        params.append([st.max if st else None for st in stats])
    grouping = cell_grouping(replace(scope, segments=() if segment is None else (segment,)))
    column = "" if segment is None else f", {quote(segment)}"
    group_by = f"GROUPING SETS ((window_start{column}), (window_start, _version{column}))"
    outside = ", ".join(f"count(CASE WHEN _x{i} < _lo{i} OR _x{i} > _hi{i} THEN 1 END)" for i in numeric)
    result = con.execute(
        f"""SELECT {grouping.select}, {outside} FROM (
            SELECT * FROM ({rows_sql}) AS r
            LEFT JOIN (SELECT unnest(?::UBIGINT[]) AS _slice, {bounds}) AS _b
                ON _b._slice = {slice_id_sql(segment, "r.")}
        ) GROUP BY {group_by}""",
        params,
    ).fetchall()
    return {
        (aware(row[0]), row[1], row[2], row[3]): {
            features[i].name: int(row[4 + j]) for j, i in enumerate(numeric)
        }
        for row in result
    }


def only_windows_sql(windows: Sequence[datetime] | None) -> str:
    """A predicate keeping the rows of the given windows (all rows when None)."""
    if windows is None:
        return "true"
    return f"window_start IN ({', '.join(timestamp_sql(w) for w in windows) or 'NULL'})"


def categorical_counts(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    features: Sequence[Feature],
    windows: Sequence[datetime] | None = None,
) -> dict[tuple[CellKey, str], dict[str, int]]:
    """Per cell and categorical feature, the count of each category (missing values excluded).

    DuckDB counts each feature's categories per window × version × (all traffic | segment value),
    one grouping set per feature and part, and sums those counts over the versions for the
    all-versions cells: the rows are read once, not unpivoted into one row per feature and counted
    again for every grouping set (≈ 1.5× faster on 1 M rows of 5 categorical features).
    """
    categorical = [f for f in features if f.kind == CATEGORICAL]
    if not categorical:
        return {}
    parts: tuple[str | None, ...] = (None, *scope.segments)
    rows = plain_rows_sql(scope, window_rows_sql(scope), feature_columns_sql(categorical))
    xs = [f"_x{i}" for i in range(len(categorical))]
    segments = {k: part for k, part in enumerate(parts) if part is not None}  # by position in parts
    by = ["", *(f", {quote(segment)}" for segment in segments.values())]
    sets = ", ".join(f"(window_start, _version{columns}, {x})" for x in xs for columns in by)
    part = grouped_sql({quote(segment): str(k) for k, segment in segments.items()}, "0")
    value = grouped_sql({quote(segment): segment_value_sql(segment) for segment in segments.values()}, "NULL")
    feature = grouped_sql({x: str(k) for k, x in enumerate(xs)}, "NULL")
    # Each feature's categories per window × version × slice, then summed over the versions.
    result = con.execute(
        f"""SELECT window_start, CASE WHEN GROUPING(_version) = 0 THEN _version END, _part, _value, _feature,
            _category, sum(_n)
        FROM (
            SELECT window_start, _version, {part} AS _part, {value} AS _value, {feature} AS _feature,
                {grouped_sql({x: x for x in xs}, "NULL")} AS _category, count(*) AS _n
            FROM ({rows}) WHERE {only_windows_sql(windows)} GROUP BY GROUPING SETS ({sets})
        ) WHERE _category IS NOT NULL
        GROUP BY GROUPING SETS ((window_start, _version, _part, _value, _feature, _category),
            (window_start, _part, _value, _feature, _category))"""
    ).fetchall()
    starts = {start: aware(start) for start in {row[0] for row in result}}
    counts: dict[tuple[CellKey, str], dict[str, int]] = {}
    for start, version, k, segment_value, index, category, n in result:
        key = ((starts[start], version, parts[k], segment_value), categorical[index].name)
        counts.setdefault(key, {})[category] = int(n)
    return counts


def unseen(window: Mapping[str, int], reference: Mapping[str, int] | None) -> tuple[int, tuple[str, ...]]:
    """Values whose category is not in the reference, and the most frequent such categories."""
    new = {category: n for category, n in window.items() if not reference or category not in reference}
    listed = sorted(new, key=lambda category: (-new[category], category))[:UNSEEN_LISTED]
    return sum(new.values()), tuple(listed)


def quality_counts(
    con: duckdb.DuckDBPyConnection, scope: Scope, profile: Profile | None = None
) -> dict[CellKey, CellCounts]:
    """`cell_counts` of the scope's profiled features with the out-of-range counts: what
    `compute_quality` needs, and a superset of what `compute_drift` needs (`profile`: the scope's
    `ensure_profile`, when the caller has it already)."""
    profile = (
        profile if profile is not None else ensure_profile(con, scope.model, scope.segments, scope.as_of)
    )
    return cell_counts(con, scope, profile.features, profile) if profile.features else {}


def compute_quality(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    counts: dict[CellKey, CellCounts] | None = None,
    profile: Profile | None = None,
) -> list[DataQualityRow]:
    """Data quality of every feature in every cell of the scope (`counts`, `profile`: the scope's
    `quality_counts` and `ensure_profile`, when the caller has them already)."""
    profile = (
        profile if profile is not None else ensure_profile(con, scope.model, scope.segments, scope.as_of)
    )
    features = profile.features
    if not features:
        return []
    if counts is None:
        counts = quality_counts(con, scope, profile)
    categories = categorical_counts(con, scope, features)
    minimum = scope.model.min_samples
    rows: list[DataQualityRow] = []
    predicted: dict[tuple[int, str], tuple[float, float]] = {}  # Good–Turing per slice reference
    for key, cell in counts.items():
        start, version, segment, value = key
        reference = profile.slice(segment, value)
        for f in features:
            n_values = cell.values[f.name]
            missing_rate = missing_reference = change = unseen_share = expected = expected_se = None
            out_share = None
            listed: tuple[str, ...] = ()
            note = None
            if cell.rows < minimum:
                note = not_enough(cell.rows, minimum)
            else:
                missing_rate = (cell.rows - n_values) / cell.rows
                if reference is None or reference.n_rows == 0:
                    note = "no reference rows for this slice"
                else:
                    stats = reference.numeric.get(f.name) or reference.categorical.get(f.name)
                    n_reference = stats.n if stats else 0
                    missing_reference = (reference.n_rows - n_reference) / reference.n_rows
                    change = missing_rate - missing_reference
                    if n_values == 0:
                        note = "no values in this cell"
                    elif f.kind == NUMERIC:
                        if n_reference:
                            out_share = cell.out_of_range.get(f.name, 0) / n_values
                        else:
                            note = "no reference values for this slice"
                    else:
                        window = categories.get((key, f.name), {})
                        cat = reference.categorical.get(f.name)
                        n_unseen, listed = unseen(window, cat.counts if cat else None)
                        unseen_share = n_unseen / n_values
                        if cat is not None and 0 < cat.n < minimum:
                            note = (
                                f"unseen share not tested: {cat.n} reference values < min_samples {minimum}"
                            )
                        elif cat is not None and cat.n:
                            found = (reference.slice_id, f.name)
                            if found not in predicted:
                                predicted[found] = good_turing(cat.counts.values(), cat.n)
                            expected, expected_se = predicted[found]
            rows.append(
                DataQualityRow(
                    window_start=start,
                    window_end=window_end(scope, start),
                    version=version,
                    segment=segment,
                    segment_value=value,
                    n=cell.rows,
                    enough_data=cell.rows >= minimum,
                    note=note,
                    feature=f.name,
                    kind=f.kind,
                    n_reference=reference.n_rows if reference is not None else 0,
                    missing_rate=missing_rate,
                    missing_rate_reference=missing_reference,
                    missing_rate_change=change,
                    unseen_share=unseen_share,
                    unseen_categories=listed,
                    unseen_share_expected=expected,
                    unseen_share_expected_se=expected_se,
                    out_of_range_share=out_share,
                )
            )
    return rows


def good_turing(counts: Iterable[int], n: int) -> tuple[float, float]:
    """Good–Turing's share of new values that fall on categories a sample of `n` values lacks
    (N1/n, N1 its categories seen once), and Esty's standard error of it (N2: seen twice)."""
    once = twice = 0
    for count in counts:
        once += count == 1
        twice += count == 2
    share = once / n
    return share, math.sqrt(max(share + 2 * twice / n - share * share, 0.0) / n)


def schema_changes(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    counts: dict[CellKey, CellCounts] | None = None,
    profile: Profile | None = None,
) -> list[SchemaChange]:
    """Features missing, added or retyped in the latest evaluated window relative to the reference
    (`counts`, `profile`: the scope's `quality_counts` and `ensure_profile`, when the caller has
    them already). The latest window, not all of them: a column dropped yesterday still has values
    in the windows before, and is missing now."""
    model = scope.model
    profile = profile if profile is not None else ensure_profile(con, model, scope.segments, scope.as_of)
    if counts is None:
        counts = quality_counts(con, scope, profile)
    layout = stored_layout(con, model)
    types = {"numeric": "DOUBLE", "categorical": "VARCHAR"}
    changes: list[SchemaChange] = []
    stored = {f.name for f in layout.features} if layout else set()
    for name, kind in [(n, NUMERIC) for n in model.numeric] + [(n, CATEGORICAL) for n in model.categorical]:
        if name not in stored:
            changes.append(SchemaChange(name, "missing", types[kind], None))
    everyone = profile.slice(None, None)
    if not counts or everyone is None or not everyone.n_rows:
        return changes
    latest = max(key[0] for key in counts)
    cell = counts.get((latest, None, None, None))
    if cell is None or not cell.rows:
        return changes
    retyped = _retyped(con, scope, profile, latest, cell) if table_exists(con, QUARANTINE_TABLE) else set()
    for f in profile.features:
        if f.name == SCORE_FEATURE:
            continue
        stats = everyone.numeric.get(f.name) or everyone.categorical.get(f.name)
        in_reference = bool(stats and stats.n)
        in_window = cell.values.get(f.name, 0) > 0
        if f.name in retyped:  # no reference type when the reference had no number either
            changes.append(
                SchemaChange(f.name, "retyped", types[f.kind] if in_reference else None, "VARCHAR")
            )
        elif in_reference and not in_window:
            changes.append(SchemaChange(f.name, "missing", types[f.kind], None))
        elif in_window and not in_reference:
            changes.append(SchemaChange(f.name, "added", None, types[f.kind]))
        elif not in_window and not in_reference:  # configured, but in no log (a misspelt name?)
            changes.append(SchemaChange(f.name, "missing", None, None))
    return changes


def _retyped(
    con: duckdb.DuckDBPyConnection, scope: Scope, profile: Profile, window: datetime, cell: CellCounts
) -> set[str]:
    """The numeric features with at least as many values of another type (quarantined as a bad type,
    or stored NULL in kept rows) as numbers in the window's predictions up to T. A store made before
    the quarantine kept rows' times has none to count."""
    if not column_exists(con, QUARANTINE_TABLE, "row_ts"):
        return set()
    end = min(scope.window.end_of(window), scope.as_of + timedelta(microseconds=1))
    bad = con.execute(
        f"SELECT split_part(detail, ': ', 1), count(*) FROM {QUARANTINE_TABLE} "
        "WHERE model = ? AND kind = 'predictions' AND reason IN (?, ?) AND row_ts >= ? AND row_ts < ? "
        "GROUP BY ALL",
        [scope.model.name, REASON_BAD_TYPE, REASON_BAD_VALUE, naive_utc(window), naive_utc(end)],
    ).fetchall()
    numeric = {f.name for f in profile.features if f.kind == NUMERIC}
    return {name for name, n in bad if name in numeric and n >= cell.values.get(name, 0)}
