"""The bottom line: the keys of the current screen, from its active bindings (which come from the
action registry). One Static, redrawn in place — Textual's Footer rebuilds a widget per key on
every change, which costs more than the rest of a panel switch."""

from __future__ import annotations

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Static


def keys_text(screen: Screen[object]) -> Text:
    """`key Description` for each shown binding, the screen's own first, each action once."""
    text = Text(no_wrap=True, overflow="ellipsis")
    seen: set[str] = set()
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.show or binding.action in seen:
            continue
        seen.add(binding.action)
        text.append(f" {screen.app.get_key_display(binding)} ", style="bold #ffaf00")
        text.append(f"{binding.description} ", style="" if active.enabled else "dim")
    return text


class KeyBar(Static):
    """Key hints for the screen it is on."""

    DEFAULT_CSS = "KeyBar { dock: bottom; height: 1; width: 1fr; background: $panel; }"

    def show_keys(self) -> None:
        """Redraw from the screen's active bindings."""
        self.update(keys_text(self.screen))
