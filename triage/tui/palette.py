"""The command palette (`:` or ctrl+p): the registry's actions, and jumps to a model, a feature, an
alert or a runbook of the current snapshot."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.fuzzy import Matcher
from textual.markup import escape

from triage.printable import printable
from triage.tui.actions import ACTIONS
from triage.tui.views import feature_label, scope_text, sorted_alerts

if TYPE_CHECKING:
    from triage.tui.app import TriageApp

Command = tuple[str, str, Callable[[], object]]
WIDTH = 100  # characters of an entry, the last one `…` when cut: scope values and versions are logged data


def highlight(matcher: Matcher, text: str) -> Content:
    """`text` with the letters the query matched highlighted, as plain text (`Matcher.highlight`
    reads it as markup, so a logged category `[link=…]` would be a link)."""
    content = Content(text)
    for offset in matcher.fuzzy_search.match(matcher.query, text)[1]:
        if not text[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


class TriageCommands(Provider):
    """Everything one can jump to or do, found by fuzzy search."""

    def commands(self) -> list[Command]:
        """(text, help, callback) for every palette entry, in display order, `printable`."""
        app = cast("TriageApp", self.app)
        found: list[Command] = []
        snapshot = app.snapshot
        if snapshot is not None:
            for alert in sorted_alerts(snapshot.alerts):
                where = f"{alert.model} {scope_text(alert.scope)}"
                text = f"alert {alert.severity} {alert.state}: {alert.rule} · {where}"
                found.append((text, "open its evidence", partial(app.open_alert, alert.fingerprint)))
            for model in snapshot.models:
                versions = ", ".join(model.versions)
                found.append(
                    (f"model {model.name}", f"versions {versions}", partial(app.open_model, model.name))
                )
            for model in snapshot.models:
                for feature in model.features:
                    found.append(
                        (
                            f"feature {feature_label(feature)} · {model.name}",
                            "its row of the drift grid",
                            partial(app.open_feature, model.name, feature),
                        )
                    )
            for runbook in snapshot.runbooks:
                found.append(
                    (f"runbook {runbook.title}", runbook.name, partial(app.open_runbook, runbook.name))
                )
        for action in ACTIONS:
            if action.palette:
                help_text = f"{action.help} ({action.display_keys})"
                found.append((action.description, help_text, partial(app.run_action, action.action)))
        return [
            (printable(text, WIDTH), printable(help_text, WIDTH), callback)
            for text, help_text, callback in found
        ]

    async def discover(self) -> Hits:
        for text, help_text, callback in self.commands():
            yield DiscoveryHit(Content(text), callback, text=text, help=escape(help_text))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, callback in self.commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, highlight(matcher, text), callback, text=text, help=escape(help_text))
