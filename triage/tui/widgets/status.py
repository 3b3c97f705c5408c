"""The top line of every screen: live or not, the as-of time, the last refresh and any trouble."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from rich.text import Text
from textual.widgets import Static

from triage.tui import format as fmt
from triage.tui.widgets.cells import CRIT, DIM, OK, WARN


@dataclass(frozen=True)
class StatusInfo:
    """What the top line says."""

    mode: str  # the clock's mode: "live", "as of", …
    paused: bool
    loading: bool
    as_of: datetime | None
    refreshed: datetime | None
    refresh_s: float
    error: str | None
    quarantined: int
    speed: str | None = None  # a replay clock's speed: "1h/s"
    finished: bool = False  # a replay clock at its end
    cached: bool = False  # the last session's snapshot, until the fresh one arrives
    last_prediction: datetime | None = None  # the stalest model's latest prediction
    stale: bool = False  # some model's silence is past its `stale_after`


def status_text(info: StatusInfo) -> Text:
    """The status line as styled text."""
    text = Text(no_wrap=True, overflow="ellipsis")
    if info.paused:
        text.append(" ⏸ PAUSED ", style=WARN)
    elif info.mode == "live":
        text.append(" ● LIVE ", style="bold #000000 on #5faf5f")
    else:
        text.append(f" ◆ {info.mode.upper()} ", style="bold #000000 on #5fafd7")
    text.append(f" as of {fmt.stamp(info.as_of)}")
    if info.last_prediction is not None and info.as_of is not None:
        silence = (info.as_of - info.last_prediction).total_seconds()
        text.append(f" · last prediction {fmt.duration(silence)} ago", style=WARN if info.stale else DIM)
    if info.speed is not None:
        text.append(
            " · end of replay" if info.finished else f" · {info.speed}", style=DIM if info.finished else OK
        )
    if info.cached:
        text.append(" · last session's view, refreshing…", style=WARN)
    if info.error:
        text.append(f" · ⚠ {info.error}", style=CRIT)
    if info.loading and info.refreshed is None:
        text.append(" · loading…", style=DIM)
    elif info.refreshed is not None:
        text.append(f" · refreshed {fmt.clock(info.refreshed)}", style=DIM)
        if info.mode == "live" and not info.paused:
            text.append(f" every {info.refresh_s:g}s", style=DIM)
        if info.loading:
            text.append(" ⟳", style=OK)
    if info.quarantined:
        text.append(f" · {info.quarantined} in quarantine", style="bold #d7af00")
    return text


class StatusLine(Static):
    """One line, refreshed by the app whenever its screen is visible."""

    DEFAULT_CSS = "StatusLine { height: 1; width: 1fr; background: $panel; }"

    def show(self, info: StatusInfo) -> None:
        """Render `info`."""
        self.update(status_text(info))
