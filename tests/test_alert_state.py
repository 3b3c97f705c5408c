"""Alert life: transitions, history with evidence, ack and silence surviving a restart, exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta

import duckdb
import pytest

from tests.test_alert_evaluate import DAY, T0, drift_row, model_config
from triage.alerts.evaluate import AlertEvaluation, evaluate_rules
from triage.alerts.state import (
    EXIT_CRITICAL,
    EXIT_OK,
    EXIT_WARNING,
    AlertError,
    AlertStore,
    exit_status,
    transition,
)
from triage.config import AlertRule

RULE = AlertRule(
    name="feature-drift",
    signal="drift.psi",
    where={"segment": "country"},
    warn=0.1,
    critical=0.25,
    for_windows=2,
)


def evaluate_day(day: int, history: list[float | None], segment_value: str = "BR") -> list[AlertEvaluation]:
    """The rule on country=`segment_value`, windows ending with `day`, as of its end (None: few rows)."""
    rows = [
        drift_row(
            day - len(history) + 1 + i,
            0.01 if psi is None else psi,
            segment="country",
            segment_value=segment_value,
            enough_data=psi is not None,
        )
        for i, psi in enumerate(history)
    ]
    return evaluate_rules([RULE], {"drift": rows}, model_config(), T0 + (day + 1) * DAY)


def test_pure_transitions_follow_the_condition():
    at = T0 + 11 * DAY
    (pending,) = evaluate_day(10, [0.01, 0.3])
    alert, event = transition(None, pending, at)
    assert alert is not None and event is not None
    assert (alert.state, event.event, event.from_state, event.to_state) == (
        "pending",
        "pending",
        None,
        "pending",
    )
    assert alert.fired_at is None and alert.started_at == at

    (firing,) = evaluate_day(11, [0.01, 0.3, 0.3])
    alert, event = transition(alert, firing, at + DAY)
    assert alert is not None and event is not None
    assert (alert.state, event.event, alert.severity) == ("firing", "firing", "critical")
    assert alert.fired_at == at + DAY and alert.started_at == at

    (still,) = evaluate_day(12, [0.3, 0.3, 0.3])
    same, event = transition(alert, still, at + 2 * DAY)
    assert event is None and same is not None and same.updated_at == at + 2 * DAY

    (milder,) = evaluate_day(13, [0.3, 0.3, 0.3, 0.15])
    alert, event = transition(same, milder, at + 3 * DAY)
    assert alert is not None and event is not None
    assert (event.event, alert.severity, alert.state) == ("severity", "warning", "firing")

    (unknown,) = evaluate_day(14, [None])
    unchanged, event = transition(alert, unknown, at + 4 * DAY)
    assert unchanged is alert and event is None

    (ok,) = evaluate_day(15, [0.3, 0.01])
    alert, event = transition(alert, ok, at + 5 * DAY)
    assert alert is not None and event is not None
    assert (alert.state, event.event, alert.resolved_at) == ("resolved", "resolved", at + 5 * DAY)
    assert transition(alert, ok, at + 6 * DAY) == (alert, None)


def test_firing_stays_firing_below_for_windows_until_a_window_is_ok():
    (firing,) = evaluate_day(11, [0.3, 0.3])
    alert, _ = transition(None, firing, T0 + 12 * DAY)
    (again,) = evaluate_day(13, [0.3, 0.3, None, 0.3])
    assert again.condition == "firing"
    (one,) = evaluate_day(12, [0.01, 0.3])
    assert one.condition == "pending"
    alert, event = transition(alert, one, T0 + 13 * DAY)
    assert alert is not None and alert.state == "firing" and event is None


def test_store_keeps_state_and_history_with_evidence():
    store = AlertStore(duckdb.connect())
    first = store.record(evaluate_day(10, [0.01, 0.3]), T0 + 11 * DAY)
    assert [a.state for a in first] == ["pending"]
    fingerprint = first[0].fingerprint
    second = store.record(evaluate_day(11, [0.01, 0.3, 0.3]), T0 + 12 * DAY)
    assert [(a.fingerprint, a.state) for a in second] == [(fingerprint, "firing")]
    store.record(evaluate_day(12, [0.3, 0.3, 0.3]), T0 + 13 * DAY)  # no change: no event
    resolved = store.record(evaluate_day(13, [0.3, 0.01]), T0 + 14 * DAY)
    assert [a.state for a in resolved] == ["resolved"]
    assert store.alerts() == [] and [a.state for a in store.alerts(include_resolved=True)] == ["resolved"]
    assert store.record(evaluate_day(14, [0.01, 0.01]), T0 + 15 * DAY) == []

    events = store.history(fingerprint)
    assert [(e.event, e.from_state, e.to_state) for e in events] == [
        ("pending", None, "pending"),
        ("firing", "pending", "firing"),
        ("resolved", "firing", "resolved"),
    ]
    fired = events[1]
    assert fired.at == T0 + 12 * DAY and fired.value == 0.3 and fired.threshold == 0.25
    assert (fired.window_start, fired.window_end) == (T0 + 11 * DAY, T0 + 12 * DAY)
    assert fired.n == 5000 and fired.severity == "critical"
    assert fired.evidence["run"] == 2 and fired.evidence["for_windows"] == 2
    assert store.history(limit=1) == events[-1:]


def test_re_evaluation_updates_one_alert_per_scope():
    store = AlertStore(duckdb.connect())
    for day in range(10, 15):
        store.record(
            evaluate_day(day, [0.3, 0.3]) + evaluate_day(day, [0.3, 0.3], "US"), T0 + (day + 1) * DAY
        )
    alerts = store.alerts()
    assert sorted(dict(a.scope)["segment_value"] for a in alerts) == ["BR", "US"]
    assert all(a.updated_at == T0 + 15 * DAY and a.fired_at == T0 + 11 * DAY for a in alerts)


def test_an_evaluation_of_the_past_shows_the_alerts_of_then_and_writes_nothing():
    store = AlertStore(duckdb.connect())
    store.record(evaluate_day(10, [0.01, 0.3]), T0 + 11 * DAY)  # pending
    store.record(evaluate_day(11, [0.01, 0.3, 0.3]), T0 + 12 * DAY)  # firing
    # Before anything crossed there was no alert, whatever a later evaluation found.
    assert store.record(evaluate_day(5, [0.01, 0.01]), T0 + 6 * DAY) == []
    # Half a day after it went pending: pending since then, not yet firing.
    (then,) = store.record(evaluate_day(10, [0.01, 0.3]), T0 + 11 * DAY + DAY / 2)
    assert (then.state, then.started_at, then.fired_at) == ("pending", T0 + 11 * DAY, None)
    assert then.updated_at == T0 + 11 * DAY + DAY / 2
    (alert,) = store.alerts()
    assert (alert.state, alert.updated_at, alert.fired_at) == ("firing", T0 + 12 * DAY, T0 + 12 * DAY)
    assert [e.event for e in store.history()] == ["pending", "firing"]
    # A second episode: as of its pending half day, it started with it, not with the first.
    store.record(evaluate_day(13, [0.3, 0.01]), T0 + 14 * DAY)  # resolved
    store.record(evaluate_day(15, [0.01, 0.3]), T0 + 16 * DAY)  # pending again
    store.record(evaluate_day(16, [0.01, 0.3, 0.3]), T0 + 17 * DAY)  # firing
    (then,) = store.record(evaluate_day(15, [0.01, 0.3]), T0 + 16 * DAY + DAY / 2)
    assert (then.state, then.started_at, then.fired_at) == ("pending", T0 + 16 * DAY, None)


def test_ack_and_silence_rules():
    store = AlertStore(duckdb.connect())
    (alert,) = store.record(evaluate_day(11, [0.3, 0.3]), T0 + 12 * DAY)
    acked = store.acknowledge(
        alert.fingerprint[:6], "ana", "rolling back v2", T0 + 12 * DAY + timedelta(hours=1)
    )
    assert acked.ack is not None and acked.ack.by == "ana"
    assert acked.status(T0 + 13 * DAY) == "acknowledged"
    with pytest.raises(AlertError, match="needs who"):
        store.acknowledge(alert.fingerprint, "ana", "  ", T0 + 13 * DAY)
    with pytest.raises(AlertError, match="no alert"):
        store.acknowledge("ffff", "ana", "x", T0 + 13 * DAY)
    later = T0 + 12 * DAY + timedelta(hours=2)
    silenced = store.silence(alert.fingerprint, T0 + 14 * DAY, "ana", "deploy window", later)
    assert silenced.status(T0 + 13 * DAY) == "silenced" and silenced.status(T0 + 14 * DAY) == "acknowledged"
    # resolving ends the episode and its acknowledgement; a new episode starts unacknowledged
    store.record(evaluate_day(12, [0.3, 0.01]), T0 + 13 * DAY)
    with pytest.raises(AlertError, match="only active alerts"):
        store.acknowledge(alert.fingerprint, "ana", "x", T0 + 13 * DAY)
    (again,) = store.record(evaluate_day(15, [0.3, 0.3]), T0 + 16 * DAY)
    assert again.ack is None and again.state == "firing"
    events = [e.event for e in store.history(alert.fingerprint)]
    assert events == ["firing", "acknowledged", "silenced", "resolved", "firing"]


def test_fingerprint_prefixes():
    store = AlertStore(duckdb.connect())
    values = [
        "US",
        "GB",
        "DE",
        "BR",
        "IN",
        "FR",
        "MX",
        "JP",
        "CA",
        "AU",
        "ES",
        "IT",
        "NL",
        "PL",
        "SE",
        "NO",
        "KR",
    ]
    evaluations = [e for value in values for e in evaluate_day(11, [0.3, 0.3], value)]
    alerts = store.record(evaluations, T0 + 12 * DAY)
    firsts = [a.fingerprint[0] for a in alerts]
    shared = next(c for c in firsts if firsts.count(c) > 1)  # 17 alerts, 16 hex digits
    with pytest.raises(AlertError, match="ambiguous"):
        store.resolve(shared)
    assert store.resolve(alerts[0].fingerprint.upper()) == alerts[0]
    with pytest.raises(AlertError, match="no alert"):
        store.resolve("  ")


_READ_BACK = """
import json, sys
from datetime import datetime
import duckdb
from triage.alerts.state import AlertStore
con = duckdb.connect(sys.argv[1], read_only=True)
now = datetime.fromisoformat(sys.argv[2])
print(json.dumps([a.to_json(now) for a in AlertStore(con, read_only=True).alerts()]))
"""


def test_ack_and_silence_survive_a_restart(tmp_path):
    path = tmp_path / "store.duckdb"
    con = duckdb.connect(str(path))
    store = AlertStore(con)
    (alert,) = store.record(evaluate_day(11, [0.3, 0.3]), T0 + 12 * DAY)
    store.acknowledge(alert.fingerprint, "ana", "on it", T0 + 12 * DAY)
    store.silence(alert.fingerprint, T0 + 20 * DAY, "ana", "known issue", T0 + 12 * DAY)
    con.close()

    reopened = AlertStore(duckdb.connect(str(path)))
    (same,) = reopened.alerts()
    assert same.ack is not None and (same.ack.by, same.ack.note) == ("ana", "on it")
    assert same.silence is not None and same.silence.until == T0 + 20 * DAY
    reopened.con.close()

    now = (T0 + 13 * DAY).isoformat()
    out = subprocess.run(
        [sys.executable, "-c", _READ_BACK, str(path), now], capture_output=True, text=True, check=True
    )
    (document,) = json.loads(out.stdout)
    assert document["fingerprint"] == alert.fingerprint
    assert document["status"] == "silenced"
    assert document["acknowledged"] == {"by": "ana", "note": "on it", "at": "2026-01-13T00:00:00Z"}
    assert document["silenced_until"] == "2026-01-21T00:00:00Z"


def test_a_read_only_store_without_alert_tables_has_no_alerts(tmp_path):
    path = tmp_path / "store.duckdb"
    duckdb.connect(str(path)).close()
    store = AlertStore(duckdb.connect(str(path), read_only=True), read_only=True)
    assert store.alerts() == [] and store.history() == []


def test_exit_status_is_the_worst_firing_alert_not_silenced():
    store = AlertStore(duckdb.connect())
    now = T0 + 12 * DAY
    warning = store.record(evaluate_day(11, [0.15, 0.15]), now)
    assert exit_status(warning, now) == EXIT_WARNING
    critical = store.record(evaluate_day(11, [0.3, 0.3], "US"), now)
    assert exit_status(warning + critical, now) == EXIT_CRITICAL
    store.silence(critical[0].fingerprint, now + DAY, "ana", None, now)
    assert exit_status(store.alerts(), now) == EXIT_WARNING
    pending = store.record(evaluate_day(11, [0.01, 0.3], "JP"), now)
    assert exit_status(pending, now) == EXIT_OK
