"""The incident report: what fired, when, what was done about it and whether it worked.

`build_report` replays the logged traffic headless (`triage.replay`, so every alert fires at the
clock time it would have fired live, with no label from the future) from the start of the
monitored history up to T1 — so an alert already firing before T0 is not mistaken for a new one —
and keeps the alert state changes inside [T0, T1]. It places the runbook steps of the audit log at
their `clock_at` (the monitored world's time, set by a demo) or else `started_at`, and evaluates
each model once as of T1 for the drift, calibration and performance of the windows overlapping
[T0, T1]. Definitions:

- first signal: the earliest first firing in [T0, T1]; among alerts first firing at one instant, the
  most severe, then the broadest scope (fewest scope keys), then the earliest crossing;
- time to detect of an alert: its first firing minus the start of the first window of the run of
  crossed windows that made it fire (`window_start − (run − 1) × window` of the firing evidence);
- mitigation: the first audited step after the first signal that changed something (safety not
  `read_only`, outcome ok or verify failed); time to mitigate = mitigation − first signal;
- recovery: when the alert the step ran for resolved (or, when the step names no firing alert,
  the last of the alerts firing at the mitigation);
- phases of a window [start, end): before = ends by the first signal, after = starts at or after the
  mitigation, during = the rest; per phase and version the mean of each statistic over the windows,
  weighted by the windows' prediction counts (`n`), windows without a value skipped.

`IncidentReport.markdown()` renders it with text charts, `.html()` as one self-contained HTML
file with inline SVG charts. Audit records are redacted when written; the rendered text is passed
through the configured targets' redactor once more, so no secret reaches a report.
"""

from __future__ import annotations

import html
import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from triage.alerts.evaluate import FIRING, SEVERITY_RANK
from triage.alerts.rules import elapsed_text, value_text
from triage.alerts.state import RESOLVED, Alert, AlertEvent
from triage.config import Config, ModelConfig
from triage.engine import Engine, EngineError, ModelReport
from triage.metrics.results import CalibrationRow, DriftRow, PerformanceRow, Row, drift_rank
from triage.printable import printable_lines
from triage.replay import Timeline, default_start, replay_span, run_replay
from triage.runbooks.audit import OK, VERIFY_FAILED, AuditEntry, AuditLog
from triage.runbooks.redact import CredentialError, Redactor, credentials

TOP_DRIFT = 10
BEFORE, DURING, AFTER = "before", "during", "after"
PHASES = (BEFORE, DURING, AFTER)
# (table, field) of the before / during / after comparison, in column order.
PHASE_STATISTICS = (
    ("calibration", "ece"),
    ("calibration", "brier"),
    ("calibration", "decision_rate"),
    ("performance", "precision"),
    ("performance", "recall"),
    ("performance", "label_coverage"),
)
# A regression model's: it has no calibration, and errors instead of precision and recall.
REGRESSION_PHASE_STATISTICS = (
    ("performance", "mae"),
    ("performance", "rmse"),
    ("performance", "mape"),
    ("performance", "label_coverage"),
)
# (title, table, field, "max" over the features of a window or its one all-traffic "value"): the charts.
WORST_PSI = ("worst feature PSI (all traffic)", "drift", "psi", "max")
CHARTS = (
    WORST_PSI,
    ("decision rate", "calibration", "decision_rate", "value"),
    ("ECE", "calibration", "ece", "value"),
    ("precision", "performance", "precision", "value"),
)
REGRESSION_CHARTS = (
    WORST_PSI,
    ("MAE", "performance", "mae", "value"),
    ("RMSE", "performance", "rmse", "value"),
)
MITIGATING_OUTCOMES = (OK, VERIFY_FAILED)  # the step changed something (or may have)
ALL_VERSIONS = "all"
SCORE_FEATURE = "__score__"
MIN_MASKED_SECRET = 4


def _iso(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")


def _duration(value: timedelta | None) -> str:
    """1d 4h, 2h 10m, 45s; "-" for None."""
    return "-" if value is None else elapsed_text(value.total_seconds())


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def scope_text(scope: Iterable[tuple[str, str]]) -> str:
    """`feature=amount segment=country segment_value=BR`, or "all traffic"."""
    return " ".join(f"{key}={value}" for key, value in scope) or "all traffic"


@dataclass(frozen=True)
class FiredAlert:
    """An alert that fired in [T0, T1]: its first firing there, and what came of it."""

    fingerprint: str
    model: str
    rule: str
    signal: str
    scope: tuple[tuple[str, str], ...]
    severity: str | None
    first_firing: datetime
    crossed_at: datetime | None  # start of the first crossed window of the run that fired it
    resolved_at: datetime | None  # its first resolution after `first_firing`, by T1
    value: float | None
    threshold: float | None
    runbook: str | None

    @property
    def detect_delay(self) -> timedelta | None:
        """Time to detect: first firing minus the start of the crossing."""
        return None if self.crossed_at is None else self.first_firing - self.crossed_at


@dataclass(frozen=True)
class Action:
    """A runbook step from the audit log, placed on the monitored world's clock."""

    at: datetime
    entry: AuditEntry

    @property
    def mitigating(self) -> bool:
        """Whether the step changed (or may have changed) the serving system."""
        return self.entry.safety != "read_only" and self.entry.outcome in MITIGATING_OUTCOMES

    @property
    def title(self) -> str:
        return f"{self.entry.runbook}#{self.entry.step}"


@dataclass(frozen=True)
class TimelineItem:
    """One line of the incident timeline: an alert state change or a runbook step."""

    at: datetime
    kind: str  # "alert" | "runbook"
    what: str  # the alert event ("pending", "firing", "resolved", "severity") or the step's outcome
    title: str  # rule, or runbook#step
    detail: str
    severity: str | None = None


@dataclass(frozen=True)
class Recovery:
    """What resolved after the mitigation: the alert the step ran for (if it was firing), and every
    alert firing when the step ran, with the time each resolved after it (by T1)."""

    targeted: FiredAlert | None
    firing: tuple[FiredAlert, ...]
    resolved: Mapping[str, datetime]  # fingerprint → first resolution after the mitigation

    @property
    def recovered_at(self) -> datetime | None:
        """When the targeted alert resolved, or without one, when the last firing alert did;
        None while it (or any) is still firing at T1."""
        if self.targeted is not None:
            return self.resolved.get(self.targeted.fingerprint)
        if not self.firing or len(self.resolved) < len(self.firing):
            return None
        return max(self.resolved.values())


@dataclass(frozen=True)
class PhaseRow:
    """One version's statistics in one phase: n-weighted means over its windows."""

    version: str
    phase: str
    windows: int
    n: int
    means: Mapping[str, float | None]  # "table.field" → mean


@dataclass(frozen=True)
class Chart:
    """One statistic per window and version over [T0, T1]."""

    title: str
    series: Mapping[str, tuple[tuple[datetime, float], ...]]  # version → (window start, value)
    window: timedelta = timedelta(0)  # the windows' length: points sit in their middle


@dataclass(frozen=True)
class ModelSection:
    """The per-model part of the report: drift, phases and charts."""

    name: str
    window: str
    as_of: datetime
    drift: tuple[DriftRow, ...]
    phases: tuple[PhaseRow, ...]
    charts: tuple[Chart, ...]
    no_drift: str  # what is said when `drift` is empty
    statistics: tuple[str, ...] = tuple(field for _, field in PHASE_STATISTICS)  # the phases' columns


@dataclass(frozen=True)
class IncidentReport:
    """Everything in an incident report for [start, end]; render with `markdown()` or `html()`."""

    start: datetime
    end: datetime
    generated_at: datetime
    models: tuple[str, ...]
    fired: tuple[FiredAlert, ...]  # first firing in [start, end], earliest first
    already_firing: tuple[FiredAlert, ...]  # fired before `start` and still firing at it
    timeline: tuple[TimelineItem, ...]
    actions: tuple[Action, ...]
    mitigation: Action | None
    recovery: Recovery | None
    sections: tuple[ModelSection, ...]
    malformed_audit_lines: int = 0
    redactor: Redactor = field(default_factory=Redactor, repr=False, compare=False)  # holds secrets

    @property
    def first_signal(self) -> FiredAlert | None:
        return self.fired[0] if self.fired else None

    @property
    def time_to_mitigate(self) -> timedelta | None:
        first = self.first_signal
        return None if first is None or self.mitigation is None else self.mitigation.at - first.first_firing

    def markers(self) -> tuple[list[datetime], list[datetime]]:
        """The first-firing times and the runbook-action times, for the charts."""
        firing = sorted({alert.first_firing for alert in self.fired})
        return firing, sorted({action.at for action in self.actions})

    def summary_lines(self) -> list[str]:
        """The summary as plain sentences (shared by both renderings)."""
        first = self.first_signal
        if first is None:
            lines = [f"No alert fired between {_iso(self.start)} and {_iso(self.end)}."]
        else:
            lines = [
                f"{len(self.fired)} alert(s) fired between {_iso(self.start)} and {_iso(self.end)}: "
                + ", ".join(f"{rule} ×{count}" for rule, count in _counts(a.rule for a in self.fired))
                + ".",
                f"First signal: {first.rule} ({first.signal}, {scope_text(first.scope)}) fired "
                f"({first.severity or 'no severity'}) at {_iso(first.first_firing)}.",
                f"Time to detect: {_duration(first.detect_delay)} (its signal first crossed in the "
                f"window starting {_iso(first.crossed_at)}).",
            ]
        if self.already_firing:
            lines.append(f"{len(self.already_firing)} alert(s) were already firing at {_iso(self.start)}.")
        if first is not None and self.mitigation is None:
            lines.append("Time to mitigate: no runbook action recorded after the first signal.")
        elif first is not None and self.mitigation is not None:
            action = self.mitigation
            lines.append(
                f"Time to mitigate: {_duration(self.time_to_mitigate)} — {action.title} "
                f"({action.entry.outcome_text}) by {action.entry.operator or 'unknown'} at {_iso(action.at)}."
            )
        if self.recovery is not None and self.mitigation is not None:
            lines.append(_recovery_text(self.recovery, self.mitigation.at, self.end))
        return lines

    def markdown(self) -> str:
        """The report as Markdown, with text charts; logged values' control characters escaped
        (it goes to a terminal as often as to a file)."""
        return printable_lines(self.redactor.text(render_markdown(self)))

    def html(self) -> str:
        """The report as one self-contained HTML file (inline CSS and SVG, no external URL)."""
        return printable_lines(self.redactor.text(render_html(self)))


def _recovery_text(recovery: Recovery, at: datetime, end: datetime) -> str:
    if not recovery.firing:
        return "Recovery: no alert was firing when the action ran."
    target = recovery.targeted
    if target is None:
        head = "the action names no firing alert"
    elif recovery.recovered_at is not None:
        head = (
            f"{target.rule} ({scope_text(target.scope)}), which the action was for, resolved at "
            f"{_iso(recovery.recovered_at)}, {_duration(recovery.recovered_at - at)} after it"
        )
    else:
        head = (
            f"{target.rule} ({scope_text(target.scope)}), which the action was for, "
            f"was still firing at {_iso(end)}"
        )
    tail = (
        f"{len(recovery.resolved)} of {len(recovery.firing)} alert(s) firing at the action "
        f"resolved by {_iso(end)}"
    )
    if recovery.resolved:
        tail += f", the last at {_iso(max(recovery.resolved.values()))}"
    return f"Recovery: {head}; {tail}."


def _counts(values: Iterable[str]) -> list[tuple[str, int]]:
    """Each value and how often it occurs, most frequent first."""
    counts: dict[str, int] = defaultdict(int)
    for value in values:
        counts[value] += 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


# -- building ------------------------------------------------------------------------------


def build_report(
    config: Config,
    engine: Engine,
    *,
    models: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    audit: Sequence[AuditEntry] | None = None,
    env: Mapping[str, str] | None = None,
) -> IncidentReport:
    """The incident report of `models` (default all) over [start, end] (default: the logged traffic).

    `audit` defaults to the configured audit log; `env` (default the environment) is only read
    for the targets' secrets, to redact them from the rendered report.
    """
    chosen = [config.model(name) for name in models] if models else list(config.models)
    span = replay_span(engine, chosen)
    if span is None:
        raise EngineError("nothing ingested yet; run `triage ingest` first")
    history_start = default_start(chosen, span[0])
    start = start or history_start
    end = end or span[1]
    if end < start:
        raise EngineError(f"the report ends ({_iso(end)}) before it starts ({_iso(start)})")
    timeline = run_replay(
        config, engine, models=[m.name for m in chosen], start=min(start, history_start), end=end
    )
    malformed = 0
    if audit is None:
        read = AuditLog(config.audit_path).read()
        audit, malformed = read.entries, read.malformed_lines
    actions = tuple(
        sorted(
            (Action(entry.clock_at or entry.started_at, entry) for entry in audit),
            key=lambda action: action.at,
        )
    )
    actions = tuple(a for a in actions if start <= a.at <= end)
    events = sorted(timeline.tracks["current"].events, key=lambda e: e.at)
    fired, already = _fired_alerts(timeline, events, start, end)
    first = fired[0].first_firing if fired else None
    mitigation = next((a for a in actions if a.mitigating and first is not None and a.at >= first), None)
    recovery = _recovery(fired + already, events, mitigation, end) if mitigation else None
    split = (first, mitigation.at if mitigation else None)
    sections = tuple(_section(engine, model, start, end, split) for model in chosen)
    return IncidentReport(
        start=start,
        end=end,
        generated_at=datetime.now(UTC),
        models=tuple(model.name for model in chosen),
        fired=fired,
        already_firing=already,
        timeline=_timeline_items(timeline, events, actions, start, end),
        actions=actions,
        mitigation=mitigation,
        recovery=recovery,
        sections=sections,
        malformed_audit_lines=malformed,
        redactor=_redactor(config, os.environ if env is None else env),
    )


def crossing_start(event: AlertEvent) -> datetime | None:
    """The start of the first window of the crossed run behind a firing event."""
    if event.window_start is None or event.window_end is None:
        return None
    run = event.evidence.get("run")
    run = run if isinstance(run, int) and run >= 1 else 1
    return event.window_start - (run - 1) * (event.window_end - event.window_start)


def _fired_alerts(
    timeline: Timeline, events: Sequence[AlertEvent], start: datetime, end: datetime
) -> tuple[tuple[FiredAlert, ...], tuple[FiredAlert, ...]]:
    """Alerts that started firing in [start, end] (by their first firing there), and those already
    firing at `start`. An alert can be both: it resolved and fired again."""
    alerts = timeline.tracks["current"].alerts
    at_start: dict[str, AlertEvent] = {}  # fingerprint → the event that made it fire
    fired: dict[str, AlertEvent] = {}
    for event in events:
        if event.at > end:
            break
        starts_firing = event.to_state == FIRING and event.from_state != FIRING
        if event.at < start:
            if starts_firing:
                at_start[event.fingerprint] = event
            elif event.to_state == RESOLVED:
                at_start.pop(event.fingerprint, None)
        elif starts_firing:
            fired.setdefault(event.fingerprint, event)

    def make(fp: str, event: AlertEvent) -> FiredAlert:
        alert = alerts[fp]
        resolved = next(
            (
                e.at
                for e in events
                if e.fingerprint == fp and e.to_state == RESOLVED and max(start, event.at) <= e.at <= end
            ),
            None,
        )
        return FiredAlert(
            fingerprint=fp,
            model=alert.model,
            rule=alert.rule,
            signal=alert.signal,
            scope=alert.scope,
            severity=event.severity,
            first_firing=event.at,
            crossed_at=crossing_start(event),
            resolved_at=resolved,
            value=event.value,
            threshold=event.threshold,
            runbook=alert.runbook,
        )

    def rank(item: tuple[str, AlertEvent]) -> tuple[object, ...]:
        # Among alerts first firing at one instant the first signal is the most severe, then the
        # broadest (all traffic before a slice of it), then the one whose crossing began first.
        fp, event = item
        severity = -SEVERITY_RANK.get(event.severity, 0)
        return (event.at, severity, len(alerts[fp].scope), crossing_start(event) or event.at, event.rule, fp)

    order = sorted(fired.items(), key=rank)
    return (
        tuple(make(fp, event) for fp, event in order),
        tuple(make(fp, event) for fp, event in sorted(at_start.items(), key=lambda item: item[1].at)),
    )


def _recovery(
    alerts: Sequence[FiredAlert], events: Sequence[AlertEvent], mitigation: Action, end: datetime
) -> Recovery:
    """The alerts the mitigation was for (firing at it), and when each resolved after it."""
    state: dict[str, str | None] = {}
    for event in events:
        if event.at > mitigation.at:
            break
        state[event.fingerprint] = event.to_state
    unique = {alert.fingerprint: alert for alert in alerts}
    firing = [alert for alert in unique.values() if state.get(alert.fingerprint) == FIRING]
    targeted = next((alert for alert in firing if alert.fingerprint == mitigation.entry.alert), None)
    keys = {alert.fingerprint for alert in firing}
    resolved: dict[str, datetime] = {}
    for event in events:
        if mitigation.at < event.at <= end and event.fingerprint in keys and event.to_state == RESOLVED:
            resolved.setdefault(event.fingerprint, event.at)
    return Recovery(targeted, tuple(firing), resolved)


def _event_detail(alert: Alert, event: AlertEvent) -> str:
    """An alert event's scope, value against threshold, and window."""
    value, threshold = (value_text(alert.signal, v) for v in (event.value, event.threshold))
    return f"{scope_text(alert.scope)}: {value} vs {threshold} (window {_iso(event.window_start)})"


def _timeline_items(
    timeline: Timeline,
    events: Sequence[AlertEvent],
    actions: Sequence[Action],
    start: datetime,
    end: datetime,
) -> tuple[TimelineItem, ...]:
    alerts = timeline.tracks["current"].alerts
    items = [
        TimelineItem(
            at=event.at,
            kind="alert",
            what=event.event,
            title=event.rule,
            detail=_event_detail(alerts[event.fingerprint], event),
            severity=event.severity,
        )
        for event in events
        if start <= event.at <= end and event.fingerprint in alerts
    ]
    for action in actions:
        entry = action.entry
        status = f"HTTP {entry.status}" if entry.status is not None else "no response"
        items.append(
            TimelineItem(
                at=action.at,
                kind="runbook",
                what=entry.outcome_text,
                title=action.title,
                detail=f"{entry.safety}, by {entry.operator or 'unknown'}, {status}",
            )
        )
    # At one clock time, runbook steps come after the alert changes they answered.
    return tuple(sorted(items, key=lambda item: (item.at, item.kind != "alert")))


def phase_of(
    window_start: datetime, window_end: datetime, split: tuple[datetime | None, datetime | None]
) -> str:
    """before (ends by the first signal), after (starts at or after the mitigation) or during."""
    first, mitigation = split
    if first is None or window_end <= first:
        return BEFORE
    if mitigation is not None and window_start >= mitigation:
        return AFTER
    return DURING


def _overlaps(row: Row, start: datetime, end: datetime) -> bool:
    return row.window_start < end and row.window_end > start


def _version(row: Row) -> str:
    return row.version or ALL_VERSIONS


def _section(
    engine: Engine,
    model: ModelConfig,
    start: datetime,
    end: datetime,
    split: tuple[datetime | None, datetime | None],
) -> ModelSection:
    report = engine.evaluate(model.name, as_of=end)
    regression = model.task == "regression"
    drift = [r for r in report.drift if _overlaps(r, start, end) and r.enough_data and r.psi is not None]
    calibration = [r for r in report.calibration if _overlaps(r, start, end) and r.segment is None]
    performance = [r for r in report.performance if _overlaps(r, start, end) and r.segment is None]
    tables: dict[str, Sequence[Row]] = {
        "drift": drift,
        "calibration": calibration,
        "performance": performance,
    }
    statistics = REGRESSION_PHASE_STATISTICS if regression else PHASE_STATISTICS
    charts = REGRESSION_CHARTS if regression else CHARTS
    return ModelSection(
        name=model.name,
        window=report.window.text,
        as_of=report.as_of,
        drift=top_drift(drift),
        phases=phase_rows(calibration, performance, split, statistics),
        no_drift=_no_drift(report),
        charts=tuple(_chart(title, tables[table], attribute, how) for title, table, attribute, how in charts),
        statistics=tuple(field for _, field in statistics),
    )


def _no_drift(report: ModelReport) -> str:
    """What the report says when no drift row qualifies: why, when the reference was still open."""
    note = report.reference.note
    return f"{note[0].upper()}{note[1:]}." if note else "No drift statistic with enough data in this range."


def top_drift(rows: Iterable[DriftRow], limit: int = TOP_DRIFT) -> tuple[DriftRow, ...]:
    """The worst window of each (version, slice, feature), worst first: by PSI, or by KS D where
    PSI is blind (`drift_rank`: a 0/1 flag that turned on has PSI 0)."""
    worst: dict[tuple[str | None, ...], DriftRow] = {}
    for row in rows:
        if row.psi is None:
            continue
        key = (row.version, row.segment, row.segment_value, row.feature)
        best = worst.get(key)
        if best is None or drift_rank(row) > drift_rank(best):
            worst[key] = row
    ranked = sorted(worst.values(), key=lambda r: (-drift_rank(r), r.feature, r.window_start))
    return tuple(ranked[:limit])


def weighted_mean(rows: Iterable[Row], attribute: str) -> float | None:
    """Σ value·n / Σ n over the rows with a value; None when none has one."""
    total = weight = 0.0
    for row in rows:
        value = getattr(row, attribute)
        if value is None:
            continue
        total += float(value) * row.n
        weight += row.n
    return total / weight if weight else None


def phase_rows(
    calibration: Sequence[CalibrationRow],
    performance: Sequence[PerformanceRow],
    split: tuple[datetime | None, datetime | None],
    statistics: Sequence[tuple[str, str]] = PHASE_STATISTICS,
) -> tuple[PhaseRow, ...]:
    """Per version (all versions first) and phase: the n-weighted means of `statistics`."""
    tables: dict[str, Sequence[Row]] = {"calibration": calibration, "performance": performance}
    groups: dict[tuple[str, str], dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for table, rows in tables.items():
        for row in rows:
            groups[(_version(row), phase_of(row.window_start, row.window_end, split))][table].append(row)
    result = []
    versions = sorted({version for version, _ in groups}, key=lambda v: (v != ALL_VERSIONS, v))
    for version in versions:
        for phase in PHASES:
            cells = groups.get((version, phase))
            if not cells:
                continue
            base = cells["calibration"] or cells["performance"]
            result.append(
                PhaseRow(
                    version=version,
                    phase=phase,
                    windows=len({row.window_start for row in base}),
                    n=sum(row.n for row in base),
                    means={
                        f"{table}.{attribute}": weighted_mean(cells[table], attribute)
                        for table, attribute in statistics
                    },
                )
            )
    return tuple(result)


def _chart(title: str, rows: Sequence[Row], attribute: str, how: str) -> Chart:
    values: dict[str, dict[datetime, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        value = getattr(row, attribute)
        if value is not None and row.segment is None:
            values[_version(row)][row.window_start].append(float(value))
    series = {
        version: tuple(
            (at, max(points) if how == "max" else points[0]) for at, points in sorted(by_window.items())
        )
        for version, by_window in sorted(values.items(), key=lambda item: (item[0] != ALL_VERSIONS, item[0]))
    }
    window = rows[0].window_end - rows[0].window_start if rows else timedelta(0)
    return Chart(title, series, window)


def _redactor(config: Config, env: Mapping[str, str]) -> Redactor:
    """The secrets of every configured target that can be read, so they can be masked."""
    secrets: list[str] = []
    for target in config.targets.values():
        try:
            secrets += credentials(target, env).redactor.secrets
        except CredentialError:
            continue
    # A secret of a few characters would mask ordinary words; the audit log has already hidden it.
    return Redactor(tuple(s for s in secrets if len(s) >= MIN_MASKED_SECRET))


# -- Markdown ------------------------------------------------------------------------------

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], low: float | None = None, high: float | None = None) -> str:
    """One block character per value, scaled between `low` and `high` (default: the values' range)."""
    if not values:
        return ""
    low = min(values) if low is None else low
    high = max(values) if high is None else high
    span = high - low
    if span <= 0:
        return SPARKS[0] * len(values)
    top = len(SPARKS) - 1
    return "".join(SPARKS[max(0, min(top, round((v - low) / span * top)))] for v in values)


def _inline(text: str) -> str:
    """Text as Markdown shows it, not as markup: a logged `<img onerror=…>` or `[text](url)` is
    shown, not rendered (HTML's `<>&` as entities, link brackets escaped)."""
    return html.escape(text, quote=False).replace("[", "\\[").replace("]", "\\]")


def _cell(text: str) -> str:
    return _inline(text).replace("|", "\\|").replace("\n", " ")


FIRED_HEADER = (
    "first firing",
    "rule",
    "signal",
    "scope",
    "severity",
    "value",
    "threshold",
    "detect",
    "resolved",
)


def _fired_rows(report: IncidentReport) -> list[tuple[str, ...]]:
    """The alerts that fired in the range, as table cells (Markdown and HTML)."""
    return [
        (
            _iso(a.first_firing),
            a.rule,
            a.signal,
            scope_text(a.scope),
            a.severity or "-",
            value_text(a.signal, a.value),
            value_text(a.signal, a.threshold),
            _duration(a.detect_delay),
            _iso(a.resolved_at),
        )
        for a in report.fired
    ]


DRIFT_HEADER = ("feature", "version", "slice", "window", "PSI", "JS", "KS D", "W1/σ", "n")


def _phase_header(section: ModelSection) -> tuple[str, ...]:
    return ("version", "phase", "windows", "n", *section.statistics)


def _drift_rows(section: ModelSection) -> list[tuple[str, ...]]:
    """The top drifted cells of a model, as table cells (Markdown and HTML)."""
    return [
        (
            _feature(r.feature),
            r.version or ALL_VERSIONS,
            _slice(r),
            _window_text(r),
            _number(r.psi),
            _number(r.js),
            _number(r.ks_d),
            _number(r.wasserstein_norm),
            str(r.n),
        )
        for r in section.drift
    ]


def _phase_rows(section: ModelSection) -> list[tuple[str, ...]]:
    """Before / during / after means per version, as table cells (Markdown and HTML)."""
    return [
        (p.version, p.phase, str(p.windows), str(p.n), *(_number(v) for v in p.means.values()))
        for p in section.phases
    ]


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return lines


def _feature(name: str) -> str:
    return "score" if name == SCORE_FEATURE else name


def _slice(row: Row) -> str:
    return "all traffic" if row.segment is None else f"{row.segment}={row.segment_value}"


def _window_text(row: Row) -> str:
    return f"{_iso(row.window_start)} .. {_iso(row.window_end)}"


def _event_text(item: TimelineItem) -> str:
    return item.what + (f" ({item.severity})" if item.severity else "")


def _text_chart(chart: Chart, firing: Sequence[datetime], actions: Sequence[datetime]) -> list[str]:
    """A sparkline per version, with a marker row: ! a first firing, R a runbook action in the window."""
    if not chart.series:
        return [f"{chart.title}: no data"]
    windows = sorted({at for points in chart.series.values() for at, _ in points})
    every = [value for points in chart.series.values() for _, value in points]
    low, high = min(every), max(every)
    width = max(len(version) for version in chart.series)
    step = windows[1] - windows[0] if len(windows) > 1 else timedelta(days=1)
    lines = [
        f"{chart.title} ({_number(low)} .. {_number(high)}), one character per window from {_iso(windows[0])}"
    ]
    for version, points in chart.series.items():
        by_window = dict(points)
        line = "".join(sparkline([by_window[at]], low, high) if at in by_window else " " for at in windows)
        lines.append(f"{version:<{width}}  {line}  last {_number(points[-1][1])}")

    def mark(at: datetime) -> str:
        fired = any(at <= t < at + step for t in firing)
        acted = any(at <= t < at + step for t in actions)
        return "R" if acted else "!" if fired else " "

    lines.append(f"{'':<{width}}  {''.join(mark(at) for at in windows)}  (! alert fired, R runbook action)")
    return lines


def render_markdown(report: IncidentReport) -> str:
    """The report as Markdown (not yet redacted: use `IncidentReport.markdown`)."""
    out = [
        f"# Incident report: {', '.join(report.models)}",
        "",
        f"{_iso(report.start)} to {_iso(report.end)} · generated {_iso(report.generated_at)} "
        "by `triage report` (alerts as replayed: each fires at the clock time it would have fired live)",
        "",
        "## Summary",
        "",
        *(f"- {_inline(line)}" for line in report.summary_lines()),
        "",
    ]
    if report.fired:
        out += _table(FIRED_HEADER, _fired_rows(report))
        out.append("")
    out += ["## Timeline", ""]
    if report.timeline:
        out += _table(
            ("time", "kind", "event", "what", "detail"),
            ((_iso(i.at), i.kind, _event_text(i), i.title, i.detail) for i in report.timeline),
        )
    else:
        out.append("No alert state change and no runbook action in this range.")
    out.append("")
    firing, actions = report.markers()
    for section in report.sections:
        out += [
            f"## Model {section.name} (windows of {section.window})",
            "",
            "### Top drifted features and slices",
            "",
        ]
        if section.drift:
            out += _table(DRIFT_HEADER, _drift_rows(section))
        else:
            out.append(section.no_drift)
        out += ["", "### Calibration and performance before / during / after", "", _phase_note(report), ""]
        if section.phases:
            out += _table(_phase_header(section), _phase_rows(section))
        else:
            out.append("No window in this range.")
        out += ["", "### Charts", "", "```text"]
        for chart in section.charts:
            out += [*_text_chart(chart, firing, actions), ""]
        if out[-1] == "":
            out.pop()
        out += ["```", ""]
    out += ["## Runbook actions", ""]
    if not report.actions:
        out.append("No runbook action recorded in this range.")
    for action in report.actions:
        entry = action.entry
        out += [
            f"### {_iso(action.at)} {action.title} — {entry.outcome_text}",
            "",
            f"- safety: {entry.safety}; operator: {entry.operator or 'unknown'}; alert: {entry.alert or '-'}",
            f"- started {_iso(entry.started_at)}, finished {_iso(entry.finished_at)}; HTTP status "
            f"{entry.status if entry.status is not None else '-'}; attempts {entry.attempts}; verified "
            f"{'-' if entry.verified is None else 'yes' if entry.verified else 'no'}",
        ]
        if entry.message:
            out.append(f"- message: {_inline(entry.message)}")
        out += [
            "",
            "```json",
            json.dumps(_audit_record(entry), indent=2, sort_keys=True, default=str),
            "```",
            "",
        ]
    if report.malformed_audit_lines:
        out.append(f"({report.malformed_audit_lines} unreadable audit line(s) skipped.)")
    return "\n".join(out).rstrip() + "\n"


def _phase_note(report: IncidentReport) -> str:
    first = report.first_signal
    if first is None:
        return "No alert fired, so every window counts as before."
    cut = f"before: windows ending by the first signal ({_iso(first.first_firing)})"
    if report.mitigation is None:
        return f"{cut}; during: the rest (no mitigation recorded). Means weighted by each window's n."
    return (
        f"{cut}; after: windows starting at or after the mitigation ({_iso(report.mitigation.at)}); "
        "during: between. Means weighted by each window's n."
    )


def _audit_record(entry: AuditEntry) -> dict[str, Any]:
    """The audit fields a reviewer needs (already redacted by the audit log)."""
    return {
        "id": entry.id,
        "runbook": entry.runbook,
        "runbook_sha256": entry.runbook_sha256,
        "step": entry.step,
        "params": dict(entry.params),
        "request": dict(entry.request),
        "outcome": entry.outcome,
        "status": entry.status,
        "verified": entry.verified,
        "before_state": dict(entry.before_state),
        "after_state": dict(entry.after_state),
    }


# -- HTML ----------------------------------------------------------------------------------

COLOURS = ("#1f6feb", "#e8590c", "#7048e8", "#0c8599", "#c2255c", "#495057")  # no red or green: markers
FIRING_COLOUR, ACTION_COLOUR = "#e03131", "#2b8a3e"
CSS = """
body{font:14px/1.45 -apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
color:#1b1f24;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;padding:.7em;overflow-x:auto;font-size:12px}
.summary li{margin:.2em 0}.charts{display:flex;flex-wrap:wrap;gap:12px}
.firing{color:#e03131;font-weight:600}.resolved{color:#2b8a3e}.runbook{color:#1f6feb}
svg text{font:11px sans-serif;fill:#57606a}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _html_table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(v)}</td>' if i in numeric else f"<td>{_e(v)}</td>"
            for i, v in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def svg_chart(
    chart: Chart,
    start: datetime,
    end: datetime,
    firing: Sequence[datetime],
    actions: Sequence[datetime],
    width: int = 520,
    height: int = 220,
) -> str:
    """An inline SVG line chart of one statistic per version, with vertical markers at the first
    firings (red, dashed) and the runbook actions (green)."""
    left, right, top, bottom = 52, 12, 24, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for points in chart.series.values() for _, v in points]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - 0.5 * (abs(low) or 1), high + 0.5 * (abs(high) or 1)
    total = max((end - start).total_seconds(), 1.0)
    middle = chart.window / 2

    def x(at: datetime) -> float:
        return left + plot_w * min(max((at - start).total_seconds() / total, 0.0), 1.0)

    def y(value: float) -> float:
        return top + plot_h * (1 - (value - low) / (high - low))

    parts = [
        f'<svg role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{_e(chart.title)}</title>",
        f'<text x="{left}" y="15" style="font-weight:600;fill:#1b1f24">{_e(chart.title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" stroke="#d0d7de"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = low + (high - low) * fraction
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'stroke="#eaeef2"/>'
            f'<text x="{left - 4}" y="{y(value) + 4:.1f}" text-anchor="end">{_e(_number(value))}</text>'
        )
    for at, label in ((start, _iso(start)), (end, _iso(end))):
        anchor = "start" if at == start else "end"
        parts.append(
            f'<text x="{x(at):.1f}" y="{top + plot_h + 14}" text-anchor="{anchor}">{_e(label)}</text>'
        )
    for times, colour, dash, name in (
        (firing, FIRING_COLOUR, ' stroke-dasharray="4 3"', "alert fired"),
        (actions, ACTION_COLOUR, "", "runbook action"),
    ):
        for at in times:
            if start <= at <= end:
                parts.append(
                    f'<line x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{top}" y2="{top + plot_h}" '
                    f'stroke="{colour}" stroke-width="1.5"{dash}>'
                    f"<title>{_e(name)} {_e(_iso(at))}</title></line>"
                )
    legend_x = left
    for index, (version, points) in enumerate(chart.series.items()):
        colour = COLOURS[index % len(COLOURS)]
        coords = " ".join(f"{x(at + middle):.1f},{y(v):.1f}" for at, v in points)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>')
        parts += [
            f'<circle cx="{x(at + middle):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}">'
            f"<title>{_e(version)} {_e(_iso(at))}: {_e(_number(v))}</title></circle>"
            for at, v in points
        ]
        parts.append(
            f'<rect x="{legend_x}" y="{height - 14}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{height - 5}">{_e(version)}</text>'
        )
        legend_x += 24 + 7 * len(version)
    parts.append(
        f'<line x1="{legend_x}" x2="{legend_x + 12}" y1="{height - 9}" y2="{height - 9}" '
        f'stroke="{FIRING_COLOUR}" stroke-dasharray="4 3"/>'
        f'<text x="{legend_x + 16}" y="{height - 5}">fired</text>'
        f'<line x1="{legend_x + 56}" x2="{legend_x + 68}" y1="{height - 9}" y2="{height - 9}" '
        f'stroke="{ACTION_COLOUR}"/><text x="{legend_x + 72}" y="{height - 5}">runbook action</text>'
    )
    if not values:
        parts.append(f'<text x="{left + 8}" y="{top + 20}">no data</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(report: IncidentReport) -> str:
    """The report as one HTML document (not yet redacted: use `IncidentReport.html`)."""
    title = f"Incident report: {', '.join(report.models)}"
    body = [
        f"<h1>{_e(title)}</h1>",
        f"<p>{_e(_iso(report.start))} to {_e(_iso(report.end))} · generated {_e(_iso(report.generated_at))} "
        "by <code>triage report</code> (alerts as replayed: each fires at the clock time it would have "
        "fired live)</p>",
        "<h2>Summary</h2>",
        '<ul class="summary">' + "".join(f"<li>{_e(line)}</li>" for line in report.summary_lines()) + "</ul>",
    ]
    if report.fired:
        body.append(_html_table(FIRED_HEADER, _fired_rows(report), numeric=(5, 6)))
    body.append("<h2>Timeline</h2>")
    if report.timeline:
        rows = "".join(
            f'<tr class="{_e(item.what if item.kind == "alert" else "runbook")}"><td>{_e(_iso(item.at))}</td>'
            f"<td>{_e(item.kind)}</td><td>{_e(_event_text(item))}</td>"
            f"<td>{_e(item.title)}</td><td>{_e(item.detail)}</td></tr>"
            for item in report.timeline
        )
        body.append(
            "<table><thead><tr><th>time</th><th>kind</th><th>event</th><th>what</th><th>detail</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>"
        )
    else:
        body.append("<p>No alert state change and no runbook action in this range.</p>")
    firing, actions = report.markers()
    for section in report.sections:
        body += [f"<h2>Model {_e(section.name)} (windows of {_e(section.window)})</h2>", "<h3>Charts</h3>"]
        body.append(
            '<div class="charts">'
            + "".join(svg_chart(chart, report.start, report.end, firing, actions) for chart in section.charts)
            + "</div>"
        )
        body.append("<h3>Top drifted features and slices</h3>")
        body.append(
            _html_table(DRIFT_HEADER, _drift_rows(section), numeric=(4, 5, 6, 7, 8))
            if section.drift
            else f"<p>{_e(section.no_drift)}</p>"
        )
        body += [
            "<h3>Calibration and performance before / during / after</h3>",
            f"<p>{_e(_phase_note(report))}</p>",
        ]
        header = _phase_header(section)
        body.append(
            _html_table(header, _phase_rows(section), numeric=tuple(range(2, len(header))))
            if section.phases
            else "<p>No window in this range.</p>"
        )
    body.append("<h2>Runbook actions</h2>")
    if not report.actions:
        body.append("<p>No runbook action recorded in this range.</p>")
    for action in report.actions:
        entry = action.entry
        verified = "-" if entry.verified is None else "yes" if entry.verified else "no"
        body += [
            f"<h3>{_e(_iso(action.at))} {_e(action.title)} — {_e(entry.outcome_text)}</h3>",
            _html_table(
                (
                    "safety",
                    "operator",
                    "alert",
                    "started",
                    "finished",
                    "HTTP",
                    "attempts",
                    "verified",
                    "message",
                ),
                [
                    (
                        entry.safety,
                        entry.operator or "unknown",
                        entry.alert or "-",
                        _iso(entry.started_at),
                        _iso(entry.finished_at),
                        "-" if entry.status is None else str(entry.status),
                        str(entry.attempts),
                        verified,
                        entry.message or "-",
                    )
                ],
            ),
            f"<pre>{_e(json.dumps(_audit_record(entry), indent=2, sort_keys=True, default=str))}</pre>",
        ]
    if report.malformed_audit_lines:
        body.append(f"<p>({report.malformed_audit_lines} unreadable audit line(s) skipped.)</p>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
