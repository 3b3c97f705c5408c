"""What each panel shows, derived from a `Snapshot` without any I/O: health rows, the drift grid,
time series and alert ordering. Pure functions, so they are tested without a terminal."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from triage.alerts.evaluate import SEVERITY_RANK
from triage.alerts.groups import slice_groups
from triage.metrics.results import KS_SHIFT, KS_SHIFT_CRIT, PSI_CRIT, PSI_WARN, DriftRow, Row, drift_rank
from triage.tui.data import AlertView, ModelView, Snapshot

SCORE_FEATURE = "__score__"
STATE_RANK = {"firing": 3, "pending": 2, "resolved": 0}
LABEL_FIELDS = ("label_coverage", "label_lag_p50_s", "label_lag_p95_s")
CATEGORIES = ("drift", "calibration", "performance", "labels")

R = TypeVar("R", bound=Row)


def feature_label(feature: str) -> str:
    """How a feature is named on screen (the score is a feature called `__score__` in the results)."""
    return "score" if feature == SCORE_FEATURE else feature


@dataclass(frozen=True, order=True)
class Slice:
    """A slice of traffic: all (`segment` None) or one value of one segment column."""

    segment: str | None
    value: str | None

    @property
    def label(self) -> str:
        """`all` or `segment=value`."""
        return "all" if self.segment is None else f"{self.segment}={self.value}"


ALL = Slice(None, None)


def slice_of(row: Row) -> Slice:
    """The slice a result row describes."""
    return Slice(row.segment, row.segment_value)


def window_starts(model: ModelView) -> list[datetime]:
    """The evaluated window starts, oldest first."""
    return sorted({w.window_start for w in model.windows})


def resolve_window(model: ModelView, chosen: datetime | None) -> datetime | None:
    """The chosen window if the model has it, else the latest one."""
    starts = window_starts(model)
    if chosen in starts:
        return chosen
    return starts[-1] if starts else None


def step_window(model: ModelView, current: datetime | None, step: int) -> datetime | None:
    """The window `step` windows after (or before, if negative) `current`, clamped to the range."""
    starts = window_starts(model)
    if not starts:
        return None
    index = starts.index(current) if current in starts else len(starts) - 1
    return starts[max(0, min(len(starts) - 1, index + step))]


def labelled_window(
    model: ModelView, chosen: datetime | None, version: str | None, table: str = "performance"
) -> datetime | None:
    """The chosen window; else the latest whose all-traffic row has `min_samples` labelled rows and
    at least half of its rows labelled (labels arrive late); else the latest with enough labelled
    rows; else the latest window."""
    starts = window_starts(model)
    if chosen in starts:
        return chosen
    rows = [r for r in getattr(model, table) if r.version == version and r.segment is None]
    enough = [r for r in rows if r.n_labeled >= model.min_samples]
    mature = [r.window_start for r in enough if r.n and r.n_labeled / r.n >= 0.5]
    return max(mature, default=max((r.window_start for r in enough), default=starts[-1] if starts else None))


def select(rows: Iterable[R], **attrs: object) -> list[R]:
    """Rows whose attributes equal every given value (None included: `segment=None` is all traffic)."""
    return [row for row in rows if all(getattr(row, key) == value for key, value in attrs.items())]


def points(rows: Iterable[Row], field: str) -> list[tuple[datetime, float | None]]:
    """(window_start, value of `field`) of each row, oldest first; not-enough-data cells are None."""
    result = []
    for row in sorted(rows, key=lambda r: r.window_start):
        value = getattr(row, field)
        result.append((row.window_start, float(value) if value is not None and row.enough_data else None))
    return result


def buckets(count: int, width: int) -> list[tuple[int, int]]:
    """Split `count` consecutive points into at most `width` contiguous [start, end) buckets."""
    if count <= 0:
        return []
    width = max(1, width)
    if count <= width:
        return [(i, i + 1) for i in range(count)]
    edges = [round(i * count / width) for i in range(width + 1)]
    return [(edges[i], edges[i + 1]) for i in range(width) if edges[i] < edges[i + 1]]


def downsample(values: Sequence[float | None], width: int, how: str = "mean") -> list[float | None]:
    """Reduce a series to at most `width` points: mean, min or max of each bucket (None when all None)."""
    reducers: dict[str, Callable[[list[float]], float]] = {
        "mean": lambda v: sum(v) / len(v),
        "min": min,
        "max": max,
    }
    reduce = reducers[how]
    result: list[float | None] = []
    for start, end in buckets(len(values), width):
        present = [v for v in values[start:end] if v is not None]
        result.append(reduce(present) if present else None)
    return result


LEVELS = ("ok", "watch", "warn", "crit")


def psi_level(row: DriftRow | None) -> str:
    """ "none" (not enough data), "ok", "watch" (≥ half the warn level), "warn" or "crit" by PSI."""
    if row is None or not row.enough_data or row.psi is None:
        return "none"
    return LEVELS[(row.psi >= PSI_WARN / 2) + (row.psi >= PSI_WARN) + (row.psi >= PSI_CRIT)]


def ks_level(row: DriftRow | None) -> str:
    """ "warn" or "crit" where PSI is blind and KS D past the `feature-shift` rule's thresholds
    (`ks_d_psi_blind`), else "ok"."""
    blind = row.ks_d_psi_blind if row is not None and row.enough_data else None
    d = blind or 0.0
    return ("ok", "warn", "crit")[(d >= KS_SHIFT) + (d >= KS_SHIFT_CRIT)]


def drift_level(row: DriftRow | None) -> str:
    """A grid cell's level: its PSI's, or its KS D's where PSI is blind and that is worse — a move
    PSI's decile bins cannot see (a reference mostly one value) still shows."""
    level = psi_level(row)
    return level if level == "none" else max(level, ks_level(row), key=LEVELS.index)


@dataclass(frozen=True)
class DriftGrid:
    """Feature × slice PSI cells of one window and version, sorted and filtered for display."""

    window_start: datetime | None
    features: tuple[str, ...]
    slices: tuple[Slice, ...]
    cells: dict[tuple[str, Slice], DriftRow]

    def cell(self, feature: str, slice_: Slice) -> DriftRow | None:
        """The row of one cell, None when the window has no row for it."""
        return self.cells.get((feature, slice_))


def _worst(rows: Iterable[DriftRow | None]) -> float:
    """The most drifted of the cells with enough data (`drift_rank`: PSI, or KS D where PSI is blind)."""
    values = [drift_rank(r) for r in rows if r is not None and r.enough_data and r.psi is not None]
    return max(values, default=-1.0)


def drift_grid(
    model: ModelView, window_start: datetime | None, version: str | None, sort: str = "psi", text: str = ""
) -> DriftGrid:
    """The heat grid: rows are features, columns slices ("all" first); `sort` is "psi" or "name".

    `text` filters case-insensitively: features whose name contains it and slices whose label
    contains it; when it matches only features (or only slices) the other axis is kept whole.
    """
    rows = select(model.drift, window_start=window_start, version=version)
    cells = {(row.feature, slice_of(row)): row for row in rows}
    features = sorted({f for f, _ in cells}, key=feature_label)
    slices = sorted({s for _, s in cells}, key=lambda s: (s != ALL, s.segment or "", s.value or ""))
    needle = text.strip().lower()
    if needle:
        matched_features = [f for f in features if needle in feature_label(f).lower()]
        matched_slices = [s for s in slices if needle in s.label.lower()]
        if matched_features or matched_slices:
            features = matched_features or features
            slices = matched_slices or slices
        else:
            features, slices = [], []
    if sort == "psi":
        features.sort(key=lambda f: -_worst(cells.get((f, s)) for s in slices))
        slices.sort(key=lambda s: (s != ALL, -_worst(cells.get((f, s)) for f in features)))
    return DriftGrid(window_start, tuple(features), tuple(slices), cells)


def alert_rank(alert: AlertView) -> tuple[int, int, int, str]:
    """Sort key, worst first: firing before pending before resolved, critical first, then oldest."""
    unsilenced = 0 if alert.silenced_until is not None else 1
    since = alert.since.isoformat() if alert.since else ""
    return (
        -STATE_RANK.get(alert.state, 1) * 2 - unsilenced,
        -SEVERITY_RANK.get(alert.severity, 0),
        0 if alert.acknowledged_by is None else 1,
        since,
    )


def sorted_alerts(alerts: Iterable[AlertView]) -> list[AlertView]:
    """Alerts worst first (see `alert_rank`)."""
    return sorted(alerts, key=alert_rank)


def firing(alerts: Iterable[AlertView]) -> list[AlertView]:
    """Firing, unsilenced alerts, worst first: what the home screen lists."""
    return sorted_alerts(a for a in alerts if a.state == "firing" and a.silenced_until is None)


def grouped(alerts: Iterable[AlertView]) -> list[tuple[AlertView, int]]:
    """Alerts that differ only in their slice, as one line: the all-traffic alert when it is among
    them (else the worst) and how many slices fire besides it — a new category fires in every
    slice it reaches, and the home screen should say so once. Worst group first."""
    heads = slice_groups(sorted_alerts(alerts), lambda a: a.scope, lambda a: (a.model, a.rule))
    return sorted(heads, key=lambda item: alert_rank(item[0]))


def category(signal: str) -> str:
    """Which home-screen status an alert signal feeds: drift, calibration, performance, labels, operations."""
    table, _, name = signal.partition(".")
    if table == "performance" and name in LABEL_FIELDS:
        return "labels"
    return {"data_quality": "drift"}.get(table, table)


def scope_text(scope: Mapping[str, str]) -> str:
    """A compact scope: `v2 amount country=DE`."""
    parts = []
    if scope.get("version"):
        parts.append(scope["version"])
    if scope.get("feature"):
        parts.append(feature_label(scope["feature"]))
    if scope.get("segment"):
        parts.append(f"{scope['segment']}={scope.get('segment_value', '*')}")
    if scope.get("route"):
        parts.append(f"route={scope['route']}")
    return " ".join(parts) or "all"


def pending_labels(model: ModelView) -> list[str]:
    """The context note for labels a live refresh has not counted yet (none when exact)."""
    if not model.pending_labels:
        return []
    return [f"{model.pending_labels:,} new labels pending in {model.pending_windows} window(s)"]


@dataclass(frozen=True)
class HealthRow:
    """One model × version line of the home screen, for the latest window."""

    model: str
    version: str
    window_start: datetime | None
    volume: int | None
    latency_p95_ms: float | None
    error_rate: float | None
    cost_per_1k: float | None
    label_coverage: float | None
    status: dict[str, str]  # category → "crit" | "warn" | "ok" | "n/a"
    hot: frozenset[str]  # operations fields with a firing alert


def _has_data(model: ModelView, version: str, name: str) -> bool:
    table = {"drift": model.drift, "calibration": model.calibration}.get(name, model.performance)
    return any(row.enough_data and row.version == version for row in table)


# The alerts that colour a number of the home screen's operations columns: a feed's silence (the
# model's or a slice's) its volume.
HOT_CATEGORIES = frozenset({"operations", "feed"})


def _hot_field(signal: str) -> str:
    table, _, name = signal.partition(".")
    return "n" if table == "feed" else name


def health(snapshot: Snapshot) -> list[HealthRow]:
    """One row per model × version: latest-window operations, label coverage and a status per category."""
    live = firing(snapshot.alerts)
    result = []
    for model in snapshot.models:
        latest = resolve_window(model, None)
        for version in model.versions:
            scoped = [
                a
                for a in live
                if a.model == model.name and a.scope.get("version", version) in (version, "*", None)
            ]
            status = {}
            for name in CATEGORIES:
                worst = max(
                    (SEVERITY_RANK.get(a.severity, 0) for a in scoped if category(a.signal) == name),
                    default=0,
                )
                if worst:
                    status[name] = "crit" if worst == 2 else "warn"
                elif not _has_data(model, version, name):
                    status[name] = "n/a"
                else:
                    status[name] = "ok"
            ops = select(model.operations, window_start=latest, version=version, segment=None, route=None)
            perf = select(model.performance, window_start=latest, version=version, segment=None)
            hot = frozenset(_hot_field(a.signal) for a in scoped if category(a.signal) in HOT_CATEGORIES)
            result.append(
                HealthRow(
                    model=model.name,
                    version=version,
                    window_start=latest,
                    volume=ops[0].n if ops else None,
                    latency_p95_ms=ops[0].latency_p95_ms if ops else None,
                    error_rate=ops[0].error_rate if ops else None,
                    cost_per_1k=ops[0].cost_per_1k if ops else None,
                    label_coverage=perf[0].label_coverage if perf else None,
                    status=status,
                    hot=hot,
                )
            )
    return result


def signal_series(model: ModelView, alert: AlertView) -> list[tuple[datetime, float | None]]:
    """The alert's signal over the evaluated windows, in the alert's scope (unscoped keys = all)."""
    table, _, name = alert.signal.partition(".")
    rows: Sequence[Row] = getattr(model, table, ())
    attrs: dict[str, object] = {
        "version": alert.scope.get("version"),
        "segment": alert.scope.get("segment"),
        "segment_value": alert.scope.get("segment_value"),
    }
    if table in ("drift", "data_quality"):
        attrs["feature"] = alert.scope.get("feature", SCORE_FEATURE)
    if table == "operations":
        attrs["route"] = alert.scope.get("route")
    if not rows or not hasattr(rows[0], name):
        return []
    return points(select(rows, **attrs), name)
