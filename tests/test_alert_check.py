"""`triage check` with alerts: exit status 0/1/2/3, the `alerts` array, silences, and Alertmanager."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import numpy as np
import pytest
from scipy import stats

from tests.test_alertmanager import alertmanager  # noqa: F401  (the real Alertmanager fixture)
from triage.alerts.state import ALERTS_TABLE, EVENTS_TABLE
from triage.cli import main

BASE = """
[store]
path = "store.duckdb"

[[model]]
name = "fraud"
predictions = "logs/predictions.jsonl"
window = "1d"
min_samples = 100

[model.columns]
id = "id"
timestamp = "ts"
score = "score"
latency_ms = "latency_ms"

[model.features]
numeric = ["amount"]

[model.reference]
start = "2026-01-05"
end = "2026-01-07"
"""
AT = "2026-01-09T00:00Z"
DAYS, PER_DAY = 4, 400


def _rule(name: str, **settings: object) -> str:
    lines = [f'name = "{name}"', 'signal = "operations.latency_p95_ms"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n[[model.alert]]\n" + "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four days of logs whose last day is three times slower, ingested once."""
    root = tmp_path_factory.mktemp("alert-check")
    (root / "logs").mkdir()
    rng = np.random.default_rng(3)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    with open(root / "logs" / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for i in range(DAYS * PER_DAY):
            day = i // PER_DAY
            ts = start + timedelta(days=day, seconds=int(rng.integers(0, 86_400)))
            row = {
                "id": f"r{i}",
                "ts": ts.isoformat().replace("+00:00", "Z"),
                "score": float(rng.beta(2, 5)),
                "latency_ms": float(rng.lognormal(np.log(100), 0.2)) * (3.0 if day == DAYS - 1 else 1.0),
                "amount": float(rng.gamma(2.0, 50.0)),
                "region": ("eu", "us")[i % 2],
            }
            handle.write(json.dumps(row) + "\n")
    config = root / "triage.toml"
    config.write_text(BASE + _rule("never", warn=1e6))
    assert main(["--config", str(config), "ingest"]) == 0
    return root


def check(folder: Path, rules: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    config = folder / "scenario.toml"
    config.write_text(BASE + rules)
    status = main(["--config", str(config), "check", "--at", AT, *args])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    ("settings", "status", "severity"),
    [
        ({"warn": 1000.0}, 0, None),
        ({"warn": 200.0, "critical": 1000.0}, 1, "warning"),
        ({"warn": 150.0, "critical": 250.0}, 2, "critical"),
        ({"baseline": "reference", "warn_change": 0.5, "critical_change": 1.5}, 2, "critical"),
    ],
)
def test_exit_status_follows_the_worst_firing_alert(folder, capsys, settings, status, severity):
    name = f"latency-{status}-{len(settings)}"
    code, out, err = check(folder, _rule(name, **settings), capsys, "--json")
    assert code == status, err
    alerts = json.loads(out)["alerts"]
    assert [a["severity"] for a in alerts] == ([severity] if severity else [])


def test_a_check_of_the_past_shows_the_alerts_of_then(folder, capsys, tmp_path):
    """`check --at T` after a check of a later time: the alerts as of T (exit status too), not the
    later ones; the later state stays recorded."""
    shutil.copytree(folder, tmp_path / "copy")
    config = tmp_path / "copy" / "scenario.toml"
    config.write_text(BASE + _rule("latency-then", warn=150.0, critical=250.0))  # 8 January is slow

    def alerts_at(at: str) -> tuple[int, list[dict]]:
        status = main(["--config", str(config), "check", "--at", at, "--json"])
        return status, json.loads(capsys.readouterr().out)["alerts"]

    before = "2026-01-08T00:00Z"
    assert alerts_at(before) == (0, [])
    status, later = alerts_at("2026-01-10T00:00Z")
    assert status == 2 and [a["started_at"] for a in later] == ["2026-01-10T00:00:00Z"]
    assert alerts_at(before) == (0, [])
    status, then = alerts_at("2026-01-11T00:00Z")  # the stored alert moves on
    assert status == 2 and [a["started_at"] for a in then] == ["2026-01-10T00:00:00Z"]
    status, then = alerts_at(AT)  # before the stored alert started: the evaluation's own
    assert status == 2 and [(a["state"], a["started_at"]) for a in then] == [
        ("firing", "2026-01-09T00:00:00Z")
    ]


def test_a_check_of_another_view_leaves_the_alert_state_alone(folder, capsys, tmp_path):
    """Another window size or only the last windows (or other slices): that view's alerts, printed
    and in the exit status, but recorded only by checks of the configured view."""
    shutil.copytree(folder, tmp_path / "copy")
    config = tmp_path / "copy" / "scenario.toml"
    config.write_text(BASE + _rule("latency-view", warn=150.0, critical=250.0))  # 8 January is slow

    def recorded() -> int:
        with duckdb.connect(str(tmp_path / "copy" / "store.duckdb"), read_only=True) as con:
            return con.execute(f"SELECT count(*) FROM {ALERTS_TABLE} WHERE rule = 'latency-view'").fetchone()[
                0
            ]

    for view in (["--window", "1w"], ["--last", "2"]):
        status = main(["--config", str(config), "check", "--at", AT, "--json", *view])
        out = capsys.readouterr().out
        assert status == 2 and [a["rule"] for a in json.loads(out)["alerts"]] == ["latency-view"]
        assert recorded() == 0
    assert main(["--config", str(config), "check", "--at", AT, "--window", "1d"]) == 2  # as configured
    capsys.readouterr()
    assert recorded() == 1


def test_a_check_beside_a_reader_moves_the_recorded_alerts_on_and_records_nothing(folder, capsys, tmp_path):
    """While another process reads the store (a replay, a report), no process may open it for
    writing: `check` evaluates read-only instead of failing as locked — its alerts moved on from
    their recorded state, as a recording check then finds them, with nothing written."""
    shutil.copytree(folder, tmp_path / "copy")
    config = tmp_path / "copy" / "scenario.toml"
    config.write_text(BASE + _rule("latency-shared", warn=150.0, critical=250.0))  # 8 January is slow
    store = tmp_path / "copy" / "store.duckdb"

    def alerts_at(at: str) -> tuple[int, list[dict], str]:
        status = main(["--config", str(config), "check", "--at", at, "--json"])
        out, err = capsys.readouterr()
        alerts = [{k: v for k, v in a.items() if k != "updated_at"} for a in json.loads(out)["alerts"]]
        return status, alerts, err

    def recorded() -> list[tuple]:
        with duckdb.connect(str(store), read_only=True) as con:
            return con.execute(
                f"SELECT state, updated_at, (SELECT count(*) FROM {EVENTS_TABLE} WHERE rule = ?) "
                f"FROM {ALERTS_TABLE} WHERE rule = ?",
                ["latency-shared"] * 2,
            ).fetchall()

    assert alerts_at(AT)[0] == 2
    firing = [("firing", datetime(2026, 1, 9), 1)]  # one event: firing at once (for_windows 1)
    assert recorded() == firing
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys\ncon = duckdb.connect({str(store)!r}, read_only=True)\n"
            "print('reading', flush=True)\nsys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "reading"
        status, beside, err = alerts_at("2026-01-10T00:00Z")
    finally:
        reader.communicate("", timeout=30)
    assert status == 2 and "open read-only in another process" in err and "records nothing" in err
    assert [(a["state"], a["started_at"]) for a in beside] == [("firing", "2026-01-09T00:00:00Z")]
    assert recorded() == firing
    assert alerts_at("2026-01-10T00:00Z") == (2, beside, "")
    assert recorded() == [("firing", datetime(2026, 1, 10), 1)]


def test_json_alerts_carry_the_evidence(folder, capsys):
    rule = _rule("latency-json", warn=200.0, runbook="runbooks/kserve-canary-shift.md#shift-to-baseline")
    code, out, _ = check(folder, rule, capsys, "--json")
    assert code == 1
    (alert,) = json.loads(out)["alerts"]
    assert set(alert) >= {
        "fingerprint",
        "rule",
        "severity",
        "state",
        "scope",
        "value",
        "threshold",
        "window",
        "evidence",
        "runbook",
    }
    assert (alert["rule"], alert["state"], alert["scope"], alert["threshold"]) == (
        "latency-json",
        "firing",
        {},
        200.0,
    )
    assert alert["window"] == {"start": "2026-01-08T00:00:00Z", "end": "2026-01-09T00:00:00Z"}
    assert alert["value"] > 250 and alert["evidence"]["n"] == PER_DAY
    assert alert["runbook"] == "runbooks/kserve-canary-shift.md#shift-to-baseline"


def test_text_output_lists_alerts_and_a_silence_lowers_the_status(folder, capsys):
    rule = _rule("latency-silenced", warn=150.0, critical=250.0)
    code, out, _ = check(folder, rule, capsys)
    assert code == 2 and "Alerts: 1 firing (1 critical)\n" in out
    line = next(line for line in out.splitlines() if "latency-silenced" in line)
    fingerprint = line.split()[0]
    config = folder / "scenario.toml"
    assert main(["--config", str(config), "alerts", "silence", fingerprint, "--until", "2099-01-01"]) == 0
    capsys.readouterr()
    code, out, _ = check(folder, rule, capsys)
    assert code == 0 and "Alerts: 1 silenced\n" in out
    assert out.startswith("triage check — as of 2026-01-09 — OK\n")


def test_text_output_shows_alerts_that_differ_only_in_their_slice_once(folder, capsys, tmp_path):
    """8 January is slow everywhere: all traffic and both regions fire, one line under the
    all-traffic alert with the other slices counted; `--json` still lists each alert."""
    (tmp_path / "logs").mkdir()
    shutil.copy(folder / "logs" / "predictions.jsonl", tmp_path / "logs")
    config = tmp_path / "triage.toml"
    rules = _rule("latency-everywhere", warn=150.0, critical=250.0) + 'where = { segment = "*" }\n'
    config.write_text(BASE + '\n[model.segments]\ncolumns = ["region"]\n' + rules)
    assert main(["--config", str(config), "ingest"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "check", "--at", AT, "--json"]) == 2
    scopes = [a["scope"] for a in json.loads(capsys.readouterr().out)["alerts"]]
    assert sorted(scope.get("segment_value", "all") for scope in scopes) == ["all", "eu", "us"]
    assert main(["--config", str(config), "check", "--at", AT]) == 2
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "triage check — as of 2026-01-09 — CRITICAL"  # as the exit status
    assert "Alerts: 3 firing (3 critical) on 1 line:" in out
    (line,) = [line for line in out.splitlines() if "latency-everywhere" in line]
    assert " all " in line and line.rstrip().endswith("+2")
    assert " 2026-01-08 " in line  # the window the value comes from (the slow day)


def test_config_and_data_errors_are_unknown(folder, capsys, tmp_path):
    code, _, err = check(folder, _rule("bad", warn=1.0).replace("latency_p95_ms", "latency_p96_ms"), capsys)
    assert code == 3 and "model[0].alert[0].signal" in err
    empty = tmp_path / "triage.toml"
    empty.write_text(BASE)
    assert main(["--config", str(empty), "check"]) == 3
    assert "triage ingest" in capsys.readouterr().err


def test_push_to_alertmanager(folder, capsys, alertmanager):  # noqa: F811
    code, _, err = check(
        folder, _rule("latency-pushed", warn=150.0), capsys, "--push-alertmanager", alertmanager
    )
    assert code == 1, err
    active = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
    (pushed,) = [a for a in active if a["labels"]["alertname"] == "latency-pushed"]
    assert pushed["labels"]["model"] == "fraud" and pushed["labels"]["severity"] == "warning"
    code, _, err = check(
        folder, _rule("latency-pushed", warn=150.0), capsys, "--push-alertmanager", "http://127.0.0.1:9"
    )
    assert code == 3 and "cannot reach Alertmanager" in err


def test_an_undelivered_critical_alert_still_exits_critical(folder, capsys):
    """Alertmanager unreachable: the error on stderr, and the exit status stays 2 (a cron job that
    pages on it must not miss the alert because its delivery failed as well)."""
    rule = _rule("latency-undelivered", warn=150.0, critical=250.0)
    code, out, err = check(folder, rule, capsys, "--push-alertmanager", "http://127.0.0.1:9")
    assert code == 2 and "cannot reach Alertmanager" in err
    assert out.startswith("triage check — as of 2026-01-09 — CRITICAL\n")


@pytest.mark.parametrize("reference", ['start = "2026-03-02"\nend = "2026-03-09"', 'end = "2026-03-09"'])
def test_the_last_day_of_hourly_windows_is_judged_at_its_hours_like_the_full_check(
    tmp_path, capsys, reference
):
    """A feature with a daily cycle (±5σ over the day), hourly windows, a week's reference: each
    hour differs from the pooled reference, and the default feature-drift rule judges an hour
    against the reference at that hour. `--last 24` leaves the reference's windows out of its
    view: their drift is evaluated for the bands all the same, so it pages no more than the
    full check does (an outside audit's quiet world had 4 alerts firing with `--last 24`) —
    a reference with an end and no start too (audit 43: it had no bands, and paged)."""
    (tmp_path / "logs").mkdir()
    rng = np.random.default_rng(11)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    with open(tmp_path / "logs" / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for hour in range(9 * 24):
            for k in range(120):
                ts = start + timedelta(hours=hour, seconds=int(rng.integers(0, 3600)))
                cycle = 10.0 + 5.0 * np.sin(2 * np.pi * (hour % 24) / 24)
                row = {
                    "id": f"r{hour}-{k}",
                    "ts": ts.isoformat().replace("+00:00", "Z"),
                    "score": float(rng.beta(2, 5)),
                    "load": float(rng.normal(cycle, 1.0)),
                }
                handle.write(json.dumps(row) + "\n")
    config = tmp_path / "triage.toml"
    config.write_text(
        BASE.replace('window = "1d"', 'window = "1h"')
        .replace('latency_ms = "latency_ms"\n', "")
        .replace('numeric = ["amount"]', 'numeric = ["load"]')
        .replace('start = "2026-01-05"\nend = "2026-01-07"', reference)
    )
    assert main(["--config", str(config), "ingest"]) == 0
    at = "2026-03-11T00:00Z"
    for view in ([], ["--last", "24"]):
        capsys.readouterr()
        code = main(["--config", str(config), "check", "--at", at, "--json", *view])
        alerts = json.loads(capsys.readouterr().out)["alerts"]
        assert [a["rule"] for a in alerts if a["state"] == "firing"] == [], view
        assert code == 0, view


def test_a_check_ahead_of_the_clock_records_nothing(folder, capsys, tmp_path):
    """`--at` after the current time (a typo, a zone slip) is evaluated but not recorded: recorded,
    it would be the latest evaluation and every check until then would only look back. A store
    that holds such a state already (an earlier version recorded it) has it forgotten by a check of
    now, which says so."""
    shutil.copytree(folder, tmp_path / "copy")
    config = tmp_path / "copy" / "scenario.toml"
    config.write_text(BASE + _rule("latency-ahead", warn=150.0, critical=250.0))  # 8 January is slow
    store = tmp_path / "copy" / "store.duckdb"

    def recorded() -> list[tuple]:
        with duckdb.connect(str(store), read_only=True) as con:
            if not con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [ALERTS_TABLE]
            ).fetchone()[0]:
                return []  # nothing ever recorded
            return con.execute(
                f"SELECT state, updated_at FROM {ALERTS_TABLE} WHERE rule = 'latency-ahead'"
            ).fetchall()

    ahead = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%MZ")
    main(["--config", str(config), "check", "--at", ahead, "--json"])
    err = capsys.readouterr().err
    assert "is after the current time: this check records nothing" in err
    assert recorded() == []
    assert main(["--config", str(config), "check", "--at", AT, "--json"]) == 2
    capsys.readouterr()
    assert recorded() == [("firing", datetime(2026, 1, 9))]

    later = datetime.now(UTC) + timedelta(days=30)
    with duckdb.connect(str(store)) as con:
        con.execute(
            f"UPDATE {ALERTS_TABLE} SET updated_at = ? WHERE rule = 'latency-ahead'",
            [later.replace(tzinfo=None)],
        )
    main(["--config", str(config), "check"])  # of now: that state is forgotten, and this check records
    err = capsys.readouterr().err
    assert "forgot the state of 1 alert(s) of 'fraud' recorded as of up to" in err
    assert all(updated <= datetime.now(UTC).replace(tzinfo=None) for _, updated in recorded())


def test_a_yes_no_flag_that_turns_on_pages_through_ks_where_psi_cannot_see(tmp_path, capsys):
    """A 0/1 flag at 5 % ones in the reference: every decile is 0, so PSI's bins are (−∞, 0) and
    [0, ∞) and 60 % ones leaves PSI at 0. The default `feature-shift` rule pages on KS D."""
    (tmp_path / "logs").mkdir()
    rng = np.random.default_rng(11)
    start, flags = datetime(2026, 1, 5, tzinfo=UTC), {}
    with open(tmp_path / "logs" / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for i in range(DAYS * PER_DAY):
            day = i // PER_DAY
            flag = int(rng.random() < (0.6 if day == DAYS - 1 else 0.05))
            flags.setdefault(day, []).append(flag)
            row = {
                "id": f"r{i}",
                "ts": (start + timedelta(days=day, seconds=int(rng.integers(0, 86_400)))).isoformat(),
                "score": float(rng.beta(2, 5)),
                "amount": float(rng.gamma(2.0, 50.0)),
                "flag": flag,
            }
            handle.write(json.dumps(row) + "\n")
    config = tmp_path / "triage.toml"
    text = BASE.replace('latency_ms = "latency_ms"\n', "").replace(
        'numeric = ["amount"]', 'numeric = ["amount", "flag"]'
    )
    config.write_text(text)
    assert main(["--config", str(config), "ingest"]) == 0
    capsys.readouterr()
    status = main(["--config", str(config), "check", "--at", AT, "--json"])
    document = json.loads(capsys.readouterr().out)
    (row,) = [
        r
        for r in document["models"][0]["drift"]
        if (r["feature"], r["window_start"], r["version"], r["segment"])
        == ("flag", "2026-01-08T00:00:00Z", None, None)
    ]
    expected = stats.ks_2samp(flags[DAYS - 1], flags[0] + flags[1], method="asymp")
    assert row["psi"] == 0.0 and abs(row["ks_d"] - expected.statistic) < 1e-12 and row["ks_d"] > 0.5
    assert row["ks_d_psi_blind"] == row["ks_d"]  # every decile of the reference is 0
    amounts = [
        r for r in document["models"][0]["drift"] if r["feature"] == "amount" and r["ks_d"] is not None
    ]
    assert amounts and all(r["ks_d_psi_blind"] is None for r in amounts)
    fired = {(a["rule"], a["scope"].get("feature"), a["severity"]) for a in document["alerts"]}
    assert ("feature-shift", "flag", "critical") in fired
    assert {rule for rule, feature, _ in fired if feature == "amount"} == set()
    assert status == 2
    # The text summary counts the flag's cell as drifted, above the quiet amount.
    main(["--config", str(config), "check", "--at", AT])
    summary = capsys.readouterr().out
    lines = [line.split() for line in summary.splitlines() if line.split()[:1] in (["flag"], ["amount"])]
    assert [(words[0], words[-1]) for words in lines] == [("flag", "2/2"), ("amount", "0/2")]
    # The flag as the score: no rule judges the score by KS D (score-drift is JS), nor does the summary.
    (tmp_path / "score").mkdir()
    scored = tmp_path / "score" / "triage.toml"
    scored.write_text(
        text.replace('score = "score"', 'score = "flag"')
        .replace('path = "store.duckdb"', f'path = "{tmp_path / "score" / "store.duckdb"}"')
        .replace('"logs/', f'"{tmp_path}/logs/')
        .replace('numeric = ["amount", "flag"]', 'numeric = ["amount"]')
    )
    assert main(["--config", str(scored), "ingest"]) == 0
    capsys.readouterr()
    main(["--config", str(scored), "check", "--at", AT])
    score = [
        line.split() for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["__score__"]
    ]
    assert len(score) == 1 and score[0][4] == "0.000" and score[0][-1] == "0/2", score


def test_a_version_no_window_has_enough_rows_of_is_said_to_be_unjudged(tmp_path, capsys):
    """A canary on 5 % of 400 rows a day never reaches min_samples 100 on its own: the summary says
    it is not judged, with its largest window's rows, rather than staying silent about it."""
    (tmp_path / "logs").mkdir()
    rng = np.random.default_rng(5)
    start, canary = datetime(2026, 1, 5, tzinfo=UTC), [0] * DAYS
    with open(tmp_path / "logs" / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for i in range(DAYS * PER_DAY):
            day = i // PER_DAY
            version = "v2" if rng.random() < 0.05 else "v1"
            canary[day] += version == "v2"
            row = {
                "id": f"r{i}",
                "ts": (start + timedelta(days=day, seconds=int(rng.integers(0, 86_400)))).isoformat(),
                "version": version,
                "score": float(rng.beta(2, 5)),
                "latency_ms": 100.0,
                "amount": float(rng.gamma(2.0, 50.0)),
            }
            handle.write(json.dumps(row) + "\n")
    config = tmp_path / "triage.toml"
    config.write_text(BASE.replace('score = "score"\n', 'score = "score"\nversion = "version"\n'))
    assert main(["--config", str(config), "ingest"]) == 0
    capsys.readouterr()
    main(["--config", str(config), "check", "--at", AT])
    text = capsys.readouterr().out
    said = f"  not judged: version v2 — no window holds min_samples 100 of its rows (at most {max(canary)})"
    assert said in text.splitlines() and "version v1 —" not in text
