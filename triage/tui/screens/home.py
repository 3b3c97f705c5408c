"""Home: one row per model × version with its health, and the firing alerts, worst first."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from triage.tui import format as fmt
from triage.tui.actions import bindings
from triage.tui.data import AlertView, Snapshot
from triage.tui.screens.alerts import HOME_COLUMNS, WHERE_WIDTH, alert_row, where_text
from triage.tui.screens.base import TriageScreen, refill
from triage.tui.views import HealthRow, firing, grouped, health, resolve_window
from triage.tui.widgets import cells
from triage.tui.widgets.table import PanelTable

MODEL_COLUMNS = ("model", "ver", "volume", "p95 ms", "err", "$/1k", "drift", "calib", "perf", "labels")


class HomeScreen(TriageScreen):
    """The first screen: what is wrong, where, and since when."""

    PANEL = "Home"

    FILTERABLE = True
    BINDINGS = bindings("filter", "home")

    def compose_body(self) -> ComposeResult:
        yield PanelTable(id="models", cursor_type="row", zebra_stripes=True)
        yield Static("", id="alerts-title", classes="section")
        yield PanelTable(id="alerts", cursor_type="row")
        yield Static("", id="home-note", classes="note")

    def on_mount(self) -> None:
        models = self.query_one("#models", DataTable)
        for name in MODEL_COLUMNS:
            models.add_column(name, key=name)
        alerts = self.query_one("#alerts", DataTable)
        for name in HOME_COLUMNS:
            alerts.add_column(name, key=name)

    def render_snapshot(self, snapshot: Snapshot) -> None:
        needle = self.filter_text.strip().lower()
        rows = [h for h in health(snapshot) if needle in f"{h.model} {h.version}".lower()]
        refill(
            self.query_one("#models", DataTable),
            ((f"{h.model}\x1f{h.version}", health_cells(h)) for h in rows),
        )
        matching = [a for a in firing(snapshot.alerts) if needle in f"{a.rule} {where_text(a)}".lower()]
        shown = grouped(matching)
        refill(
            self.query_one("#alerts", DataTable),
            ((a.fingerprint, self._alert_cells(a, more, snapshot)) for a, more in shown),
        )
        title = "No firing alerts"
        if matching:
            title = f"Firing alerts ({len(matching)}" + (
                f", {len(shown)} groups)" if len(shown) < len(matching) else ")"
            )
        self.query_one("#alerts-title", Static).update(title)
        windows = {m.name: resolve_window(m, None) for m in snapshot.models}
        latest = max((w for w in windows.values() if w is not None), default=None)
        self.set_context(
            self.PANEL,
            f"{len(snapshot.models)} model(s), {len(rows)} version row(s)",
            f"latest window from {fmt.stamp(latest)}",
            *([f"filter: {self.filter_text}"] if needle else []),
        )
        note = (
            "" if snapshot.models else "No models have data yet: run `triage ingest`, or wait for live rows."
        )
        self.query_one("#home-note", Static).update(note)

    def _alert_cells(self, alert: AlertView, more: int, snapshot: Snapshot) -> list[Text | str]:
        """An alert line; `more` other slices of the same alert are counted after its scope."""
        line = alert_row(alert, snapshot, HOME_COLUMNS, self.wide)
        if more:
            suffix = f" +{more} slice{'s' if more > 1 else ''}"
            width = WHERE_WIDTH[self.wide] - len(suffix)
            line[HOME_COLUMNS.index("where")] = where_text(alert, width, len(snapshot.models) > 1) + suffix
        return line

    @on(DataTable.RowSelected, "#models")
    def _model_chosen(self, event: DataTable.RowSelected) -> None:
        model, version = str(event.row_key.value).split("\x1f")
        self.triage.open_model(model, version)

    @on(DataTable.RowSelected, "#alerts")
    def _alert_chosen(self, event: DataTable.RowSelected) -> None:
        self.triage.open_alert(str(event.row_key.value))

    def action_open(self) -> None:
        """Open what the focused table's cursor is on."""
        table = self.focused
        if isinstance(table, DataTable) and table.row_count:
            table.action_select_cursor()


def health_cells(h: HealthRow) -> list[Text | str]:
    """One model × version as table cells; numbers with a firing alert are red."""
    return [
        h.model,
        h.version,
        cells.hot(fmt.count(h.volume), "n" in h.hot),
        cells.hot(fmt.ms(h.latency_p95_ms), "latency_p95_ms" in h.hot),
        cells.hot(fmt.pct(h.error_rate), "error_rate" in h.hot),
        cells.hot(fmt.num(h.cost_per_1k), "cost_per_1k" in h.hot),
        cells.status(h.status["drift"]),
        cells.status(h.status["calibration"]),
        cells.status(h.status["performance"]),
        cells.status(h.status["labels"], fmt.pct(h.label_coverage, 0)),
    ]
