"""Calibration: reliability diagram, ECE and Brier over time, decision rate at the threshold over time."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import DataTable

from triage.metrics.calibration import pooled_reliability
from triage.metrics.results import CalibrationRow
from triage.tui import format as fmt
from triage.tui.data import ModelView, Snapshot
from triage.tui.screens.base import ChartScreen, refill
from triage.tui.screens.drift import version_label
from triage.tui.views import labelled_window, pending_labels, points, select
from triage.tui.widgets import cells
from triage.tui.widgets.charts import PALETTE, Curve, Series, TimeChart, TimeSeries, XYChart
from triage.tui.widgets.table import PanelTable

COLUMNS = ("version", "n", "labeled", "decision", "ECE", "ECE mass", "MCE", "Brier", "log loss")


def over_time(model: ModelView, field: str, reduce: str = "mean") -> TimeSeries:
    """`field` of the all-traffic calibration rows, one line per version."""
    x = tuple(sorted({w.window_start for w in model.windows}))
    series = []
    for i, version in enumerate(model.versions):
        by_window = dict(points(select(model.calibration, version=version, segment=None), field))
        series.append(Series(version, tuple(by_window.get(t) for t in x), PALETTE[i % len(PALETTE)], reduce))
    return TimeSeries(x=x, series=tuple(series), hourly=model.window.endswith("h"))


def calibration_cells(r: CalibrationRow) -> list[Text | str]:
    """One version's calibration in the chosen window as table cells."""
    return [
        r.version or "all",
        cells.right(fmt.count(r.n)),
        cells.right(fmt.count(r.n_labeled)),
        cells.right(fmt.pct(r.decision_rate)),
        *(cells.right(fmt.num(v, 3)) for v in (r.ece, r.ece_equal_mass, r.mce, r.brier, r.log_loss)),
    ]


class CalibrationScreen(ChartScreen):
    """Are the scores still probabilities, per version?"""

    PANEL = "Calibration"

    CHARTS = ("reliability", "ece", "brier", "decision")

    def compose_body(self) -> ComposeResult:
        yield PanelTable(id="versions", cursor_type="row")
        with Container(id="charts", classes="charts"):
            yield XYChart("reliability: observed rate vs mean score", id="reliability")
            yield TimeChart("ECE per window", id="ece")
            yield TimeChart("Brier per window", id="brier")
            yield TimeChart("decision rate per window", id="decision")

    def on_mount(self) -> None:
        table = self.query_one("#versions", DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        self.layout_charts()

    def reference_curve(self, model: ModelView) -> Curve:
        """The reference's reliability diagram, pooled over its windows (all traffic): of the shown
        version, or all versions' for one without reference windows of its own (a new canary) —
        what the `calibration-ece` rule compares a window with."""
        version = self.triage.version
        rows = [r for r in model.reference_calibration if r.segment is None and r.reliability]
        own = [r for r in rows if r.version == version]
        if not own:
            version, own = None, [r for r in rows if r.version is None]
        pooled = pooled_reliability(own)
        return Curve(
            f"ref {version or 'all'}",
            tuple(p.mean_score for p in pooled),
            tuple(p.positive_rate for p in pooled),
            "white",
        )

    def render_snapshot(self, snapshot: Snapshot) -> None:
        model = self.model
        if model is None:
            self.set_context(self.PANEL, "no model has data yet")
            return
        if model.task == "regression":
            self.render_regression(model)
            return
        window = labelled_window(model, self.triage.window_start, self.triage.version, "calibration")
        self.shown_window = window
        rows = select(model.calibration, window_start=window, segment=None)
        order: dict[str | None, int] = {None: -1, **{v: i for i, v in enumerate(model.versions)}}
        rows.sort(key=lambda r: order.get(r.version, len(order)))
        refill(
            self.query_one("#versions", DataTable), ((r.version or "all", calibration_cells(r)) for r in rows)
        )
        curves = [self.reference_curve(model)]
        for i, version in enumerate(model.versions):
            if self.triage.version not in (None, version):
                continue
            row = next((r for r in rows if r.version == version), None)
            if row is not None and row.reliability:
                xs = tuple(p.mean_score for p in row.reliability)
                ys = tuple(p.positive_rate for p in row.reliability)
                curves.append(Curve(version, xs, ys, PALETTE[i % len(PALETTE)]))
        self.query_one("#reliability", XYChart).show(curves, "no labelled rows in this window yet")
        self.query_one("#ece", TimeChart).show(over_time(model, "ece", "max"))
        self.query_one("#brier", TimeChart).show(over_time(model, "brier", "max"))
        decision = over_time(model, "decision_rate")
        self.query_one("#decision", TimeChart).show(decision, f"decision rate (score ≥ {model.threshold:g})")
        self.set_context(
            self.PANEL,
            model.name,
            version_label(self.triage.version),
            f"window {fmt.window(window, model.window)}"
            + (" (latest labelled)" if self.triage.window_start is None else ""),
            "all charts" if self.wide else "m: next chart",
            *pending_labels(model),
        )

    def render_regression(self, model: ModelView) -> None:
        """A regression model's predictions are values, not probabilities: the panel says so."""
        self.shown_window = None
        refill(self.query_one("#versions", DataTable), ())
        self.query_one("#reliability", XYChart).show((), "a regression model: no probabilities to calibrate")
        for chart in ("#ece", "#brier", "#decision"):
            self.query_one(chart, TimeChart).show(None)
        self.set_context(self.PANEL, model.name, "regression: see Performance for its errors")
