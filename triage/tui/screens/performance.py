"""Performance from delayed labels: a metric over time with its confidence band, label coverage,
the per-slice table with row counts, and the expected cost of the decisions — of a regression
model, its errors (MAE, RMSE, MAPE) instead."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from triage.metrics.results import PerformanceRow
from triage.tui import format as fmt
from triage.tui.actions import bindings
from triage.tui.data import ModelView, Snapshot
from triage.tui.screens.base import ModelScreen, refill
from triage.tui.screens.drift import version_label
from triage.tui.views import (
    ALL,
    labelled_window,
    pending_labels,
    points,
    select,
    slice_of,
    window_starts,
)
from triage.tui.widgets import cells
from triage.tui.widgets.charts import PALETTE, Series, TimeChart, TimeSeries
from triage.tui.widgets.table import PanelTable

METRICS = ("precision", "recall", "auroc", "fpr", "fnr", "accuracy", "expected_cost")
COLUMNS = ("slice", "n", "labeled", "cover", "precision", "recall", "AUROC", "FPR", "cost")
REGRESSION_METRICS = ("mae", "rmse", "mape")
REGRESSION_COLUMNS = ("slice", "n", "labeled", "cover", "MAE", "RMSE", "MAPE")


def short_ci(value: float | None, low: float | None, high: float | None) -> str:
    """A share with its interval in whole percent: 81.2 (78–84)."""
    if value is None:
        return fmt.MISSING
    if low is None or high is None:
        return f"{value * 100:.1f}"
    return f"{value * 100:.1f} ({low * 100:.0f}–{high * 100:.0f})"


def slice_cells(r: PerformanceRow, regression: bool = False) -> list[Text | str]:
    """One slice's performance in the chosen window as table cells."""
    counts: list[Text | str] = [
        slice_of(r).label[:18],
        cells.right(fmt.count(r.n)),
        cells.right(fmt.count(r.n_labeled)),
        cells.right(fmt.pct(r.label_coverage, 0)),
    ]
    if regression:
        return [
            *counts,
            cells.right(fmt.ci(r.mae, r.mae_ci_low, r.mae_ci_high, False)),
            cells.right(fmt.ci(r.rmse, r.rmse_ci_low, r.rmse_ci_high, False)),
            cells.right(fmt.sig(r.mape)),
        ]
    return [
        *counts,
        cells.right(short_ci(r.precision, r.precision_ci_low, r.precision_ci_high)),
        cells.right(short_ci(r.recall, r.recall_ci_low, r.recall_ci_high)),
        cells.right(fmt.num(r.auroc, 3)),
        cells.right(fmt.pct(r.fpr)),
        cells.right(fmt.num(r.expected_cost)),
    ]


def metric_series(model: ModelView, metric: str, version: str | None) -> TimeSeries:
    """`metric` per window for each version (or the chosen one), with its interval as thin lines."""
    x = tuple(window_starts(model))
    series: list[Series] = []
    for i, v in enumerate(model.versions):
        if version not in (None, v):
            continue
        rows = select(model.performance, version=v, segment=None)
        color = PALETTE[i % len(PALETTE)]
        value = dict(points(rows, metric))
        series.append(Series(v, tuple(value.get(t) for t in x), color))
        low, high = dict(points(rows, f"{metric}_ci_low")), dict(points(rows, f"{metric}_ci_high"))
        series.append(Series("", tuple(low.get(t) for t in x), color, "min", "braille"))
        series.append(Series("", tuple(high.get(t) for t in x), color, "max", "braille"))
    return TimeSeries(x=x, series=tuple(series), hourly=model.window.endswith("h"), from_zero=False)


def coverage_series(model: ModelView, version: str | None) -> TimeSeries:
    """Label coverage per window for each version (or the chosen one)."""
    x = tuple(window_starts(model))
    series = []
    for i, v in enumerate(model.versions):
        if version in (None, v):
            value = dict(points(select(model.performance, version=v, segment=None), "label_coverage"))
            series.append(Series(v, tuple(value.get(t) for t in x), PALETTE[i % len(PALETTE)]))
    return TimeSeries(x=x, series=tuple(series), hourly=model.window.endswith("h"), ylim=(0.0, 1.0))


class PerformanceScreen(ModelScreen):
    """Is the model still right, now that labels have come in?"""

    PANEL = "Performance"

    BINDINGS = bindings("performance")

    def __init__(self) -> None:
        super().__init__()
        self.metric = METRICS[0]
        self.columns: tuple[str, ...] = ()  # the table's, set for the shown model's task

    @property
    def metrics(self) -> tuple[str, ...]:
        model = self.model
        return REGRESSION_METRICS if model is not None and model.task == "regression" else METRICS

    def compose_body(self) -> ComposeResult:
        yield PanelTable(id="slices", cursor_type="row", zebra_stripes=True)
        yield Static(id="cost", classes="note")
        with Horizontal(id="perf-charts", classes="charts"):
            yield TimeChart(id="metric")
            yield TimeChart("label coverage per window", id="coverage")

    def set_columns(self, names: tuple[str, ...]) -> None:
        """The table's columns, rebuilt when the shown model's task asks for others."""
        if names != self.columns:
            table = self.query_one("#slices", DataTable)
            table.clear(columns=True)
            for name in names:
                table.add_column(name, key=name)
            self.columns = names

    def render_snapshot(self, snapshot: Snapshot) -> None:
        model = self.model
        if model is None:
            self.set_context(self.PANEL, "no model has data yet")
            return
        regression = model.task == "regression"
        self.set_columns(REGRESSION_COLUMNS if regression else COLUMNS)
        if self.metric not in self.metrics:
            self.metric = self.metrics[0]
        version = self.triage.version
        window = labelled_window(model, self.triage.window_start, version)
        self.shown_window = window
        rows = select(model.performance, window_start=window, version=version)
        rows.sort(key=lambda r: (slice_of(r) != ALL, -r.n))
        refill(
            self.query_one("#slices", DataTable),
            ((slice_of(r).label, slice_cells(r, regression)) for r in rows),
        )
        overall = next((r for r in rows if r.segment is None), None)
        lag = (f" · label lag p50 {fmt.duration(overall.label_lag_p50_s if overall else None)}", "dim")
        cost = (
            Text.assemble(("errors of the predicted values", "dim"), lag)
            if regression
            else Text.assemble(
                ("expected cost/prediction ", "dim"),
                fmt.ci(
                    overall.expected_cost, overall.expected_cost_ci_low, overall.expected_cost_ci_high, False
                )
                if overall
                else fmt.MISSING,
                (f" · FP {model.cost_false_positive:g}, FN {model.cost_false_negative:g}", "dim"),
                (f" (some {model.cost_segment} values differ)" if model.cost_segment else "", "dim"),
                lag,
            )
        )
        self.query_one("#cost", Static).update(cost)
        title = f"{self.metric.replace('_', ' ')} per window, 95% CI"
        self.query_one("#metric", TimeChart).show(metric_series(model, self.metric, version), title)
        self.query_one("#coverage", TimeChart).show(coverage_series(model, version))
        following = " (latest labelled)" if self.triage.window_start is None else ""
        self.set_context(
            self.PANEL,
            model.name,
            version_label(version),
            f"window {fmt.window(window, model.window)}{following}",
            "m: next metric",
            *pending_labels(model),
        )

    def action_next_metric(self) -> None:
        """Chart the next metric."""
        metrics = self.metrics
        self.metric = (
            metrics[(metrics.index(self.metric) + 1) % len(metrics)] if self.metric in metrics else metrics[0]
        )
        self.redraw()
