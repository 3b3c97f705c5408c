"""Charts show logged values (versions, categories) as text: plotext's output is read as ANSI, so an
escape sequence in a version would reach the terminal (an OSC 8 link, a colour) and a newline would
break the chart's frame."""

from __future__ import annotations

from dataclasses import fields, replace

from rich.style import Style
from rich.text import Text
from textual.app import App, ComposeResult
from textual.command import CommandList
from textual.content import Content
from textual.style import Style as TStyle
from textual.widgets import Static

from tests.test_tui_app import make_app, search, settle
from tests.test_tui_fixtures import FakeSource, demo_snapshot
from triage.tui.data import Histogram, ModelView
from triage.tui.widgets.charts import Chart, HistogramChart

LINK = "v\x1b]8;;http://evil.example/\x1b\\x\x1b]8;;\x1b\\"  # "vx", the x a link to evil.example
BREAK = "v\nx\x1b[31mred"  # a newline, then red from there on


def renamed(model: ModelView, names: dict[str, str]) -> ModelView:
    """`model` with its versions renamed in every table."""

    def rows(table: tuple) -> tuple:
        return tuple(replace(r, version=names.get(r.version, r.version)) for r in table)

    tables = {f.name: rows(getattr(model, f.name)) for f in fields(model) if f.name in TABLES}
    return replace(model, versions=tuple(names.get(v, v) for v in model.versions), **tables)


TABLES = ("drift", "data_quality", "calibration", "performance", "operations", "reference_calibration")


def assert_inert(chart: Chart) -> str:
    """The chart as drawn: one line per row of the widget, no style from a logged value (no link),
    and the values' escapes shown as text. Returns the plain text."""
    drawn = chart.render()
    assert isinstance(drawn, Text)
    assert "\x1b" not in drawn.plain
    assert len(drawn.plain.rstrip("\n").split("\n")) == chart.size.height, chart.id
    assert not [s for s in drawn.spans if isinstance(s.style, Style) and s.style.link], chart.id
    return drawn.plain


async def test_version_names_in_chart_legends_are_text() -> None:
    """Calibration (reliability, ECE, Brier, decision rate), Operations and Timeline legends."""
    base = demo_snapshot()
    fraud = renamed(base.models[0], {"v1": LINK, "v2": BREAK})
    app = make_app(FakeSource(replace(base, models=(fraud, *base.models[1:]))))
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        for panel, charts in (("3", 4), ("5", 4), ("7", 1)):
            await pilot.press(panel)
            await settle(pilot)
            shown = [c for c in app.screen.query(Chart) if c.display]
            assert len(shown) == charts
            legends = "".join(assert_inert(chart) for chart in shown)
            assert "v\\x1b]8;;http:" in legends
            assert "v\\nx\\x1b[31mred" in legends


class _HistogramApp(App[None]):
    def compose(self) -> ComposeResult:
        yield HistogramChart("share per bin", id="histogram")


async def test_category_names_on_the_histogram_axis_and_a_title_are_text() -> None:
    app = _HistogramApp()
    async with app.run_test(size=(100, 20)) as pilot:
        chart = app.query_one(HistogramChart)
        link = "[link=http://evil.example/]y[/]"
        chart.show(Histogram((LINK, BREAK, link), (0.3, 0.3, 0.4), (0.5, 0.2, 0.3)))
        await pilot.pause()
        axis = assert_inert(chart)
        assert "v\\x1b]8;;http:" in axis and "v\\nx" in axis and "[link=http://evil.examp…" in axis
        chart.set_title(f"{BREAK} {link}")
        assert chart.border_title == "v\\nx\\x1b[31mred \\[link=http://evil.example/]y\\[/]"  # as markup


async def test_logged_values_in_the_palette_and_a_prompt_are_text() -> None:
    """A segment value in an alert's scope reaches the palette's entries and the acknowledge prompt."""
    base = demo_snapshot()
    hostile = "[link=http://evil.example/]DE[/]\x1b[2J"
    alert = next(a for a in base.alerts if a.scope.get("segment_value"))
    alert = replace(alert, model=f"fraud{hostile}", scope={**alert.scope, "segment_value": hostile})
    app = make_app(FakeSource(replace(base, alerts=(alert,))))
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("colon")
        await search(pilot, "evil")
        prompts = [o.prompt for o in app.screen.query_one(CommandList).options]
        assert prompts and all(isinstance(p, Content) for p in prompts)
        assert "· fraud[link=http://evil.example/]DE[/]\\x1b[2J v2" in prompts[0].plain
        assert not [s for p in prompts for s in p.spans if isinstance(s.style, TStyle) and s.style.link]
        await pilot.press("escape", "6", "a")
        await settle(pilot)
        question = app.screen.query_one("#prompt-question", Static).content
        assert isinstance(question, Text) and not question.spans
        assert "on fraud[link=http://evil.example/]DE[/]\\x1b[2J." in question.plain
