"""Timeline: alert state changes, acknowledgements, silences and runbook actions in time order, with
the key signals beneath; enter jumps the other panels to that moment."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from triage.tui import format as fmt
from triage.tui.actions import bindings
from triage.tui.data import ModelView, Snapshot, TimelineEvent
from triage.tui.screens.base import TriageScreen, refill
from triage.tui.views import category, select, window_starts
from triage.tui.widgets import cells
from triage.tui.widgets.charts import PALETTE, Series, TimeChart, TimeSeries
from triage.tui.widgets.table import PanelTable

COLUMNS = ("time", "kind", "what", "title", "detail")
KIND_STYLE = {"alert": "", "acknowledged": "#5fafd7", "silenced": cells.DIM, "runbook": "bold #5faf5f"}
WHAT_STYLE = {"firing": cells.CRIT, "pending": cells.WARN, "resolved": cells.OK}
MARKER = {"firing": "red", "runbook": "green"}  # event markers on the chart


def event_key(event: TimelineEvent, index: int) -> str:
    """A row key that stays the same across refreshes."""
    return f"{event.at.isoformat()}|{event.kind}|{event.fingerprint}|{event.what}|{index}"


def event_cells(event: TimelineEvent, wide: bool) -> list[Text | str]:
    """One event as table cells."""
    detail = event.detail if wide or len(event.detail) <= 34 else event.detail[:33] + "…"
    return [
        fmt.stamp(event.at),
        Text(event.kind, style=KIND_STYLE.get(event.kind, "")),
        Text(event.what, style=WHAT_STYLE.get(event.what, "")),
        event.title,
        detail,
    ]


def key_signals(model: ModelView, events: tuple[TimelineEvent, ...]) -> TimeSeries:
    """Worst all-traffic PSI and each version's decision rate per window, with markers at firing
    alerts (red) and runbook actions (green)."""
    x = tuple(window_starts(model))
    worst: dict[datetime, float] = {}
    for row in select(model.drift, segment=None, version=None):
        if row.psi is not None:
            worst[row.window_start] = max(worst.get(row.window_start, 0.0), row.psi)
    series = [Series("worst PSI", tuple(worst.get(t) for t in x), "cyan", "max")]
    for i, version in enumerate(model.versions):
        rate = {
            r.window_start: r.decision_rate for r in select(model.calibration, version=version, segment=None)
        }
        series.append(
            Series(
                version,
                tuple(rate.get(t) for t in x),
                PALETTE[(i + 1) % len(PALETTE)],
                suffix="decision rate",
            )
        )
    marks = tuple(
        (event.at, MARKER["runbook" if event.kind == "runbook" else event.what])
        for event in events
        if (event.kind == "runbook" or event.what == "firing") and (event.model in (None, model.name))
    )
    return TimeSeries(x=x, series=tuple(series), hourly=model.window.endswith("h"), vlines=marks)


class TimelineScreen(TriageScreen):
    """What happened when: the evidence trail of an incident, oldest first."""

    PANEL = "Timeline"

    FILTERABLE = True
    BINDINGS = bindings("filter", "timeline")

    def compose_body(self) -> ComposeResult:
        yield PanelTable(id="events", cursor_type="row")
        yield Static(id="timeline-note", classes="note")
        yield TimeChart("key signals", id="key-signals")

    def on_mount(self) -> None:
        table = self.query_one("#events", DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)

    def shown(self, snapshot: Snapshot) -> list[tuple[str, TimelineEvent]]:
        """The events that pass the filter, with their row keys."""
        needle = self.filter_text.strip().lower()
        return [
            (event_key(e, i), e)
            for i, e in enumerate(snapshot.events)
            if needle in f"{e.kind} {e.what} {e.title} {e.detail} {e.model or ''}".lower()
        ]

    def render_snapshot(self, snapshot: Snapshot) -> None:
        shown = self.shown(snapshot)
        table = self.query_one("#events", DataTable)
        follow = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        refill(table, ((key, event_cells(e, self.wide)) for key, e in shown))
        if follow and table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)
        counts = {kind: sum(e.kind == kind for e in snapshot.events) for kind in ("alert", "runbook")}
        self.set_context(
            self.PANEL,
            f"{counts['alert']} alert changes, {counts['runbook']} runbook steps",
            "enter: go to that time",
            *([f"filter: {self.filter_text}"] if self.filter_text.strip() else []),
        )
        self.query_one("#timeline-note", Static).update("" if shown else "Nothing has happened yet.")
        model = snapshot.model(self.triage.model_name)
        chart = self.query_one("#key-signals", TimeChart)
        if model is None:
            chart.show(None)
        else:
            chart.show(
                key_signals(model, snapshot.events),
                f"{model.name}: worst PSI, decision rate per version (red: fired, green: runbook)",
            )

    @on(DataTable.RowSelected, "#events")
    def action_open(self) -> None:
        """Jump the other panels to the time of the event under the cursor."""
        snapshot = self.triage.snapshot
        table = self.query_one("#events", DataTable)
        if snapshot is None or not table.row_count:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        event = dict(self.shown(snapshot)).get(str(key))
        if event is None:
            return
        panel = category(event.signal) if event.signal else "home"
        panel = "performance" if panel == "labels" else panel
        self.triage.jump_to(event.model, event.at, panel if panel in PANELS else "home")


PANELS = ("home", "drift", "calibration", "performance", "operations")
