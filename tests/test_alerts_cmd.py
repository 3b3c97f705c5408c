"""`triage alerts`: listing, effective rules, ack and silence from the command line, across processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.test_alert_evaluate import DAY, T0, drift_row, model_config
from triage.alerts.evaluate import evaluate_rules
from triage.alerts.state import Alert, AlertStore
from triage.cli import main
from triage.commands.alerts_cmd import alerts_text
from triage.config import AlertRule

CONFIG = """\
[store]
path = "store.duckdb"

[[model]]
name = "fraud"
predictions = "logs/*.parquet"

[model.columns]
id = "request_id"
timestamp = "ts"
score = "score"

[model.reference]
end = "2026-01-01"
"""
RULE = AlertRule(
    name="feature-drift", signal="drift.psi", where={"segment": "country"}, warn=0.1, critical=0.25
)


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, list[Alert]]:
    """A config and a store holding a critical (BR) and a warning (US) alert."""
    config = tmp_path / "triage.toml"
    config.write_text(CONFIG)
    rows = [
        drift_row(10, 0.3, segment="country", segment_value="BR"),
        drift_row(10, 0.15, segment="country", segment_value="US"),
    ]
    now = T0 + 11 * DAY
    con = duckdb.connect(str(tmp_path / "store.duckdb"))
    alerts = AlertStore(con).record(evaluate_rules([RULE], {"drift": rows}, model_config(), now), now)
    con.close()
    return config, alerts


def _triage(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process, as after a restart."""
    command = [sys.executable, "-m", "triage.cli", "--config", str(config), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_list_shows_active_alerts_worst_first(setup, capsys):
    config, (critical, warning) = setup
    assert main(["--config", str(config), "alerts"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:3] == ["FINGERPRINT", "STATUS", "SEVERITY"]
    assert header[-4:] == ["VALUE", "THRESHOLD", "WINDOW", "SINCE"]
    assert lines[1].split()[:4] == [critical.fingerprint, "firing", "critical", "fraud"]
    assert "segment_value=BR" in lines[1] and lines[2].split()[0] == warning.fingerprint
    assert main(["--config", str(config), "alerts", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [a["fingerprint"] for a in document["alerts"]] == [critical.fingerprint, warning.fingerprint]
    assert document["alerts"][0]["scope"] == {
        "feature": "amount",
        "segment": "country",
        "segment_value": "BR",
    }


def test_ack_and_silence_persist_across_processes(setup):
    config, (critical, warning) = setup
    acked = _triage(
        config, "alerts", "ack", critical.fingerprint[:8], "--note", "rolling back", "--by", "ana"
    )
    assert acked.returncode == 0, acked.stderr
    assert acked.stdout.startswith(f"acknowledged {critical.fingerprint} (fraud feature-drift")
    silenced = _triage(config, "alerts", "silence", warning.fingerprint, "--until", "2h", "--note", "known")
    assert silenced.returncode == 0, silenced.stderr
    listed = _triage(config, "alerts", "--json")
    by_print = {a["fingerprint"]: a for a in json.loads(listed.stdout)["alerts"]}
    assert by_print[critical.fingerprint]["status"] == "acknowledged"
    assert by_print[critical.fingerprint]["acknowledged"]["by"] == "ana"
    assert by_print[critical.fingerprint]["acknowledged"]["note"] == "rolling back"
    assert by_print[warning.fingerprint]["status"] == "silenced"
    assert by_print[warning.fingerprint]["silenced_until"] is not None
    ended = _triage(config, "alerts", "silence", warning.fingerprint, "--until", "now")
    assert ended.stdout.startswith(f"silence of {warning.fingerprint}")
    history = _triage(config, "alerts", "history", warning.fingerprint, "--json")
    assert [e["event"] for e in json.loads(history.stdout)["events"]] == ["firing", "silenced", "silenced"]


def test_mistakes_are_one_line_errors(setup, capsys):
    config, _ = setup
    assert main(["--config", str(config), "alerts", "ack", "zzzz", "--note", "x", "--by", "ana"]) == 2
    assert (
        capsys.readouterr().err.strip()
        == "triage: no alert with fingerprint 'zzzz' (see `triage alerts --all`)"
    )
    assert main(["--config", str(config), "alerts", "silence", "zzzz", "--until", "next tuesday"]) == 2
    assert "--until: expected an ISO time" in capsys.readouterr().err


def test_rules_prints_the_effective_rules_and_rejects_bad_ones(tmp_path, capsys):
    config = tmp_path / "triage.toml"
    config.write_text(CONFIG)
    assert main(["--config", str(config), "alerts", "rules"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# model fraud: 6 rule(s), the defaults")
    assert 'name = "decision-rate"' in out
    config.write_text(CONFIG + '\n[[model.alert]]\nname = "x"\nsignal = "drift.psx"\nwarn = 1\n')
    assert main(["--config", str(config), "alerts", "rules"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"triage: {config.resolve()}: model[0].alert[0].signal: drift has no numeric field 'psx'"
    )


def test_no_store_and_no_alerts(tmp_path, capsys):
    config = tmp_path / "triage.toml"
    config.write_text(CONFIG)
    assert main(["--config", str(config), "alerts"]) == 2
    assert "no store yet" in capsys.readouterr().err
    duckdb.connect(str(tmp_path / "store.duckdb")).close()
    assert main(["--config", str(config), "alerts"]) == 0
    assert capsys.readouterr().out.strip() == "no active alerts (--all shows resolved ones)"


def test_check_text_shows_a_rule_firing_in_several_slices_once_under_the_worst():
    """Without an all-traffic alert among them, the line shows the slice furthest past its
    threshold; another severity is its own line; the count is by status and severity."""
    rows = [
        drift_row(10, psi, segment="country", segment_value=country)
        for country, psi in (("BR", 0.3), ("US", 0.6), ("DE", 0.27), ("FR", 0.15))
    ]
    now = T0 + 11 * DAY
    alerts = AlertStore(duckdb.connect()).record(
        evaluate_rules([RULE], {"drift": rows}, model_config(), now), now
    )
    lines = alerts_text(alerts, now).splitlines()
    assert lines[0].startswith("Alerts: 4 firing (3 critical, 1 warning) on 2 lines")
    critical, warning = lines[2:]
    assert "segment_value=US" in critical and critical.rstrip().endswith("+2")
    assert "segment_value=FR" in warning and "+" not in warning.split()[-1]


def test_alerts_of_one_severity_read_furthest_past_their_threshold_first():
    """A canary at more than twice the critical PSI comes before the all-traffic mix that just
    crosses it, in `check`'s lines as in the alert order itself; ties keep model, rule, scope."""
    rule = AlertRule(name="drift", signal="drift.psi", where={"version": "*"}, warn=0.1, critical=0.25)
    rows = [drift_row(10, 0.26), drift_row(10, 0.6, version="v2"), drift_row(10, 0.01, version="v1")]
    now = T0 + 11 * DAY
    alerts = AlertStore(duckdb.connect()).record(
        evaluate_rules([rule], {"drift": rows}, model_config(), now), now
    )
    assert [dict(a.scope).get("version") for a in alerts] == ["v2", None]
    lines = alerts_text(alerts, now).splitlines()
    assert "version=v2" in lines[2] and "version=v2" not in lines[3]


def test_scopes_are_shown_escaped_and_cut(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A logged slice value acts on no terminal: its control and bidi characters are escapes, a long
    one is cut (`triage alerts` and `check`'s Alerts section); `--json` has it exact."""
    config = tmp_path / "triage.toml"
    config.write_text(CONFIG)
    hostile = ("\x1b]0;pwned\x07\u202eRB\n", "Y" * 10_000)
    rows = [drift_row(10, 0.3, segment="country", segment_value=value) for value in hostile]
    now = T0 + 11 * DAY
    con = duckdb.connect(str(tmp_path / "store.duckdb"))
    alerts = AlertStore(con).record(evaluate_rules([RULE], {"drift": rows}, model_config(), now), now)
    con.close()
    assert main(["--config", str(config), "alerts"]) == 0
    listing = capsys.readouterr().out
    assert "segment_value=" + "Y" * 59 + "… " in listing and "Y" * 60 not in listing
    for text in (listing, alerts_text(alerts, now)):  # `check`'s section: one line for both slices
        assert "segment_value=\\x1b]0;pwned\\x07\\u202eRB\\n " in text
        assert "\x1b" not in text and "\u202e" not in text
    assert main(["--config", str(config), "alerts", "--json"]) == 0
    scopes = [a["scope"] for a in json.loads(capsys.readouterr().out)["alerts"]]
    assert {scope["segment_value"] for scope in scopes} == set(hostile)
