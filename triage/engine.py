"""The engine facade: one call evaluates a model as of a time — every statistic family, typed.

`Engine(config)` opens the store read-only (or uses a given `Store`); `evaluate` returns a
`ModelReport` for one model, `check` a `CheckReport` for several. Both are frozen dataclasses of
the typed rows of `triage.metrics.results`; `CheckReport.to_json()` is the `triage check --json`
document. Each call reads through its own cursor, so worker threads may evaluate concurrently.

Every family is kept per window with the token of the rows (and labels) it was computed from
(`metrics.window_cache`): an evaluation computes only the windows whose token changed — in this
process (replay steps, live refreshes) and, through the store, across processes. `refresh` ingests
into a writable store and then `warm`s it: it stores the reference profile and every family's rows
of the windows that changed, so a later read-only evaluation (`triage check`, another process's
TUI) reads them instead of computing them. (The store does not import the metrics — DESIGN §2 —
so this orchestration lives here.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import duckdb

from triage.config import Config, ModelConfig, Window
from triage.memory import release_free_memory
from triage.metrics.arrival import ARRIVAL_LAYOUT, ArrivalKey, LabelArrival, label_arrival
from triage.metrics.calibration import calibration_sums, compute_calibration
from triage.metrics.drift import cached_drift, compute_drift
from triage.metrics.frame import Scope
from triage.metrics.operations import compute_operations, feed_rows
from triage.metrics.performance import compute_performance, rank_stats
from triage.metrics.profile import Profile, ensure_profile
from triage.metrics.quality import CellCounts, compute_quality, quality_counts, schema_changes
from triage.metrics.results import (
    CalibrationRow,
    DataQualityRow,
    DriftRow,
    FeedRow,
    JsonRows,
    OperationsRow,
    PerformanceRow,
    ReferenceInfo,
    Row,
    SchemaChange,
    WindowInfo,
)
from triage.metrics.source import CellKey, LabelledCells, LabelledRows, Reducer, aware, reference_rows_sql
from triage.metrics.tokens import WindowToken, window_tokens
from triage.metrics.window_cache import LabelDebt, WindowMemo, WindowRows, cache_key
from triage.store import IngestSummary, Store
from triage.store.info import after, looks_back
from triage.store.queries import label_history_token_sql
from triage.store.schema import reference_table
from triage.store.tables import CATEGORICAL, check_settings, stored_layout, table_exists

R = TypeVar("R", bound=Row)


# The live TUI's label slack: a window's calibration and performance are recomputed once the
# labels that arrived for it since they were computed reach 1 % of the labelled rows they count.
LIVE_LABEL_SLACK = 0.01


class EngineError(Exception):
    """A request the store cannot answer: nothing ingested for a model, an unknown slice column."""


def _json_time(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ModelReport:
    """Every statistic of one model as of a time, over the evaluated windows and the reference.

    The `reference_*` tables are the reference rows cut into the same windows (baselines for
    "performance vs reference" and for alert bands).
    """

    name: str
    as_of: datetime
    window: Window
    segments: tuple[str, ...]
    reference: ReferenceInfo
    windows: tuple[WindowInfo, ...]
    drift: tuple[DriftRow, ...]
    data_quality: tuple[DataQualityRow, ...]
    schema_changes: tuple[SchemaChange, ...]
    calibration: tuple[CalibrationRow, ...]
    performance: tuple[PerformanceRow, ...]
    operations: tuple[OperationsRow, ...]
    feed: tuple[FeedRow, ...]  # the model's silence since its latest prediction, then each slice's
    reference_calibration: tuple[CalibrationRow, ...]
    reference_performance: tuple[PerformanceRow, ...]
    reference_operations: tuple[OperationsRow, ...]
    pending_labels: tuple[tuple[datetime, int], ...] = ()  # (window, labels not counted yet)
    task: str = "binary"  # `ModelConfig.task`
    # Predictions stamped after the current time (a producer's clock or zone), which no check
    # counts until then: how many, and the latest.
    ahead: tuple[int, datetime | None] = (0, None)
    # The reference windows' own drift and data quality, when the evaluated windows leave them out
    # (`last`): the alert rules draw their time-of-day and weekday bands from them (`_band_tables`).
    reference_drift: tuple[DriftRow, ...] = ()
    reference_quality: tuple[DataQualityRow, ...] = ()
    # When the reference's labels came, per scope (`metrics.arrival`): what the calibration rule
    # expects of a window whose labels are still coming. Empty without labels.
    reference_arrival: Mapping[ArrivalKey, LabelArrival] = field(default_factory=dict)

    def tables(self) -> dict[str, tuple[Row, ...]]:
        """The result tables by their JSON name (the `table` of an alert signal `table.field`)."""
        return {
            "drift": self.drift,
            "data_quality": self.data_quality,
            "calibration": self.calibration,
            "performance": self.performance,
            "operations": self.operations,
            "feed": self.feed,
        }

    def reference_tables(self) -> dict[str, tuple[Row, ...]]:
        """The reference period's tables, cut into windows; drift and data quality only when the
        evaluated windows leave the reference's out (else the alert rules take them from those)."""
        band = {"drift": self.reference_drift, "data_quality": self.reference_quality}
        return {
            "calibration": self.reference_calibration,
            "performance": self.reference_performance,
            "operations": self.reference_operations,
        } | {name: rows for name, rows in band.items() if rows}

    def to_json(self, lazy: bool = False, thin: bool = True) -> dict[str, Any]:
        """The model's part of the `check --json` document; with `lazy`, each result table a
        `JsonRows` that `write_json` converts row by row; without `thin`, only the rows of cells
        with enough data."""

        def table(rows: Sequence[Row]) -> list[dict[str, Any]] | JsonRows:
            kept = rows if thin else [row for row in rows if row.enough_data]
            return JsonRows(kept) if lazy else [row.to_json() for row in kept]

        reference = self.reference.to_json()
        latest = self.ahead[1]
        reference["calibration"] = table(self.reference_calibration)
        reference["performance"] = table(self.reference_performance)
        reference["operations"] = table(self.reference_operations)
        document: dict[str, Any] = {
            "name": self.name,
            "task": self.task,
            "window": self.window.text,
            "segments": list(self.segments),
            "reference": reference,
            "windows": [window.to_json() for window in self.windows],
            "ahead_of_clock": (
                None if latest is None else {"predictions": self.ahead[0], "latest": _json_time(latest)}
            ),
        }
        for name, rows in self.tables().items():
            document[name] = table(rows)
        document["schema_changes"] = [change.to_json() for change in self.schema_changes]
        return document


@dataclass(frozen=True)
class CheckReport:
    """The evaluation of every requested model at one as-of time."""

    generated_at: datetime
    as_of: datetime
    models: tuple[ModelReport, ...]

    def to_json(self, lazy: bool = False, thin: bool = True) -> dict[str, Any]:
        """The `triage check --json` document (see the README); with `lazy`, for `write_json`;
        without `thin`, only the rows of cells with enough data (`--enough-only`)."""
        return {
            "generated_at": _json_time(self.generated_at),
            "as_of": _json_time(self.as_of),
            "models": [model.to_json(lazy, thin) for model in self.models],
        }


class Engine:
    """Evaluates models against the store; one per process, shared by threads."""

    def __init__(self, config: Config, store: Store | None = None) -> None:
        self.config = config
        self._owns_store = store is None
        self.store = store or Store.open(config.store_path, read_only=True)
        self._memo = WindowMemo()

    def evaluate(
        self,
        model_name: str,
        as_of: datetime | None = None,
        window: Window | None = None,
        last: int | None = None,
        segments: Sequence[str] | None = None,
        label_slack: float = 0.0,
        trailing: bool = False,
        store: bool | None = None,
    ) -> ModelReport:
        """Every statistic of one model as of `as_of` (default now), per window × version × slice.

        `window` overrides the model's window size, `last` keeps the last N windows up to as-of,
        `segments` replaces the configured slice columns (segments or categorical features).
        `trailing` counts the windows back from the end of the model's window holding as-of (the
        latest is the last `window` of traffic; `Scope.of`). `label_slack` > 0 lets a window's
        calibration and performance trail its labels by up to that share since this engine last
        evaluated them (the live TUI: `LIVE_LABEL_SLACK`); `ModelReport.pending_labels` says by how
        many. 0 is exact as of T. `store`: whether a writable store keeps the windows computed
        (the present: a live view, a check of now); None stores them unless the evaluation looks
        back (`store.info.looks_back`: something is stamped after `as_of` and by now).
        """
        model = self.config.model(model_name)
        con = self.store.cursor()
        try:
            scope = Scope.of(model, as_of, window, self._slices(con, model, segments), last, trailing)
            return _evaluate(con, scope, self._memo, label_slack, store)
        finally:
            con.close()

    def prepare(self, model_name: str) -> None:
        """Build and keep in memory what this engine's later evaluations of the model would each
        build: the reference ECDFs of its numeric features for the configured slices (a live
        refresh then costs its new rows). Nothing while the reference period is still open."""
        model = self.config.model(model_name)
        con = self.store.cursor()
        try:
            scope = Scope.of(model, segments=self._slices(con, model, None))
            if _reference_info(con, scope).complete:
                profile = ensure_profile(con, model, scope.segments, scope.as_of, self._memo.ecdfs)
                # On one thread: it runs in the background of an app that must stay responsive.
                self._memo.ecdfs.hold(con, profile, workers=1)
        finally:
            con.close()

    def refresh(self, *, rebuild: bool = False, warm: bool = True, if_changed: bool = False) -> IngestSummary:
        """Ingest what is new (the store must be writable), then `warm` the caches.

        No warming when `warm` is False, nor with `if_changed` when the pass stored nothing (a poll
        that found no new rows leaves every cached window valid).
        """
        summary = self.store.ingest(self.config, rebuild=rebuild)
        if warm and (summary.changed or rebuild or not if_changed):
            self.warm()
        return summary

    def warm(self, models: Sequence[str] | None = None) -> None:
        """Store what a default evaluation reuses: the reference profile for the configured segments
        and every family's rows of each window whose token changed (valid ones are kept as they are).

        Does nothing on a read-only store, or for a model with nothing ingested yet.
        """
        if self.store.read_only:
            return
        names = list(models) if models else [model.name for model in self.config.models]
        for name in names:
            model = self.config.model(name)
            con = self.store.cursor()
            try:
                if stored_layout(con, model) is None:
                    continue
                scope = Scope.of(model, segments=self._slices(con, model, None))
                _evaluate(con, scope, self._memo, store=True)
            finally:
                con.close()

    def check(
        self,
        models: Sequence[str] | None = None,
        as_of: datetime | None = None,
        window: Window | None = None,
        last: int | None = None,
        segments: Sequence[str] | None = None,
        trailing: bool = False,
    ) -> CheckReport:
        """Evaluate `models` (default: all configured) at one as-of time (default now)."""
        generated_at = datetime.now(UTC)
        at = (as_of or generated_at).astimezone(UTC)
        names = list(models) if models else [model.name for model in self.config.models]
        # A check of now stores what it computes; one `--at` another time, unless it is the present.
        store = True if as_of is None else None
        reports = tuple(
            self.evaluate(name, at, window, last, segments, trailing=trailing, store=store) for name in names
        )
        return CheckReport(generated_at=generated_at, as_of=at, models=reports)

    def _slices(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, segments: Sequence[str] | None
    ) -> tuple[str, ...]:
        layout = stored_layout(con, model)
        if layout is None:
            raise EngineError(f"model {model.name!r}: nothing ingested yet; run `triage ingest` first")
        # The stored rows were shaped by the config the store was built with (the decision at its
        # threshold, its columns): evaluated under another one they would answer for the old one.
        check_settings(con, model)
        if segments is None:
            return layout.segments
        allowed = layout.segments + tuple(f.name for f in layout.features if f.kind == CATEGORICAL)
        for column in segments:
            if column not in allowed:
                choices = ", ".join(allowed) or "none"
                raise EngineError(
                    f"model {model.name!r}: cannot slice by {column!r} "
                    f"(segments and categorical features: {choices})"
                )
        return tuple(dict.fromkeys(segments))

    def close(self) -> None:
        """Close the store when the engine opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _by_window(rows: Iterable[R]) -> dict[datetime, list[R]]:
    grouped: dict[datetime, list[R]] = {}
    for row in rows:
        grouped.setdefault(row.window_start, []).append(row)
    return grouped


_REDUCERS: dict[str, Reducer] = {"calibration": calibration_sums, "performance": rank_stats}


def _reducers(scope: Scope) -> dict[str, Reducer]:
    """What the score pass computes: a regression model's cells need none (its errors are sums)."""
    return {} if scope.model.task == "regression" else _REDUCERS


def _labelled(
    con: duckdb.DuckDBPyConnection, scope: Scope, source: str | None = None
) -> tuple[list[CalibrationRow], list[PerformanceRow]]:
    """Calibration and performance of `source` (default: the scope's windows), from one labelled pass."""
    labelled = LabelledCells.build(con, scope, _reducers(scope), source)
    return compute_calibration(con, scope, labelled=labelled), compute_performance(
        con, scope, labelled=labelled
    )


def _evaluate(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    memo: WindowMemo,
    label_slack: float = 0.0,
    store: bool | None = None,
) -> ModelReport:
    """Every family per window, reusing the windows whose token is unchanged (`window_cache`) —
    and, with a `label_slack`, the calibration and performance of windows whose labels moved by
    less than that share since they were computed (`_labelled_tables`).

    While the reference period is still open as of T, nothing is measured against it: drift,
    data quality and schema changes start once it is complete (`ReferenceInfo.complete`).
    """
    model = scope.model
    reference = _reference_info(con, scope)
    key = cache_key(model, scope.window.key, scope.segments)
    # A look back (`check --at` an earlier time) keeps its windows in this process only: stored,
    # they would replace the present's, and the next check of the present would compute again
    # every window whose labels came since (on 10 M rows, 35 s and 2.3 GB instead of 8 s).
    if store is None:
        store = not looks_back(con, model, scope.as_of, datetime.now(UTC))
    plain = WindowRows(con, memo, key, persist=store and not scope.window.trailing)
    tokens, calibration, performance, pending = _labelled_tables(con, scope, plain, label_slack)
    release_free_memory()  # the labelled windows' queries, before the grid builds on top of them
    rows = {w: token.rows for w, token in tokens.items()}
    profile = (
        ensure_profile(con, model, scope.segments, scope.as_of, memo.ecdfs) if reference.complete else None
    )
    tables = _row_tables(con, scope, plain, rows, profile)
    release_free_memory()  # the grid's batches, before the reference's and the label arrival's queries
    view = _Evaluated(scope, tokens, {"calibration": calibration, "performance": performance, **tables})
    own = _reference_view(con, scope, reference, plain, profile)

    def ordered(family: str, family_rows: dict[datetime, list[R]]) -> tuple[R, ...]:
        return memo.ordered(plain.key, family, family_rows, _ordered)

    windows = tuple(WindowInfo(w, scope.window.end_of(w), token.n) for w, token in sorted(tokens.items()))
    reference_tables = _reference_tables(con, scope, reference, own or view)
    operations = ordered("operations", tables["operations"])
    arrival = _label_arrival(con, scope, reference, own or view, plain)
    totals: dict[CellKey, CellCounts] = {
        (w, None, None, None): cells[0] for w, cells in tables["totals"].items()
    }
    return ModelReport(
        name=model.name,
        as_of=scope.as_of,
        window=scope.window,
        segments=scope.segments,
        reference=reference,
        windows=windows,
        drift=ordered("drift", tables["drift"]),
        data_quality=ordered("data_quality", tables["data_quality"]),
        schema_changes=tuple(schema_changes(con, scope, totals, profile)) if profile is not None else (),
        calibration=ordered("calibration", calibration),
        performance=ordered("performance", performance),
        operations=operations,
        feed=feed_rows(con, scope, windows, operations),
        reference_calibration=reference_tables[0],
        reference_performance=reference_tables[1],
        reference_operations=reference_tables[2],
        pending_labels=tuple(sorted(pending.items())),
        task=model.task,
        ahead=after(con, model, datetime.now(UTC)),
        reference_arrival=arrival,
        **_band_tables(own if profile is not None else None),
    )


@dataclass(frozen=True)
class _Evaluated:
    """Some windows of a scope: their tokens and rows by family and window (calibration,
    performance, operations; with the reference profile totals, data quality and drift)."""

    scope: Scope
    tokens: Mapping[datetime, WindowToken]
    tables: Mapping[str, dict[datetime, list[Any]]]


def _reference_view(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    reference: ReferenceInfo,
    plain: WindowRows,
    profile: Profile | None,
) -> _Evaluated | None:
    """The whole windows of a time-range reference, evaluated like any (their rows kept and reused
    by token, shared with the full view's), for a view that leaves them out (`last`, `since`):
    the drift and data quality the rules draw their bands from, and — when the reference is a
    run of whole windows — its calibration, performance and operations and the labels' arrival
    are then those of the full view, read from the cache a full check or ingest's warm-up filled,
    not evaluated afresh on each such check. As of T (the reference's labels keep arriving after
    its end). A reference with no start is every window before its end (audit 43: without bands
    such a view paged where the full check did not). None for a full view, an empty reference or
    one of another kind (a range without an end is built in code only)."""
    start, end = scope.model.reference.start, scope.model.reference.end
    whole = scope.last is None and scope.since is None
    if whole or scope.model.reference.kind != "range" or not reference.n or end is None:
        return None
    first = None if start is None else scope.window.start_of(start)
    inside = replace(
        scope,
        last=None,
        since=first if first is None or first == start else scope.window.end_of(first),
        until=scope.window.start_of(end),
    )
    tokens, _ = window_tokens(con, inside)
    labelled = {w: token.labelled for w, token in tokens.items()}
    run = _reference_windows(inside) is not None  # else the reference is evaluated on its own
    tables = _row_tables(con, inside, plain, {w: token.rows for w, token in tokens.items()}, profile, run)
    if run:
        calibration, performance, stale = _held_labelled(plain, labelled)
        _fresh_labelled(con, inside, plain, labelled, stale, calibration, performance)
        tables |= {"calibration": calibration, "performance": performance}
    return _Evaluated(inside, tokens, tables)


def _band_tables(own: _Evaluated | None) -> dict[str, tuple[Any, ...]]:
    """`ModelReport.reference_drift` and `reference_quality` of a view that leaves the reference's
    windows out: those windows' rows (`_reference_view`), so that a check of the last day judges
    an hourly feature against the reference at its hour, as the full check does — without them a
    daily cycle pages. Nothing for a full view, whose windows hold the reference's."""
    if own is None:
        return {}
    drift, quality = (
        tuple(row for _, rows in sorted(own.tables[family].items()) for row in _ordered(rows))
        for family in ("drift", "data_quality")
    )
    return {"reference_drift": drift, "reference_quality": quality}


def _labelled_tables(
    con: duckdb.DuckDBPyConnection, scope: Scope, plain: WindowRows, label_slack: float
) -> tuple[
    dict[datetime, WindowToken], dict[datetime, list[Any]], dict[datetime, list[Any]], dict[datetime, int]
]:
    """Every window's token, calibration and performance rows, and the labels each settled window
    does not count yet.

    A window is recomputed when its labelled token changed — except, with `label_slack` > 0 (the
    live TUI), one whose predictions are unchanged and whose labels that arrived since its rows
    were computed (`LabelDebt`) are at most `label_slack` of the labelled rows they count: it
    keeps its rows until enough labels pile up. Late labels trickle into every window for weeks,
    so exact recomputation on each refresh would cost a pass over the whole history; with the
    slack, a refresh recomputes a share of windows in proportion to the labels that arrived.
    """
    memo, key = plain.memo, plain.key
    debt = memo.debt(key) if label_slack > 0 else None
    if debt is not None and debt.as_of > scope.as_of:
        debt = None  # looking back in time: exact
    tokens, state = window_tokens(con, scope, memo.token_state(key), debt.as_of if debt is not None else None)
    memo.keep_token_state(key, state)
    labelled = {w: token.labelled for w, token in tokens.items()}
    calibration, performance, stale = _held_labelled(plain, labelled)
    pending: dict[datetime, int] = {}
    if debt is not None and stale:
        kept = {family: memo.latest(key, family) for family in ("calibration", "performance")}
        for w in list(stale):
            token, (rows_token, counted) = tokens[w], debt.computed.get(w, ("", 0))
            owed = debt.pending.get(w, 0) + token.arrived
            held = all(w in rows for rows in kept.values())
            if held and rows_token == token.rows and 0 < owed <= label_slack * counted:
                calibration[w], performance[w] = kept["calibration"][w], kept["performance"][w]
                pending[w] = owed
                stale.remove(w)
    _fresh_labelled(con, scope, plain, labelled, stale, calibration, performance)
    computed = {w: (token.rows, token.n_labelled) for w, token in tokens.items() if w not in pending}
    if debt is not None:
        computed |= {w: debt.computed[w] for w in pending}
    memo.owe(key, LabelDebt(scope.as_of, computed, pending))
    return tokens, calibration, performance, pending


def _held_labelled(
    plain: WindowRows, labelled: Mapping[datetime, str]
) -> tuple[dict[datetime, list[Any]], dict[datetime, list[Any]], list[datetime]]:
    """The calibration and performance rows kept for windows of these labelled tokens, and the
    windows either lacks (in time order)."""
    calibration = plain.held("calibration", CalibrationRow, labelled)
    performance = plain.held("performance", PerformanceRow, labelled)
    stale = sorted(w for w in labelled if w not in calibration or w not in performance)
    return calibration, performance, stale


def _fresh_labelled(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    plain: WindowRows,
    labelled: Mapping[datetime, str],
    stale: Sequence[datetime],
    calibration: dict[datetime, list[Any]],
    performance: dict[datetime, list[Any]],
) -> None:
    """Compute the `stale` windows' calibration and performance into the tables, and keep them."""
    if not stale:
        return
    # Only the rows from the first stale window on are joined to their labels.
    every = len(stale) == len(labelled)
    rows = LabelledRows(con, scope if every else replace(scope, since=stale[0]))
    cells = rows.cells(_reducers(scope), None if every else list(stale))
    fresh_calibration = _by_window(compute_calibration(con, scope, labelled=cells))
    fresh_performance = _by_window(compute_performance(con, scope, labelled=cells))
    plain.keep("calibration", fresh_calibration, labelled)
    plain.keep("performance", fresh_performance, labelled)
    calibration.update(fresh_calibration)
    performance.update(fresh_performance)


def _row_tables(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    plain: WindowRows,
    rows: dict[datetime, str],
    profile: Profile | None,
    operations: bool = True,
) -> dict[str, dict[datetime, list[Any]]]:
    """The families that depend on a window's predictions only, by window: with `operations` (else
    no such key) `operations` (kept in `plain`), and with the reference `profile` the totals, data
    quality and drift (empty without it); stored where `plain` stores (not for a look back)."""
    model = scope.model
    tables: dict[str, dict[datetime, list[Any]]] = {}
    stores: dict[str, WindowRows] = {}
    if operations:
        tables["operations"] = plain.held("operations", OperationsRow, rows)
        stores["operations"] = plain
    if profile is None:
        tables |= {"totals": {}, "data_quality": {}, "drift": {}}
    else:
        key = cache_key(model, scope.window.key, scope.segments, profile.keys)
        profiled = WindowRows(con, plain.memo, key, persist=plain.writable)
        tables |= {
            "totals": profiled.held("totals", CellCounts, rows),
            "data_quality": profiled.held("data_quality", DataQualityRow, rows),
            "drift": profiled.held(
                "drift", DriftRow, rows, loader=lambda wanted: cached_drift(con, scope, profile, wanted)
            ),
        }
        stores |= dict.fromkeys(("totals", "data_quality", "drift"), profiled)
    stale = [w for w in rows if any(w not in tables[family] for family in stores)]
    if not stale:
        return tables
    first = min(stale)
    since = replace(scope, since=first)
    fresh: dict[str, dict[datetime, list[Any]]] = {}
    if operations:
        fresh["operations"] = _by_window(compute_operations(con, since))
    if profile is not None:
        counts = quality_counts(con, since, profile)  # one counting pass: data quality and drift
        fresh |= {
            "totals": {key[0]: [cell] for key, cell in counts.items() if key[1:] == (None, None, None)},
            "data_quality": _by_window(compute_quality(con, since, counts, profile)),
            "drift": _by_window(compute_drift(con, since, counts, profile, plain.memo.ecdfs, plain.writable)),
        }
    computed = [w for w in rows if w >= first]
    for family, found in fresh.items():
        # A computed window without rows in a family is remembered as such, not computed again.
        by_window = {w: found.get(w, []) for w in computed}
        stores[family].keep(family, by_window, rows, store=family != "drift")  # drift has its own table
        tables[family].update(by_window)
    return tables


def _reference_tables(
    con: duckdb.DuckDBPyConnection, scope: Scope, reference: ReferenceInfo, evaluated: _Evaluated
) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]:
    """Calibration, performance and operations of the reference, cut into windows: read off the
    `evaluated` windows (the view's, or the reference's own: `_reference_view`) when the reference
    is a run of them, else evaluated on its own."""
    if not reference.n:
        return (), (), ()
    inside = _reference_windows(evaluated.scope)
    if inside is not None:
        # The rows of a window share its bounds: a window's first row decides for all of them.
        found = [
            [row for rows in evaluated.tables[family].values() if rows and inside(rows[0]) for row in rows]
            for family in ("calibration", "performance", "operations")
        ]
    else:
        source = reference_rows_sql(scope)
        found = [*_labelled(con, scope, source), compute_operations(con, scope, source)]
    calibration, performance, operations = (tuple(_ordered(rows)) for rows in found)
    return calibration, performance, operations


def _label_arrival(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    reference: ReferenceInfo,
    evaluated: _Evaluated,
    plain: WindowRows,
) -> dict[ArrivalKey, LabelArrival]:
    """When the reference's labels came (`metrics.arrival`), for a classifier with labels: kept
    (in this process and the store, as a window's rows are) while the reference's windows' tokens,
    the digest of every label of their ids up to T (`label_history_token_sql`: a fraction of a
    second on a 10 M-row store) and the counts' layout are unchanged, when the reference is a run
    of the `evaluated` windows (the view's, or the reference's own: `_reference_view`) — counting
    is a pass over the reference's rows and every label of theirs, seconds on such a store, paid
    by ingest's warm-up rather than by each check —; else counted afresh."""
    model = scope.model
    if model.labels is None or model.task == "regression" or not reference.n:
        return {}
    source = reference_rows_sql(scope)
    inside = _reference_windows(evaluated.scope)
    if inside is None:
        return label_arrival(con, scope, source)
    labelled = "|".join(
        token.labelled
        for w, token in sorted(evaluated.tokens.items())
        if inside(WindowInfo(w, scope.window.end_of(w), token.n))
    )
    history = con.execute(label_history_token_sql(model, scope.as_of, source)).fetchone()
    key = f"{ARRIVAL_LAYOUT}|{history}|{labelled}"
    token = {_WHOLE: hashlib.sha256(key.encode()).hexdigest()}
    kept = plain.held("label_arrival", LabelArrival, token)
    if _WHOLE in kept:
        return {(a.version, a.segment, a.segment_value): a for a in kept[_WHOLE]}
    found = label_arrival(con, scope, source)
    plain.keep("label_arrival", {_WHOLE: list(found.values())}, token)
    return found


# `_label_arrival`'s cache entry: one for the whole reference, not per window.
_WHOLE = datetime.min.replace(tzinfo=UTC)


def _reference_windows(scope: Scope) -> Callable[[Any], bool] | None:
    """When the reference is a time range of whole windows inside the scope's, the test of a
    window row lying in it: the reference tables are then those windows' rows, exactly (the same
    rows cut into the same cells). None when the reference must be evaluated on its own."""
    reference = scope.model.reference
    start, end = reference.start, reference.end
    if reference.kind != "range" or scope.last is not None:
        return None
    if any(t is not None and scope.window.start_of(t) != t for t in (start, end)):
        return None
    if scope.since is not None and (start is None or start < scope.since):
        return None
    if scope.until is not None and (end is None or end > scope.until):
        return None
    return lambda row: (start is None or row.window_start >= start) and (end is None or row.window_end <= end)


def _ordered(rows: Sequence[R]) -> list[R]:
    """Rows by window, then all versions first, all traffic first, then by name."""

    def key(row: R) -> tuple:
        extra = tuple(
            (value is not None, value or "")
            for value in (getattr(row, "feature", None), getattr(row, "route", None))
        )
        return (
            row.window_start,
            row.version is not None,
            row.version or "",
            row.segment is not None,
            row.segment or "",
            row.segment_value or "",
            *extra,
        )

    return sorted(rows, key=key)


def _reference_info(con: duckdb.DuckDBPyConnection, scope: Scope) -> ReferenceInfo:
    reference = scope.model.reference
    start, end, n = reference.start, reference.end, 0
    if reference.kind != "files" or table_exists(con, reference_table(scope.model.name)):
        row = con.execute(
            f"SELECT count(*), min(_ts), max(_ts) FROM ({reference_rows_sql(scope)})"
        ).fetchone()
        assert row is not None
        n = int(row[0])
        if n:
            start = start or aware(row[1])
            if reference.kind == "version":
                end = start + timedelta(days=reference.days or 0)
            end = end or aware(row[2])
    if reference.kind == "files":
        complete = True
    elif reference.kind == "version":
        complete = end is not None and scope.as_of >= end  # no row yet: the version has not shipped
    else:
        complete = reference.end is None or scope.as_of >= reference.end  # no end: built in code only
    return ReferenceInfo(
        kind=reference.kind,
        description=reference.describe(),
        start=start,
        end=end,
        n=n,
        complete=complete,
    )
