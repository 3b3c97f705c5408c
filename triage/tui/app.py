"""The triage terminal UI: panels as modes, one snapshot worker, live refresh that re-arms itself.

Data flow: `action_refresh` starts a thread worker that ingests new rows (live only) and computes
a snapshot as of `clock.now()` through the `DataSource`; the worker posts `SnapshotLoaded` tagged
with its generation; `_snapshot_loaded` drops superseded results, keeps the newest, paints only
the visible panel inside `batch_update()`, and arms the next refresh with `set_timer` — so a slow
store slows the cadence instead of piling up refreshes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App
from textual.command import Provider
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input

from triage.config import parse_duration, parse_time, parse_window
from triage.tui import format as fmt
from triage.tui.actions import bindings
from triage.tui.cache import load_snapshot, save_snapshot
from triage.tui.clock import Clock, ReplayClock, speed_text
from triage.tui.data import AlertView, DataSource, Snapshot
from triage.tui.messages import AlertChanged, SnapshotFailed, SnapshotLoaded
from triage.tui.palette import TriageCommands
from triage.tui.screens.alerts import AlertScreen, AlertsScreen
from triage.tui.screens.base import TriageScreen
from triage.tui.screens.calibration import CalibrationScreen
from triage.tui.screens.drift import DriftScreen
from triage.tui.screens.home import HomeScreen
from triage.tui.screens.modals import HelpScreen, PromptScreen
from triage.tui.screens.operations import OperationsScreen
from triage.tui.screens.performance import PerformanceScreen
from triage.tui.screens.runbook import RunbookScreen
from triage.tui.screens.timeline import TimelineScreen
from triage.tui.views import resolve_window, step_window, window_starts
from triage.tui.widgets.keys import KeyBar
from triage.tui.widgets.status import StatusInfo, StatusLine

HANG_UP_EXIT_S = 10.0  # after SIGHUP/SIGTERM the process ends within this, however shutdown goes
MODEL_PANELS = ("drift", "calibration", "performance", "operations")


class TriageApp(App[None]):
    """On-call model triage over SSH: keyboard first, live, readable at 80x24 and 256 colours."""

    CSS_PATH = "styles.tcss"
    TITLE = "triage"
    BINDINGS = bindings("app", "replay")
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {TriageCommands}
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "home": HomeScreen,
        "drift": DriftScreen,
        "calibration": CalibrationScreen,
        "performance": PerformanceScreen,
        "operations": OperationsScreen,
        "alerts": AlertsScreen,
        "timeline": TimelineScreen,
    }
    DEFAULT_MODE = "home"

    def __init__(
        self,
        connect: Callable[[], DataSource],
        clock: Clock,
        refresh_s: float = 5.0,
        model: str | None = None,
        cache: Path | None = None,
    ) -> None:
        super().__init__()
        self.cache = cache  # the last live snapshot: shown at start-up, rewritten after each refresh
        self.cached = False  # the snapshot on screen is the cached one
        self._connect = connect
        self._source: DataSource | None = None
        self._source_lock = threading.Lock()
        self._closing = False
        self.clock = clock
        self.refresh_s = refresh_s
        self.model_name = model
        self.version: str | None = None
        self.window_start: datetime | None = None  # None: follow the latest window
        self.snapshot: Snapshot | None = None
        self.requested = 0  # generation of the newest snapshot request
        self.applied = 0  # generation of the snapshot on screen
        self.loading = False
        self.paused = False
        self.error: str | None = None
        self.refreshed: datetime | None = None
        self._timer: Timer | None = None
        self._ticked: float | None = None  # monotonic time the replay clock last moved

    def on_mount(self) -> None:
        if not self.is_headless:
            # The SSH session dropping sends SIGHUP: leave through the normal exit path.
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGHUP, signal.SIGTERM):
                with suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._hang_up, sig)
        self.action_refresh()

    def _hang_up(self, sig: signal.Signals) -> None:
        """The terminal went away (or we were told to stop): exit the normal way, but never linger.

        With the terminal gone, Textual's output thread can block the shutdown for good (seen
        with a pane killed mid-refresh), holding the store's lock; a watchdog ends the process if
        the normal exit has not within HANG_UP_EXIT_S. DuckDB's write-ahead log keeps the store
        consistent either way.
        """
        watchdog = threading.Timer(HANG_UP_EXIT_S, os._exit, (128 + sig,))
        watchdog.daemon = True
        watchdog.start()
        self.exit()

    @property
    def source(self) -> DataSource:
        """The data source, opened on first use — by the first refresh worker, never the UI thread."""
        with self._source_lock:
            if self._source is None:
                self._source = self._connect()
                if self._closing:  # the app closed while it was opening
                    self._source.interrupt()
            return self._source

    def on_unmount(self) -> None:
        # Quitting (or the terminal going away) must not wait for a long query to finish.
        self._closing = True
        if self._source is not None:
            self._source.interrupt()

    def close_source(self) -> None:
        """Close the data source, once the app has stopped (its workers are done by then)."""
        if self._source is not None:
            self._source.close()

    # -- refresh --------------------------------------------------------------------------------

    def action_refresh(self) -> None:
        """Compute a new snapshot now; a newer request supersedes an older one still running."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if not self.screen_stack:
            return  # the app is closing: a timer fired after its screens were gone
        self.requested += 1
        self.loading = True
        self.paint(self.screen)
        self._load(self.requested, self.clock.now(), self.clock.live)

    @work(thread=True, exclusive=True, exit_on_error=False, group="snapshot")
    def _load(self, generation: int, as_of: datetime, ingest: bool) -> None:
        if self.cache is not None and self.snapshot is None and generation == 1:
            cached = load_snapshot(self.cache)
            if cached is not None:
                self.post_message(SnapshotLoaded(generation, cached, self.clock.wall(), None, cached=True))
        problem = None
        if ingest:
            try:
                self.source.ingest_new()
            except Exception as exc:
                problem = f"ingest failed: {fmt.error_line(exc)}"
        try:
            snapshot = self.source.snapshot(as_of)
        except Exception as exc:
            self.post_message(SnapshotFailed(generation, f"refresh failed: {fmt.error_line(exc)}"))
            return
        self.post_message(SnapshotLoaded(generation, snapshot, self.clock.wall(), problem))
        if self.cache is not None and self.clock.live:
            save_snapshot(self.cache, snapshot)

    @work(thread=True, exit_on_error=False, group="prepare")
    def _prepare(self) -> None:
        # Once the first snapshot is on screen: what each later refresh would build otherwise.
        # Only a head start — whatever fails here fails again, and is shown, in the next refresh.
        with suppress(Exception):
            self.source.prepare()

    @on(SnapshotLoaded)
    def _snapshot_loaded(self, message: SnapshotLoaded) -> None:
        if not self.screen_stack:  # the app is closing: a worker finished after its screens went
            return
        if message.cached:
            if self.snapshot is None:  # only ever in place of nothing
                self.snapshot, self.cached = message.snapshot, True
                self.applied = message.generation
                self.paint(self.screen, force=True)
            return
        if message.generation < self.applied:
            return  # a newer snapshot is already on screen
        first = self.refreshed is None
        self.cached = False
        self.applied = message.generation
        self.snapshot = message.snapshot
        self.refreshed = message.finished
        self.error = message.problem
        self._finished(message.generation)
        if first:
            self._prepare()

    @on(SnapshotFailed)
    def _snapshot_failed(self, message: SnapshotFailed) -> None:
        if not self.screen_stack or message.generation < self.applied:
            return
        self.error = message.error
        self._finished(message.generation)

    def _finished(self, generation: int) -> None:
        if generation == self.requested:
            self.loading = False
            if not self.paused and self.clock.live:
                self._timer = self.set_timer(self.refresh_s, self.action_refresh)
            elif not self.paused and isinstance(self.clock, ReplayClock) and not self.clock.finished:
                self._timer = self.set_timer(self.refresh_s, self._tick)
        self.paint(self.screen)

    def _tick(self) -> None:
        """Move the replay clock by the real time since it last moved (times its speed), then refresh."""
        assert isinstance(self.clock, ReplayClock)
        now = time.monotonic()
        if self._ticked is not None:
            self.clock.advance(timedelta(seconds=now - self._ticked))
        self._ticked = now
        self.action_refresh()

    def action_toggle_pause(self) -> None:
        """Pause live refresh (or the replay clock), or resume it with an immediate refresh."""
        self.paused = not self.paused
        self._ticked = None
        if self.paused:
            if self._timer is not None:
                self._timer.stop()
                self._timer = None
            self.paint(self.screen)
        else:
            self.action_refresh()

    # -- replay ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Replay keys exist only on a replay clock and leave text boxes alone (False: hidden, and the
        key goes on to the focused widget)."""
        if action.startswith("replay_"):
            return isinstance(self.clock, ReplayClock) and not isinstance(self.focused, Input)
        return True

    def action_replay_pause(self) -> None:
        """Stop or restart the replay clock."""
        self.action_toggle_pause()

    def _moved(self) -> None:
        """The replay clock jumped: show the new time now (the tick measures from here)."""
        self._ticked = None
        self.action_refresh()

    def action_replay_speed(self, direction: int) -> None:
        """Up or down the speed ladder."""
        assert isinstance(self.clock, ReplayClock)
        speed = self.clock.faster() if direction > 0 else self.clock.slower()
        self.notify(f"Replay speed {speed_text(speed)}", timeout=2)
        self.paint(self.screen)

    def action_replay_step(self, direction: int) -> None:
        """Move the clock one window of the current model back or forward."""
        assert isinstance(self.clock, ReplayClock)
        model = self.snapshot.model(self.model_name) if self.snapshot else None
        step = self.clock.step
        if model is not None:
            window = parse_window(model.window)
            start = window.start_of(self.clock.now())
            step = window.end_of(start) - start
        self.clock.seek(self.clock.now() + direction * step)
        self._moved()

    def action_replay_seek(self, where: str) -> None:
        """`home`/`end`: the start or the end of the replay."""
        assert isinstance(self.clock, ReplayClock)
        self.clock.seek(self.clock.start if where == "start" else self.clock.end)
        self._moved()

    def action_replay_goto(self) -> None:
        """Ask for a time and move the clock there."""
        assert isinstance(self.clock, ReplayClock)
        clock = self.clock

        def answered(text: str | None) -> None:
            if not text:
                return
            try:
                at = parse_time(text)
            except ValueError:
                self.notify(f"Not a time: {text!r} (use 2026-01-31T12:00Z).", severity="error", markup=False)
                return
            clock.seek(at)
            self._moved()

        question = f"Go to which time? ({fmt.stamp(clock.start)} … {fmt.stamp(clock.end)}, UTC if no zone)"
        self.push_screen(
            PromptScreen("Go to", question, value=clock.now().strftime("%Y-%m-%dT%H:%MZ")), answered
        )

    def status_info(self) -> StatusInfo:
        """What the top line of every panel says."""
        snapshot = self.snapshot
        as_of = snapshot.as_of if snapshot else self.clock.now()
        fed = [model for model in snapshot.models if model.last_prediction] if snapshot else []
        stalest = min(fed, key=lambda model: model.last_prediction or as_of, default=None)
        return StatusInfo(
            mode=self.clock.mode,
            paused=self.paused,
            loading=self.loading,
            as_of=as_of,
            refreshed=self.refreshed,
            refresh_s=self.refresh_s,
            error=self.error,
            quarantined=snapshot.quarantined if snapshot else 0,
            speed=speed_text(self.clock.speed) if isinstance(self.clock, ReplayClock) else None,
            cached=self.cached,
            finished=isinstance(self.clock, ReplayClock) and self.clock.finished,
            last_prediction=stalest.last_prediction if stalest else None,
            stale=any(
                model.stale_after_s is not None
                and model.last_prediction is not None
                and (as_of - model.last_prediction).total_seconds() >= model.stale_after_s
                for model in fed
            ),
        )

    def paint(self, screen: Screen[Any], force: bool = False) -> None:
        """Render `screen` if it is the visible panel and behind the newest snapshot (or `force`)."""
        if screen is not self.screen:
            return
        if not isinstance(screen, TriageScreen) or not screen.is_mounted:
            return
        if not screen.query(StatusLine) or not screen.query(KeyBar):  # closing: its widgets are gone
            return
        with self.batch_update():
            screen.query_one(StatusLine).show(self.status_info())
            screen.query_one(KeyBar).show_keys()
            if self.snapshot is not None and (force or screen.rendered_generation != self.applied):
                screen.rendered_generation = self.applied
                screen.render_snapshot(self.snapshot)

    # -- navigation -----------------------------------------------------------------------------

    def action_help(self) -> None:
        """Show every key binding."""
        self.push_screen(HelpScreen())

    def action_go_back(self) -> None:
        """Close the filter; else leave a drill-down; else go home."""
        screen = self.screen
        if isinstance(screen, TriageScreen) and screen.close_filter():
            return
        if len(self.screen_stack) > 1:
            self.pop_screen()
        elif self.current_mode != "home":
            self.switch_mode("home")

    def action_cursor(self, direction: str) -> None:
        """j/k: move the focused table's cursor, or scroll the focused view."""
        widget = self.focused
        for name in (f"action_cursor_{direction}", f"action_scroll_{direction}"):
            method = getattr(widget, name, None)
            if method is not None:
                method()
                return

    def step_window(self, step: int, current: datetime | None) -> None:
        """Move the shared window cursor from `current`; the latest window follows live data."""
        model = self.snapshot.model(self.model_name) if self.snapshot else None
        if model is None:
            return
        moved = step_window(model, resolve_window(model, current), step)
        self.window_start = None if moved == resolve_window(model, None) else moved

    def open_model(self, name: str, version: str | None = None) -> None:
        """Make `name` the current model and show its drift (or stay on the current model panel)."""
        if name != self.model_name:
            self.window_start = None
        self.model_name, self.version = name, version
        if self.current_mode not in MODEL_PANELS:
            self.switch_mode("drift")
        else:
            self.paint(self.screen, force=True)

    async def open_feature(self, model: str, feature: str) -> None:
        """Show the drift grid of `model` filtered to `feature`."""
        if model != self.model_name:
            self.model_name, self.version, self.window_start = model, None, None
        await self.switch_mode("drift")
        while len(self.screen_stack) > 1:
            await self.pop_screen()
        screen = self.screen
        if isinstance(screen, DriftScreen):
            screen.action_filter()
            screen.query_one("#filter", Input).value = feature

    def jump_to(self, model: str | None, at: datetime, panel: str) -> None:
        """Show `panel` at time `at`: a replay moves its clock there; otherwise the window cursor
        goes to the window holding `at` (the latest window follows live data again)."""
        if model is not None and model != self.model_name:
            self.model_name, self.version = model, None
        if isinstance(self.clock, ReplayClock):
            self.clock.seek(at)
            self._moved()
        else:
            view = self.snapshot.model(self.model_name) if self.snapshot else None
            starts = window_starts(view) if view else []
            chosen = max((start for start in starts if start <= at), default=None)
            self.window_start = None if chosen is None or chosen == starts[-1] else chosen
        self.switch_mode(panel)

    def open_alert(self, fingerprint: str) -> None:
        """Show an alert's evidence on top of the current panel."""
        self.push_screen(AlertScreen(fingerprint))

    def open_runbook(self, ref: str, alert: AlertView | None = None) -> None:
        """Open a runbook, with the alert whose scope fills its parameters."""
        self.push_screen(RunbookScreen(ref, alert))

    # -- alert actions --------------------------------------------------------------------------

    def ask_acknowledge(self, alert: AlertView) -> None:
        """Ask for a note, then acknowledge the alert in a worker."""

        def answered(note: str | None) -> None:
            if note is not None:
                self._change_alert(alert.fingerprint, "acknowledged", note, None)

        question = f"Acknowledge {alert.rule} on {alert.model}. A note for the team (optional):"
        self.push_screen(PromptScreen("Acknowledge", question, placeholder="looking into it"), answered)

    def ask_silence(self, alert: AlertView) -> None:
        """Ask for how long, then silence the alert in a worker."""

        def answered(text: str | None) -> None:
            if text is None:
                return
            duration = parse_duration(text)
            if duration is None:
                self.notify(f"Not a duration: {text!r} (use 30m, 2h or 1d).", severity="error", markup=False)
                return
            self._change_alert(
                alert.fingerprint, "silenced", f"silenced for {text}", self.clock.wall() + duration
            )

        question = f"Silence {alert.rule} on {alert.model} for how long? (30m, 2h, 1d)"
        self.push_screen(PromptScreen("Silence", question, value="1h"), answered)

    @work(thread=True, exit_on_error=False, group="alerts")
    def _change_alert(self, fingerprint: str, what: str, note: str, until: datetime | None) -> None:
        try:
            if until is None:
                self.source.acknowledge(fingerprint, note)
            else:
                self.source.silence(fingerprint, until, note)
        except Exception as exc:
            self.post_message(AlertChanged(fingerprint, what, fmt.error_line(exc)))
            return
        self.post_message(AlertChanged(fingerprint, what, None))

    @on(AlertChanged)
    def _alert_changed(self, message: AlertChanged) -> None:
        if message.error is not None:
            self.notify(
                f"Could not mark the alert {message.what}: {message.error}", severity="error", markup=False
            )
            return
        self.notify(f"Alert {message.fingerprint[:12]} {message.what}.", markup=False)
        self.action_refresh()
