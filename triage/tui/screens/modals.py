"""Modal screens: a one-line question (note, duration, typed confirmation) and the help."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from triage.printable import printable
from triage.tui.actions import SCOPES, actions, bindings


class PromptScreen(ModalScreen[str | None]):
    """Ask one question; with `expected`, only that exact answer is accepted (typed confirmation).
    The question is plain text: it names an alert's model and rule, or a runbook's phrase."""

    BINDINGS = bindings("prompt")

    def __init__(
        self,
        title: str,
        question: str,
        *,
        value: str = "",
        placeholder: str = "",
        expected: str | None = None,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.question = question
        self.value = value
        self.placeholder = placeholder
        self.expected = expected

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt"):
            yield Static(Text(self.title_text, style="bold"))
            yield Static(Text(printable(self.question, width=None)), id="prompt-question")
            yield Input(value=self.value, placeholder=self.placeholder, id="prompt-input")
            yield Static("", id="prompt-error")
            yield Static(Text("enter: OK · esc: cancel", style="dim"))

    @on(Input.Submitted, "#prompt-input")
    def action_submit(self) -> None:
        """Accept the answer, unless a confirmation phrase does not match."""
        answer = self.query_one("#prompt-input", Input).value.strip()
        if self.expected is not None and answer != self.expected:
            message = f"That does not match. Type exactly: {self.expected}"
            self.query_one("#prompt-error", Static).update(
                Text(printable(message, width=None), style="bold red")
            )
            return
        self.dismiss(answer)

    def action_cancel(self) -> None:
        """Close without an answer."""
        self.dismiss(None)


def help_table() -> Table:
    """Every binding of the registry, grouped by where it applies."""
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="bold #5fafd7", min_width=10)
    table.add_column()
    for scope, title in SCOPES.items():
        table.add_row("", "")
        table.add_row("", Text(title, style="bold underline"))
        for action in actions(scope):
            table.add_row(action.display_keys, action.help)
    return table


class HelpScreen(ModalScreen[None]):
    """All key bindings, generated from the action registry."""

    BINDINGS = bindings("help")

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(Text("triage — keys (j/k scroll, esc closes)", style="bold"))
            yield Static(help_table())

    def on_mount(self) -> None:
        self.query_one("#help", VerticalScroll).focus()

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)
