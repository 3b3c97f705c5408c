"""Alert → runbook → dry run → typed confirmation → run → verified, through the TUI and the real
runbook executor, against the bundled control plane on 127.0.0.1 (a slow call and a refused one
included). The panels' data is the fixture; the runbook side is `EngineSource`'s."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.test_tui_app import settle, text_of
from tests.test_tui_fixtures import NOW, FakeSource, demo_alerts, demo_snapshot
from triage.config import parse_config
from triage.runbooks.simulator import ControlPlane, Faults
from triage.tui.app import TriageApp
from triage.tui.clock import LiveClock
from triage.tui.data import AlertView, DryRun, Progress, RunbookView, StepOutcome
from triage.tui.screens.home import HomeScreen
from triage.tui.screens.modals import PromptScreen
from triage.tui.screens.runbook import RunbookScreen
from triage.tui.source import EngineSource

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
TOKEN = "tok-" + secrets.token_hex(16)
SIZE = (80, 24)


class ControlPlaneSource(FakeSource):
    """The fixture's panels, with the drift alert linked to a runbook step run by the real executor."""

    def __init__(self, real: EngineSource, runbook: str) -> None:
        snapshot = demo_snapshot()
        first = replace(snapshot.alerts[0], runbook=runbook)
        super().__init__(replace(snapshot, alerts=(first, *snapshot.alerts[1:])))
        self.real = real

    def runbook(self, ref: str) -> RunbookView:
        return self.real.runbook(ref)

    def dry_run(self, runbook: str, step: str, alert: AlertView | None) -> DryRun:
        return self.real.dry_run(runbook, step, alert)

    def run_step(
        self, runbook: str, step: str, alert: AlertView | None, confirmation: str | None, progress: Progress
    ) -> StepOutcome:
        return self.real.run_step(runbook, step, alert, confirmation, progress)


@pytest.fixture
def plane() -> Iterator[ControlPlane]:
    with ControlPlane(token=TOKEN, settle_s=0.0) as control_plane:
        yield control_plane


@pytest.fixture
def real(plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[EngineSource]:
    monkeypatch.setenv("TRIAGE_TEST_CP_TOKEN", TOKEN)
    monkeypatch.setenv("TRIAGE_OPERATOR", "oncall@test")
    targets = "\n".join(
        f'[targets.{name}]\nbase_url = "{plane.url}"\ntimeout_s = 5\n'
        f'auth = {{ type = "bearer", token_env = "TRIAGE_TEST_CP_TOKEN" }}\n'
        for name in ("kubernetes", "flags", "mlflow")
    )
    text = f"""
runbooks = "{RUNBOOKS}"
[store]
path = "triage.duckdb"
audit = "audit.jsonl"
[[model]]
name = "fraud"
predictions = "logs/*.jsonl"
[model.columns]
id = "id"
timestamp = "ts"
score = "score"
[model.reference]
end = "2026-01-01"
{targets}"""
    source = EngineSource(parse_config(text, tmp_path / "triage.toml"))
    yield source
    source.close()


def make_app(source: FakeSource) -> TriageApp:
    return TriageApp(lambda: source, LiveClock(lambda: NOW))


async def test_abort_a_rollout_from_its_alert_verified_and_audited(
    plane: ControlPlane, real: EngineSource
) -> None:
    plane.set_faults(Faults(slow_next=1, slow_s=1.5, methods=("PATCH",)))
    app = make_app(ControlPlaneSource(real, "runbooks/argo-rollout-abort.md#abort"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("6", "enter", "enter")  # the alert list, its evidence, its runbook
        await settle(pilot)
        runbook = app.screen
        assert isinstance(runbook, RunbookScreen) and runbook.view is not None
        assert runbook.view.title == "Argo Rollouts: abort a canary rollout"
        await pilot.press("enter")  # dry run of the step the alert's rule names
        await settle(pilot)
        dry = text_of(app, "#detail")
        assert f"PATCH {plane.url}/apis/argoproj.io/v1alpha1/namespaces/models/rollouts/fraud/status" in dry
        assert "abort models/fraud" in dry and TOKEN not in dry
        assert not [r for r in plane.requests() if r.method == "PATCH"]  # a dry run sends nothing
        await pilot.press("x")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press(*"abort models/fraud", "enter")
        await pilot.pause()
        assert runbook.running
        await pilot.press("1")  # the PATCH is slow; the UI is not
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("6")
        await settle(pilot)
        assert app.screen is runbook and not runbook.running
        detail = text_of(app, "#detail")
        assert "✓ ok: HTTP 200; verified" in detail
        assert "verification: passed" in detail and "status.phase = 'Degraded'" in detail
        assert "oncall@test" in detail and "argo-rollout-abort#abort" in detail  # the audit record
        assert TOKEN not in detail
    assert plane.rollout_phase() == "Degraded"
    entries = real.audit.read().entries
    assert [(e.step, e.outcome, e.alert) for e in entries] == [("abort", "ok", "a1f3c9d2e4b5a6c7")]


async def test_a_step_the_endpoint_refuses_shows_why(plane: ControlPlane, real: EngineSource) -> None:
    plane.set_faults(Faults(error_next=1, error_status=409, methods=("PATCH",)))
    app = make_app(ControlPlaneSource(real, "runbooks/kserve-canary-traffic.md#shift-traffic"))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("6", "enter", "enter")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert "Destructive" not in text_of(app, "#detail")  # reversible: no phrase to type
        await pilot.press("x")
        await settle(pilot)
        detail = text_of(app, "#detail")
        assert "✗ conflict: someone changed it first (HTTP 409 Conflict)" in detail
    assert plane.canary_percent() == 10  # nothing changed


def test_alert_values_fill_the_runbook_parameters(real: EngineSource) -> None:
    alert = demo_snapshot().alerts[0]
    dry = real.dry_run("runbooks/kill-switch-fallback.md", "route-to-fallback", alert)
    assert dry.params["model"] == "fraud" and dry.confirmation == "fallback fraud"
    assert dry.step_id == "route-to-fallback" and "Authorization: Bearer" in dry.request
    assert TOKEN not in dry.request
    view = real.runbook("kill-switch-fallback#inspect")
    assert view.step == "inspect" and [s.safety for s in view.steps] == ["read_only", "destructive"]
    assert "+++" not in view.markdown and "```toml step" not in view.markdown


def test_a_step_run_on_a_simulated_clock_is_audited_at_that_clock_time(real: EngineSource) -> None:
    """The demo's clock runs ahead of the wall clock: its runbook steps must land on its timeline
    (the Timeline panel and `triage report` place them at `clock_at`)."""
    alert = replace(demo_alerts()[0], runbook="runbooks/kserve-canary-traffic.md#shift-traffic")
    simulated = datetime(2026, 1, 14, 2, 31, tzinfo=UTC)
    real.shown_at = simulated  # what the last snapshot on screen was as of
    outcome = real.run_step(alert.runbook or "", "shift-traffic", alert, "fraud 0", lambda _: None)
    assert outcome.ok, outcome.summary
    real.shown_at = datetime.now(UTC)  # live: the screen shows now
    real.run_step(alert.runbook or "", "inspect", alert, None, lambda _: None)
    entries = real.audit.read().entries
    assert [(e.step, e.clock_at) for e in entries] == [("shift-traffic", simulated), ("inspect", None)]
