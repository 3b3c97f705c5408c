"""Alerts: the list with state, severity, scope, since and runbook, and one alert's evidence."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from triage.printable import printable
from triage.tui import format as fmt
from triage.tui.actions import bindings
from triage.tui.data import AlertView, Snapshot
from triage.tui.screens.base import TriageScreen, refill
from triage.tui.views import scope_text, signal_series, sorted_alerts
from triage.tui.widgets import cells
from triage.tui.widgets.charts import Series, TimeChart, TimeSeries
from triage.tui.widgets.table import PanelTable

STATE_STYLE = {"firing": "bold", "pending": "#d7af00", "resolved": cells.DIM}
LIST_COLUMNS = ("sev", "state", "rule", "where", "value", "limit", "for", "runbook")
HOME_COLUMNS = ("sev", "rule", "where", "value", "limit", "for")
WHERE_WIDTH = (22, 44)  # fits 80 columns; on a wide terminal


def state_text(alert: AlertView) -> Text:
    """firing / pending / resolved, or silenced / acked for an active alert someone handled."""
    word = alert.state
    if alert.state != "resolved" and alert.silenced_until is not None:
        word = "silenced"
    elif alert.state != "resolved" and alert.acknowledged_by:
        word = "acked"
    return Text(word, style=STATE_STYLE.get(alert.state, ""))


def where_text(alert: AlertView, width: int = WHERE_WIDTH[1], with_model: bool = True) -> str:
    """The model (when there are several) and the scope, cut to `width`: `fraud v2 amount country=DE`."""
    text = f"{alert.model} {scope_text(alert.scope)}" if with_model else scope_text(alert.scope)
    return printable(text, width)


def alert_row(alert: AlertView, snapshot: Snapshot, columns: tuple[str, ...], wide: bool) -> list[Text | str]:
    """The cells of one alert for the given columns (see LIST_COLUMNS)."""
    as_of = snapshot.as_of
    since = (as_of - alert.since).total_seconds() if alert.since else None
    acked = " ✓" if alert.acknowledged_by and "state" not in columns else ""
    cell: dict[str, Text | str] = {
        "sev": cells.severity(alert.severity),
        "state": state_text(alert),
        "rule": alert.rule + acked,
        "where": where_text(alert, WHERE_WIDTH[wide], len(snapshot.models) > 1),
        "value": cells.right(fmt.signal_value(alert.signal, alert.value)),
        "limit": cells.right(fmt.signal_value(alert.signal, alert.threshold)),
        "for": cells.right(fmt.duration(since)),
        "runbook": runbook_name(alert.runbook),
    }
    return [cell[name] for name in columns]


def runbook_name(ref: str | None) -> str:
    """`runbooks/kserve-canary.md#shift` → `kserve-canary#shift`."""
    if not ref:
        return fmt.MISSING
    path, _, step = ref.partition("#")
    name = path.rsplit("/", 1)[-1].removesuffix(".md")
    return f"{name}#{step}" if step else name


class AlertsScreen(TriageScreen):
    """Every alert, worst first; enter opens the evidence, `a` acknowledges, `s` silences."""

    PANEL = "Alerts"

    FILTERABLE = True
    BINDINGS = bindings("filter", "alerts")

    def compose_body(self) -> ComposeResult:
        yield PanelTable(id="alert-list", cursor_type="row")
        yield Static(id="alerts-note", classes="note")

    def on_mount(self) -> None:
        table = self.query_one("#alert-list", DataTable)
        for name in LIST_COLUMNS:
            table.add_column(name, key=name)

    def render_snapshot(self, snapshot: Snapshot) -> None:
        needle = self.filter_text.strip().lower()
        shown = [
            a
            for a in sorted_alerts(snapshot.alerts)
            if needle in f"{a.model} {a.rule} {a.signal} {a.state} {a.severity} {dict(a.scope)}".lower()
        ]
        refill(
            self.query_one("#alert-list", DataTable),
            ((a.fingerprint, alert_row(a, snapshot, LIST_COLUMNS, self.wide)) for a in shown),
        )
        counts = {state: sum(a.state == state for a in snapshot.alerts) for state in ("firing", "pending")}
        self.set_context(
            self.PANEL,
            f"{counts['firing']} firing, {counts['pending']} pending, {len(snapshot.alerts)} in all",
            *([f"filter: {self.filter_text}"] if needle else []),
        )
        self.query_one("#alerts-note", Static).update("" if shown else "No alerts.")

    def _current(self) -> AlertView | None:
        table = self.query_one("#alert-list", DataTable)
        snapshot = self.triage.snapshot
        if snapshot is None or not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((a for a in snapshot.alerts if a.fingerprint == key), None)

    @on(DataTable.RowSelected, "#alert-list")
    def action_open(self) -> None:
        """Open the evidence of the alert under the cursor."""
        alert = self._current()
        if alert is not None:
            self.app.push_screen(AlertScreen(alert.fingerprint))

    def action_acknowledge(self) -> None:
        """Acknowledge the alert under the cursor."""
        alert = self._current()
        if alert is not None:
            self.triage.ask_acknowledge(alert)

    def action_silence(self) -> None:
        """Silence the alert under the cursor."""
        alert = self._current()
        if alert is not None:
            self.triage.ask_silence(alert)


def evidence_table(alert: AlertView, snapshot: Snapshot) -> Table:
    """Values, threshold, window, counts and the alert's own evidence, as name/value lines (plain
    `Text`: scope values and evidence are logged data, and a `str` cell would be read as markup)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", justify="right")
    grid.add_column()
    since = (snapshot.as_of - alert.since).total_seconds() if alert.since else None
    grid.add_row(
        "alert", Text.assemble(cells.severity(alert.severity), " ", state_text(alert), f"  {alert.rule}")
    )

    def line(name: str, value: str) -> None:
        grid.add_row(name, Text(printable(value, width=None)))

    line("signal", f"{alert.signal} on {alert.model}")
    line("scope", ", ".join(f"{k}={printable(v)}" for k, v in alert.scope.items()) or "all traffic")
    shown, threshold = (fmt.signal_value(alert.signal, v) for v in (alert.value, alert.threshold))
    grid.add_row("value", f"{shown}   threshold {threshold}")
    grid.add_row(
        "window", f"{fmt.stamp(alert.window_start)} → {fmt.stamp(alert.window_end)}   n {fmt.count(alert.n)}"
    )
    grid.add_row("since", f"{fmt.stamp(alert.since)} ({fmt.duration(since)})")
    if alert.acknowledged_by:
        line("acked", f"by {alert.acknowledged_by}: {alert.ack_note or ''}")
    if alert.silenced_until:
        grid.add_row("silenced", f"until {fmt.stamp(alert.silenced_until)}")
    for key, value in alert.evidence.items():
        line(key, fmt.sig(value) if isinstance(value, float) else str(value))
    grid.add_row(
        "runbook", f"{alert.runbook or 'none linked'}" + ("   enter: open it" if alert.runbook else "")
    )
    return grid


class AlertScreen(TriageScreen):
    """One alert: its evidence and its signal over time, with the runbook one key away."""

    PANEL = "Alert"

    BINDINGS = bindings("alert")

    def __init__(self, fingerprint: str) -> None:
        super().__init__()
        self.fingerprint = fingerprint

    def compose_body(self) -> ComposeResult:
        yield Static(id="evidence")
        yield TimeChart("the signal per window", id="signal")

    def alert(self) -> AlertView | None:
        """The alert as of the current snapshot (it may have resolved or gone)."""
        snapshot = self.triage.snapshot
        if snapshot is None:
            return None
        return next((a for a in snapshot.alerts if a.fingerprint == self.fingerprint), None)

    def render_snapshot(self, snapshot: Snapshot) -> None:
        alert = self.alert()
        if alert is None:
            self.set_context(self.PANEL, self.fingerprint[:12], "no longer present")
            self.query_one("#evidence", Static).update("This alert is not in the current evaluation.")
            return
        self.query_one("#evidence", Static).update(evidence_table(alert, snapshot))
        model = next((m for m in snapshot.models if m.name == alert.model), None)
        history = signal_series(model, alert) if model else []
        hlines = ((alert.threshold, "red"),) if alert.threshold is not None else ()
        self.query_one("#signal", TimeChart).show(
            TimeSeries(
                x=tuple(t for t, _ in history),
                series=(Series(alert.signal, tuple(v for _, v in history), "cyan", "max"),),
                hlines=hlines,
                hourly=bool(model and model.window.endswith("h")),
            ),
            f"{alert.signal} per window (red: threshold)",
        )
        self.set_context(self.PANEL, alert.model, alert.rule, alert.fingerprint[:12])

    def action_runbook(self) -> None:
        """Open the linked runbook with this alert's parameters."""
        alert = self.alert()
        if alert is None or not alert.runbook:
            self.notify("This alert links no runbook.", severity="warning")
            return
        self.triage.open_runbook(alert.runbook, alert)

    def action_acknowledge(self) -> None:
        """Acknowledge this alert."""
        alert = self.alert()
        if alert is not None:
            self.triage.ask_acknowledge(alert)

    def action_silence(self) -> None:
        """Silence this alert."""
        alert = self.alert()
        if alert is not None:
            self.triage.ask_silence(alert)
