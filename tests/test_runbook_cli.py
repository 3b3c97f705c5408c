"""`triage runbook …` and `triage audit` against the control plane: every shipped runbook through
the CLI, the token searched for in every output and file, and a run killed mid-call."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from triage.cli import main
from triage.commands.runbook_cmd import _print_progress, _report
from triage.runbooks.audit import load_into_duckdb
from triage.runbooks.executor import ProgressEvent, StepResult
from triage.runbooks.simulator import ControlPlane, Faults

TOKEN = "tok-" + secrets.token_hex(16)
RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
PARAMS = {
    "kserve-canary-traffic": ["name=fraud"],
    "argo-rollout-abort": ["name=fraud"],
    "mlflow-champion-rollback": ["model=fraud", "version=3"],
    "kill-switch-fallback": ["model=fraud"],
}


def write_config(directory: Path, url: str, timeout_s: float = 5.0) -> Path:
    targets = "\n".join(
        f'[targets.{name}]\nbase_url = "{url}"\nauth = {{ type = "bearer", token_env = "CP_TOKEN" }}\n'
        f"timeout_s = {timeout_s}\n"
        for name in ("kubernetes", "mlflow", "flags")
    )
    path = directory / "triage.toml"
    path.write_text(
        f'runbooks = "{RUNBOOKS}"\n[store]\npath = "t.duckdb"\naudit = "audit.jsonl"\n'
        '[[model]]\nname = "fraud"\npredictions = "p.csv"\n'
        '[model.columns]\nid = "id"\ntimestamp = "ts"\nscore = "score"\n'
        '[model.reference]\nend = "2026-01-01"\n' + targets,
        encoding="utf-8",
    )
    return path


@pytest.fixture
def plane():
    with ControlPlane(token=TOKEN, settle_s=0.0) as control_plane:
        yield control_plane


@pytest.fixture
def config(plane, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CP_TOKEN", TOKEN)
    monkeypatch.setenv("TRIAGE_OPERATOR", "oncall@test")
    return write_config(tmp_path, plane.url)


def triage(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


def test_every_runbook_through_the_cli_and_the_token_is_in_no_output_and_no_file(plane, config, capsys):
    outputs: list[str] = []

    def run(*args: str) -> int:
        status = triage(config, *args)
        captured = capsys.readouterr()
        outputs.append(captured.out + captured.err)
        return status

    assert run("runbook", "list") == 0
    assert "kserve-canary-traffic" in outputs[-1] and "mlflow-champion-rollback" in outputs[-1]
    for name, params in PARAMS.items():
        assert run("runbook", "show", name) == 0
        dry = [arg for param in params for arg in ("--param", param)]
        assert run("runbook", "run", name, "--dry-run", "--alert", "fp-dry", *dry) == 0
        assert "Authorization: Bearer ***" in outputs[-1]
    assert plane.requests() == []

    assert run("runbook", "run", "kserve-canary-traffic", "--alert", "fp-1", "--param", "name=fraud") == 0
    assert plane.canary_percent() == 0
    assert run("runbook", "run", "argo-rollout-abort", "--alert", "fp-2", "--param", "name=fraud",
               "--confirm", "abort models/fraud") == 0  # fmt: skip
    assert plane.rollout_phase() == "Degraded"
    assert run("runbook", "run", "mlflow-champion-rollback", "--alert", "fp-3", "--param", "model=fraud",
               "--param", "version=3") == 0  # fmt: skip
    assert plane.champion() == "2"
    assert run("runbook", "run", "kill-switch-fallback", "--alert", "fp-4", "--param", "model=fraud",
               "--confirm", "fallback fraud") == 0  # fmt: skip
    assert plane.kill_switch_route() == "fallback"

    for name, step, alert in (
        ("kserve-canary-traffic", "shift-traffic", "fp-1"),
        ("argo-rollout-abort", "abort", "fp-2"),
        ("mlflow-champion-rollback", "rollback", "fp-3"),
        ("kill-switch-fallback", "route-to-fallback", "fp-4"),
    ):
        assert run("runbook", "run", f"{name}#{step}", "--undo", "--alert", alert) == 0, outputs[-1]
    assert (plane.canary_percent(), plane.rollout_phase(), plane.champion(), plane.kill_switch_route()) == (
        10,
        "Progressing",
        "3",
        "primary",
    )

    # A second run for the same alert is refused (exit 3); the token pasted as a parameter is redacted.
    assert (
        run(
            "runbook",
            "run",
            "kserve-canary-traffic#shift-traffic",
            "--alert",
            "fp-1",
            "--param",
            "name=fraud",
        )
        == 3
    )
    assert "already run" in outputs[-1]
    assert run("runbook", "run", "kill-switch-fallback#inspect", "--param", f"model={TOKEN}") == 1
    assert "HTTP 404" in outputs[-1] and "***" in outputs[-1]
    plane.set_faults(Faults(error_next=4, error_status=503, retry_after_s=0))
    assert run("runbook", "run", "kill-switch-fallback#inspect", "--param", "model=fraud") == 1
    assert run("audit") == 0 and run("audit", "--json") == 0
    entries = [json.loads(line) for line in outputs[-1].splitlines()]
    assert {e["outcome"] for e in entries} >= {"ok", "rejected", "failed"}

    connection = duckdb.connect(str(config.parent / "audit.duckdb"))
    assert load_into_duckdb(connection, config.parent / "audit.jsonl") == len(entries)
    connection.close()

    everything = "\n".join(outputs)
    assert "Authorization: Bearer ***" in everything
    assert TOKEN not in everything
    files = [p for p in config.parent.rglob("*") if p.is_file()]
    assert any(p.name == "audit.jsonl" for p in files)
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_destructive_step_without_a_terminal_needs_confirm(plane, config, capsys):
    assert (
        triage(config, "runbook", "run", "kill-switch-fallback#route-to-fallback", "--param", "model=fraud")
        == 2
    )
    assert "--confirm" in capsys.readouterr().err
    assert [r.method for r in plane.requests()] == ["GET", "GET"]  # the read-only checks only
    wrong = ["--param", "model=fraud", "--confirm", "fallback other"]
    assert triage(config, "runbook", "run", "kill-switch-fallback#route-to-fallback", *wrong) == 3
    assert plane.kill_switch_route() == "primary"


def test_user_mistakes_are_one_line(config, capsys):
    assert triage(config, "runbook", "show", "nope") == 2
    assert "no runbook named 'nope'" in capsys.readouterr().err
    assert triage(config, "runbook", "run", "kserve-canary-traffic#shift-traffic", "--param", "name") == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert triage(config, "runbook", "run", "kserve-canary-traffic", "--undo") == 2
    assert (
        triage(config, "runbook", "run", "kserve-canary-traffic#shift-traffic", "--param", "name=Bad/Name")
        == 2
    )
    assert "does not match" in capsys.readouterr().err


def test_a_run_killed_between_its_audit_records_shows_outcome_unknown(plane, tmp_path, monkeypatch, capsys):
    config = write_config(tmp_path, plane.url, timeout_s=30)
    audit = tmp_path / "audit.jsonl"
    env = {**os.environ, "CP_TOKEN": TOKEN, "TRIAGE_OPERATOR": "oncall@test"}
    plane.set_faults(Faults(hang_next=1, methods=("PATCH",)))  # the PATCH never answers
    args = [
        "runbook",
        "run",
        "kserve-canary-traffic#shift-traffic",
        "--alert",
        "fp-kill",
        "--param",
        "name=fraud",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "triage.cli", "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 30
    while not any(r.method == "PATCH" for r in plane.requests()) and time.monotonic() < deadline:
        if audit.exists() and '"kind": "before"' in audit.read_text() and process.poll() is None:
            break
        time.sleep(0.05)
    assert '"kind": "before"' in audit.read_text()
    process.send_signal(signal.SIGKILL)
    out, err = process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL

    # The next start (in this process: the killed one is gone) sees it and refuses to fire blindly.
    monkeypatch.setenv("CP_TOKEN", TOKEN)
    assert triage(config, "audit") == 0
    listing = capsys.readouterr()
    assert "outcome unknown" in listing.out
    assert triage(config, "audit", "--unknown", "--json") == 1
    unknown = capsys.readouterr()
    (entry,) = [json.loads(line) for line in unknown.out.splitlines()]
    assert entry["step"] == "shift-traffic" and entry["outcome"] == "unknown"

    assert triage(config, *args) == 3
    rerun = capsys.readouterr()
    assert "outcome unknown" in rerun.err and "outcome unknown" in rerun.out
    assert plane.canary_percent() == 10
    for text in (out.decode(), err.decode(), listing.out, unknown.out, rerun.out, rerun.err):
        assert TOKEN not in text
    assert TOKEN not in audit.read_text()


def test_alert_fingerprint_fills_params_from_the_stored_alert(plane, config, capsys):
    from tests.test_alert_evaluate import DAY, T0, drift_row, model_config
    from triage.alerts.evaluate import evaluate_rules
    from triage.alerts.state import AlertStore
    from triage.config import AlertRule

    rule = AlertRule(name="feature-drift", signal="drift.psi", where={"segment": "country"}, warn=0.1)
    now = T0 + 11 * DAY
    con = duckdb.connect(str(config.parent / "t.duckdb"))
    rows = [drift_row(10, 0.3, segment="country", segment_value="BR")]
    (alert,) = AlertStore(con).record(evaluate_rules([rule], {"drift": rows}, model_config(), now), now)
    con.close()
    assert alert.model == "fraud"

    prefix = alert.fingerprint[:8]
    assert triage(config, "runbook", "run", "kserve-canary-traffic", "--dry-run", "--alert", prefix) == 0
    out = capsys.readouterr().out
    assert "/inferenceservices/fraud" in out  # `name` came from the alert's model, not --param

    assert triage(config, "runbook", "run", "kserve-canary-traffic", "--dry-run", "--alert", "nope") == 2
    assert "name" in capsys.readouterr().err  # unknown alert: nothing fills the param


def test_what_the_platform_answered_is_printed_as_text(capsys):
    """A step's message quotes the serving platform's answer: an escape sequence in it (a proxy's
    error page, a compromised endpoint) reaches the terminal as visible text."""
    answer = "HTTP 502: \x1b[2J\x1b]8;;http://evil.example/\x1b\\upgrade\x1b]8;;\x1b\\"
    _report(StepResult("kill-switch-fallback", "inspect", "read_only", "failed", answer, audit_id="a1"))
    _print_progress(ProgressEvent("inspect", "retry", answer))
    out = capsys.readouterr().out
    assert "\x1b" not in out and out.count("HTTP 502: \\x1b[2J\\x1b]8;;http://evil.example/") == 2
