"""The command palette (`:` or ctrl+p): the registry's actions, and jumps to a model, a feature, an
alert or a runbook of the current snapshot."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from triage.tui.actions import ACTIONS
from triage.tui.views import feature_label, scope_text, sorted_alerts

if TYPE_CHECKING:
    from triage.tui.app import TriageApp

Command = tuple[str, str, Callable[[], object]]


class TriageCommands(Provider):
    """Everything one can jump to or do, found by fuzzy search."""

    def commands(self) -> list[Command]:
        """(text, help, callback) for every palette entry, in display order."""
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
        return found

    async def discover(self) -> Hits:
        for text, help_text, callback in self.commands():
            yield DiscoveryHit(text, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_text, callback in self.commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, text=text, help=help_text)
