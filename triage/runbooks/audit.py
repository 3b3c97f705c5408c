"""The append-only audit log of runbook steps: JSON Lines on disk, the source of truth.

Each step execution writes a `before` record (who, when, runbook and its hash, step, alert
fingerprint, redacted request) that is flushed and fsync'd before the HTTP call, and an `after`
record (status, verification, captured state) once it is over. A `before` with no `after` is a
run that is still going (its process is alive) or whose outcome is unknown (it crashed or was
killed). A `note` record is a step that was looked at but not run (already in the wanted state).
Writers hold an exclusive lock while they check the cooldown and append, so two processes cannot
both start the same step. `load_into_duckdb` copies the log into the store's `_triage_audit`.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from triage.runbooks.redact import Redactor

AUDIT_TABLE = "_triage_audit"
RECORD_VERSION = 1

# Outcomes of an entry. A `before` with no `after` is IN_PROGRESS or UNKNOWN.
OK = "ok"
NOOP = "noop"
VERIFY_FAILED = "verify_failed"
CONFLICT = "conflict"
REJECTED = "rejected"
FAILED = "failed"
REFUSED = "refused"
IN_PROGRESS = "in_progress"
UNKNOWN = "unknown"


def _now() -> datetime:
    return datetime.now(UTC)


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (Linux), so a recycled pid is not mistaken for ours."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(host: str, pid: int, started: str | None) -> bool:
    if host != socket.gethostname():
        return True  # another machine's run: we cannot tell, so do not call it unknown
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or _process_start(pid) == started


@dataclass(frozen=True)
class AuditEntry:
    """One step execution: its `before` record merged with its `after` record, if any."""

    id: str
    started_at: datetime
    operator: str
    host: str
    pid: int
    runbook: str
    runbook_sha256: str
    step: str
    safety: str
    alert: str
    dedupe_key: str
    params: Mapping[str, Any] = field(default_factory=dict)
    request: Mapping[str, Any] = field(default_factory=dict)
    outcome: str = UNKNOWN
    finished_at: datetime | None = None
    status: int | None = None
    attempts: int = 0
    verified: bool | None = None
    before_state: Mapping[str, Any] = field(default_factory=dict)
    after_state: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""
    may_have_applied: bool = True  # False only when the request was certainly not applied
    clock_at: datetime | None = None  # the monitored world's time when it ran, if not the wall clock

    @property
    def outcome_text(self) -> str:
        """The outcome as shown to people: a crash between the two records is "outcome unknown"."""
        return "outcome unknown" if self.outcome == UNKNOWN else self.outcome.replace("_", " ")


@dataclass(frozen=True)
class AuditLogRead:
    """Everything in the log, oldest first, and how many lines could not be parsed."""

    entries: tuple[AuditEntry, ...]
    malformed_lines: int = 0


class AuditLog:
    """Append-only JSON Lines at `path`; each record is flushed and fsync'd before returning."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[TextIO]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        with open(self.path, "a+", encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                if created:
                    directory = os.open(self.path.parent, os.O_RDONLY)
                    try:
                        os.fsync(directory)
                    finally:
                        os.close(directory)
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @staticmethod
    def _append(handle: TextIO, record: Mapping[str, Any], redactor: Redactor) -> None:
        line = redactor.text(json.dumps(redactor.value(record), sort_keys=True, default=str))
        handle.seek(0, os.SEEK_END)
        if handle.tell() > 0:
            handle.seek(handle.tell() - 1)
            if handle.read(1) != "\n":  # a writer was killed mid-line: never glue onto it
                handle.write("\n")
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())

    def begin(
        self,
        *,
        runbook: str,
        runbook_sha256: str,
        step: str,
        safety: str,
        alert: str,
        dedupe_key: str,
        operator: str,
        params: Mapping[str, Any],
        request: Mapping[str, Any],
        redactor: Redactor,
        cooldown_s: float | None,
        clock_at: datetime | None = None,
    ) -> tuple[str | None, AuditEntry | None]:
        """Write the `before` record and return its id — unless, with `cooldown_s`, an entry with
        the same dedupe key that may have applied started less than `cooldown_s` ago: then
        nothing is written and that entry is returned. Atomic across processes."""
        with self._locked() as handle:
            if cooldown_s is not None:
                now = _now()
                handle.seek(0)
                for entry in reversed(_parse(handle.read())[0]):
                    recent = (now - entry.started_at).total_seconds() < cooldown_s
                    if entry.dedupe_key == dedupe_key and recent and entry.may_have_applied:
                        return None, entry
            entry_id = uuid.uuid4().hex
            pid = os.getpid()
            record = {
                "v": RECORD_VERSION,
                "kind": "before",
                "id": entry_id,
                "ts": _now().isoformat(),
                "operator": operator,
                "host": socket.gethostname(),
                "pid": pid,
                "pid_start": _process_start(pid),
                "runbook": runbook,
                "runbook_sha256": runbook_sha256,
                "step": step,
                "safety": safety,
                "alert": alert,
                "dedupe_key": dedupe_key,
                "params": dict(params),
                "request": dict(request),
                **_clock(clock_at),
            }
            self._append(handle, record, redactor)
            return entry_id, None

    def finish(
        self,
        entry_id: str,
        *,
        outcome: str,
        status: int | None,
        attempts: int,
        verified: bool | None,
        before_state: Mapping[str, Any],
        after_state: Mapping[str, Any],
        message: str,
        may_have_applied: bool,
        redactor: Redactor,
    ) -> None:
        """Write the `after` record of the entry `entry_id`."""
        record = {
            "v": RECORD_VERSION,
            "kind": "after",
            "id": entry_id,
            "ts": _now().isoformat(),
            "outcome": outcome,
            "status": status,
            "attempts": attempts,
            "verified": verified,
            "before_state": dict(before_state),
            "after_state": dict(after_state),
            "message": message,
            "may_have_applied": may_have_applied,
        }
        with self._locked() as handle:
            self._append(handle, record, redactor)

    def note(
        self,
        *,
        runbook: str,
        runbook_sha256: str,
        step: str,
        safety: str,
        alert: str,
        dedupe_key: str,
        operator: str,
        params: Mapping[str, Any],
        outcome: str,
        before_state: Mapping[str, Any],
        message: str,
        redactor: Redactor,
        clock_at: datetime | None = None,
    ) -> None:
        """Record a step that was checked but not sent (e.g. its verified state already held)."""
        record = {
            "v": RECORD_VERSION,
            "kind": "note",
            "id": uuid.uuid4().hex,
            "ts": _now().isoformat(),
            "operator": operator,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "runbook": runbook,
            "runbook_sha256": runbook_sha256,
            "step": step,
            "safety": safety,
            "alert": alert,
            "dedupe_key": dedupe_key,
            "params": dict(params),
            "outcome": outcome,
            "before_state": dict(before_state),
            "message": message,
            **_clock(clock_at),
        }
        with self._locked() as handle:
            self._append(handle, record, redactor)

    def read(self) -> AuditLogRead:
        """Every entry, oldest first; unparseable lines (a torn last write) are counted, not fatal."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return AuditLogRead(())
        entries, malformed = _parse(text)
        return AuditLogRead(tuple(entries), malformed)

    def unfinished(self) -> list[AuditEntry]:
        """Entries whose outcome is unknown: a `before` with no `after`, its process gone."""
        return [entry for entry in self.read().entries if entry.outcome == UNKNOWN]

    def last_applied(self, dedupe_key: str) -> AuditEntry | None:
        """The latest entry with this key that succeeded or may have applied, for undo."""
        for entry in reversed(self.read().entries):
            if entry.dedupe_key == dedupe_key and entry.outcome in (OK, VERIFY_FAILED):
                return entry
        return None


def _clock(clock_at: datetime | None) -> dict[str, str]:
    """The `clock_ts` field: the monitored world's time when the step ran, where it is not now
    (a demo's simulated clock); the Timeline and reports place the step there."""
    return {} if clock_at is None else {"clock_ts": clock_at.isoformat()}


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _entry(before: Mapping[str, Any], after: Mapping[str, Any] | None) -> AuditEntry:
    started_at = _time(before["ts"])
    entry = AuditEntry(
        id=str(before["id"]),
        started_at=started_at,
        operator=str(before.get("operator", "")),
        host=str(before.get("host", "")),
        pid=int(before.get("pid", 0)),
        runbook=str(before.get("runbook", "")),
        runbook_sha256=str(before.get("runbook_sha256", "")),
        step=str(before.get("step", "")),
        safety=str(before.get("safety", "")),
        alert=str(before.get("alert", "")),
        dedupe_key=str(before.get("dedupe_key", "")),
        params=before.get("params") or {},
        request=before.get("request") or {},
        clock_at=_time(before["clock_ts"]) if before.get("clock_ts") else None,
    )
    if before.get("kind") == "note":
        return replace(
            entry,
            outcome=str(before.get("outcome", NOOP)),
            finished_at=started_at,
            before_state=before.get("before_state") or {},
            message=str(before.get("message", "")),
            may_have_applied=False,
        )
    if after is None:
        alive = _alive(entry.host, entry.pid, before.get("pid_start"))
        return replace(entry, outcome=IN_PROGRESS if alive else UNKNOWN)
    return replace(
        entry,
        outcome=str(after.get("outcome", UNKNOWN)),
        finished_at=_time(after["ts"]),
        status=after.get("status"),
        attempts=int(after.get("attempts") or 0),
        verified=after.get("verified"),
        before_state=after.get("before_state") or {},
        after_state=after.get("after_state") or {},
        message=str(after.get("message", "")),
        may_have_applied=bool(after.get("may_have_applied", True)),
    )


def _parse(text: str) -> tuple[list[AuditEntry], int]:
    befores: list[Mapping[str, Any]] = []
    afters: dict[str, Mapping[str, Any]] = {}
    malformed = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            malformed += 1
            continue
        if not isinstance(record, dict) or not all(key in record for key in ("kind", "id", "ts")):
            malformed += 1
            continue
        kind = record["kind"]
        if kind == "after":
            afters[str(record["id"])] = record
        elif kind in ("before", "note"):
            befores.append(record)
        else:
            malformed += 1
    return [_entry(before, afters.get(str(before["id"]))) for before in befores], malformed


_COLUMNS = (
    ("id", "VARCHAR"),
    ("started_at", "TIMESTAMP"),
    ("finished_at", "TIMESTAMP"),
    ("operator", "VARCHAR"),
    ("host", "VARCHAR"),
    ("runbook", "VARCHAR"),
    ("runbook_sha256", "VARCHAR"),
    ("step", "VARCHAR"),
    ("safety", "VARCHAR"),
    ("alert", "VARCHAR"),
    ("dedupe_key", "VARCHAR"),
    ("method", "VARCHAR"),
    ("url", "VARCHAR"),
    ("request_json", "VARCHAR"),
    ("params_json", "VARCHAR"),
    ("outcome", "VARCHAR"),
    ("status", "INTEGER"),
    ("attempts", "INTEGER"),
    ("verified", "BOOLEAN"),
    ("before_state_json", "VARCHAR"),
    ("after_state_json", "VARCHAR"),
    ("message", "VARCHAR"),
)


def _naive_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def load_into_duckdb(con: Any, path: Path) -> int:
    """Replace the table `_triage_audit` (timestamps naive UTC, JSON as text) with the log at
    `path`, given a duckdb connection; returns the number of entries loaded."""
    entries = AuditLog(path).read().entries
    columns = ", ".join(f"{name} {kind}" for name, kind in _COLUMNS)
    con.execute(f"CREATE OR REPLACE TABLE {AUDIT_TABLE} ({columns})")
    rows = [
        (
            e.id,
            _naive_utc(e.started_at),
            _naive_utc(e.finished_at),
            e.operator,
            e.host,
            e.runbook,
            e.runbook_sha256,
            e.step,
            e.safety,
            e.alert,
            e.dedupe_key,
            e.request.get("method"),
            e.request.get("url"),
            json.dumps(e.request, sort_keys=True),
            json.dumps(e.params, sort_keys=True),
            e.outcome,
            e.status,
            e.attempts,
            e.verified,
            json.dumps(e.before_state, sort_keys=True),
            json.dumps(e.after_state, sort_keys=True),
            e.message,
        )
        for e in entries
    ]
    if rows:
        placeholders = ", ".join("?" for _ in _COLUMNS)
        con.executemany(f"INSERT INTO {AUDIT_TABLE} VALUES ({placeholders})", rows)
    return len(rows)
