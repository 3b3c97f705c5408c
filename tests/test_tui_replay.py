"""The Timeline panel, the replay clock's keys and the last-snapshot cache, driven by `Pilot` at 80x24
on the fixture data."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from textual.widgets import DataTable, Input

from tests.test_tui_app import SIZE, make_app, settle, table_column, text_of
from tests.test_tui_fixtures import NOW, WINDOWS, FakeSource, demo_snapshot
from triage.tui.app import TriageApp
from triage.tui.cache import cache_path, load_snapshot, save_snapshot
from triage.tui.clock import LiveClock, ReplayClock
from triage.tui.messages import SnapshotFailed, SnapshotLoaded
from triage.tui.screens.drift import DriftScreen
from triage.tui.screens.modals import PromptScreen
from triage.tui.screens.timeline import TimelineScreen
from triage.tui.widgets.status import StatusLine

START = datetime(2026, 1, 5, tzinfo=UTC)
END = datetime(2026, 1, 15, tzinfo=UTC)


def replay_app(source: FakeSource, speed: float = 3600.0) -> TriageApp:
    clock = ReplayClock(start=START, end=END, speed=speed, source=lambda: NOW)
    return TriageApp(lambda: source, clock, refresh_s=0.05)


async def test_timeline_lists_the_trail_and_jumps_to_an_event() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("7")
        await settle(pilot)
        assert isinstance(app.screen, TimelineScreen)
        assert table_column(app, "#events", 2) == [
            "resolved",
            "pending",
            "firing",
            "acknowledged",
            "succeeded",
        ]
        assert "3 alert changes, 1 runbook steps" in text_of(app, "#context")
        table = app.screen.query_one("#events", DataTable)
        assert table.cursor_row == 4  # follows the newest event
        table.move_cursor(row=2)  # the drift alert firing on 01-14 02:00
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DriftScreen)
        assert app.window_start == WINDOWS[-2]  # the window holding the event, not the live one
        assert app.model_name == "fraud"


async def test_timeline_filter_keeps_matching_events() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("7", "slash")
        app.screen.query_one("#filter", Input).value = "runbook"
        await settle(pilot)
        assert table_column(app, "#events", 1) == ["runbook"]


async def test_replay_clock_advances_pauses_steps_and_seeks() -> None:
    source = FakeSource()
    app = replay_app(source)
    clock = app.clock
    assert isinstance(clock, ReplayClock)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, hold=False)
        assert source.snapshots[0] == START
        await pilot.press("space")  # pause: the clock stops and no snapshot is asked for
        await settle(pilot)
        paused_at, asked = clock.now(), len(source.snapshots)
        await pilot.pause(0.2)
        assert clock.now() == paused_at and len(source.snapshots) == asked
        assert "PAUSED" in text_of(app, "StatusLine")
        await pilot.press("home")
        await settle(pilot)
        assert clock.now() == START and source.snapshots[-1] == START
        await pilot.press("right_square_bracket")  # one window (the fixture's 1d) on
        await settle(pilot)
        assert clock.now() == START + timedelta(days=1) and source.snapshots[-1] == clock.now()
        await pilot.press("left_square_bracket", "left_square_bracket")  # clamped at the start
        await settle(pilot)
        assert clock.now() == START
        await pilot.press("plus")
        assert clock.speed == 4 * 3600.0
        await pilot.press("minus", "minus")
        assert clock.speed == 900.0
        await pilot.press("end")
        await settle(pilot)
        assert clock.now() == END and "end of replay" in text_of(app, "StatusLine")
        await pilot.press("g")
        await settle(pilot)
        assert isinstance(app.screen, PromptScreen)
        app.screen.query_one("#prompt-input", Input).value = "2026-01-09T06:00Z"
        await pilot.press("enter")
        await settle(pilot)
        assert clock.now() == datetime(2026, 1, 9, 6, tzinfo=UTC) and source.snapshots[-1] == clock.now()
        assert not source.calls or ("ingest",) not in source.calls  # a replay never ingests


async def test_a_running_replay_moves_the_clock_by_real_time_times_speed() -> None:
    source = FakeSource()
    app = replay_app(source, speed=86400.0)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, hold=False)
        await pilot.pause(0.5)
        await settle(pilot, hold=False)
        assert app.clock.now() > START
        times = source.snapshots
        assert times == sorted(times) and len(set(times)) >= 2
        assert "1d/s" in text_of(app, "StatusLine")


async def test_a_snapshot_that_lands_while_the_app_closes_is_dropped() -> None:
    """A worker can finish after the app's screens are gone (quitting mid-refresh): its result
    is dropped, not painted on a screen that no longer exists."""
    source = FakeSource()
    app = replay_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, hold=False)
        generation = app.requested
    assert not app.screen_stack
    app._snapshot_loaded(SnapshotLoaded(generation, demo_snapshot(), NOW, None))
    app._snapshot_failed(SnapshotFailed(generation, "boom"))


async def test_a_snapshot_that_lands_while_the_screen_is_torn_down_is_not_painted() -> None:
    """Closing removes a screen's widgets before the screen itself: a snapshot landing then finds
    a mounted screen without its status line, and is kept, not painted (it raised NoMatches)."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        generation = app.requested
        await app.screen.query_one(StatusLine).remove()
        app._snapshot_loaded(SnapshotLoaded(generation, demo_snapshot(), NOW, None))
        assert app.snapshot is not None and not app.screen.query(StatusLine)


async def test_replay_keys_do_nothing_on_a_live_clock() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        before = app.clock.now()
        await pilot.press("right_square_bracket", "g", "plus")
        await settle(pilot)
        assert not isinstance(app.screen, PromptScreen) and app.clock.now() == before
        bar = text_of(app, "KeyBar")
        assert "Faster" not in bar and "Go to" not in bar


def test_the_snapshot_cache_round_trips_and_ignores_what_it_cannot_read(tmp_path: Path) -> None:
    snapshot = demo_snapshot()
    path = cache_path(tmp_path / "triage.duckdb")
    save_snapshot(path, snapshot)
    assert load_snapshot(path) == snapshot  # every row, alert and event, types included
    path.write_text('{"format": 1, "snapshot": {"as_of": "yesterday"}}')
    assert load_snapshot(path) is None
    path.write_text("{torn")
    assert load_snapshot(path) is None
    assert load_snapshot(tmp_path / "missing.json") is None


async def test_the_last_sessions_view_shows_until_the_fresh_one_arrives(tmp_path: Path) -> None:
    old = demo_snapshot(NOW - timedelta(hours=3))
    path = cache_path(tmp_path / "triage.duckdb")
    save_snapshot(path, old)
    source = FakeSource()
    source.snapshot_gate = threading.Event()  # the fresh snapshot waits until released
    app = TriageApp(lambda: source, LiveClock(lambda: NOW), refresh_s=3600.0, cache=path)
    async with app.run_test(size=SIZE) as pilot:
        while app.snapshot is None:
            await pilot.pause(0.01)
        assert app.cached and app.snapshot.as_of == old.as_of
        assert "last session's view" in text_of(app, "StatusLine")
        source.snapshot_gate.set()
        await settle(pilot)
        assert not app.cached and app.snapshot.as_of == NOW
        assert "last session's view" not in text_of(app, "StatusLine")
    assert load_snapshot(path) is not None and load_snapshot(path).as_of == NOW  # rewritten
