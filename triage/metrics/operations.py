"""Operations per window × version × slice, and per window × version × route (DESIGN §4).

- volume = rows (`n`);
- latency p50/p95/p99 = `quantile_cont` over the rows with a latency (numpy's linear percentile);
- error rate, fallback rate = share of true flags among the rows with the flag logged;
- cost per 1 000 predictions = 1000·Σ cost / rows (rows without a cost count as 0; None when no
  row has one);
- tokens per request = mean tokens over the rows with tokens.
A signal that is not logged in a cell is None and named in the note; so is one whose values
(finite: ingest stores no ±inf) overflow their sum (costs near 1e308).

The feed's freshness (`feed_row`): the latest prediction as of T and the silence since it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import duckdb

from triage.metrics.frame import MISSING_SEGMENT, Scope, cell_grouping
from triage.metrics.results import FeedRow, OperationsRow, WindowInfo, not_enough
from triage.metrics.source import aware, naive_utc, plain_rows_sql, window_end, window_rows_sql

_COLUMNS = (
    "p._latency_ms, p._error, p._fallback, p._cost, p._tokens, "
    f"coalesce(p._route, '{MISSING_SEGMENT}') AS _route_key"
)
_AGGREGATES = (
    "count(*), quantile_cont(_latency_ms, [0.5, 0.95, 0.99]), avg(_error::DOUBLE), "
    "avg(_fallback::DOUBLE), sum(_cost), count(_cost), avg(_tokens)"
)


def compute_operations(
    con: duckdb.DuckDBPyConnection, scope: Scope, source: str | None = None
) -> list[OperationsRow]:
    """One OperationsRow per cell of `source` (a SELECT of prediction rows; default: the scope's
    windows) over all routes (route None), and per window × version × route (all traffic) when
    the route is logged; a NULL route is its own route, "(missing)"."""
    rows = plain_rows_sql(scope, source or window_rows_sql(scope), _COLUMNS)
    groupings = [(cell_grouping(scope), False)]
    if scope.model.columns.route is not None:
        all_traffic = replace(scope, segments=())
        groupings.append((cell_grouping(all_traffic, extra=["_route_key"]), True))
    out: list[OperationsRow] = []
    for grouping, by_route in groupings:
        result = con.execute(
            f"SELECT {grouping.select}, {_AGGREGATES} FROM ({rows}) GROUP BY {grouping.group_by}"
        ).fetchall()
        for row in result:
            route = row[4] if by_route else None
            stats = row[5:] if by_route else row[4:]
            out.append(_row(scope, row[:4], route, stats))
    return out


def _row(scope: Scope, cell: tuple, route: str | None, stats: tuple) -> OperationsRow:
    n, latency, error_rate, fallback_rate, cost_sum, n_cost, tokens = stats
    start = aware(cell[0])
    min_samples = scope.model.min_samples
    row = OperationsRow(
        window_start=start,
        window_end=window_end(scope, start),
        version=cell[1],
        segment=cell[2],
        segment_value=cell[3],
        n=n,
        enough_data=n >= min_samples,
        note=None,
        route=route,
        latency_p50_ms=None,
        latency_p95_ms=None,
        latency_p99_ms=None,
        error_rate=None,
        fallback_rate=None,
        cost_per_1k=None,
        tokens_per_request=None,
    )
    if n < min_samples:
        note = not_enough(n, min_samples)
        return replace(row, note=note)
    values = {
        "latency": latency,
        "error": error_rate,
        "fallback": fallback_rate,
        "cost": cost_sum if n_cost else None,
        "tokens": tokens,
    }
    missing = [name for name, value in values.items() if value is None]
    found: dict[str, Any] = {
        "latency_p50_ms": None if latency is None else latency[0],
        "latency_p95_ms": None if latency is None else latency[1],
        "latency_p99_ms": None if latency is None else latency[2],
        "error_rate": error_rate,
        "fallback_rate": fallback_rate,
        "cost_per_1k": None if not n_cost else 1000.0 * cost_sum / n,
        "tokens_per_request": tokens,
    }
    # Finite values near 1e308 can overflow a sum (DuckDB's percentiles do not): no number to show.
    overflow = [name for name, value in found.items() if value is not None and not math.isfinite(value)]
    notes = [f"not logged: {', '.join(missing)}"] if missing else []
    if overflow:
        notes.append(f"too large to compute: {', '.join(overflow)}")
    found |= dict.fromkeys(overflow)
    return replace(row, note="; ".join(notes) or None, **found)


def feed_row(con: duckdb.DuckDBPyConnection, scope: Scope, windows: Sequence[WindowInfo]) -> FeedRow:
    """The silence of the model's predictions as of T: T minus the latest timestamp in the evaluated
    `windows` (read from the latest window with any, so the scan stays in it), in the window that
    holds T. Fewer than `min_samples` predictions in the windows make it not enough data."""
    n = sum(window.n for window in windows)
    latest = next((window for window in reversed(windows) if window.n), None)
    last = None
    if latest is not None:
        found = con.execute(
            f"SELECT max(_ts) FROM ({window_rows_sql(scope)}) WHERE _ts >= ?",
            [naive_utc(latest.window_start)],
        ).fetchone()
        last = aware(found[0]) if found and found[0] is not None else None
    min_samples = scope.model.min_samples
    note = None
    if last is None:
        note = "no predictions in the evaluated windows"
    elif n < min_samples:
        note = not_enough(n, min_samples, "predictions")
    start = scope.window.start_of(scope.as_of)
    return FeedRow(
        window_start=start,
        window_end=scope.window.end_of(start),
        version=None,
        segment=None,
        segment_value=None,
        n=n,
        enough_data=note is None,
        note=note,
        last_prediction=last,
        silence_s=None if last is None else (scope.as_of - last).total_seconds(),
    )
