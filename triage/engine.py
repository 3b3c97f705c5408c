"""The engine facade: one call evaluates a model as of a time — every statistic family, typed.

`Engine(config)` opens the store read-only (or uses a given `Store`); `evaluate` returns a
`ModelReport` for one model, `check` a `CheckReport` for several. Both are frozen dataclasses of
the typed rows of `triage.metrics.results`; `CheckReport.to_json()` is the `triage check --json`
document. Each call reads through its own cursor, so worker threads may evaluate concurrently.

`refresh` ingests into a writable store and then `warm`s it: it stores the reference profile and
the drift rows of the windows whose rows changed, so a later read-only evaluation (`triage
check`, another process's TUI) reads them instead of computing them. (The store does not import
the metrics — DESIGN §2 — so this orchestration lives here.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

import duckdb

from triage.config import Config, ModelConfig, Window
from triage.metrics.calibration import calibration_sums, compute_calibration
from triage.metrics.drift import compute_drift
from triage.metrics.frame import Scope
from triage.metrics.operations import compute_operations
from triage.metrics.performance import compute_performance, rank_stats
from triage.metrics.profile import ensure_profile
from triage.metrics.quality import CellCounts, compute_quality, quality_counts, schema_changes
from triage.metrics.results import (
    CalibrationRow,
    DataQualityRow,
    DriftRow,
    OperationsRow,
    PerformanceRow,
    ReferenceInfo,
    Row,
    SchemaChange,
    WindowInfo,
)
from triage.metrics.source import CellKey, LabelledCells, Reducer, aware, reference_rows_sql
from triage.store import IngestSummary, Store
from triage.store.schema import FILES_TABLE, labels_table, predictions_table, reference_table
from triage.store.tables import CATEGORICAL, stored_layout, table_exists

R = TypeVar("R", bound=Row)


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
    reference_calibration: tuple[CalibrationRow, ...]
    reference_performance: tuple[PerformanceRow, ...]
    reference_operations: tuple[OperationsRow, ...]

    def tables(self) -> dict[str, tuple[Row, ...]]:
        """The result tables by their JSON name (the `table` of an alert signal `table.field`)."""
        return {
            "drift": self.drift,
            "data_quality": self.data_quality,
            "calibration": self.calibration,
            "performance": self.performance,
            "operations": self.operations,
        }

    def reference_tables(self) -> dict[str, tuple[Row, ...]]:
        """The reference period's tables, cut into windows (no drift or quality of the reference)."""
        return {
            "calibration": self.reference_calibration,
            "performance": self.reference_performance,
            "operations": self.reference_operations,
        }

    def to_json(self) -> dict[str, Any]:
        reference = self.reference.to_json()
        for name, rows in self.reference_tables().items():
            reference[name] = [row.to_json() for row in rows]
        document: dict[str, Any] = {
            "name": self.name,
            "window": self.window.text,
            "segments": list(self.segments),
            "reference": reference,
            "windows": [window.to_json() for window in self.windows],
        }
        for name, rows in self.tables().items():
            document[name] = [row.to_json() for row in rows]
        document["schema_changes"] = [change.to_json() for change in self.schema_changes]
        return document


@dataclass(frozen=True)
class CheckReport:
    """The evaluation of every requested model at one as-of time."""

    generated_at: datetime
    as_of: datetime
    models: tuple[ModelReport, ...]

    def to_json(self) -> dict[str, Any]:
        """The `triage check --json` document (see the README)."""
        return {
            "generated_at": _json_time(self.generated_at),
            "as_of": _json_time(self.as_of),
            "models": [model.to_json() for model in self.models],
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
    ) -> ModelReport:
        """Every statistic of one model as of `as_of` (default now), per window × version × slice.

        `window` overrides the model's window size, `last` keeps the last N windows up to as-of,
        `segments` replaces the configured slice columns (segments or categorical features).
        """
        model = self.config.model(model_name)
        con = self.store.cursor()
        try:
            scope = Scope.of(model, as_of, window, self._slices(con, model, segments), last)
            return _evaluate(con, scope, self._memo)
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
        and the drift rows of every window whose rows changed (valid ones are kept as they are).

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
                compute_drift(con, Scope.of(model, segments=self._slices(con, model, None)))
            finally:
                con.close()

    def check(
        self,
        models: Sequence[str] | None = None,
        as_of: datetime | None = None,
        window: Window | None = None,
        last: int | None = None,
        segments: Sequence[str] | None = None,
    ) -> CheckReport:
        """Evaluate `models` (default: all configured) at one as-of time (default now)."""
        generated_at = datetime.now(UTC)
        at = (as_of or generated_at).astimezone(UTC)
        names = list(models) if models else [model.name for model in self.config.models]
        reports = tuple(self.evaluate(name, at, window, last, segments) for name in names)
        return CheckReport(generated_at=generated_at, as_of=at, models=reports)

    def _slices(
        self, con: duckdb.DuckDBPyConnection, model: ModelConfig, segments: Sequence[str] | None
    ) -> tuple[str, ...]:
        layout = stored_layout(con, model)
        if layout is None:
            raise EngineError(f"model {model.name!r}: nothing ingested yet; run `triage ingest` first")
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


class WindowMemo:
    """The rows of complete windows this process computed, reused while the store holds the same data.

    A window that ends at or before the as-of time holds the same prediction rows at every later
    as-of time, so what reads only predictions — the counts behind data quality and drift, data
    quality, drift, operations, and the reference's operations — is computed once per window:
    replay steps and live refreshes compute only the windows that are new or still filling.
    Calibration and performance read labels, which keep arriving for old windows, and are always
    computed. Each model has one `MemoWindows` for one store state (its file registry and row
    counts) and evaluation definition (window size, slices, reference identity); another key
    replaces it — an evaluation already holding the old one finishes with it undisturbed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, MemoWindows] = {}

    def windows(self, model: str, key: tuple | None) -> MemoWindows:
        """The memo of `model` for `key`; None keeps nothing (a fresh, unshared one)."""
        if key is None:
            return MemoWindows(None)
        with self._lock:
            found = self._models.get(model)
            if found is None or found.key != key:
                found = self._models[model] = MemoWindows(key)
            return found


class MemoWindows:
    """One model's remembered rows per family and complete window (see `WindowMemo`)."""

    FAMILIES = ("counts", "data_quality", "drift", "operations")

    def __init__(self, key: tuple | None) -> None:
        self.key = key
        self._lock = threading.Lock()
        self._windows: dict[str, dict[datetime, Any]] = {family: {} for family in self.FAMILIES}
        self._reference_operations: list[OperationsRow] | None = None

    def held(self, windows: Sequence[datetime]) -> dict[str, dict[datetime, Any]]:
        """Per family, the rows of the `windows` that every family holds."""
        with self._lock:
            held = [w for w in windows if all(w in self._windows[f] for f in self.FAMILIES)]
            return {family: {w: self._windows[family][w] for w in held} for family in self.FAMILIES}

    def keep(self, family: str, by_window: dict[datetime, Any], complete: Callable[[datetime], bool]) -> None:
        """Remember the complete windows of a freshly computed family."""
        if self.key is None:
            return
        with self._lock:
            self._windows[family].update((w, v) for w, v in by_window.items() if complete(w))

    def reference_operations(self, compute: Callable[[], list[OperationsRow]]) -> list[OperationsRow]:
        with self._lock:
            found = self._reference_operations
        if found is None:
            found = compute()
            if self.key is not None:
                with self._lock:
                    self._reference_operations = found
        return found


def _memo_key(con: duckdb.DuckDBPyConnection, scope: Scope) -> tuple | None:
    """What the memo's rows depend on besides the window; None when the store has no file registry
    (rows written by hand: nothing tells whether they changed)."""
    model = scope.model
    if not table_exists(con, FILES_TABLE):
        return None
    registry = con.execute(
        f"SELECT list((file_id, size, mtime, rows_added, ingested_at) ORDER BY file_id)::VARCHAR "
        f"FROM {FILES_TABLE} WHERE model = ?",
        [model.name],
    ).fetchone()
    tables = [predictions_table(model.name), labels_table(model.name), reference_table(model.name)]
    counts = [
        con.execute(f"SELECT count(*) FROM {table}").fetchone() if table_exists(con, table) else None
        for table in tables
    ]
    profile = ensure_profile(con, model, scope.segments, scope.as_of)
    return (registry, tuple(counts), repr(model), scope.window.text, scope.segments, profile.keys)


def _by_window(rows: Iterable[R]) -> dict[datetime, list[R]]:
    grouped: dict[datetime, list[R]] = {}
    for row in rows:
        grouped.setdefault(row.window_start, []).append(row)
    return grouped


def _labelled(
    con: duckdb.DuckDBPyConnection, scope: Scope, source: str | None = None
) -> tuple[list[CalibrationRow], list[PerformanceRow]]:
    """Calibration and performance of `source` (default: the scope's windows), from one labelled pass."""
    reducers: dict[str, Reducer] = {"calibration": calibration_sums, "performance": rank_stats}
    labelled = LabelledCells.build(con, scope, reducers, source)
    return compute_calibration(con, scope, labelled=labelled), compute_performance(
        con, scope, labelled=labelled
    )


def _evaluate(con: duckdb.DuckDBPyConnection, scope: Scope, memo: WindowMemo) -> ModelReport:
    calibration, performance = _labelled(con, scope)
    windows = tuple(
        WindowInfo(row.window_start, row.window_end, row.n)
        for row in _ordered(calibration)
        if row.version is None and row.segment is None
    )
    reference = _reference_info(con, scope)
    remembered = memo.windows(scope.model.name, _memo_key(con, scope))
    inside = _reference_windows(scope) if reference.n else None
    reference_operations: list[OperationsRow] = []
    if inside is not None:
        reference_calibration = [row for row in calibration if inside(row)]
        reference_performance = [row for row in performance if inside(row)]
    elif reference.n:
        source = reference_rows_sql(scope)
        reference_calibration, reference_performance = _labelled(con, scope, source)
        reference_operations = remembered.reference_operations(lambda: compute_operations(con, scope, source))
    else:
        reference_calibration, reference_performance = [], []

    tables = remembered.held([w.window_start for w in windows])
    fresh = [w.window_start for w in windows if w.window_start not in tables["counts"]]
    if fresh:
        since = replace(scope, since=min(fresh))
        counts = quality_counts(con, since)  # one counting pass serves data quality and drift
        computed: dict[str, dict[datetime, Any]] = {
            "counts": _counts_by_window(counts),
            "data_quality": _by_window(compute_quality(con, since, counts)),
            "drift": _by_window(compute_drift(con, since, counts)),
            "operations": _by_window(compute_operations(con, since)),
        }
        for family, by_window in computed.items():
            remembered.keep(family, by_window, lambda start: scope.window.end_of(start) <= scope.as_of)
            tables[family].update(by_window)
    if inside is not None:
        reference_operations = [row for rows in tables["operations"].values() for row in rows if inside(row)]
    all_counts = {key: cell for cells in tables["counts"].values() for key, cell in cells.items()}

    def rows(family: str) -> tuple[Any, ...]:
        return tuple(_ordered([row for window in tables[family].values() for row in window]))

    return ModelReport(
        name=scope.model.name,
        as_of=scope.as_of,
        window=scope.window,
        segments=scope.segments,
        reference=reference,
        windows=windows,
        drift=rows("drift"),
        data_quality=rows("data_quality"),
        schema_changes=tuple(schema_changes(con, scope, all_counts)),
        calibration=tuple(_ordered(calibration)),
        performance=tuple(_ordered(performance)),
        operations=rows("operations"),
        reference_calibration=tuple(_ordered(reference_calibration)),
        reference_performance=tuple(_ordered(reference_performance)),
        reference_operations=tuple(_ordered(reference_operations)),
    )


def _reference_windows(scope: Scope) -> Callable[[Row], bool] | None:
    """When the reference is a time range of whole windows inside the evaluated ones, the test of a
    window row lying in it: the reference tables are then those windows' rows, exactly (the same
    rows cut into the same cells). None when the reference must be evaluated on its own."""
    reference = scope.model.reference
    bounds = (reference.start, reference.end)
    if reference.kind != "range" or scope.last is not None or scope.since is not None:
        return None
    if any(t is not None and scope.window.start_of(t) != t for t in bounds):
        return None
    start, end = bounds
    return lambda row: (start is None or row.window_start >= start) and (end is None or row.window_end <= end)


def _counts_by_window(counts: dict[CellKey, CellCounts]) -> dict[datetime, dict[CellKey, CellCounts]]:
    grouped: dict[datetime, dict[CellKey, CellCounts]] = {}
    for key, cell in counts.items():
        grouped.setdefault(key[0], {})[key] = cell
    return grouped


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
    return ReferenceInfo(kind=reference.kind, description=reference.describe(), start=start, end=end, n=n)
