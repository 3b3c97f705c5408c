"""SVG snapshots of every panel at 80x24 and 120x40, and of the drill-downs at 80x24, on the fixed
fixture data with the clock frozen (`pytest --snapshot-update` rewrites them; review the diff)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from textual.pilot import Pilot

from tests.test_tui_app import make_app, settle

PANELS = {
    "home": "1",
    "drift": "2",
    "calibration": "3",
    "performance": "4",
    "operations": "5",
    "alerts": "6",
    "timeline": "7",
}
SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
SnapCompare = Callable[..., bool]


def pressing(*keys: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    """A `run_before` that waits for the first snapshot, presses `keys`, and waits for the workers."""

    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return run_before


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("panel", PANELS)
def test_panel(snap_compare: SnapCompare, panel: str, size: str) -> None:
    assert snap_compare(make_app(), terminal_size=SIZES[size], run_before=pressing(PANELS[panel]))


def test_drift_cell(snap_compare: SnapCompare) -> None:
    keys = ("2", "v", "v", "right", "right", "enter")
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=pressing(*keys))


def test_alert_evidence(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=pressing("6", "enter"))


def test_runbook_dry_run(snap_compare: SnapCompare) -> None:
    keys = ("6", "enter", "enter", "enter")
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=pressing(*keys))


def test_help(snap_compare: SnapCompare) -> None:
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=pressing("question_mark"))
