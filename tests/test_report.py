"""`triage report` on a generated world with a real runbook step run against the control plane.

The expectations are independent of the report code: the incident, its onset and its signal come
from the generator's manifest, the rule from the effective rule set, the runbook step is a real
audited call to the simulator on 127.0.0.1, and the before / during / after numbers are recomputed
with numpy from the engine's rows.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest

from triage.alerts.evaluate import FIRING, fingerprint
from triage.alerts.rules import effective_rules
from triage.alerts.state import Alert, AlertEvent
from triage.cli import main
from triage.config import load_config
from triage.engine import Engine
from triage.generate import LATENCY_COST_SPIKE, Incident, generate
from triage.replay import Timeline
from triage.report import DURING, PHASE_STATISTICS, IncidentReport, _fired_alerts, build_report
from triage.runbooks.audit import AuditLog
from triage.runbooks.executor import AlertContext, Executor
from triage.runbooks.format import load_runbook
from triage.runbooks.redact import Redactor
from triage.runbooks.simulator import ControlPlane
from triage.store import Store

TOKEN = "tok-" + secrets.token_hex(16)
RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
T0 = datetime.fromisoformat("2026-01-05T00:00:00+00:00")  # the end of the reference


@dataclass(frozen=True)
class World:
    config_path: Path
    incident: Incident
    rule: str
    alert: str  # the incident's alert fingerprint
    plane_url: str
    action_at: datetime
    report: IncidentReport


def _config_text(url: str) -> str:
    return "".join(
        f'\n[targets.{name}]\nbase_url = "{url}"\nauth = {{ type = "bearer", token_env = "CP_TOKEN" }}\n'
        for name in ("kubernetes", "mlflow", "flags")
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    folder = tmp_path_factory.mktemp("report") / "world"
    manifest = generate(folder, 20_000, 14, 42)
    incident = next(i for i in manifest.incidents if i.kind == LATENCY_COST_SPIKE)
    assert incident.end is not None and incident.onset > T0
    rule = next(r.name for r in effective_rules(load_config(folder / "triage.toml").model(manifest.model))
                if r.signal == incident.signal)  # fmt: skip
    alert = fingerprint(manifest.model, rule, {"route": str(incident.scope.route)})
    config_path = folder / "triage.toml"
    with pytest.MonkeyPatch.context() as patch, ControlPlane(token=TOKEN, settle_s=0.0) as plane:
        patch.setenv("CP_TOKEN", TOKEN)
        with config_path.open("a", encoding="utf-8") as handle:
            handle.write(_config_text(plane.url))
        config = load_config(config_path)
        with Store.open(config.store_path) as store:
            store.ingest(config)
        # Acted when the spike's day closed (the page): placed on that clock, not at the wall clock.
        action_at = incident.end
        executor = Executor(config.targets, AuditLog(config.audit_path), operator="oncall@test")
        context = AlertContext(alert, {"model": manifest.model}, clock_at=action_at)
        book = load_runbook(RUNBOOKS / "kserve-canary-traffic.md")
        result = executor.run_step(executor.plan(book, "shift-traffic", alert=context))
        assert result.ok, result.message
        assert plane.canary_percent() == 0
        # A leaky record (not redacted when written): the report must still not show the token.
        AuditLog(config.audit_path).note(
            runbook="kserve-canary-traffic",
            runbook_sha256="0" * 64,
            step="inspect",
            safety="read_only",
            alert=alert,
            dedupe_key="leak",
            operator="oncall@test",
            params={"pasted": TOKEN},
            outcome="noop",
            before_state={},
            message=f"pasted the token {TOKEN} by mistake",
            redactor=Redactor(),
            clock_at=T0 + timedelta(days=1),
        )
        with Store.open(config.store_path, read_only=True) as store, Engine(config, store) as engine:
            report = build_report(config, engine, start=T0)
    return World(config_path, incident, rule, alert, plane.url, action_at, report)


def test_the_incidents_rule_fires_after_its_onset_and_is_named(world: World):
    report = world.report
    fired = {a.fingerprint: a for a in report.fired}
    assert world.alert in fired, [(a.rule, a.scope) for a in report.fired]
    alert = fired[world.alert]
    assert alert.rule == world.rule and alert.signal == world.incident.signal
    assert alert.first_firing >= world.incident.onset  # no firing before the data allows it
    # The crossing starts in the onset's day window (1d windows) and that window closed before it fired.
    assert alert.crossed_at is not None
    onset_window = world.incident.onset.replace(hour=0, minute=0, second=0, microsecond=0)
    assert onset_window <= alert.crossed_at and alert.crossed_at + timedelta(days=1) <= alert.first_firing
    assert alert.detect_delay == alert.first_firing - alert.crossed_at
    text = report.markdown()
    assert f"| {world.rule} | {world.incident.signal} | route=llm_review |" in text


def test_mitigation_and_recovery(world: World):
    report = world.report
    first = report.first_signal
    assert first is not None and report.mitigation is not None
    assert report.mitigation.entry.runbook == "kserve-canary-traffic"
    assert report.mitigation.entry.step == "shift-traffic"
    assert report.mitigation.at == world.action_at  # the clock time, not the wall clock
    assert report.time_to_mitigate == world.action_at - first.first_firing
    assert report.recovery is not None
    assert report.recovery.targeted is not None and report.recovery.targeted.fingerprint == world.alert
    assert world.alert in {a.fingerprint for a in report.recovery.firing}
    recovered = report.recovery.recovered_at
    assert recovered is not None and world.action_at < recovered <= report.end
    assert world.incident.end is not None and recovered >= world.incident.end
    text = report.markdown()
    assert "kserve-canary-traffic#shift-traffic" in text
    assert f"Recovery: {world.rule} (route=llm_review), which the action was for, resolved at" in text


def test_every_time_is_inside_the_range(world: World):
    report = world.report
    assert report.start == T0
    times = [a.first_firing for a in report.fired] + [i.at for i in report.timeline]
    times += [a.at for a in report.actions]
    assert times and all(report.start <= t <= report.end for t in times)
    assert [i.at for i in report.timeline] == sorted(i.at for i in report.timeline)
    kinds = {i.kind for i in report.timeline}
    assert kinds == {"alert", "runbook"}
    for section in report.sections:
        assert section.drift
        assert all(r.window_start < report.end and r.window_end > report.start for r in section.drift)
        psi = [r.psi for r in section.drift]
        assert psi == sorted(psi, key=lambda v: v or 0.0, reverse=True)


def test_before_during_after_match_numpy_over_the_engine_rows(world: World):
    report = world.report
    config = load_config(world.config_path)
    first = report.fired[0].first_firing
    assert report.mitigation is not None
    mitigation = report.mitigation.at
    with Store.open(config.store_path, read_only=True) as store, Engine(config, store) as engine:
        model = engine.evaluate(report.models[0], as_of=report.end)
    tables = {"calibration": model.calibration, "performance": model.performance}
    phases = {(p.version, p.phase): p for p in report.sections[0].phases}
    assert {phase for _, phase in phases} == {"before", "during", "after"}
    checked = 0
    for table, statistic in PHASE_STATISTICS:
        rows = [
            r
            for r in tables[table]
            if r.segment is None and r.window_start < report.end and r.window_end > report.start
        ]
        for version in {r.version for r in rows}:
            for phase in ("before", "during", "after"):
                chosen = [
                    r
                    for r in rows
                    if r.version == version
                    and (
                        "before"
                        if r.window_end <= first
                        else "after"
                        if r.window_start >= mitigation
                        else "during"
                    )
                    == phase
                ]
                values = [(getattr(r, statistic), r.n) for r in chosen if getattr(r, statistic) is not None]
                got = phases[(version or "all", phase)].means[f"{table}.{statistic}"] if chosen else None
                if not values:
                    assert got is None
                    continue
                expected = np.average([v for v, _ in values], weights=[n for _, n in values])
                assert got == pytest.approx(expected, rel=1e-12)
                checked += 1
    assert checked >= 20
    during = phases[("all", DURING)]
    assert during.windows >= 1 and during.n > 0


def test_html_is_self_contained_with_charts_and_markers(world: World):
    document = world.report.html()
    assert document.startswith("<!DOCTYPE html>") and TOKEN not in document
    assert document.count("<svg") >= 4 and document.count("</svg>") == document.count("<svg")
    assert "<style>" in document and "<script" not in document and "<link" not in document
    assert "runbook action 2026-01-14 00:00Z" in document  # the action's marker on the charts
    urls = re.findall(r"https?://[^\s\"'<>&]+", document)
    assert urls and all(url.startswith(world.plane_url) for url in urls), urls  # only the target's
    assert "kserve-canary-traffic#shift-traffic" in document and world.rule in document
    assert "pasted the token *** by mistake" in document and "pasted the token *** by mistake" in (
        world.report.markdown()
    )


def test_cli_writes_both_files_and_no_secret(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CP_TOKEN", TOKEN)
    markdown, page = tmp_path / "report.md", tmp_path / "report.html"
    argv = ["--config", str(world.config_path), "report", "--from", "2026-01-05", "--to", "2026-01-07"]
    assert main([*argv, "--model", "fraud", "--out", str(markdown), "--html", str(page)]) == 0
    captured = capsys.readouterr()
    text, document = markdown.read_text(), page.read_text()
    assert captured.out == "" and str(markdown) in captured.err
    for output in (text, document, captured.err):
        assert TOKEN not in output
    assert "pasted the token *** by mistake" in text and "pasted the token *** by mistake" in document
    assert "```text" in text and any(c in text for c in "▁▂▃▄▅▆▇█")  # text charts
    assert document.count("<svg") >= 4 and re.findall(r"https?://", document) == []


def test_markdown_goes_to_stdout_without_out(world: World, capsys: pytest.CaptureFixture[str]):
    argv = ["--config", str(world.config_path), "report", "--from", "2026-01-05", "--to", "2026-01-05T12:00"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Incident report: fraud")
    assert "## Summary" in out and "## Timeline" in out and "## Runbook actions" in out
    assert "No runbook action recorded in this range." in out and TOKEN not in out


def test_logged_values_reach_both_documents_escaped(world: World):
    """A version is logged text: its escape sequences (clear the screen, a hidden hyperlink, BEL)
    reach the Markdown — printed to the terminal by default — and the HTML as visible escapes, and
    its markup (an `<img onerror>`, a `[link](url)`) as text, not markup."""
    assert world.report.fired
    hostile = "v2\x1b[2J\x1b]8;;http://evil.example/\x1b\\x\x1b]8;;\x1b\\\x07\u202e"
    scope = (("version", hostile), ("segment_value", "<img src=x onerror=alert(1)>[txt](http://evil)"))
    first = dataclasses.replace(world.report.fired[0], scope=scope)
    report = dataclasses.replace(world.report, fired=(first, *world.report.fired[1:]))
    markdown, page = report.markdown(), report.html()
    for document in (markdown, page):
        assert not any(char in document for char in "\x1b\x07\u202e")
        assert "<img src=x" not in document and "&lt;img src=x onerror=alert(1)&gt;" in document
    assert "v2\\x1b\\[2J\\x1b\\]8;;http://evil.example/" in markdown
    assert "\\[txt\\](http://evil)" in markdown and "](http://evil)" not in markdown.replace("\\]", "")
    assert "v2\\x1b[2J\\x1b]8;;http://evil.example/" in page


def test_a_range_inside_the_reference_period_says_why_there_is_no_drift(
    world: World, capsys: pytest.CaptureFixture[str]
):
    end = load_config(world.config_path).model("fraud").reference.end
    assert end is not None
    to = end - timedelta(hours=12)
    argv = ["--config", str(world.config_path), "report", "--from", "2026-01-01", "--to", to.isoformat()]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"Reference period open until {end:%Y-%m-%d %H:%M} UTC" in out
    assert "No drift statistic with enough data" not in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday"], "triage: --from: expected an ISO time"),
        (["--to", "2026-13-01"], "triage: --to: expected an ISO time"),
        (["--from", "2026-01-10", "--to", "2026-01-09"], "triage: --to is before --from"),
        (["--model", "nope"], "no model named 'nope'"),
        (["--html", "/nonexistent/folder/report.html"], "no such folder /nonexistent/folder"),
    ],
)
def test_mistakes_are_one_line_exit_2(world: World, capsys: pytest.CaptureFixture[str], args, message):
    assert main(["--config", str(world.config_path), "report", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_the_report_is_headless():
    code = (
        "import sys, triage.report, triage.commands.report_cmd\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'textual')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_among_alerts_first_firing_at_one_instant_the_first_signal_is_the_worst_and_broadest():
    at, day = T0 + timedelta(days=3), timedelta(days=1)

    def alert(fp: str, rule: str, scope: tuple[tuple[str, str], ...]) -> Alert:
        return Alert(fp, "m", rule, "psi", scope, FIRING, None, None, None, None, None, {}, None, at, at,
                     None, at)  # fmt: skip

    def fires(fp: str, rule: str, severity: str, run: int) -> AlertEvent:
        start = at - day
        return AlertEvent(fp, "m", rule, at, FIRING, "pending", FIRING, severity, window_start=start,
                          window_end=at, evidence={"run": run})  # fmt: skip

    slice_scope = (("feature", "amount"), ("segment", "country"), ("segment_value", "BR"))
    alerts = {
        "a": alert("a", "a-slice", slice_scope),
        "b": alert("b", "b-all", (("feature", "amount"),)),
        "c": alert("c", "c-all-warn", (("feature", "amount"),)),
        "d": alert("d", "d-all-longer", (("feature", "amount"),)),
        "e": alert("e", "e-earlier", (("feature", "amount"),)),
    }
    events = [
        fires("a", "a-slice", "critical", 1),
        fires("b", "b-all", "critical", 1),
        fires("c", "c-all-warn", "warning", 5),
        fires("d", "d-all-longer", "critical", 3),
        dataclasses.replace(fires("e", "e-earlier", "warning", 1), at=at - timedelta(hours=1)),
    ]
    timeline = cast(Timeline, SimpleNamespace(tracks={"current": SimpleNamespace(alerts=alerts)}))
    fired, already = _fired_alerts(timeline, sorted(events, key=lambda e: e.at), T0, at + day)
    # e fired first of all; at the later instant: critical before warning, all traffic before a
    # slice, and of two all-traffic criticals the one whose crossing began earlier.
    assert [a.rule for a in fired] == ["e-earlier", "d-all-longer", "b-all", "a-slice", "c-all-warn"]
    assert already == ()


def test_a_report_or_replay_to_a_time_after_now_ends_now(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """`--to 2090-01-01` (a typo of 2029, say) stops at the current time with a note, instead of
    stepping through decades of windows that nothing was logged in."""
    start = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    generate(tmp_path / "world", 2_000, 3, 7, start=start)
    config = str(tmp_path / "world" / "triage.toml")
    assert main(["--config", config, "ingest"]) == 0
    capsys.readouterr()
    before = datetime.now(UTC)
    assert main(["--config", config, "report", "--to", "2090-01-01"]) == 0
    out, err = capsys.readouterr()
    assert err.startswith("triage: --to 2090-01-01 00:00 UTC is after now; ending now (")
    header = re.search(r"^\S+ \S+Z to (\d{4}-\d\d-\d\d \d\d:\d\d)Z · generated", out, re.MULTILINE)
    assert header is not None
    end = datetime.fromisoformat(header.group(1)).replace(tzinfo=UTC)
    assert before.replace(second=0, microsecond=0) <= end <= datetime.now(UTC)
    argv = ["--config", config, "replay", "--headless", "--json", "--to", "2090-01-01T00:00Z"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "is after now; ending now" in err
    assert before <= datetime.fromisoformat(json.loads(out)["to"].replace("Z", "+00:00")) <= datetime.now(UTC)
