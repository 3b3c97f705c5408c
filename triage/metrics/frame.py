"""The grid every statistic is computed on: window × version × slice, as SQL fragments.

One scan per statistic family: rows are bucketed into fixed UTC windows with `time_bucket`
(calendar months with `date_trunc`), and `GROUPING SETS` produce, in the same pass, each version
and all versions, each value of each segment column and all traffic. The columns a grouped query
exposes are always `window_start`, `version` (NULL = all), `segment` (NULL = all traffic) and
`segment_value`, so result rows map one-to-one onto `results.Cell`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from triage.config import ModelConfig, Window
from triage.store.ingest import YEARS
from triage.store.schema import quote

MISSING_SEGMENT = "(missing)"


@dataclass(frozen=True)
class Scope:
    """What one evaluation covers: a model as of a time, at a window size, over some slices."""

    model: ModelConfig
    as_of: datetime  # aware UTC; predictions with _ts <= as_of, labels with _labeled_at <= as_of
    window: Window
    segments: tuple[str, ...]
    last: int | None = None  # only the last N windows up to as_of
    since: datetime | None = None  # only the windows starting at or after this window start
    until: datetime | None = None  # only the rows before this time (a window start: the windows before it)

    @classmethod
    def of(
        cls,
        model: ModelConfig,
        as_of: datetime | None = None,
        window: Window | None = None,
        segments: Sequence[str] | None = None,
        last: int | None = None,
        trailing: bool = False,
    ) -> Scope:
        """`trailing`: windows counted back from the end of the model's window that holds as-of, so
        the latest one is the last `window` of traffic (not for calendar months)."""
        at = (as_of or datetime.now(UTC)).astimezone(UTC)
        size = window or model.window
        if trailing:
            size = size.ending_at(model.window.end_of(model.window.start_of(at)))
        if last is not None and last >= size.count_between(datetime(YEARS[0], 1, 1, tzinfo=UTC), at):
            last = None  # back before any time the store keeps: every window
        return cls(
            model=model,
            as_of=at,
            window=size,
            segments=tuple(model.segments if segments is None else segments),
            last=last,
        )

    @property
    def as_of_sql(self) -> str:
        """The as-of time as a DuckDB TIMESTAMP literal (UTC, naive like the store)."""
        return timestamp_sql(self.as_of)


def timestamp_sql(value: datetime) -> str:
    """A UTC TIMESTAMP literal for DuckDB (the store keeps naive UTC timestamps)."""
    naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return f"TIMESTAMP '{naive.isoformat(sep=' ')}'"


def window_start_sql(window: Window, column: str = "_ts") -> str:
    """SQL for the start of the window that `column` falls in (UTC, Monday-aligned weeks)."""
    if window.unit == "mo" and window.count == 1:
        return f"date_trunc('month', {column})"
    if window.origin is not None:
        return f"time_bucket({window.duckdb_interval}, {column}, {timestamp_sql(window.origin)})"
    return f"time_bucket({window.duckdb_interval}, {column})"


def window_end_sql(window: Window, start: str = "window_start") -> str:
    """SQL for the exclusive end of a window that starts at `start`."""
    return f"({start} + {window.duckdb_interval})"


def window_filter_sql(scope: Scope, column: str = "_ts") -> str:
    """Predicate: the row is at or before `as_of`, inside the last N windows, in the windows from
    `since` on and before `until` when asked."""
    predicate = f"{column} <= {scope.as_of_sql}"
    if scope.last is not None:
        current = window_start_sql(scope.window, scope.as_of_sql)
        earliest = f"({current} - {scope.last - 1} * {scope.window.duckdb_interval})"
        predicate += f" AND {column} >= {earliest}"
    if scope.since is not None:
        predicate += f" AND {column} >= {timestamp_sql(scope.since)}"
    if scope.until is not None:
        predicate += f" AND {column} < {timestamp_sql(scope.until)}"
    return predicate


@dataclass(frozen=True)
class Grouping:
    """SELECT expressions and the GROUP BY clause that produce the cell columns in one pass."""

    select: str
    group_by: str


def cell_grouping(
    scope: Scope, extra: Sequence[str] = (), by_version: bool = True, by_window: bool = True
) -> Grouping:
    """Cell columns for a query over a source that exposes `window_start`, `_version`, segments.

    `extra` are further grouping expressions kept in every set (e.g. a histogram bin); they are
    selected after the cell columns. Sets: (all | each version) × (all traffic | each segment column).
    """
    base = (["window_start"] if by_window else []) + list(extra)
    versions = [[], ["_version"]] if by_version else [[]]
    slices = [[], *([quote(s)] for s in scope.segments)]
    sets = [base + v + s for v in versions for s in slices]
    rendered = ", ".join("(" + ", ".join(cols) + ")" for cols in sets)
    version = "CASE WHEN GROUPING(_version) = 0 THEN _version END" if by_version else "NULL"
    if scope.segments:
        names = " ".join(f"WHEN GROUPING({quote(s)}) = 0 THEN {text_literal(s)}" for s in scope.segments)
        values = " ".join(
            f"WHEN GROUPING({quote(s)}) = 0 THEN {segment_value_sql(s)}" for s in scope.segments
        )
        segment, segment_value = f"CASE {names} END", f"CASE {values} END"
    else:
        segment, segment_value = "NULL", "NULL"
    window = ["window_start"] if by_window else ["NULL AS window_start"]
    cells = [f"{version} AS version", f"{segment} AS segment", f"{segment_value} AS segment_value"]
    select = [*window, *cells, *extra]
    return Grouping(select=", ".join(select), group_by=f"GROUPING SETS ({rendered})")


def grouped_sql(values: Mapping[str, str], otherwise: str) -> str:
    """SQL: values[column] for the first of the columns the grouping set groups by, else `otherwise`."""
    if not values:
        return otherwise
    whens = " ".join(f"WHEN GROUPING({column}) = 0 THEN {value}" for column, value in values.items())
    return f"CASE {whens} ELSE {otherwise} END"


def text_literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def segment_value_sql(segment: str, table: str = "") -> str:
    """A row's value of a segment column as a cell's `segment_value` (NULL shown as "(missing)")."""
    return f"coalesce(CAST({table}{quote(segment)} AS VARCHAR), {text_literal(MISSING_SEGMENT)})"


def grouping_set(scope: Scope, version: str | None, segment: str | None) -> int:
    """The position of a cell's grouping set in `cell_grouping`'s order: (all versions, then by
    version) × (all traffic, then each segment column)."""
    slices = 0 if segment is None else 1 + scope.segments.index(segment)
    return (version is not None) * (1 + len(scope.segments)) + slices


def cell_key(row: Sequence[object]) -> tuple[object, ...]:
    """The (window_start, version, segment, segment_value) key of a grouped result row."""
    return tuple(row[:4])
