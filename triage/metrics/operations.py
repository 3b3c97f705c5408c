"""Operations per window × version × slice, and per window × version × route (DESIGN §4).

- volume = rows (`n`);
- latency p50/p95/p99 = `quantile_cont` over the rows with a latency (numpy's linear percentile),
  the p95 with a 95 % interval from its asymptotic standard error √(0.95·0.05/n) / f, the density
  f at it read off the 94th and 96th percentiles: a 200-request canary's p95 is its tenth-largest
  latency, which two slow LLM calls move;
- error rate, fallback rate = share of true flags among the rows with the flag logged;
- cost per 1 000 predictions = 1000·Σ cost / rows (rows without a cost count as 0; None when no
  row has one), with its 95 % normal interval 1000·(mean ± z·s/√rows), not floored, s the rows'
  costs' standard deviation (ddof 1): a canary's few hundred requests, a few of them LLM calls,
  move it by chance;
- tokens per request = mean tokens over the rows with tokens.
A signal that is not logged in a cell is None and named in the note; so is one whose values
(finite: ingest stores no ±inf) overflow their sum (costs near 1e308).

The feed's freshness (`feed_rows`): the latest prediction as of T and the silence since it, for the
model and for each slice — with how long the model went on without the slice, and how many
predictions the slice had in the same hours of earlier days — and its volume: the predictions of
the last hour against the same hour of each of the 7 days before (`volume`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import duckdb

from triage.config import ModelConfig
from triage.metrics.frame import MISSING_SEGMENT, Scope, cell_grouping, segment_value_sql, text_literal
from triage.metrics.intervals import Z95
from triage.metrics.results import FeedRow, OperationsRow, WindowInfo, not_enough
from triage.metrics.source import aware, naive_utc, plain_rows_sql, window_end, window_rows_sql
from triage.store.schema import predictions_table, quote

# A slice the model went on without for this long (or `stale_after`, if shorter) is compared with
# the same hours of 7 consecutive earlier days, from twice its silence back (all of them: the first
# weekend has no earlier one to be like), or, silent too long for that, with its whole history of a
# week or more: it must have had FEED_USUAL_MIN predictions in each for its silence to be judged (at
# that rate, a silence as long comes by chance with probability e⁻²⁰ ≈ 2e-9), and the silence
# judged is how much longer it is than the longest the slice went without FEED_USUAL_MIN
# predictions from a moment of those hours (a daily batch that runs a few minutes late went about
# as long before).
FEED_COMPARE_AFTER_S = 60.0
FEED_DAYS = 7
FEED_USUAL_MIN = 20
DAY, WEEK = timedelta(days=1), timedelta(weeks=1)
# The volume of the hour up to the model's last prediction is compared with the same hour of each
# of the FEED_DAYS days before: below the fewest of them (a drop, judged only where that fewest is
# VOLUME_USUAL_MIN or more: half of 50 comes by chance with probability ≈ 1e-4) or above the most
# (a spike, over at least VOLUME_USUAL_MIN). Against every earlier day, not their mean: last week's
# same weekday is among them, so a quiet weekend or night is not a drop. A slice behind the model by
# more than a minute and three of its gaps at the last hour's rate (or with none in it) is not
# judged a drop: it stopped (`unusual_s`'s question), or its log lands later than the others' (a
# file per region).
VOLUME_SPAN = timedelta(hours=1)
VOLUME_USUAL_MIN = 50

_COLUMNS = (
    "p._latency_ms, p._error, p._fallback, p._cost, p._tokens, "
    f"coalesce(p._route, '{MISSING_SEGMENT}') AS _route_key"
)
_AGGREGATES = (
    "count(*), quantile_cont(_latency_ms, [0.5, 0.95, 0.99, 0.94, 0.96]), count(_latency_ms), "
    "avg(_error::DOUBLE), "
    "avg(_fallback::DOUBLE), sum(_cost), count(_cost), stddev_samp(coalesce(_cost, 0)), avg(_tokens)"
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
    n, latency, n_latency, error_rate, fallback_rate, cost_sum, n_cost, cost_sd, tokens = stats
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
        **_p95_interval(latency, n_latency),
        "error_rate": error_rate,
        "fallback_rate": fallback_rate,
        "cost_per_1k": None if not n_cost else 1000.0 * cost_sum / n,
        "tokens_per_request": tokens,
        **_interval_1k(cost_sum / n if n_cost else None, cost_sd, n),
    }
    # Finite values near 1e308 can overflow a sum (DuckDB's percentiles do not): no number to show.
    overflow = [name for name, value in found.items() if value is not None and not math.isfinite(value)]
    notes = [f"not logged: {', '.join(missing)}"] if missing else []
    if overflow:
        notes.append(f"too large to compute: {', '.join(overflow)}")
    found |= dict.fromkeys(overflow)
    return replace(row, note="; ".join(notes) or None, **found)


def _p95_interval(latency: Sequence[float] | None, n: int) -> dict[str, float | None]:
    """latency_p95_ms's 95 % interval: p95 ± z·√(0.95·0.05 / n) / f, the quantile's asymptotic
    standard error with the density f at it estimated from the 94th and 96th percentiles
    (f ≈ 0.02 / (p96 − p94)): of width 0 where p94 = p96 (a tie holds the p95 in place); None
    below two latencies."""
    if latency is None or n < 2:
        return _interval("latency_p95_ms", None, 0.0)
    return _interval(
        "latency_p95_ms", latency[1], math.sqrt(0.95 * 0.05 / n) * max(0.0, latency[4] - latency[3]) / 0.02
    )


def _interval_1k(mean: float | None, sd: float | None, n: int) -> dict[str, float | None]:
    """cost_per_1k's 95 % normal interval from the rows' mean cost and its standard deviation (None
    from one row): not floored at 0 — its half-width is what a z-test reads as z standard errors,
    and a refund is a negative cost."""
    if mean is None or sd is None:
        return _interval("cost_per_1k", None, 0.0)
    return _interval("cost_per_1k", 1000.0 * mean, 1000.0 * sd / math.sqrt(n))


def _interval(name: str, value: float | None, se: float) -> dict[str, float | None]:
    """`name`'s 95 % normal interval value ± z·se as its `_ci_low`/`_ci_high` fields (None without a
    value); both bounds infinite (too large to compute) when a double cannot hold either or the
    error is not a number."""
    if value is None:
        return {f"{name}_ci_low": None, f"{name}_ci_high": None}
    low, high = value - Z95 * se, value + Z95 * se
    if not (math.isfinite(low) and math.isfinite(high)):
        low = high = math.inf
    return {f"{name}_ci_low": low, f"{name}_ci_high": high}


def feed_rows(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    windows: Sequence[WindowInfo],
    operations: Iterable[OperationsRow],
) -> tuple[FeedRow, ...]:
    """The model's feed row (`feed_row`), then one per slice of the evaluated windows (their
    all-versions `operations` rows say which slices have predictions, and where the latest are):
    its last prediction, silence, how long the model went on without it, and — once that is a
    minute or `stale_after` — how that silence compares with the same hours of earlier days
    (`_usual`); and for each row its volume in the last hour against the same hour of earlier days."""
    model = feed_row(con, scope, windows)
    if model.last_prediction is None:
        return (model,)
    first = _first_prediction(con, scope, windows) or model.last_prediction
    if not scope.segments:
        volumes = volume(con, scope, {(None, None): 0.0}, model.last_prediction, first)
        return (replace(model, **volumes[(None, None)]),)
    counts: dict[tuple[str, str], int] = {}
    latest: dict[tuple[str, str], datetime] = {}  # a slice's latest window with predictions
    for row in operations:
        if row.version is None and row.route is None and row.segment is not None and row.n:
            key = (row.segment, str(row.segment_value))
            counts[key] = counts.get(key, 0) + row.n
            latest[key] = max(latest.get(key, row.window_start), row.window_start)
    last = _slice_last(con, scope, latest)
    stale_after = scope.model.stale_after
    compare_after = min(FEED_COMPARE_AFTER_S, stale_after.total_seconds() if stale_after else math.inf)
    behind: dict[Slice, float] = {
        key: (model.last_prediction - at).total_seconds() for key, at in last.items()
    }
    volumes = volume(con, scope, {(None, None): 0.0, **behind}, model.last_prediction, first)
    compared = {key: at for key, at in last.items() if behind[key] >= compare_after}
    usual = _usual(con, scope, compared, model.last_prediction, first)
    rows = [replace(model, **volumes[(None, None)])]
    min_samples = scope.model.min_samples
    for key in sorted(last):
        n, (count, gap) = counts[key], usual.get(key, (None, None))
        note = None
        unusual: float | None = behind[key]  # behind by less than the comparison needs
        if key in compared and gap is None:
            note, unusual = "its last prediction came within a week of the first: nothing to compare", None
        elif key in compared and gap is not None:
            # Past the longest it went without FEED_USUAL_MIN predictions from those hours before.
            unusual = max(behind[key] - gap, 0.0)
            if not unusual:
                note = f"a usual silence: as long without {FEED_USUAL_MIN} from these hours before"
        if n < min_samples:
            note = not_enough(n, min_samples, "predictions")
        rows.append(
            replace(
                model,
                segment=key[0],
                segment_value=key[1],
                n=n,
                enough_data=n >= min_samples and unusual is not None,
                note=note,
                last_prediction=last[key],
                silence_s=(scope.as_of - last[key]).total_seconds(),
                behind_s=behind[key],
                usual_n=count,
                unusual_s=unusual,
                usual_gap_s=gap,
                **volumes[key],
            )
        )
    return tuple(rows)


Slice = tuple[str | None, str | None]  # (segment, value); (None, None): all traffic


def volume(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    behind: Mapping[Slice, float],
    end: datetime,
    first: datetime,
) -> dict[Slice, dict[str, Any]]:
    """Per slice (`behind`: how long the model went on without it, in seconds): `recent_n`, its
    predictions in (end − VOLUME_SPAN, end]; `fewest_n` and `most_n` over that span moved back by
    1 to FEED_DAYS days, when every moved span starts at or after `first`; and `volume_ratio`
    (`volume_ratio`). Without all FEED_DAYS earlier spans all but recent_n are None."""
    keys = list(behind)
    spans = [
        (key, k, end - k * DAY - VOLUME_SPAN, end - k * DAY) for key in keys for k in range(FEED_DAYS + 1)
    ]
    spans = [span for span in spans if span[1] == 0 or span[2] >= first]
    counts = _span_counts(con, scope, [(key, low, high) for key, _, low, high in spans])
    earlier: dict[Slice, list[int]] = {key: [] for key in keys}
    recent: dict[Slice, int] = {}
    for (key, k, _, _), count in zip(spans, counts, strict=True):
        if k == 0:
            recent[key] = count
        else:
            earlier[key].append(count)
    found: dict[Slice, dict[str, Any]] = {}
    for key in keys:
        before, now = earlier[key], recent[key]
        # A whole week before, or no judgement: the first weekend has no earlier one to be like.
        fewest, most = (min(before), max(before)) if len(before) == FEED_DAYS else (None, None)
        found[key] = {
            "recent_n": now,
            "fewest_n": fewest,
            "most_n": most,
            "volume_ratio": volume_ratio(now, fewest, most, behind[key]),
        }
    return found


def volume_ratio(recent: int, fewest: int | None, most: int | None, behind_s: float) -> float | None:
    """The last hour's predictions over the fewest of the same hour before when fewer (where that
    fewest is VOLUME_USUAL_MIN or more), over the most (at least VOLUME_USUAL_MIN; where the fewest
    is 1 or more) when more, else 1; None without the earlier hours, or when fewer from a slice too
    far behind to judge a drop of."""
    if fewest is None or most is None:
        return None
    if recent < fewest and fewest >= VOLUME_USUAL_MIN:
        flowing = recent and behind_s <= max(FEED_COMPARE_AFTER_S, 3 * VOLUME_SPAN.total_seconds() / recent)
        return recent / fewest if flowing else None
    ceiling = max(most, VOLUME_USUAL_MIN)
    # A spike over traffic the hour had on every earlier day: not a new slice, nor a batch job that
    # ran outside the hour on some day.
    return recent / ceiling if recent > ceiling and fewest > 0 else 1.0


_SPANS = (
    "(SELECT unnest(?::INTEGER[]) AS i, unnest(?::VARCHAR[]) AS v, unnest(?::TIMESTAMP[]) AS low, "
    "unnest(?::TIMESTAMP[]) AS high)"
)


def _span_counts(
    con: duckdb.DuckDBPyConnection, scope: Scope, spans: Sequence[tuple[Slice, datetime, datetime]]
) -> list[int]:
    """Each span's predictions of its slice in (low, high]: one scan per segment column (and one
    for all traffic) of the spans' time (`_slice_rows`)."""
    queries: list[str] = []
    parameters: list[Any] = []
    for segment, found in _by_segment(spans).items():
        rows, bounds = _slice_rows(scope, segment, found)
        queries.append(
            f"SELECT s.i, count(r._t) FROM {_SPANS} AS s "
            f"LEFT JOIN ({rows}) AS r ON r.v = s.v AND r._t > s.low AND r._t <= s.high GROUP BY s.i"
        )
        parameters += [*_span_lists(found), *bounds]
    counts = [0] * len(spans)
    if queries:
        for index, count in con.execute(" UNION ALL ".join(queries), parameters).fetchall():
            counts[index] = count
    return counts


def _span_gaps(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    spans: Sequence[tuple[Slice, datetime, datetime, datetime, float]],
) -> list[tuple[int, float]]:
    """Each span's (slice, low, high, reach, cap) predictions of its slice in (low, high], and the
    longest stretch of its slice without FEED_USUAL_MIN predictions that starts at low or at one
    of them: from there to the FEED_USUAL_MIN-th prediction after it, looked for up to `reach`,
    counted as at most `cap` seconds. A start whose stretch runs past `reach` before `cap` is not
    known and left out; the span's stretch is `cap` when none is known."""
    queries: list[str] = []
    parameters: list[Any] = []
    for segment, found in _by_segment([(key, low, reach) for key, low, _, reach, _ in spans]).items():
        rows, bounds = _slice_rows(scope, segment, found)
        table = f"{_SPANS[:-1]}, unnest(?::TIMESTAMP[]) AS reach, unnest(?::DOUBLE[]) AS cap)"
        # Each span's low joins its predictions (all after it) as a start of its own.
        starts = (
            f"SELECT s.i, s.low, s.high, s.reach, s.cap, r._t FROM {table} AS s JOIN ({rows}) AS r "
            "ON r.v = s.v AND r._t > s.low AND r._t <= s.reach "
            f"UNION ALL SELECT i, low, high, reach, cap, low FROM {table}"
        )
        seconds = "date_diff('microsecond', _t, {}) / 1e6"
        gap = (
            f"CASE WHEN _next IS NOT NULL THEN least({seconds.format('_next')}, cap) "
            f"WHEN {seconds.format('reach')} >= cap THEN cap END"
        )
        after = f"lead(_t, {FEED_USUAL_MIN}) OVER (PARTITION BY i ORDER BY _t)"
        queries.append(
            f"SELECT i, count(*) FILTER (_t > low AND _t <= high), max({gap}) FILTER (_t <= high) "
            f"FROM (SELECT *, {after} AS _next FROM ({starts})) GROUP BY i"
        )
        listed = [
            [i for i, *_ in found],
            [v for _, v, *_ in found],
            [naive_utc(spans[i][1]) for i, *_ in found],
            [naive_utc(spans[i][2]) for i, *_ in found],
            [naive_utc(spans[i][3]) for i, *_ in found],
            [spans[i][4] for i, *_ in found],
        ]
        parameters += [*listed, *bounds, *listed]
    gaps = [(0, 0.0)] * len(spans)
    if queries:
        for index, count, longest in con.execute(" UNION ALL ".join(queries), parameters).fetchall():
            gaps[index] = (count, spans[index][4] if longest is None else longest)
    return gaps


def _by_segment(
    spans: Sequence[tuple[Slice, datetime, datetime]],
) -> dict[str | None, list[tuple[int, str, datetime, datetime]]]:
    """The spans by segment column (None: all traffic), each with its index and its value's text."""
    by_segment: dict[str | None, list[tuple[int, str, datetime, datetime]]] = {}
    for index, ((segment, value), low, high) in enumerate(spans):
        by_segment.setdefault(segment, []).append((index, value or "", low, high))
    return by_segment


def _span_lists(found: Sequence[tuple[int, str, datetime, datetime]]) -> list[list[Any]]:
    """The parameters of `_SPANS`: the spans' indexes, values, lows and highs."""
    return [
        [span[0] for span in found],
        [span[1] for span in found],
        [naive_utc(span[2]) for span in found],
        [naive_utc(span[3]) for span in found],
    ]


def _slice_rows(
    scope: Scope, segment: str | None, found: Sequence[tuple[int, str, datetime, datetime]]
) -> tuple[str, list[Any]]:
    """The predictions in the spans' time, as `v` (the `segment`'s value, '' for all traffic) and
    `_t`, with the query's parameters: of the spans alone when they are few and shared (the
    volume's eight hours), else of the time from the first to the last."""
    bounds = sorted({(span[2], span[3]) for span in found})
    if len(bounds) > 2 * (FEED_DAYS + 1):
        bounds = [(min(span[2] for span in found), max(span[3] for span in found))]
    covered = " OR ".join("(_ts > ? AND _ts <= ?)" for _ in bounds)
    value = segment_value_sql(segment) if segment is not None else "''"
    rows = f"SELECT {value} AS v, _ts AS _t FROM ({window_rows_sql(scope)}) WHERE {covered}"
    return rows, [naive_utc(at) for bound in bounds for at in bound]


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
        behind_s=None if last is None else 0.0,
        usual_n=None,
        unusual_s=None if last is None else 0.0,
    )


def _slice_last(
    con: duckdb.DuckDBPyConnection, scope: Scope, latest: dict[tuple[str, str], datetime]
) -> dict[tuple[str, str], datetime]:
    """Each slice's latest prediction, read from its latest window with any (one scan per window
    and segment column, each within its window)."""
    rows = plain_rows_sql(scope, window_rows_sql(scope), "p._ts AS _t")
    parts = {(start, segment) for (segment, _), start in latest.items()}
    queries: list[str] = []
    parameters: list[Any] = []
    for start, segment in sorted(parts):
        queries.append(
            f"SELECT {text_literal(segment)}, {quote(segment)}, ?::TIMESTAMP, max(_t) FROM ({rows}) "
            f"WHERE _t >= ? AND _t < ? GROUP BY {quote(segment)}"
        )
        parameters += [naive_utc(start)] * 2 + [naive_utc(scope.window.end_of(start))]
    found: dict[tuple[str, str], datetime] = {}
    if not queries:
        return found
    for segment, value, start, at in con.execute(" UNION ALL ".join(queries), parameters).fetchall():
        key = (segment, value)
        if key in latest and latest[key] == aware(start):
            found[key] = aware(at)
    return found


def _usual(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    last: dict[tuple[str, str], datetime],
    model_last: datetime,
    first: datetime,
) -> dict[tuple[str, str], tuple[int, float]]:
    """Per slice: its silence, (its last, the model's last], moved back by each of FEED_DAYS
    consecutive days — from the first far enough back that nothing it is compared with reaches
    into the silence (twice its length), so last week's same weekday is always among them — and in
    those spans the fewest predictions it had and the longest stretch without FEED_USUAL_MIN that
    began in one (`_span_gaps`, at most the silence). Every moved span must start at or after
    `first` (the evaluated windows' first prediction); a silence too long for that is compared
    with the slice's whole history before it instead (its predictions there, and the longest such
    stretch in it), when that is a week or more, or the silence is. A slice with neither is absent."""
    spans: list[tuple[Slice, datetime, datetime, datetime, float]] = []
    for key, at in last.items():
        behind = model_last - at
        nearest = max(1, math.ceil(2 * behind / DAY))
        days = range(nearest, nearest + FEED_DAYS)
        if at - days[-1] * DAY >= first:
            spans += [
                (key, at - k * DAY, model_last - k * DAY, at + 2 * behind - k * DAY, behind.total_seconds())
                for k in days
            ]
        elif at - WEEK >= first or behind >= WEEK:  # a week's silence is no weekly cycle
            spans.append((key, first, at, at, behind.total_seconds()))
    found: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for ((segment, value), *_), days_found in zip(spans, _span_gaps(con, scope, spans), strict=True):
        found.setdefault((str(segment), str(value)), []).append(days_found)
    return {key: (min(n for n, _ in got), max(gap for _, gap in got)) for key, got in found.items()}


def _first_prediction(
    con: duckdb.DuckDBPyConnection, scope: Scope, windows: Sequence[WindowInfo]
) -> datetime | None:
    """The earliest prediction of the evaluated `windows` (read from the first window with any):
    where the days a silence or a volume is compared with must begin — not at a week's or a
    month's window start before the data."""
    earliest = next((window for window in windows if window.n), None)
    if earliest is None:
        return None
    found = con.execute(
        f"SELECT min(_ts) FROM ({window_rows_sql(scope)}) WHERE _ts >= ? AND _ts < ?",
        [naive_utc(earliest.window_start), naive_utc(scope.window.end_of(earliest.window_start))],
    ).fetchone()
    return aware(found[0]) if found and found[0] is not None else None


def quiet_spans(
    con: duckdb.DuckDBPyConnection, model: ModelConfig, longer_than: float, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The stretches (last, next) without a prediction of the model, longer than `longer_than`
    seconds, that began after `start` less that long and end after `start` — `next` is `end` when
    none came by then: where a replay needs clock times between its steps for a feed silence rule
    to see."""
    reach = f"INTERVAL '{longer_than!r} seconds'"
    table = quote(predictions_table(model.name))
    rows = f"SELECT _ts FROM {table} WHERE _ts > ?::TIMESTAMP - {reach} AND _ts <= ?"
    following = "coalesce(lead(_ts) OVER (ORDER BY _ts), ?::TIMESTAMP)"
    gaps = f"SELECT _ts AS _last, {following} AS _next FROM ({rows})"
    found = con.execute(
        f"SELECT _last, _next FROM ({gaps}) WHERE _next - _last > {reach} AND _next > ? ORDER BY 1",
        [naive_utc(end), naive_utc(start), naive_utc(end), naive_utc(start)],
    ).fetchall()
    return [(aware(last), aware(after)) for last, after in found]
