"""Drift: the feature × slice PSI heat grid of one window, and the cell drill-down."""

from __future__ import annotations

from datetime import datetime

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from triage.metrics.results import DataQualityRow, DriftRow
from triage.printable import printable
from triage.tui import format as fmt
from triage.tui.actions import bindings
from triage.tui.data import ModelView, Snapshot
from triage.tui.messages import HistogramLoaded
from triage.tui.screens.base import ModelScreen, TriageScreen, refill
from triage.tui.views import (
    ALL,
    PSI_CRIT,
    PSI_WARN,
    Slice,
    drift_grid,
    feature_label,
    ks_level,
    points,
    psi_level,
    resolve_window,
    select,
    step_window,
)
from triage.tui.widgets import cells
from triage.tui.widgets.charts import HistogramChart, Series, TimeChart, TimeSeries
from triage.tui.widgets.table import PanelTable

SORTS = {"psi": "worst drift first", "name": "name"}
LEGEND = Text.assemble(
    ("PSI ", "bold"),
    (" ≥0.25 ", cells.CRIT),
    " ",
    (" ≥0.10 ", cells.WARN),
    " ",
    ("≥0.05", "bold #d7af00"),
    "  – too few rows · enter: cell · s: sort · /: filter",
)


def version_label(version: str | None) -> str:
    """ "all versions" or "version v2"."""
    return "all versions" if version is None else f"version {version}"


def slice_header(slice_: Slice) -> Text:
    """A two-line column header: the segment column over the value, each cut to 8 characters."""
    if slice_.segment is None:
        return Text("\nall")
    return Text(f"{slice_.segment[:8]}\n{printable(slice_.value or '')[:8]}")


class DriftScreen(ModelScreen):
    """Which feature moved, in which slice: PSI per feature × slice for the chosen window."""

    PANEL = "Drift"

    FILTERABLE = True
    BINDINGS = bindings("filter", "drift")

    def __init__(self) -> None:
        super().__init__()
        self.sort = "psi"
        self.slices: tuple[Slice, ...] = ()
        self.reference_note: str | None = None  # shown instead of the legend while the reference is open

    def compose_body(self) -> ComposeResult:
        yield PanelTable(id="grid", cursor_type="cell", fixed_columns=1, header_height=2)
        yield Static(LEGEND, id="legend", classes="note")

    def render_snapshot(self, snapshot: Snapshot) -> None:
        model = self.model
        if model is None:
            self.set_context(self.PANEL, "no model has data yet")
            return
        window = resolve_window(model, self.triage.window_start)
        self.shown_window = window
        grid = drift_grid(model, window, self.triage.version, self.sort, self.filter_text)
        table = self.query_one("#grid", DataTable)
        if grid.slices != self.slices:
            self.slices = grid.slices
            table.clear(columns=True)
            table.add_column(Text("\nfeature"), key="feature")
            for slice_ in grid.slices:
                table.add_column(slice_header(slice_), key=slice_.label)
        rows = [
            (f, [feature_label(f)[:18], *(cells.psi(grid.cell(f, s)) for s in grid.slices)])
            for f in grid.features
        ]
        refill(table, rows)
        note = model.reference.note if model.reference else None
        if note != self.reference_note:
            self.reference_note = note
            self.query_one("#legend", Static).update(LEGEND if note is None else Text(note, "bold"))
        self.set_context(
            self.PANEL,
            model.name,
            version_label(self.triage.version),
            f"window {fmt.window(window, model.window)} ({model.window})",
            f"sorted by {SORTS[self.sort]}",
            f"{len(grid.features)} features × {len(grid.slices)} slices",
            *([f"filter: {self.filter_text}"] if self.filter_text else []),
        )

    def action_cycle_sort(self) -> None:
        """Worst PSI first, or by name."""
        names = list(SORTS)
        self.sort = names[(names.index(self.sort) + 1) % len(names)]
        self.redraw()

    @on(DataTable.CellSelected, "#grid")
    def action_open(self) -> None:
        """Open the cell under the cursor (the feature column opens its "all" cell)."""
        model = self.model
        table = self.query_one("#grid", DataTable)
        if model is None or not table.row_count:
            return
        feature = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        column = table.cursor_column
        slice_ = self.slices[column - 1] if column >= 1 and self.slices else ALL
        window = resolve_window(model, self.triage.window_start)
        self.app.push_screen(DriftCellScreen(model.name, feature, slice_, self.triage.version, window))


def _styled(value: float | None, level: str) -> Text:
    """A statistic, red past its critical level and yellow past its warning."""
    return Text(
        fmt.sig(value), style=cells.CRIT if level == "crit" else cells.WARN if level == "warn" else ""
    )


def stats_table(row: DriftRow | None, quality: DataQualityRow | None) -> Table:
    """All statistics of one cell, three name/value pairs per line."""
    grid = Table.grid(padding=(0, 1))
    for _ in range(3):
        grid.add_column(style="dim", justify="right")
        grid.add_column(min_width=14)
    if row is None:
        grid.add_row("", "no data for this cell in this window")
        return grid
    w_norm = f" ({fmt.sig(row.wasserstein_norm)} σ)" if row.wasserstein_norm is not None else ""
    psi = _styled(row.psi, psi_level(row))
    grid.add_row("PSI", psi, "JS", fmt.sig(row.js), "n", f"{row.n:,} / ref {row.n_reference:,}")
    ks_d = _styled(row.ks_d, ks_level(row))
    grid.add_row("KS D", ks_d, "KS p", fmt.sig(row.ks_p), "W1", fmt.sig(row.wasserstein) + w_norm)
    grid.add_row("χ²", fmt.sig(row.chi2), "χ² p", fmt.sig(row.chi2_p), "kind", row.kind)
    if quality is not None:
        grid.add_row(
            "missing",
            f"{fmt.pct(quality.missing_rate)} (ref {fmt.pct(quality.missing_rate_reference)})",
            "unseen",
            fmt.pct(quality.unseen_share),
            "out of range",
            fmt.pct(quality.out_of_range_share),
        )
    if not row.enough_data:
        grid.add_row("", Text(row.note or "not enough data", style="bold #d7af00"))
    elif row.note:
        grid.add_row("note", Text(printable(row.note, width=None)))
    return grid


class DriftCellScreen(TriageScreen):
    """One cell: reference vs window histogram, every statistic, and PSI over the windows."""

    PANEL = "Drift cell"

    BINDINGS = bindings("cell")

    def __init__(
        self, model: str, feature: str, slice_: Slice, version: str | None, window: datetime | None
    ) -> None:
        super().__init__()
        self.model_name = model
        self.feature = feature
        self.slice = slice_
        self.version = version
        self.window = window
        self.histogram_generation = 0
        self.histogram_for: tuple[datetime | None, datetime] | None = None

    def compose_body(self) -> ComposeResult:
        yield Static(id="stats")
        with Horizontal(id="cell-charts"):
            yield HistogramChart("share per bin: window ▇ reference ─", id="histogram")
            yield TimeChart("PSI per window", id="history")

    def _model(self, snapshot: Snapshot) -> ModelView | None:
        return next((m for m in snapshot.models if m.name == self.model_name), None)

    def render_snapshot(self, snapshot: Snapshot) -> None:
        model = self._model(snapshot)
        if model is None:
            self.set_context(self.PANEL, self.model_name, "this model is no longer in the snapshot")
            return
        scope = {"feature": self.feature, "version": self.version}
        scope |= {"segment": self.slice.segment, "segment_value": self.slice.value}
        cell_rows = select(model.drift, **scope)
        row = next((r for r in cell_rows if r.window_start == self.window), None)
        quality = next(
            (q for q in select(model.data_quality, **scope) if q.window_start == self.window), None
        )
        self.query_one("#stats", Static).update(stats_table(row, quality))
        history = points(cell_rows, "psi")
        self.query_one("#history", TimeChart).show(
            TimeSeries(
                x=tuple(t for t, _ in history),
                series=(Series("PSI", tuple(v for _, v in history), "cyan", reduce="max"),),
                hlines=((PSI_WARN, "yellow"), (PSI_CRIT, "red")),
                hourly=model.window.endswith("h"),
            )
        )
        self.set_context(
            self.PANEL,
            model.name,
            feature_label(self.feature),
            self.slice.label,
            version_label(self.version),
            f"window {fmt.window(self.window, model.window)}",
        )
        if row is not None and self.histogram_for != (self.window, snapshot.as_of):
            self.histogram_for = (self.window, snapshot.as_of)
            self.histogram_generation += 1
            self.query_one("#histogram", HistogramChart).show(None, "loading…")
            self._load_histogram(self.histogram_generation, row, snapshot.as_of)
        elif row is None:
            self.query_one("#histogram", HistogramChart).show(None, "no data in this window")

    @work(thread=True, exclusive=True, exit_on_error=False, group="histogram")
    def _load_histogram(self, generation: int, row: DriftRow, as_of: datetime) -> None:
        try:
            histogram = self.triage.source.histogram(self.model_name, row, as_of)
        except Exception as exc:
            self.post_message(HistogramLoaded(generation, None, fmt.error_line(exc)))
            return
        self.post_message(HistogramLoaded(generation, histogram, None))

    @on(HistogramLoaded)
    def _histogram_loaded(self, message: HistogramLoaded) -> None:
        if message.generation != self.histogram_generation:
            return
        with self.app.batch_update():
            self.query_one("#histogram", HistogramChart).show(
                message.histogram, f"histogram unavailable: {message.error}"
            )

    def action_step_window(self, step: int) -> None:
        """The same cell in the previous or next window."""
        snapshot = self.triage.snapshot
        model = self._model(snapshot) if snapshot else None
        if model is not None:
            self.window = step_window(model, self.window, step)
            self.redraw()
