"""Operations & cost: latency percentiles, error and fallback rates, cost per 1k and tokens per
request, per version and route."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container
from textual.widgets import DataTable

from triage.metrics.results import OperationsRow
from triage.tui import format as fmt
from triage.tui.data import ModelView, Snapshot
from triage.tui.screens.base import ChartScreen, refill
from triage.tui.screens.drift import version_label
from triage.tui.views import points, resolve_window, select, window_starts
from triage.tui.widgets import cells
from triage.tui.widgets.charts import PALETTE, Series, TimeChart, TimeSeries
from triage.tui.widgets.table import PanelTable

COLUMNS = ("version", "route", "n", "p50", "p95", "p99", "err", "fallbk", "$/1k", "tok/req")


def ops_cells(r: OperationsRow) -> list[Text | str]:
    """One version × route in the chosen window as table cells."""
    return [
        r.version or "all",
        r.route or "all",
        cells.right(fmt.count(r.n)),
        cells.right(fmt.ms(r.latency_p50_ms)),
        cells.right(fmt.ms(r.latency_p95_ms)),
        cells.right(fmt.ms(r.latency_p99_ms)),
        cells.right(fmt.pct(r.error_rate)),
        cells.right(fmt.pct(r.fallback_rate)),
        cells.right(fmt.num(r.cost_per_1k)),
        cells.right(fmt.num(r.tokens_per_request, 0)),
    ]


def per_version(model: ModelView, version: str | None, *fields: tuple[str, str]) -> TimeSeries:
    """Each (field, short name) of the all-routes, all-traffic rows per window, one line per version and
    field; the first field is drawn thick, the others thin."""
    x = tuple(window_starts(model))
    series = []
    for i, v in enumerate(model.versions):
        if version not in (None, v):
            continue
        rows = select(model.operations, version=v, segment=None, route=None)
        for j, (field, short) in enumerate(fields):
            value = dict(points(rows, field))
            suffix = "" if len(fields) == 1 else short
            marker = "hd" if j == 0 else "braille"
            series.append(
                Series(v, tuple(value.get(t) for t in x), PALETTE[i % len(PALETTE)], "max", marker, suffix)
            )
    return TimeSeries(x=x, series=tuple(series), hourly=model.window.endswith("h"))


class OperationsScreen(ChartScreen):
    """Is it fast, up and affordable, per version and route?"""

    PANEL = "Operations & cost"

    CHARTS = ("latency", "errors", "cost", "tokens")

    def compose_body(self) -> ComposeResult:
        yield PanelTable(id="ops", cursor_type="row", zebra_stripes=True)
        with Container(id="charts", classes="charts"):
            yield TimeChart("latency p95 (thin: p99), ms", id="latency")
            yield TimeChart("error rate (thin: fallback rate)", id="errors")
            yield TimeChart("cost per 1k predictions", id="cost")
            yield TimeChart("tokens per request", id="tokens")

    def on_mount(self) -> None:
        table = self.query_one("#ops", DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        self.layout_charts()

    def render_snapshot(self, snapshot: Snapshot) -> None:
        model = self.model
        if model is None:
            self.set_context(self.PANEL, "no model has data yet")
            return
        version = self.triage.version
        window = resolve_window(model, self.triage.window_start)
        self.shown_window = window
        rows = select(model.operations, window_start=window, segment=None)
        rows = [r for r in rows if version in (None, r.version)]
        order: dict[str | None, int] = {None: -1, **{v: i for i, v in enumerate(model.versions)}}
        rows.sort(key=lambda r: (order.get(r.version, len(order)), r.route is not None, r.route or ""))
        refill(self.query_one("#ops", DataTable), ((f"{r.version}\x1f{r.route}", ops_cells(r)) for r in rows))
        self.query_one("#latency", TimeChart).show(
            per_version(model, version, ("latency_p95_ms", "p95"), ("latency_p99_ms", "p99"))
        )
        self.query_one("#errors", TimeChart).show(
            per_version(model, version, ("error_rate", "err"), ("fallback_rate", "fb"))
        )
        self.query_one("#cost", TimeChart).show(per_version(model, version, ("cost_per_1k", "cost")))
        self.query_one("#tokens", TimeChart).show(
            per_version(model, version, ("tokens_per_request", "tokens"))
        )
        self.set_context(
            self.PANEL,
            model.name,
            version_label(version),
            f"window {fmt.window(window, model.window)} ({model.window})",
            "all charts" if self.wide else "m: next chart",
        )
