"""Alert state, history, acknowledgements and silences, kept in the DuckDB store.

Tables (timestamps are naive UTC, like the rest of the store):

``_triage_alerts`` — the current state per fingerprint: model, rule, signal, scope (JSON), state
    (pending | firing | resolved), severity, the latest value/threshold/window, evidence (JSON),
    runbook, started_at (the episode began: first crossing), fired_at, resolved_at, updated_at.
``_triage_alert_events`` — history: every state change (and severity change, acknowledgement,
    silence) with its time and evidence (value, threshold, window, n, n_labeled, the cell's JSON).
``_triage_alert_acks`` — who acknowledged which alert, when, with a note; an acknowledgement holds
    for the episode it was made in (until the alert resolves).
``_triage_alert_silences`` — silences until a time; the latest one for a fingerprint counts.

`transition` is the pure state machine (replay runs it in memory); `AlertStore` persists it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import duckdb

from triage.alerts.evaluate import (
    CRITICAL,
    FIRING,
    OK,
    PENDING,
    UNKNOWN,
    WARNING,
    AlertEvaluation,
    Arrivals,
    JudgeMemo,
    evaluate_rules,
)
from triage.alerts.groups import excess
from triage.alerts.rules import effective_rules
from triage.config import ModelConfig, Window
from triage.metrics.results import Row

RESOLVED = "resolved"
ACTIVE = (PENDING, FIRING)

ALERTS_TABLE = "_triage_alerts"
_ROWS_PER_INSERT = 500  # rows per multi-row INSERT (17 parameters each)
EVENTS_TABLE = "_triage_alert_events"
ACKS_TABLE = "_triage_alert_acks"
SILENCES_TABLE = "_triage_alert_silences"

# Exit status of `triage check`, the monitoring-plugin convention.
EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3

_DDL = (
    f"""CREATE TABLE IF NOT EXISTS {ALERTS_TABLE} (
        fingerprint VARCHAR PRIMARY KEY, model VARCHAR NOT NULL, rule VARCHAR NOT NULL,
        signal VARCHAR NOT NULL, scope VARCHAR NOT NULL, state VARCHAR NOT NULL, severity VARCHAR,
        value DOUBLE, threshold DOUBLE, window_start TIMESTAMP, window_end TIMESTAMP,
        evidence VARCHAR NOT NULL, runbook VARCHAR, started_at TIMESTAMP NOT NULL,
        fired_at TIMESTAMP, resolved_at TIMESTAMP, updated_at TIMESTAMP NOT NULL)""",
    "CREATE SEQUENCE IF NOT EXISTS _triage_alert_event_seq",
    f"""CREATE TABLE IF NOT EXISTS {EVENTS_TABLE} (
        seq BIGINT NOT NULL DEFAULT nextval('_triage_alert_event_seq'), fingerprint VARCHAR NOT NULL,
        model VARCHAR NOT NULL, rule VARCHAR NOT NULL, event_at TIMESTAMP NOT NULL, event VARCHAR NOT NULL,
        from_state VARCHAR, to_state VARCHAR, severity VARCHAR, value DOUBLE, threshold DOUBLE,
        window_start TIMESTAMP, window_end TIMESTAMP, n BIGINT, n_labeled BIGINT, evidence VARCHAR,
        actor VARCHAR, note VARCHAR)""",
    f"""CREATE TABLE IF NOT EXISTS {ACKS_TABLE} (
        fingerprint VARCHAR NOT NULL, acked_by VARCHAR NOT NULL, note VARCHAR NOT NULL,
        acked_at TIMESTAMP NOT NULL)""",
    f"""CREATE TABLE IF NOT EXISTS {SILENCES_TABLE} (
        fingerprint VARCHAR NOT NULL, silenced_until TIMESTAMP NOT NULL, created_by VARCHAR NOT NULL,
        note VARCHAR, created_at TIMESTAMP NOT NULL)""",
)

_ALERT_COLUMNS = (
    "fingerprint, model, rule, signal, scope, state, severity, value, threshold, window_start, "
    "window_end, evidence, runbook, started_at, fired_at, resolved_at, updated_at"
)
_EVENT_COLUMNS = (
    "fingerprint, model, rule, event_at, event, from_state, to_state, severity, value, threshold, "
    "window_start, window_end, n, n_labeled, evidence, actor, note"
)


class AlertError(Exception):
    """An alert that cannot be found, acknowledged or silenced as asked."""


@dataclass(frozen=True)
class Ack:
    """Someone is on it: who, when, and what they said."""

    by: str
    note: str
    at: datetime


@dataclass(frozen=True)
class Silence:
    """Do not notify about this alert until `until`."""

    until: datetime
    by: str
    note: str | None
    at: datetime


@dataclass(frozen=True)
class Alert:
    """The current state of one alert (one fingerprint)."""

    fingerprint: str
    model: str
    rule: str
    signal: str
    scope: tuple[tuple[str, str], ...]
    state: str  # "pending" | "firing" | "resolved"
    severity: str | None
    value: float | None
    threshold: float | None
    window_start: datetime | None
    window_end: datetime | None
    evidence: Mapping[str, Any]
    runbook: str | None
    started_at: datetime
    fired_at: datetime | None
    resolved_at: datetime | None
    updated_at: datetime
    ack: Ack | None = None
    silence: Silence | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def silenced(self, now: datetime) -> bool:
        """Whether a silence covers `now`."""
        return self.silence is not None and now < self.silence.until

    def status(self, now: datetime) -> str:
        """The state as shown: silenced / acknowledged take precedence over pending / firing."""
        if self.active and self.silenced(now):
            return "silenced"
        if self.active and self.ack is not None:
            return "acknowledged"
        return self.state

    def to_json(self, now: datetime) -> dict[str, Any]:
        """The JSON object of `triage check --json`'s `alerts` array and `triage alerts --json`."""
        return {
            "fingerprint": self.fingerprint,
            "model": self.model,
            "rule": self.rule,
            "signal": self.signal,
            "severity": self.severity,
            "state": self.state,
            "status": self.status(now),
            "scope": dict(self.scope),
            "value": self.value,
            "threshold": self.threshold,
            "window": {"start": _iso(self.window_start), "end": _iso(self.window_end)},
            "evidence": dict(self.evidence),
            "runbook": self.runbook,
            "started_at": _iso(self.started_at),
            "fired_at": _iso(self.fired_at),
            "resolved_at": _iso(self.resolved_at),
            "updated_at": _iso(self.updated_at),
            "acknowledged": None
            if self.ack is None
            else {"by": self.ack.by, "note": self.ack.note, "at": _iso(self.ack.at)},
            "silenced_until": _iso(self.silence.until) if self.silenced(now) and self.silence else None,
        }


@dataclass(frozen=True)
class AlertEvent:
    """One entry of an alert's history."""

    fingerprint: str
    model: str
    rule: str
    at: datetime
    event: str  # "pending" | "firing" | "resolved" | "severity" | "acknowledged" | "silenced"
    from_state: str | None
    to_state: str | None
    severity: str | None = None
    value: float | None = None
    threshold: float | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    n: int | None = None
    n_labeled: int | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    actor: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of `triage alerts history --json` and of a replay timeline entry."""
        return {
            "fingerprint": self.fingerprint,
            "model": self.model,
            "rule": self.rule,
            "at": _iso(self.at),
            "event": self.event,
            "from_state": self.from_state,
            "to_state": self.to_state,
            "severity": self.severity,
            "value": self.value,
            "threshold": self.threshold,
            "window": {"start": _iso(self.window_start), "end": _iso(self.window_end)},
            "n": self.n,
            "n_labeled": self.n_labeled,
            "evidence": dict(self.evidence),
            "actor": self.actor,
            "note": self.note,
        }


def evidence_of(evaluation: AlertEvaluation) -> dict[str, Any]:
    """The evidence kept with an alert: the latest known window's cell and the persistence."""
    cell = evaluation.latest.evidence() if evaluation.latest is not None else {}
    return {
        **cell,
        "signal": evaluation.signal,
        "direction": evaluation.direction,
        "run": evaluation.run,
        "for_windows": evaluation.for_windows,
    }


def transition(
    current: Alert | None, evaluation: AlertEvaluation, now: datetime
) -> tuple[Alert | None, AlertEvent | None]:
    """The next state of an alert after an evaluation at `now`, and the history event (if any).

    pending/firing follow the condition; a firing alert stays firing while its latest known window
    still crosses (even below `for_windows`); an ok condition resolves; unknown changes nothing.
    """
    condition = evaluation.condition
    if condition == UNKNOWN or (condition == OK and (current is None or not current.active)):
        return current, None
    if condition == OK:
        assert current is not None
        alert = _observe(replace(current, state=RESOLVED, resolved_at=now), evaluation, now)
        return alert, _event(alert, RESOLVED, current.state, evaluation)
    severity = evaluation.severity
    if current is None or not current.active:
        state = FIRING if condition == FIRING else PENDING
        alert = Alert(
            fingerprint=evaluation.fingerprint,
            model=evaluation.model,
            rule=evaluation.rule,
            signal=evaluation.signal,
            scope=evaluation.scope,
            state=state,
            severity=severity,
            value=None,
            threshold=None,
            window_start=None,
            window_end=None,
            evidence={},
            runbook=evaluation.runbook,
            started_at=now,
            fired_at=now if state == FIRING else None,
            resolved_at=None,
            updated_at=now,
            silence=current.silence if current is not None else None,
        )
        alert = _observe(alert, evaluation, now)
        return alert, _event(alert, state, current.state if current else None, evaluation)
    if current.state == PENDING and condition == FIRING:
        alert = _observe(replace(current, state=FIRING, severity=severity, fired_at=now), evaluation, now)
        return alert, _event(alert, FIRING, PENDING, evaluation)
    alert = _observe(replace(current, severity=severity), evaluation, now)
    if severity != current.severity:
        return alert, _event(alert, "severity", current.state, evaluation)
    return alert, None


def _observe(alert: Alert, evaluation: AlertEvaluation, now: datetime) -> Alert:
    """The alert with the evaluation's latest window as its value, threshold and evidence."""
    cell = evaluation.latest
    assert cell is not None  # a known condition always has a latest window
    return replace(
        alert,
        value=cell.value,
        threshold=cell.threshold,
        window_start=cell.window_start,
        window_end=cell.window_end,
        evidence=evidence_of(evaluation),
        runbook=evaluation.runbook,
        updated_at=now,
    )


def _event(alert: Alert, event: str, from_state: str | None, evaluation: AlertEvaluation) -> AlertEvent:
    cell = evaluation.latest
    return AlertEvent(
        fingerprint=alert.fingerprint,
        model=alert.model,
        rule=alert.rule,
        at=alert.updated_at,
        event=event,
        from_state=from_state,
        to_state=alert.state,
        severity=alert.severity,
        value=alert.value,
        threshold=alert.threshold,
        window_start=alert.window_start,
        window_end=alert.window_end,
        n=cell.n if cell else None,
        n_labeled=cell.n_labeled if cell else None,
        evidence=alert.evidence,
    )


def exit_status(alerts: Iterable[Alert], now: datetime) -> int:
    """0 OK, 1 warning, 2 critical: the worst firing alert that is not silenced."""
    status = EXIT_OK
    for alert in alerts:
        if alert.state != FIRING or alert.silenced(now):
            continue
        status = max(status, EXIT_CRITICAL if alert.severity == CRITICAL else EXIT_WARNING)
    return status


class AlertStore:
    """Alert state and history in a DuckDB connection (the tables are created when missing)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, read_only: bool = False) -> None:
        self.con = con
        self.read_only = read_only
        if not read_only:
            for statement in _DDL:
                con.execute(statement)
        tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        # A read-only store that never recorded an alert has none to show.
        self.empty = not {ALERTS_TABLE, EVENTS_TABLE, ACKS_TABLE, SILENCES_TABLE} <= tables

    def alerts(self, model: str | None = None, include_resolved: bool = False) -> list[Alert]:
        """Current alerts, active first then by severity and time; resolved ones only when asked."""
        where, params = [], []
        if model is not None:
            where.append("a.model = ?")
            params.append(model)
        if not include_resolved:
            where.append(f"a.state IN ('{PENDING}', '{FIRING}')")
        return self._query(" AND ".join(where), params)

    def get(self, fingerprint: str) -> Alert | None:
        """The alert with this exact fingerprint, or None."""
        found = self._query("a.fingerprint = ?", [fingerprint])
        return found[0] if found else None

    def resolve(self, prefix: str) -> Alert:
        """The alert whose fingerprint is or starts with `prefix` (unique); AlertError otherwise."""
        rows = []
        if not self.empty:
            rows = self.con.execute(
                f"SELECT fingerprint FROM {ALERTS_TABLE} WHERE starts_with(fingerprint, ?) ORDER BY 1",
                [prefix.strip().lower()],
            ).fetchall()
        if not rows or not prefix.strip():
            raise AlertError(f"no alert with fingerprint {prefix!r} (see `triage alerts --all`)")
        if len(rows) > 1:
            shown = ", ".join(row[0] for row in rows[:5])
            raise AlertError(f"fingerprint prefix {prefix!r} is ambiguous: {shown}")
        alert = self.get(rows[0][0])
        assert alert is not None
        return alert

    def record(self, evaluations: Sequence[AlertEvaluation], now: datetime) -> list[Alert]:
        """Apply evaluations made at `now`; return the alerts that are active or resolved just now.

        When the store holds a later evaluation of these models (an alert updated after `now`:
        `check --at` in the past after a newer check), nothing is written and the alerts are
        those of `now`: each one's state then, from its history up to `now`, moved on by this
        evaluation (`_as_of`) — never a state that only a later evaluation saw. A read-only store
        returns the same alerts and writes nothing.
        """
        models = sorted({evaluation.model for evaluation in evaluations})
        existing: dict[str, Alert] = {}
        if models:
            marks = ", ".join("?" for _ in models)
            existing = {a.fingerprint: a for a in self._query(f"a.model IN ({marks})", models)}
        if any(alert.updated_at > now for alert in existing.values()):
            return self._as_of(existing, evaluations, now)
        changed: list[Alert] = []
        events: list[AlertEvent] = []
        result: list[Alert] = []
        for evaluation in evaluations:
            current = existing.get(evaluation.fingerprint)
            alert, event = transition(current, evaluation, now)
            if alert is not None and alert is not current:
                changed.append(alert)
            if event is not None:
                events.append(event)
            if alert is not None and (alert.active or alert.resolved_at == now):
                result.append(alert)
        if not self.read_only:
            self._write(changed, events)
        return sorted(result, key=alert_rank)

    def _as_of(
        self, existing: Mapping[str, Alert], evaluations: Sequence[AlertEvaluation], now: datetime
    ) -> list[Alert]:
        """`record`'s result for an evaluation of the past, with nothing written."""
        fingerprints = [evaluation.fingerprint for evaluation in evaluations]
        history: dict[str, list[AlertEvent]] = {}
        if fingerprints:
            rows = self.con.execute(
                f"SELECT {_EVENT_COLUMNS} FROM {EVENTS_TABLE} WHERE list_contains(?, fingerprint) "
                f"AND event_at <= ? ORDER BY event_at, seq",
                [fingerprints, _naive(now)],
            ).fetchall()
            for row in rows:
                event = _event_from_row(row)
                history.setdefault(event.fingerprint, []).append(event)
        return _moved_on(evaluations, lambda fp: _state_at(existing.get(fp), history.get(fp, []), now), now)

    def acknowledge(self, fingerprint: str, by: str, note: str, at: datetime) -> Alert:
        """Acknowledge an active alert (by unique fingerprint prefix) for its current episode."""
        alert = self.resolve(fingerprint)
        if not alert.active:
            raise AlertError(
                f"alert {alert.fingerprint} is {alert.state}; only active alerts are acknowledged"
            )
        if not note.strip() or not by.strip():
            raise AlertError("an acknowledgement needs who (--by) and a note (--note)")
        with self._transaction():
            self.con.execute(
                f"INSERT INTO {ACKS_TABLE} VALUES (?, ?, ?, ?)", [alert.fingerprint, by, note, _naive(at)]
            )
            self._insert_events([_action(alert, "acknowledged", at, by, note, {})])
        return self.resolve(alert.fingerprint)

    def silence(self, fingerprint: str, until: datetime, by: str, note: str | None, at: datetime) -> Alert:
        """Silence an alert until `until` (a time not after `at` ends an earlier silence)."""
        alert = self.resolve(fingerprint)
        with self._transaction():
            self.con.execute(
                f"INSERT INTO {SILENCES_TABLE} VALUES (?, ?, ?, ?, ?)",
                [alert.fingerprint, _naive(until), by, note, _naive(at)],
            )
            self._insert_events([_action(alert, "silenced", at, by, note, {"until": _iso(until)})])
        return self.resolve(alert.fingerprint)

    def history(
        self, fingerprint: str | None = None, model: str | None = None, limit: int | None = None
    ) -> list[AlertEvent]:
        """State changes and actions, oldest first (the last `limit` of them when given)."""
        where, params = [], []
        if fingerprint is not None:
            where.append("fingerprint = ?")
            params.append(fingerprint)
        if model is not None:
            where.append("model = ?")
            params.append(model)
        if self.empty:
            return []
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        tail = f"LIMIT {int(limit)}" if limit is not None else ""
        rows = self.con.execute(
            f"SELECT * FROM (SELECT {_EVENT_COLUMNS}, seq FROM {EVENTS_TABLE} {clause} "
            f"ORDER BY event_at DESC, seq DESC {tail}) ORDER BY event_at, seq",
            params,
        ).fetchall()
        return [_event_from_row(row) for row in rows]

    def latest_update(self, model: str) -> datetime | None:
        """When the model's alert state was last recorded (None: never)."""
        if self.empty:
            return None
        row = self.con.execute(
            f"SELECT max(updated_at) FROM {ALERTS_TABLE} WHERE model = ?", [model]
        ).fetchone()
        return _aware(row[0]) if row is not None else None

    def forget_ahead(self, model: str, now: datetime) -> int:
        """Forget the model's alert state recorded after `now` (and its events after `now`); how
        many alerts held it. Only a `check --at` a future time recorded such state — earlier
        versions did — and while it stays, every check of now only looks back and records nothing."""
        if self.empty or self.read_only:
            return 0
        at = _naive(now)
        row = self.con.execute(
            f"SELECT count(*) FROM {ALERTS_TABLE} WHERE model = ? AND updated_at > ?", [model, at]
        ).fetchone()
        ahead = int(row[0]) if row else 0
        if ahead:
            self.con.execute(f"DELETE FROM {EVENTS_TABLE} WHERE model = ? AND event_at > ?", [model, at])
            self.con.execute(f"DELETE FROM {ALERTS_TABLE} WHERE model = ? AND updated_at > ?", [model, at])
        return ahead

    def _query(self, where: str, params: Sequence[Any]) -> list[Alert]:
        if self.empty:
            return []
        latest = "QUALIFY row_number() OVER (PARTITION BY fingerprint ORDER BY {0} DESC) = 1"
        sql = f"""
            SELECT {", ".join("a." + c.strip() for c in _ALERT_COLUMNS.split(","))},
                   k.acked_by, k.note, k.acked_at, s.silenced_until, s.created_by, s.note, s.created_at
            FROM {ALERTS_TABLE} a
            LEFT JOIN (SELECT * FROM {ACKS_TABLE} {latest.format("acked_at")}) k
                ON k.fingerprint = a.fingerprint AND k.acked_at >= a.started_at
            LEFT JOIN (SELECT * FROM {SILENCES_TABLE} {latest.format("created_at")}) s
                ON s.fingerprint = a.fingerprint
            {"WHERE " + where if where else ""}"""
        return sorted(
            (_alert_from_row(row) for row in self.con.execute(sql, list(params)).fetchall()), key=alert_rank
        )

    def _write(self, alerts: Sequence[Alert], events: Sequence[AlertEvent]) -> None:
        if not alerts and not events:
            return
        with self._transaction():
            self._insert_rows(
                f"INSERT OR REPLACE INTO {ALERTS_TABLE} ({_ALERT_COLUMNS})",
                # One row per alert, the last state of each (as row-by-row replacing would leave).
                [_alert_params(a) for a in {alert.fingerprint: alert for alert in alerts}.values()],
            )
            self._insert_events(events)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """State and its history change together or not at all."""
        self.con.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def _insert_events(self, events: Sequence[AlertEvent]) -> None:
        self._insert_rows(
            f"INSERT INTO {EVENTS_TABLE} ({_EVENT_COLUMNS})", [_event_params(e) for e in events]
        )

    def _insert_rows(self, insert: str, rows: Sequence[Sequence[Any]]) -> None:
        """`insert` VALUES rows, many per statement (DuckDB's executemany runs one per row)."""
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            row = f"({', '.join('?' for _ in chunk[0])})"
            self.con.execute(
                f"{insert} VALUES {', '.join(row for _ in chunk)}", [v for r in chunk for v in r]
            )


def check_alerts(
    store: AlertStore,
    model: ModelConfig,
    tables: Mapping[str, Sequence[Row]],
    now: datetime,
    reference: Mapping[str, Sequence[Row]] | None = None,
    memo: JudgeMemo | None = None,
    record: bool = True,
    window: Window | None = None,
    arrival: Arrivals | None = None,
) -> tuple[list[Alert], list[AlertEvaluation]]:
    """Evaluate a model's effective rules on its result tables at `now` and record the outcome
    (`memo`: the judgements of an earlier call, see `evaluate.JudgeMemo`): the alerts, and the
    evaluations behind them (what was judged, and how). Without `record` (a view other than the
    configured one: another window size, other slices), the alerts are this evaluation's alone:
    nothing is read from the store or written to it; `window`, such a view's window size when it
    is not the model's (`effective_rules`); `arrival`, when the reference's labels came
    (`metrics.arrival`)."""
    evaluations = evaluate_rules(effective_rules(model, window), tables, model, now, reference, memo, arrival)
    if not record:
        return _moved_on(evaluations, lambda _: None, now), evaluations
    return store.record(evaluations, now), evaluations


def _moved_on(
    evaluations: Sequence[AlertEvaluation], before: Callable[[str], Alert | None], now: datetime
) -> list[Alert]:
    """Each evaluation's alert moved on from its state `before(fingerprint)`, nothing recorded:
    those active or resolved just now, ranked."""
    alerts = (transition(before(e.fingerprint), e, now)[0] for e in evaluations)
    return sorted((a for a in alerts if a is not None and (a.active or a.resolved_at == now)), key=alert_rank)


def _state_at(stored: Alert | None, events: Sequence[AlertEvent], now: datetime) -> Alert | None:
    """The alert as it stood at `now`, from its stored row and its history up to `now` (oldest
    first); None when it had no state change yet. Its acknowledgement and silence count only if
    made by then (the store keeps the latest of each)."""
    changes = [e for e in events if e.event in (PENDING, FIRING, RESOLVED, "severity")]
    if stored is None or not changes:
        return None
    last = changes[-1]
    starts = [e.at for e in changes if e.to_state in ACTIVE and e.from_state in (None, RESOLVED)]
    started = starts[-1] if starts else changes[0].at
    fired = [e.at for e in changes if e.at >= started and e.to_state == FIRING]
    # What the alert showed then: as the last change recorded it.
    shown = ("severity", "value", "threshold", "window_start", "window_end", "evidence")
    return replace(
        stored,
        **{name: getattr(last, name) for name in shown},
        state=last.to_state or RESOLVED,
        started_at=started,
        fired_at=fired[0] if fired else None,
        resolved_at=last.at if last.to_state == RESOLVED else None,
        updated_at=last.at,
        ack=stored.ack if stored.ack is not None and stored.ack.at <= now else None,
        silence=stored.silence if stored.silence is not None and stored.silence.at <= now else None,
    )


def alert_rank(alert: Alert) -> tuple[int, int, float, float, str, str, tuple[tuple[str, str], ...], str]:
    """Sort key: firing before pending before resolved, critical first, most recently updated
    first, furthest past its threshold first (a canary at twice it before the all-traffic mix
    that just crosses it), then by model, rule and scope."""
    order = {FIRING: 0, PENDING: 1, RESOLVED: 2}
    level = {CRITICAL: 0, WARNING: 1}
    return (
        order.get(alert.state, 3),
        level.get(alert.severity or "", 2),
        -alert.updated_at.timestamp(),
        -excess(alert.value, alert.threshold),
        alert.model,
        alert.rule,
        alert.scope,
        alert.fingerprint,
    )


def _action(alert: Alert, event: str, at: datetime, by: str, note: str | None, extra: dict) -> AlertEvent:
    return AlertEvent(
        fingerprint=alert.fingerprint,
        model=alert.model,
        rule=alert.rule,
        at=at,
        event=event,
        from_state=alert.state,
        to_state=alert.state,
        severity=alert.severity,
        value=alert.value,
        threshold=alert.threshold,
        window_start=alert.window_start,
        window_end=alert.window_end,
        evidence=extra,
        actor=by,
        note=note,
    )


def _naive(value: datetime | None) -> datetime | None:
    """An aware time as the store keeps it (naive UTC); naive input is taken as UTC."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (
        value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value.tzinfo else value.isoformat() + "Z"
    )


def _alert_params(alert: Alert) -> list[Any]:
    return [
        alert.fingerprint,
        alert.model,
        alert.rule,
        alert.signal,
        json.dumps(dict(alert.scope), ensure_ascii=False),
        alert.state,
        alert.severity,
        alert.value,
        alert.threshold,
        _naive(alert.window_start),
        _naive(alert.window_end),
        json.dumps(alert.evidence, ensure_ascii=False),
        alert.runbook,
        _naive(alert.started_at),
        _naive(alert.fired_at),
        _naive(alert.resolved_at),
        _naive(alert.updated_at),
    ]


def _alert_from_row(row: Sequence[Any]) -> Alert:
    (fp, model, rule, signal, scope, state, severity, value, threshold, w_start, w_end, evidence) = row[:12]
    (runbook, started, fired, resolved, updated, acked_by, ack_note, acked_at) = row[12:20]
    (until, silenced_by, silence_note, silenced_at) = row[20:24]
    return Alert(
        fingerprint=fp,
        model=model,
        rule=rule,
        signal=signal,
        scope=tuple(json.loads(scope).items()),
        state=state,
        severity=severity,
        value=value,
        threshold=threshold,
        window_start=_aware(w_start),
        window_end=_aware(w_end),
        evidence=json.loads(evidence),
        runbook=runbook,
        started_at=started.replace(tzinfo=UTC),
        fired_at=_aware(fired),
        resolved_at=_aware(resolved),
        updated_at=updated.replace(tzinfo=UTC),
        ack=None if acked_by is None else Ack(acked_by, ack_note, acked_at.replace(tzinfo=UTC)),
        silence=None
        if until is None
        else Silence(until.replace(tzinfo=UTC), silenced_by, silence_note, silenced_at.replace(tzinfo=UTC)),
    )


def _event_params(event: AlertEvent) -> list[Any]:
    return [
        event.fingerprint,
        event.model,
        event.rule,
        _naive(event.at),
        event.event,
        event.from_state,
        event.to_state,
        event.severity,
        event.value,
        event.threshold,
        _naive(event.window_start),
        _naive(event.window_end),
        event.n,
        event.n_labeled,
        json.dumps(event.evidence, ensure_ascii=False),
        event.actor,
        event.note,
    ]


def _event_from_row(row: Sequence[Any]) -> AlertEvent:
    return AlertEvent(
        fingerprint=row[0],
        model=row[1],
        rule=row[2],
        at=row[3].replace(tzinfo=UTC),
        event=row[4],
        from_state=row[5],
        to_state=row[6],
        severity=row[7],
        value=row[8],
        threshold=row[9],
        window_start=_aware(row[10]),
        window_end=_aware(row[11]),
        n=row[12],
        n_labeled=row[13],
        evidence=json.loads(row[14]) if row[14] else {},
        actor=row[15],
        note=row[16],
    )
