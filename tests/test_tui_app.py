"""The TUI driven by keys at 80x24 (`App.run_test` + `Pilot`) on the fixed fixture data.

Waiting is done on the workers (`app.workers.wait_for_complete()`) and the message queue
(`pilot.pause()`), never with sleeps.
"""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console
from textual.command import CommandInput, CommandPalette
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from tests.test_tui_fixtures import FEATURES, NOW, WINDOWS, FakeSource, demo_snapshot
from triage.config import parse_duration
from triage.tui.actions import ACTIONS
from triage.tui.app import TriageApp
from triage.tui.clock import FixedClock, LiveClock
from triage.tui.data import Snapshot
from triage.tui.messages import SnapshotLoaded
from triage.tui.screens.alerts import AlertScreen, AlertsScreen
from triage.tui.screens.calibration import CalibrationScreen
from triage.tui.screens.drift import DriftCellScreen, DriftScreen
from triage.tui.screens.home import HomeScreen
from triage.tui.screens.modals import HelpScreen, PromptScreen
from triage.tui.screens.operations import OperationsScreen
from triage.tui.screens.performance import PerformanceScreen
from triage.tui.screens.runbook import RunbookScreen
from triage.tui.widgets.cells import DIM, WARN
from triage.tui.widgets.charts import HistogramChart, TimeChart, XYChart
from triage.tui.widgets.status import StatusLine, status_text

SIZE = (80, 24)


def make_app(source: FakeSource | None = None) -> TriageApp:
    """The app on the fixture data with the clock frozen at NOW."""
    fake = source or FakeSource()
    return TriageApp(lambda: fake, LiveClock(lambda: NOW), refresh_s=5.0)


def hold_refresh(app: TriageApp) -> None:
    """Stop the armed live refresh, so a slow machine cannot land one in the middle of a test."""
    if app._timer is not None:
        app._timer.stop()
        app._timer = None


async def settle(pilot: Pilot[None], hold: bool = True) -> None:
    """Let every worker finish and every message it posted be handled (handlers may start more);
    then, with `hold`, stop the next live refresh (tests of the cadence pass False)."""
    for _ in range(5):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.is_running for w in pilot.app.workers):
            break
    if hold and isinstance(pilot.app, TriageApp) and not pilot.app.loading:
        hold_refresh(pilot.app)


def plain(widget: Static) -> str:
    """What a Static shows, as plain text at its width (Rich tables and groups included)."""
    console = Console(width=max(widget.size.width, 40), file=io.StringIO(), record=True, color_system=None)
    console.print(widget.content, soft_wrap=True)
    return console.export_text()


async def search(pilot: Pilot[None], query: str) -> None:
    """Type a whole query into the open command palette at once and let it search."""
    pilot.app.screen.query_one(CommandInput).value = query
    await settle(pilot)


def text_of(app: TriageApp, selector: str) -> str:
    """The plain text of a Static on the current screen."""
    return plain(app.screen.query_one(selector, Static))


def table_column(app: TriageApp, selector: str, column: int = 0) -> list[str]:
    """One column of a table on the current screen, as plain text."""
    table = app.screen.query_one(selector, DataTable)
    return [str(table.get_row_at(i)[column]) for i in range(table.row_count)]


async def test_home_lists_versions_and_firing_alerts_worst_first() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, HomeScreen)
        models = app.screen.query_one("#models", DataTable)
        rows = [[str(c) for c in models.get_row_at(i)] for i in range(models.row_count)]
        assert [r[:2] for r in rows] == [["fraud", "v1"], ["fraud", "v2"], ["churn", "default"]]
        assert rows[1][6] == "CRIT" and rows[1][7] == "WARN"
        assert table_column(app, "#alerts", 1) == ["feature-drift", "calibration-ece"]
        status = plain(app.screen.query_one(StatusLine))
        assert "LIVE" in status and "as of 2026-01-15 14:05Z" in status and "refreshed 14:05:00Z" in status


async def test_number_keys_switch_between_all_six_panels() -> None:
    app = make_app()
    expected = {
        "2": DriftScreen,
        "3": CalibrationScreen,
        "4": PerformanceScreen,
        "5": OperationsScreen,
        "6": AlertsScreen,
        "1": HomeScreen,
    }
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        for key, screen_type in expected.items():
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, screen_type)
            assert app.screen.rendered_generation == app.applied  # painted on arrival
        assert "Drift · fraud" in text_of(app, "#context") or isinstance(app.screen, HomeScreen)
        await pilot.press("5", "m")  # the second chart of a small terminal cycles
        assert app.screen.query_one("#cost", TimeChart).display
        assert not app.screen.query_one("#errors", TimeChart).display


async def test_the_reference_reliability_curve_pools_every_reference_window() -> None:
    """Two reference days, one bin each: 100 rows scoring 0.15 of which 10 % positive, and 300 at
    0.25 of which 30 %: the curve is their union (0.225, 0.25), not the first day's point."""
    from triage.metrics.results import ReliabilityPoint

    base = demo_snapshot()
    fraud = base.models[0]
    first = next(r for r in fraud.reference_calibration if r.segment is None)
    days = (
        replace(first, reliability=(ReliabilityPoint(0.1, 0.2, 100, 0.15, 0.1),)),
        replace(
            first,
            window_start=first.window_start + timedelta(days=1),
            reliability=(ReliabilityPoint(0.1, 0.2, 300, 0.25, 0.3),),
        ),
    )
    model = replace(fraud, reference_calibration=days)
    app = make_app(FakeSource(replace(base, models=(model, *base.models[1:]))))
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)
        reference = app.screen.query_one("#reliability", XYChart).curves[0]
        assert reference.label == "ref all"
        assert reference.x == pytest.approx((0.225,)) and reference.y == pytest.approx((0.25,))


async def test_only_the_visible_panel_renders_a_new_snapshot() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await pilot.pause()
        home = app.get_screen_stack("home")[0]
        painted = home.rendered_generation
        await pilot.press("r")
        await settle(pilot)
        assert app.screen.rendered_generation == app.applied > painted
        assert home.rendered_generation == painted  # hidden: not re-rendered
        await pilot.press("1")
        await pilot.pause()
        assert home.rendered_generation == app.applied  # caught up when shown


async def test_drift_filter_sort_and_drill_down_into_a_cell() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await pilot.pause()
        assert table_column(app, "#grid")[0] == "amount"  # worst drift first
        await pilot.press("s")
        assert table_column(app, "#grid") == sorted("score" if f == "__score__" else f for f in FEATURES)
        await pilot.press("s", "slash", *"ip_risk", "enter")
        await pilot.pause()
        assert table_column(app, "#grid") == ["ip_risk_score"]
        assert "filter: ip_risk" in text_of(app, "#context")
        await pilot.press("escape")  # clears the filter, stays on the panel
        assert isinstance(app.screen, DriftScreen) and len(table_column(app, "#grid")) == len(FEATURES)
        await pilot.press("v", "v")  # version v2
        assert app.version == "v2"
        await pilot.press("right", "right", "enter")  # amount × the worst slice, country=DE
        await settle(pilot)
        cell = app.screen
        assert isinstance(cell, DriftCellScreen)
        assert cell.feature == "amount" and cell.slice.label == "country=DE" and cell.version == "v2"
        assert "PSI 0.42" in text_of(app, "#stats")
        histogram = cell.query_one("#histogram", HistogramChart).histogram
        assert histogram is not None and histogram.labels[0] == "<10"
        assert ("histogram", "fraud", "amount") in source.calls
        history = cell.query_one("#history", TimeChart).data
        assert history is not None and history.x[-1] == WINDOWS[-1]
        await pilot.press("less_than_sign")
        await settle(pilot)
        assert cell.window == WINDOWS[-2]
        await pilot.press("escape")
        assert isinstance(app.screen, DriftScreen)


async def test_an_open_reference_and_pending_labels_are_said_where_they_matter() -> None:
    """While the reference period is open the drift panel says until when instead of a legend;
    labels a live refresh has not counted yet are named on the calibration and performance panels."""
    base = demo_snapshot()
    first = base.models[0]
    assert first.reference is not None
    opened = replace(
        first,
        reference=replace(first.reference, complete=False),
        drift=(),
        data_quality=(),
        pending_labels=1234,
        pending_windows=3,
    )
    app = make_app(FakeSource(replace(base, models=(opened, *base.models[1:]))))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2")
        await pilot.pause()
        assert "reference period open until 2026-01-05 00:00 UTC" in text_of(app, "#legend")
        assert "PSI" not in text_of(app, "#legend")
        for key in ("3", "4"):
            await pilot.press(key)
            await pilot.pause()
            assert "1,234 new labels pending in 3 window(s)" in " ".join(text_of(app, "#context").split())


async def test_window_keys_move_the_shared_window_and_back_to_following_live() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("2", "less_than_sign", "less_than_sign")
        assert app.window_start == WINDOWS[-3]
        assert "window 2026-01-13" in text_of(app, "#context")
        await pilot.press("5")
        await pilot.pause()
        assert "window 2026-01-13" in text_of(app, "#context")  # shared by the model panels
        await pilot.press("greater_than_sign", "greater_than_sign")
        assert app.window_start is None  # the latest window: follow live data


async def test_help_lists_every_binding_from_the_registry() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        shown = " ".join(" ".join(plain(w).split()) for w in app.screen.query(Static))
        for action in ACTIONS:
            assert action.help in shown, action.id
        await pilot.press("escape")
        assert isinstance(app.screen, HomeScreen)


async def test_palette_jumps_to_a_feature_an_alert_and_a_model() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("colon")
        assert CommandPalette.is_open(app)
        await pilot.press(*"age_days", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DriftScreen)
        assert table_column(app, "#grid") == ["account_age_days"]
        await pilot.press("ctrl+p")
        await search(pilot, "calibration-ece")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, AlertScreen) and app.screen.fingerprint.startswith("b2e4")
        await pilot.press("escape", "escape", "1", "colon")
        await search(pilot, "model churn")
        await pilot.press("enter")
        await settle(pilot)
        assert app.model_name == "churn" and isinstance(app.screen, DriftScreen)
        await pilot.press("colon")
        await search(pilot, "runbook kserve")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, RunbookScreen) and app.screen.alert is None


async def test_alert_to_runbook_dry_run_confirm_run_verified() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("6", "enter")
        await settle(pilot)
        assert isinstance(app.screen, AlertScreen)
        assert "runbooks/kserve-canary-traffic.md#shift-traffic" in text_of(app, "#evidence")
        await pilot.press("enter")
        await settle(pilot)
        runbook = app.screen
        assert isinstance(runbook, RunbookScreen)
        assert runbook.query_one("#steps", DataTable).cursor_row == 1  # the step the rule names
        await pilot.press("x")  # no dry run yet: x shows it first, sends nothing
        await settle(pilot)
        assert "DRY RUN" in text_of(app, "#detail") and "fraud 0" in text_of(app, "#detail")
        assert not [c for c in source.calls if c[0] == "run_step"]
        await pilot.press("x")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"fraud 1", "enter")
        assert isinstance(app.screen, PromptScreen)  # a wrong phrase is refused
        assert "does not match" in text_of(app, "#prompt-error")
        app.screen.query_one(Input).value = ""
        await pilot.press(*"fraud 0", "enter")
        await settle(pilot)
        assert app.screen is runbook
        detail = text_of(app, "#detail")
        assert "✓ HTTP 200; verified" in detail and "audit record" in detail and "audit 7f2c" in detail
        assert ("run_step", "shift-traffic", "fraud 0") in source.calls


async def test_a_hanging_step_leaves_the_ui_responsive_and_its_failure_visible() -> None:
    source = FakeSource()
    source.release.clear()
    source.fail_step = "shift-traffic"
    app = make_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("6", "enter", "enter")
        await settle(pilot)
        runbook = app.screen
        assert isinstance(runbook, RunbookScreen)
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("x", *"fraud 0", "enter")
        await pilot.pause()
        assert runbook.running and runbook.query_one("#rb-busy").display
        await pilot.press("x")  # a second run is refused while one hangs
        assert [c[0] for c in source.calls].count("run_step") == 1
        await pilot.press("1")  # the rest of the UI keeps working
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("2", "6")
        await pilot.pause()
        assert app.screen is runbook and runbook.running
        source.release.set()
        await settle(pilot)
        assert not runbook.running
        assert "✗ failed: read timed out after 10 s" in text_of(app, "#detail")


async def test_acknowledge_and_silence_from_the_alert_list() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("6", "a")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"rolling back", "enter")
        await settle(pilot)
        assert ("acknowledge", "a1f3c9d2e4b5a6c7", "rolling back") in source.calls
        assert table_column(app, "#alert-list", 1)[0] == "acked"
        await pilot.press("j", "s", "enter")  # the default answer: 1h
        await settle(pilot)
        fingerprint, until = next(c[1:] for c in source.calls if c[0] == "silence")
        assert fingerprint == "b2e4d6f8a0c1e3f5"
        assert datetime.fromisoformat(until) == NOW + parse_duration("1h")  # type: ignore[operator]
        await pilot.press("s")
        app.screen.query_one(Input).value = "soon"
        await pilot.press("enter")
        await pilot.pause()
        assert [c[0] for c in source.calls].count("silence") == 1  # "soon" is not a duration


async def test_a_superseded_snapshot_never_overwrites_a_newer_one() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        newer = Snapshot(as_of=datetime(2026, 1, 15, 15, 0, tzinfo=UTC), models=(), alerts=(), runbooks=())
        older = Snapshot(as_of=datetime(2026, 1, 15, 14, 0, tzinfo=UTC), models=(), alerts=(), runbooks=())
        app.requested = 9
        app.post_message(SnapshotLoaded(9, newer, NOW, None))
        app.post_message(SnapshotLoaded(8, older, NOW, None))
        await pilot.pause()
        assert app.snapshot is newer and app.applied == 9


async def test_refresh_rearms_only_after_it_finishes_and_pause_stops_it() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, hold=False)
        assert app._timer is not None  # armed after the first refresh completed
        gate = source.snapshot_gate = __import__("threading").Event()
        await pilot.press("r")
        assert app.loading and app._timer is None  # no second refresh can overlap this one
        gate.set()
        await settle(pilot, hold=False)
        assert not app.loading and app._timer is not None
        await pilot.press("p")
        assert app.paused and app._timer is None
        assert "PAUSED" in plain(app.screen.query_one(StatusLine))
        before = len(source.snapshots)
        await pilot.press("p")
        await settle(pilot, hold=False)
        assert not app.paused and len(source.snapshots) == before + 1 and app._timer is not None
        assert ("ingest",) in source.calls  # live mode ingests before each snapshot
        assert source.calls.count(("prepare",)) == 1  # once, after the first snapshot


async def test_a_failing_refresh_is_shown_and_the_last_snapshot_kept() -> None:
    source = FakeSource()
    app = make_app(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, hold=False)
        kept = app.snapshot

        def broken(as_of: datetime) -> Snapshot:
            raise OSError("store.duckdb: disk I/O error")

        source.snapshot = broken  # type: ignore[method-assign]
        await pilot.press("r")
        await settle(pilot, hold=False)
        assert app.snapshot is kept
        assert "refresh failed: store.duckdb: disk I/O error" in plain(app.screen.query_one(StatusLine))
        assert app._timer is not None  # keeps trying


async def test_the_status_line_says_how_old_the_stalest_feed_is() -> None:
    """The top line names the silence of the model whose last prediction is oldest, in the
    warning colour once some model is silent past its `stale_after`."""
    base = demo_snapshot()
    fraud, churn = base.models
    fresh = replace(fraud, last_prediction=NOW - timedelta(seconds=125), stale_after_s=3600.0)
    for churn_silence, stale in ((timedelta(minutes=50), False), (timedelta(hours=2), True)):
        quiet = replace(churn, last_prediction=NOW - churn_silence, stale_after_s=3600.0)
        app = make_app(FakeSource(replace(base, models=(fresh, quiet))))
        async with app.run_test(size=(140, 24)) as pilot:
            await settle(pilot)
            info = app.status_info()
            assert info.last_prediction == NOW - churn_silence and info.stale is stale
            line = status_text(info)
            said = f"last prediction {'50m 0s' if not stale else '2h 0m'} ago"
            assert said in line.plain and said in plain(app.screen.query_one(StatusLine))
            (span,) = [s for s in line.spans if said in line.plain[s.start : s.end]]
            assert str(span.style) == (WARN if stale else DIM)


async def test_a_fixed_clock_shows_the_time_and_never_ingests() -> None:
    source = FakeSource()
    at = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)
    app = TriageApp(lambda: source, FixedClock(at, lambda: NOW))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert source.snapshots == [at] and ("ingest",) not in source.calls
        assert app._timer is None
        status = plain(app.screen.query_one(StatusLine))
        assert "AS OF" in status and "2026-01-14 12:00Z" in status


async def test_quit_exits() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
    assert app.return_code == 0
