"""What every panel shares: the status line, a context line, an optional filter, the key bar, and
rendering only while visible."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Input, Static

from triage.printable import printable
from triage.tui.actions import bindings
from triage.tui.data import ModelView, Snapshot
from triage.tui.widgets.keys import KeyBar
from triage.tui.widgets.status import StatusLine

if TYPE_CHECKING:
    from triage.tui.app import TriageApp


WIDE = (110, 34)  # from this terminal size on, panels show every chart and more of each text


def plain(cell: Any) -> Any:
    """A table cell as shown: text as plain `Text`, `printable` (DataTable reads a `str` as Rich
    markup, so a category `[link=…]x[/]` would be a link), anything else as it is."""
    return Text(printable(cell, width=None)) if isinstance(cell, str) else cell


def refill(table: DataTable[Any], rows: Iterable[tuple[str, Sequence[Any]]]) -> None:
    """Replace a table's rows, keeping the cursor on the same row key (live refresh must not jump);
    `str` cells are shown `plain`."""
    keep = None
    if 0 <= table.cursor_row < table.row_count:
        keep = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
    column = table.cursor_column
    table.clear()
    index = 0
    for i, (key, cells) in enumerate(rows):
        table.add_row(*map(plain, cells), key=key)
        if key == keep:
            index = i
    if table.row_count:
        table.move_cursor(row=index, column=column, animate=False)


class TriageScreen(Screen[None]):
    """A panel. The app calls `render_snapshot` inside `batch_update()`, only while the panel is visible."""

    PANEL = ""  # the panel's name, first on the context line
    FILTERABLE = False

    def __init__(self) -> None:
        super().__init__()
        self.rendered_generation = -1
        self.filter_text = ""

    @property
    def triage(self) -> TriageApp:
        """The app, typed."""
        return cast("TriageApp", self.app)

    def compose(self) -> ComposeResult:
        yield StatusLine()
        yield Static(f"{self.PANEL} · waiting for the first snapshot…", id="context", classes="context")
        yield from self.compose_body()
        if self.FILTERABLE:
            yield Input(placeholder="filter…  (enter keeps it, esc clears it)", id="filter")
        yield KeyBar()

    def compose_body(self) -> ComposeResult:
        """The panel's own widgets, between the context line and the footer."""
        yield from ()

    def render_snapshot(self, snapshot: Snapshot) -> None:
        """Show `snapshot`; called only while this screen is visible."""

    @property
    def wide(self) -> bool:
        """Whether the terminal is large enough for the wide layout."""
        width, height = self.app.size
        return width >= WIDE[0] and height >= WIDE[1]

    def on_resize(self) -> None:
        self.set_class(self.wide, "-wide")

    def on_screen_resume(self) -> None:
        self.triage.paint(self)

    def redraw(self) -> None:
        """Re-render from the current snapshot after a local change (cursor, sort, filter)."""
        self.triage.paint(self, force=True)

    def set_context(self, *parts: str | Text) -> None:
        """The second line: what this panel shows."""
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, part in enumerate(parts):
            if i:
                text.append(" · ", style="dim")
            text.append(printable(part, width=None) if isinstance(part, str) else part)
        self.query_one("#context", Static).update(text)

    def action_filter(self) -> None:
        """Open the filter box."""
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def close_filter(self) -> bool:
        """Clear and hide the filter; False when there was nothing to close."""
        if not self.FILTERABLE:
            return False
        box = self.query_one("#filter", Input)
        if not box.display and not self.filter_text:
            return False
        box.value = ""
        box.display = False
        self.filter_text = ""
        self.focus_main()
        self.redraw()
        return True

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.redraw()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = bool(self.filter_text)
        self.focus_main()

    def focus_main(self) -> None:
        """Focus the panel's main table, if it has one."""
        tables = self.query(DataTable)
        if tables:
            tables.first().focus()


class ModelScreen(TriageScreen):
    """A panel about the current model: `v` cycles its version, `<`/`>` move through windows."""

    BINDINGS = bindings("model")

    def __init__(self) -> None:
        super().__init__()
        self.shown_window: datetime | None = None  # the window the panel shows, set when it renders

    @property
    def model(self) -> ModelView | None:
        """The current model in the current snapshot."""
        snapshot = self.triage.snapshot
        return snapshot.model(self.triage.model_name) if snapshot else None

    def action_cycle_version(self) -> None:
        """All versions, then each version in turn."""
        model = self.model
        if model is None:
            return
        choices: list[str | None] = [None, *model.versions]
        current = self.triage.version if self.triage.version in choices else None
        self.triage.version = choices[(choices.index(current) + 1) % len(choices)]
        self.redraw()

    def action_step_window(self, step: int) -> None:
        """Move the shared window cursor; the latest window means "follow live data"."""
        self.triage.step_window(step, self.shown_window)
        self.redraw()


class ChartScreen(ModelScreen):
    """A model panel with several charts: all of them on a large terminal; on a small one the first
    chart plus one more that `m` cycles through."""

    BINDINGS = bindings("chart")
    CHARTS: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.second = 1

    def on_resize(self) -> None:
        super().on_resize()
        self.layout_charts()

    def layout_charts(self) -> None:
        """Show the charts that fit: all when wide, else the first and the chosen second."""
        for i, chart_id in enumerate(self.CHARTS):
            self.query_one(f"#{chart_id}").display = self.wide or i in (0, self.second)

    def action_next_chart(self) -> None:
        """Cycle the second chart (on a small terminal)."""
        if len(self.CHARTS) > 2:
            self.second = self.second % (len(self.CHARTS) - 1) + 1
            self.layout_charts()
