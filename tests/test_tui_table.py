"""PanelTable keeps its rendered cells through a restyle that changes nothing (a panel switch), and
drops them when a style it draws with does change."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.coordinate import Coordinate

from triage.tui.widgets.table import PanelTable


class _TableApp(App[None]):
    CSS = """
    PanelTable.loud > .datatable--header { color: #ff0000; }
    """

    def compose(self) -> ComposeResult:
        yield PanelTable()

    def on_mount(self) -> None:
        table = self.query_one(PanelTable)
        table.add_columns("model", "volume")
        for i in range(5):
            table.add_row(f"m{i}", i * 100)


async def test_a_restyle_that_changes_nothing_keeps_the_rendered_cells() -> None:
    app = _TableApp()
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        table = app.query_one(PanelTable)
        assert table._cell_render_cache  # rendered once
        rendered = dict(table._cell_render_cache)
        app.stylesheet.update(table)  # what showing a screen does to each of its widgets
        await pilot.pause()
        assert table._cell_render_cache and all(key in table._cell_render_cache for key in rendered)

        table.add_class("loud")  # the header colour changes: the cells must be drawn again
        app.stylesheet.update(table)
        assert not table._cell_render_cache or not all(
            table._cell_render_cache.get(key) is value for key, value in rendered.items()
        )
        await pilot.pause()
        header = table.get_component_rich_style("datatable--header", partial=True)
        assert header.color is not None and header.color.triplet is not None
        assert header.color.triplet.hex == "#ff0000"


class _RefillApp(App[None]):
    def compose(self) -> ComposeResult:
        yield PanelTable()


async def test_text_cells_are_plain_and_printable() -> None:
    """A logged value is never Rich markup (`[link=…]`, `[bold red]`) nor a control sequence."""
    from rich.text import Text

    from triage.tui.screens.base import refill

    hostile = "[bold red]v9[/] [link=https://x.example]y[/link] \x1b[2J\u202e"
    app = _RefillApp()
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(PanelTable)
        table.add_columns("version", "n")
        refill(table, [("k", [hostile, Text("12")])])
        await pilot.pause()
        cell = table.get_cell_at(Coordinate(0, 0))
        assert isinstance(cell, Text) and not cell.spans
        assert cell.plain == "[bold red]v9[/] [link=https://x.example]y[/link] \\x1b[2J\\u202e"
        assert table.get_cell_at(Coordinate(0, 1)).plain == "12"
