"""The audit log: append-only records, crash detection, the cooldown lock, and the DuckDB copy."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import duckdb

from triage.runbooks import audit as outcomes
from triage.runbooks.audit import AUDIT_TABLE, AuditLog, load_into_duckdb
from triage.runbooks.redact import Redactor

SECRET = "s3cr3t-value-xyz"
REDACT = Redactor((SECRET,))


def begin(log: AuditLog, key: str = "rb#step@fp", cooldown_s: float | None = 60.0, **extra):
    fields = {
        "runbook": "rb",
        "runbook_sha256": "ab" * 32,
        "step": "step",
        "safety": "reversible",
        "alert": "fp",
        "dedupe_key": key,
        "operator": "me",
        "params": {"name": "fraud"},
        "request": {"method": "PATCH", "url": "http://h/x", "headers": {"Authorization": "Bearer ***"}},
        "redactor": REDACT,
        "cooldown_s": cooldown_s,
    }
    return log.begin(**(fields | extra))


def finish(log: AuditLog, entry_id: str, outcome: str = outcomes.OK, applied: bool = True) -> None:
    log.finish(
        entry_id,
        outcome=outcome,
        status=200,
        attempts=1,
        verified=True,
        before_state={"previous_percent": 10},
        after_state={"captured": {}, "observed": {"percent": 0}},
        message=f"done with {SECRET}",
        may_have_applied=applied,
        redactor=REDACT,
    )


def test_before_and_after_records_merge_into_one_entry_and_secrets_are_redacted(tmp_path):
    log = AuditLog(tmp_path / "a" / "audit.jsonl")
    entry_id, blocking = begin(log, params={"name": SECRET})
    assert blocking is None and entry_id
    finish(log, entry_id)
    lines = log.path.read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["before", "after"]
    assert SECRET not in log.path.read_text()
    (entry,) = log.read().entries
    assert entry.outcome == outcomes.OK and entry.status == 200 and entry.verified is True
    assert entry.params == {"name": "***"} and entry.message == "done with ***"
    assert entry.before_state == {"previous_percent": 10}
    assert entry.finished_at is not None and entry.finished_at >= entry.started_at


def test_a_before_without_after_is_unknown_once_its_process_is_gone(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    entry_id, _ = begin(log)
    (entry,) = log.read().entries
    assert entry.outcome == outcomes.IN_PROGRESS  # this process is alive
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    record = json.loads(log.path.read_text())
    record |= {"pid": int(dead.stdout), "id": "dead"}
    with open(log.path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    entries = {e.id: e for e in log.read().entries}
    assert entries["dead"].outcome == outcomes.UNKNOWN
    assert entries["dead"].outcome_text == "outcome unknown"
    assert [e.id for e in log.unfinished()] == ["dead"]
    assert entries[entry_id].outcome == outcomes.IN_PROGRESS


def test_cooldown_check_and_write_are_one_step(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    first, _ = begin(log)
    assert first is not None
    finish(log, first)
    again, blocking = begin(log)
    assert again is None and blocking is not None and blocking.id == first
    other_alert, _ = begin(log, key="rb#step@other")
    assert other_alert is not None
    read_only, _ = begin(log, cooldown_s=None)
    assert read_only is not None


def test_requests_that_certainly_did_not_apply_do_not_start_a_cooldown(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    entry_id, _ = begin(log)
    assert entry_id is not None
    finish(log, entry_id, outcome=outcomes.CONFLICT, applied=False)
    again, blocking = begin(log)
    assert again is not None and blocking is None


def test_cooldown_counts_from_the_start_of_the_earlier_run(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    entry_id, _ = begin(log)
    assert entry_id is not None
    finish(log, entry_id)
    record = json.loads(log.path.read_text().splitlines()[0])
    old = (datetime.now(UTC) - timedelta(seconds=120)).isoformat()
    log.path.write_text(json.dumps(record | {"ts": old}) + "\n" + log.path.read_text().splitlines()[1] + "\n")
    again, _ = begin(log, cooldown_s=60.0)
    assert again is not None


def test_a_torn_last_line_is_counted_and_the_next_record_starts_on_its_own_line(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    entry_id, _ = begin(log)
    with open(log.path, "a", encoding="utf-8") as handle:
        handle.write('{"kind": "after", "id": "')  # killed mid-write
    assert entry_id is not None
    finish(log, entry_id)
    read = log.read()
    assert read.malformed_lines == 1
    assert [e.outcome for e in read.entries] == [outcomes.OK]


def test_notes_are_entries_that_never_block(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    log.note(
        runbook="rb",
        runbook_sha256="00",
        step="step",
        safety="reversible",
        alert="fp",
        dedupe_key="rb#step@fp",
        operator="me",
        params={},
        outcome=outcomes.NOOP,
        before_state={},
        message="already there",
        redactor=REDACT,
    )
    (entry,) = log.read().entries
    assert entry.outcome == outcomes.NOOP and not entry.may_have_applied
    assert begin(log)[0] is not None


def test_load_into_duckdb(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    done, _ = begin(log)
    assert done is not None
    finish(log, done)
    begin(log, key="rb#step@two")
    record = json.loads(log.path.read_text().splitlines()[-1])
    with open(log.path, "a", encoding="utf-8") as handle:  # a run from a process that died
        handle.write(json.dumps(record | {"id": "gone", "pid": 2**22 + 12345}) + "\n")
    connection = duckdb.connect()
    assert load_into_duckdb(connection, log.path) == 3
    rows = connection.execute(
        "SELECT outcome, status, verified, method, before_state_json, started_at "
        f"FROM {AUDIT_TABLE} ORDER BY started_at"
    ).fetchall()
    assert [r[0] for r in rows] == ["ok", "in_progress", "unknown"]
    assert rows[0][1:4] == (200, True, "PATCH")
    assert json.loads(rows[0][4]) == {"previous_percent": 10}
    assert isinstance(rows[0][5], datetime) and rows[0][5].tzinfo is None
    assert load_into_duckdb(connection, tmp_path / "missing.jsonl") == 0  # replaced, now empty
    assert connection.execute(f"SELECT count(*) FROM {AUDIT_TABLE}").fetchone() == (0,)
