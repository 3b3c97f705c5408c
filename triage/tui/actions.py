"""The one registry of user actions: it produces the key bindings of every screen, the help screen
and the command palette's commands, so the three can never disagree."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class Action:
    """A user action: where it is bound, its keys, the Textual action it runs and how it is described."""

    id: str  # "scope.name", also the Binding id (so a keymap can rebind it)
    keys: str  # Textual key names, comma separated
    action: str  # the action string run on the screen (or app) that owns the scope
    description: str  # footer and palette text
    help: str  # one line for the help screen and the footer tooltip
    show: bool = True  # shown in the footer
    palette: bool = False  # offered in the command palette
    key_display: str | None = None
    priority: bool = False  # checked before the focused widget's own keys (tables bind home/end)

    @property
    def scope(self) -> str:
        """Where the action is bound: the part of the id before the dot."""
        return self.id.split(".", 1)[0]

    @property
    def display_keys(self) -> str:
        """The keys as a person types them: `?`, `:`/`ctrl+p`, `<`."""
        if self.key_display:
            return self.key_display
        names = {
            "question_mark": "?",
            "colon": ":",
            "slash": "/",
            "less_than_sign": "<",
            "greater_than_sign": ">",
            "escape": "esc",
            "plus": "+",
            "minus": "-",
            "left_square_bracket": "[",
            "right_square_bracket": "]",
        }
        return " ".join(names.get(key, key) for key in self.keys.split(","))


SCOPES = {
    "app": "Everywhere",
    "model": "Model panels (drift, calibration, performance, operations)",
    "filter": "Panels with a list",
    "replay": "Replay (triage replay)",
    "home": "Home",
    "drift": "Drift",
    "cell": "Drift cell",
    "chart": "Calibration and operations",
    "performance": "Performance",
    "alerts": "Alerts",
    "alert": "Alert evidence",
    "runbook": "Runbook",
    "prompt": "Questions (acknowledge, silence, confirm)",
    "timeline": "Timeline",
    "help": "This help",
}

SCREENS = ("home", "drift", "calibration", "performance", "operations", "alerts", "timeline")

ACTIONS: tuple[Action, ...] = (
    Action("app.help", "question_mark", "help", "Help", "List every key binding"),
    Action(
        "app.palette",
        "colon,ctrl+p",
        "command_palette",
        "Jump",
        "Command palette: jump to a model, feature, alert, runbook or panel",
        key_display=": ctrl+p",
    ),
    *(
        Action(
            f"app.{name}",
            str(i),
            f"switch_mode('{name}')",
            name.capitalize(),
            f"Show the {name} panel",
            show=False,
            palette=True,
        )
        for i, name in enumerate(SCREENS, start=1)
    ),
    Action("app.back", "escape", "go_back", "Back", "Close the filter, or go back one screen"),
    Action("app.down", "j", "cursor('down')", "Down", "Move the cursor down", show=False),
    Action("app.up", "k", "cursor('up')", "Up", "Move the cursor up", show=False),
    Action("app.pause", "p", "toggle_pause", "Pause", "Pause or resume live refresh", palette=True),
    Action("app.refresh", "r", "refresh", "Refresh", "Refresh now", show=False, palette=True),
    Action("app.quit", "q,ctrl+q", "quit", "Quit", "Quit triage", palette=True, key_display="q"),
    Action(
        "replay.pause", "space", "replay_pause", "Play/pause", "Pause or resume the replay clock", show=False
    ),
    Action(
        "replay.faster",
        "plus,equals_sign",
        "replay_speed(1)",
        "Faster",
        "Speed the clock up",
        key_display="+",
    ),
    Action("replay.slower", "minus", "replay_speed(-1)", "Slower", "Slow the clock down", key_display="-"),
    Action(
        "replay.back",
        "left_square_bracket",
        "replay_step(-1)",
        "Window back",
        "Move the clock one window back",
        show=False,
    ),
    Action(
        "replay.forward",
        "right_square_bracket",
        "replay_step(1)",
        "Window on",
        "Move the clock one window forward",
        show=False,
    ),
    Action("replay.goto", "g", "replay_goto", "Go to", "Move the clock to a time you type", palette=True),
    Action(
        "replay.start",
        "home",
        "replay_seek('start')",
        "Start",
        "Back to the start",
        show=False,
        priority=True,
    ),
    Action("replay.end", "end", "replay_seek('end')", "End", "To the end", show=False, priority=True),
    Action("model.version", "v", "cycle_version", "Version", "Cycle the model version: all, then each"),
    Action(
        "model.older",
        "less_than_sign",
        "step_window(-1)",
        "Older",
        "Show the previous window",
        key_display="<",
    ),
    Action(
        "model.newer",
        "greater_than_sign",
        "step_window(1)",
        "Newer",
        "Show the next window (the latest follows live data)",
        key_display=">",
    ),
    Action("filter.filter", "slash", "filter", "Filter", "Filter the list by text (esc clears)"),
    Action("home.open", "enter", "open", "Open", "Model row: its drift panel; alert row: its evidence"),
    Action("drift.open", "enter", "open", "Open cell", "Histogram, statistics and history of the cell"),
    Action("drift.sort", "s", "cycle_sort", "Sort", "Sort by worst drift (PSI, or KS D where blind) or name"),
    Action("cell.older", "less_than_sign", "step_window(-1)", "Older", "Same cell, previous window"),
    Action("cell.newer", "greater_than_sign", "step_window(1)", "Newer", "Same cell, next window"),
    Action(
        "chart.next", "m", "next_chart", "Chart", "Show the next chart (all are shown on large terminals)"
    ),
    Action("performance.metric", "m", "next_metric", "Metric", "Chart the next metric"),
    Action("timeline.open", "enter", "open", "Go there", "Show the other panels at the event's time"),
    Action("alerts.open", "enter", "open", "Evidence", "Open the alert's evidence"),
    Action("alerts.ack", "a", "acknowledge", "Ack", "Acknowledge the alert, with a note"),
    Action("alerts.silence", "s", "silence", "Silence", "Silence the alert for a while"),
    Action("alert.ack", "a", "acknowledge", "Ack", "Acknowledge the alert, with a note"),
    Action("alert.silence", "s", "silence", "Silence", "Silence the alert for a while"),
    Action("alert.runbook", "enter,o", "runbook", "Runbook", "Open the alert's runbook"),
    Action("runbook.choose", "enter", "choose", "Dry run", "Show the step's exact request; nothing is sent"),
    Action("runbook.run", "x", "run", "Run", "Run the step (destructive steps ask for a typed phrase)"),
    Action("runbook.prose", "m", "toggle_prose", "Prose", "Switch between the runbook text and the step"),
    Action("prompt.cancel", "escape", "cancel", "Cancel", "Close without doing anything"),
    Action(
        "prompt.submit", "enter", "submit", "OK", "Answer (a confirmation must match exactly)", show=False
    ),
    Action("help.close", "escape,question_mark,q", "close", "Close", "Close the help"),
)


def actions(scope: str) -> list[Action]:
    """The actions of one scope, in registry order."""
    return [a for a in ACTIONS if a.scope == scope]


def bindings(*scopes: str) -> list[BindingType]:
    """Key bindings for the given scopes, each with the action's id and tooltip."""
    return [
        Binding(
            a.keys,
            a.action,
            a.description,
            show=a.show,
            key_display=a.key_display,
            tooltip=a.help,
            id=a.id,
            priority=a.priority,
        )
        for scope in scopes
        for a in actions(scope)
    ]
