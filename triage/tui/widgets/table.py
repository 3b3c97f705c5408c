"""The panels' table: Textual's DataTable, keeping its rendered cells across panel switches."""

from __future__ import annotations

from typing import Any

from textual.widget import Widget
from textual.widgets import DataTable

_COMPONENTS = tuple(sorted(DataTable.COMPONENT_CLASSES))


class PanelTable(DataTable[Any]):
    """A DataTable that keeps its rendered cells when a restyle changes nothing.

    Textual re-applies the stylesheet to every widget of a screen when the screen is shown, and
    DataTable answers every restyle by dropping all its render caches — so each panel switch
    rendered every visible cell again (most of a switch's time). A cell is drawn with the widget's
    style and its component classes'; when none of them changed, the caches stay.
    """

    _drawn_with: tuple[object, ...] | None = None

    def notify_style_update(self) -> None:
        Widget.notify_style_update(self)  # the widget's own style caches, so what follows is current
        try:
            drawn_with: tuple[object, ...] | None = (
                self.rich_style,
                self.background_colors,
                tuple(self.get_component_rich_style(name, partial=True) for name in _COMPONENTS),
            )
        except KeyError:  # the component styles are not there yet (while mounting)
            drawn_with = None
        if drawn_with is None or drawn_with != self._drawn_with:
            self._drawn_with = drawn_with
            super().notify_style_update()
