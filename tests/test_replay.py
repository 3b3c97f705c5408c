"""Replay: alerts evaluated as of a moving clock, on the bundled generated world (fixtures/demo-small).

The checks are independent of the replay code: label counts come straight from the raw label log
with DuckDB, incident onsets from the generator's manifest, window boundaries from DuckDB's
`time_bucket`, and a rule set that differs only in persistence must fire exactly that many steps later.
"""

from __future__ import annotations

import argparse
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from triage.alerts.rules import value_text
from triage.cli import main
from triage.commands.argtypes import speed_arg
from triage.commands.replay_cmd import _scope, _span
from triage.config import ConfigError, load_config, load_rules, parse_window
from triage.engine import Engine
from triage.generate import read_manifest
from triage.printable import columns
from triage.replay import CANDIDATE, CURRENT, Replayer, clock_times, run_replay
from triage.store import Store
from triage.tui.clock import ReplayClock, speed_text

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "demo-small"
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("replay") / "world"
    shutil.copytree(FIXTURE, folder)
    config = load_config(folder / "triage.toml")
    with Store.open(config.store_path) as store:
        store.ingest(config)
    return folder


@pytest.fixture(scope="module")
def document(world: Path) -> dict[str, Any]:
    config = load_config(world / "triage.toml")
    with Store.open(config.store_path, read_only=True) as store, Engine(config, store) as engine:
        return run_replay(config, engine).to_json()


def test_replay_starts_after_the_reference_and_steps_by_the_window(document: dict[str, Any], world: Path):
    manifest = read_manifest(world)
    assert document["from"] == "2026-01-05T00:00:00Z"  # the reference ends there (fixture config)
    assert document["step_s"] == 86400
    assert manifest.end - timedelta(days=1) <= datetime.fromisoformat(document["to"]) <= manifest.end
    events = document["rule_sets"][CURRENT]["timeline"]
    times = [datetime.fromisoformat(e["at"]) for e in events]
    assert times == sorted(times) and times
    start = datetime.fromisoformat(document["from"])
    assert all(
        (t - start) % DAY == timedelta(0) or t == datetime.fromisoformat(document["to"]) for t in times
    )


def test_no_alert_uses_a_label_from_the_future(document: dict[str, Any], world: Path):
    """Every labelled evidence counts at most the labels that had arrived by the clock time."""
    con = duckdb.connect()
    labels = str(world / "logs" / "labels" / "*.jsonl")
    predictions = str(world / "logs" / "predictions" / "*.parquet")
    checked = 0
    for event in document["rule_sets"][CURRENT]["timeline"]:
        if event["n_labeled"] is None or event["window"]["start"] is None:
            continue
        at = datetime.fromisoformat(event["at"])
        start = datetime.fromisoformat(event["window"]["start"])
        end = datetime.fromisoformat(event["window"]["end"])
        arrived = con.execute(
            f"""SELECT count(DISTINCT p.request_id) FROM read_parquet('{predictions}') p
                JOIN read_json_auto('{labels}') l USING (request_id)
                WHERE p.ts >= ? AND p.ts < ? AND p.ts <= ? AND l.labeled_at::TIMESTAMPTZ <= ?""",
            [start, end, at, at],
        ).fetchone()
        assert arrived is not None
        assert event["n_labeled"] <= arrived[0], event
        checked += 1
    assert checked, "the fixture's label-based alerts should appear in the replay"


def test_incidents_fire_after_their_onset_on_their_signal(document: dict[str, Any], world: Path):
    manifest = read_manifest(world)
    firings = [e for e in document["rule_sets"][CURRENT]["timeline"] if e["to_state"] == "firing"]
    for incident in manifest.incidents:
        wanted = {
            key: value
            for key in ("version", "segment", "segment_value", "feature")
            if (value := getattr(incident.scope, key)) is not None
        }
        hits = [
            e
            for e in firings
            if e["signal"] == incident.signal and all(e["scope"].get(k) == v for k, v in wanted.items())
        ]
        assert hits, f"{incident.id} never fired on {incident.signal} {wanted}"
        first = min(datetime.fromisoformat(e["at"]) for e in hits)
        assert first >= incident.onset, f"{incident.id} fired at {first}, before its onset {incident.onset}"


def test_a_replay_writes_no_alert_state(world: Path):
    config = load_config(world / "triage.toml")
    with Store.open(config.store_path, read_only=True) as store:
        tables = {
            row[0] for row in store.connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
        }
    assert "_triage_alert_events" not in tables


def test_evaluating_ahead_in_threads_changes_nothing(document: dict[str, Any], world: Path):
    """`run_replay` evaluates later clock times in worker threads (sharing one engine and its
    memo) while judging the current one; stepping one time after another gives the same timeline."""
    config = load_config(world / "triage.toml")
    start, end = (datetime.fromisoformat(document[key]) for key in ("from", "to"))
    with Store.open(config.store_path, read_only=True) as store, Engine(config, store) as engine:
        replayer = Replayer(engine, config.models)
        steps = [replayer.step(at) for at in clock_times(start, end, DAY)]
    assert len(steps) == document["steps"]
    timeline = document["rule_sets"][CURRENT]["timeline"]
    assert timeline and replayer.tracks[CURRENT].timeline() == timeline


def _rules_file(folder: Path, for_windows: int) -> Path:
    path = folder / f"rules-{for_windows}.toml"
    path.write_text(
        f"""[[model]]
name = "fraud"

[[model.alert]]
name = "feature-drift"
signal = "drift.psi"
where = {{ feature = "amount", segment = "country", segment_value = "BR" }}
warn = 0.1
critical = 0.25
for_windows = {for_windows}
""",
        encoding="utf-8",
    )
    return path


def test_back_testing_a_slower_rule_set_fires_exactly_later(world: Path, tmp_path: Path):
    config = load_config(world / "triage.toml")
    one = load_rules(_rules_file(tmp_path, 1), config)
    three = load_rules(_rules_file(tmp_path, 3), config)
    with Store.open(config.store_path, read_only=True) as store, Engine(config, store) as engine:
        span = {"start": datetime(2026, 1, 6, tzinfo=UTC), "end": datetime(2026, 1, 11, tzinfo=UTC)}
        base = run_replay(config, engine, candidate=one, **span).to_json()
        slow = run_replay(config, engine, candidate=three, **span).to_json()
    fired = {row["fingerprint"]: row for row in base["comparison"] if row["candidate_fired_at"]}
    later = {row["fingerprint"]: row for row in slow["comparison"] if row["candidate_fired_at"]}
    (fingerprint,) = [
        f for f, row in fired.items() if row["rule"] == "feature-drift" and row["verdict"] != "only current"
    ]
    at_one = datetime.fromisoformat(fired[fingerprint]["candidate_fired_at"])
    at_three = datetime.fromisoformat(later[fingerprint]["candidate_fired_at"])
    # Two more consecutive windows must cross: two more daily steps (the BR drift persists).
    assert at_three - at_one == 2 * DAY
    # Rules the candidate does not have: fired by the current set only.
    verdicts = {row["verdict"] for row in slow["comparison"]}
    assert "only current" in verdicts
    assert slow["rule_sets"][CANDIDATE]["rules"] == {"fraud": ["feature-drift"]}


def test_a_bad_rules_file_names_file_key_and_expectation(world: Path, tmp_path: Path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[model]]\nname = "fraud"\n[[model.alert]]\nname = "x"\nsignal = "drift.psi"\nwarn = "high"\n'
    )
    config = load_config(world / "triage.toml")
    with pytest.raises(ConfigError, match=r"bad\.toml: model\[0\]\.alert\[0\]\.warn: expected a number"):
        load_rules(bad, config)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(
        '[[model]]\nname = "churn"\n[[model.alert]]\nname = "x"\nsignal = "drift.psi"\nwarn = 1\n'
    )
    status = main(["--config", str(world / "triage.toml"), "replay", "--headless", "--rules", str(unknown)])
    err = capsys.readouterr().err
    assert status == 2 and "unknown.toml: model[0].name: expected one of the configured models" in err
    assert "Traceback" not in err
    # Each model table's mistake, one line each.
    unknown.write_text(unknown.read_text() + bad.read_text())
    status = main(["--config", str(world / "triage.toml"), "replay", "--headless", "--rules", str(unknown)])
    lines = capsys.readouterr().err.splitlines()
    assert status == 2
    assert [line.split(": ")[2] for line in lines] == ["model[0].name", "model[1].alert[0].warn"]


def test_headless_text_says_why_a_change_was_not_a_crossing(world: Path, capsys):
    """A resolve while the value is above the threshold (stale evidence, an effect floor, BH) names
    its reason, as the JSON's evidence note does."""
    args = ["--config", str(world / "triage.toml"), "replay", "--headless"]
    assert main([*args, "--json"]) == 0
    events = [
        e for track in json.loads(capsys.readouterr().out)["rule_sets"].values() for e in track["timeline"]
    ]
    notes = [e["evidence"]["note"] for e in events if e["evidence"].get("note")]
    assert notes
    assert main(args) == 0
    text = capsys.readouterr().out
    assert all(f"  ({note})" in text for note in notes)
    # The value column starts at one terminal column on every line, however long the scope.
    lines = [line for line in text.splitlines() if line.startswith("  20")]
    assert len(lines) == len(events)
    starts = {
        columns(line[: line.rindex(f" {value_text(e['signal'], e['value'])} vs ") + 1])
        for line, e in zip(lines, events, strict=True)
    }
    assert len(starts) == 1 and max(len(_scope(e["scope"])) for e in events) > 40


def test_headless_json_from_the_command_line(world: Path, capsys):
    status = main(
        [
            "--config",
            str(world / "triage.toml"),
            "replay",
            "--headless",
            "--json",
            "--from",
            "2026-01-08",
            "--to",
            "2026-01-10",
            "--step",
            "12h",
        ]
    )
    document = json.loads(capsys.readouterr().out)
    assert status == 0
    assert document["steps"] == 5 and document["step_s"] == 43200
    assert document["from"] == "2026-01-08T00:00:00Z" and document["to"] == "2026-01-10T00:00:00Z"
    assert set(document["rule_sets"]) == {CURRENT}
    assert document["rule_sets"][CURRENT]["judged_cells"] > 0
    # Within one daily window no window ends: the cells judged before the replay do not count.
    argv = ["--config", str(world / "triage.toml"), "replay", "--headless", "--json"]
    assert main([*argv, "--from", "2026-01-08T01:00Z", "--to", "2026-01-08T23:00Z"]) == 0
    assert json.loads(capsys.readouterr().out)["rule_sets"][CURRENT]["judged_cells"] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["replay", "--json"], "--json needs --headless"),
        (["replay", "--headless", "--from", "2026-01-10", "--to", "2026-01-08"], "--to is before --from"),
        (["replay"], "needs a terminal"),
    ],
)
def test_replay_mistakes_are_one_line(world: Path, capsys, argv: list[str], message: str):
    status = main(["--config", str(world / "triage.toml"), *argv])
    err = capsys.readouterr().err
    assert status == 2 and message in err and "Traceback" not in err


def test_clock_times_cover_the_span_and_end_exactly():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    times = list(clock_times(start, start + timedelta(hours=25), timedelta(hours=12)))
    assert times == [
        start,
        start + timedelta(hours=12),
        start + timedelta(hours=24),
        start + timedelta(hours=25),
    ]
    assert list(clock_times(start, start, DAY)) == [start]


@pytest.mark.parametrize("size", ["1h", "6h", "1d", "2d", "1w", "1mo", "3mo"])
def test_window_start_of_matches_duckdb_time_bucket(size: str):
    window = parse_window(size)
    con = duckdb.connect()
    interval = window.duckdb_interval
    for at in (datetime(2026, 1, 7, 13, 5, tzinfo=UTC), datetime(2025, 12, 31, 23, 59, tzinfo=UTC)):
        naive = at.replace(tzinfo=None)
        row = con.execute(f"SELECT time_bucket({interval}, ?::TIMESTAMP)", [naive]).fetchone()
        assert row is not None
        assert window.start_of(at) == row[0].replace(tzinfo=UTC)
        assert window.start_of(at) <= at < window.end_of(window.start_of(at))


def test_replay_clock_moves_at_its_speed_and_stays_in_range():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = ReplayClock(start=start, end=start + DAY, speed=3600.0)
    assert clock.mode == "replay" and not clock.live and clock.now() == start
    assert clock.advance(timedelta(seconds=2)) == start + timedelta(hours=2)
    assert clock.advance(timedelta(days=1)) == start + DAY and clock.finished
    assert clock.seek(start - DAY) == start
    assert clock.faster() == 4 * 3600.0 and clock.slower() == 3600.0 and clock.slower() == 900.0
    assert [speed_text(s) for s in (60.0, 3600.0, 86400.0, 5.0)] == ["1m/s", "1h/s", "1d/s", "5x"]
    # A tick stops at a silence's threshold rather than step over it, then goes on at its speed.
    stops = (start + timedelta(hours=5), start + timedelta(hours=6))
    clock = ReplayClock(start=start, end=start + DAY, speed=86400.0, stops=stops)
    assert [clock.advance(timedelta(seconds=1)) for _ in range(4)] == [*stops, start + DAY, start + DAY]


def test_a_bad_speed_is_a_usage_error(world: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(world / "triage.toml"), "replay", "--speed", "fast"])
    assert exit_info.value.code == 2
    assert "expected a speed like 60x or 1h/s, got 'fast'" in capsys.readouterr().err


def test_speed_arguments():
    assert speed_arg("60x") == 60.0 and speed_arg("1h/s") == 3600.0 and speed_arg("30m/s") == 1800.0
    for bad in ("0x", "fast", "1h", "-2x"):
        with pytest.raises(argparse.ArgumentTypeError):
            speed_arg(bad)


def test_a_feed_outage_inside_a_daily_step_fires_and_resolves_at_its_own_times(tmp_path: Path, capsys):
    """Predictions every 2 min for three days but none from day 2 10:00 to 15:00, `stale_after =
    "1h"`, 1-day windows: the daily steps (00:00) never see the silence. The replay also stops
    where the feed went silent: `feed-stale` fires at the last prediction + 1 h, turns critical at
    + 4 h and resolves at the first prediction after the outage (both read from the raw times)."""
    start = datetime(2026, 3, 2, tzinfo=UTC)
    outage = (start + timedelta(days=1, hours=10), start + timedelta(days=1, hours=15))
    stamps = [start + timedelta(minutes=2 * i) for i in range(3 * 24 * 30)]
    stamps = [at for at in stamps if not outage[0] < at < outage[1]]
    with open(tmp_path / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for i, at in enumerate(stamps):
            handle.write(json.dumps({"id": f"p{i}", "ts": at.isoformat(), "score": 0.5}) + "\n")
    config = tmp_path / "triage.toml"
    config.write_text(
        '[store]\npath = "store.duckdb"\n\n[[model]]\nname = "feed"\npredictions = "predictions.jsonl"\n'
        'window = "1d"\nmin_samples = 20\nstale_after = "1h"\n\n'
        '[model.columns]\nid = "id"\ntimestamp = "ts"\nscore = "score"\n\n'
        '[model.reference]\nstart = "2026-03-02"\nend = "2026-03-03"\n\n'
        # A second model with nothing ingested yet: no stops of its own, and no crash.
        '[[model]]\nname = "later"\npredictions = "later/*.jsonl"\nstale_after = "1h"\n\n'
        '[model.columns]\nid = "id"\ntimestamp = "ts"\nscore = "score"\n\n'
        '[model.reference]\nversion = "v1"\ndays = 1\n',
        encoding="utf-8",
    )
    assert main(["--config", str(config), "ingest"]) == 2  # `later` has no logs yet
    capsys.readouterr()
    assert main(["--config", str(config), "replay", "--headless", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    last = max(at for at in stamps if at <= outage[0])
    back = min(at for at in stamps if at >= outage[1])
    events = [
        (event["at"], event["event"], event["severity"])
        for event in document["rule_sets"][CURRENT]["timeline"]
        if event["rule"] == "feed-stale"
    ]

    def z(at: datetime) -> str:
        return at.isoformat().replace("+00:00", "Z")

    assert events == [
        (z(last + timedelta(hours=1)), "firing", "warning"),
        (z(last + timedelta(hours=4)), "severity", "critical"),
        (z(back), "resolved", "critical"),
    ]
    regular = len(list(clock_times(start + DAY, max(stamps), DAY)))
    assert document["silence_steps"] == 3 and document["steps"] == regular + 3
    # The interactive replay's clock stops at the same times.
    span = _span(load_config(config), argparse.Namespace(model=None, start=None, end=None), None)
    assert span[2] == (last + timedelta(hours=1), last + timedelta(hours=4), back)
