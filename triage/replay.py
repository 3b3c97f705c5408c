"""Replay: logged traffic evaluated as of a moving clock, so alerts fire when they would have.

At each clock time T the engine evaluates a model as of T — predictions with timestamp ≤ T and
labels with `labeled_at` ≤ T, the `triage check --at T` semantics — and the rules are evaluated on
those tables. An in-memory alert state per rule set follows the evaluations with the same
`transition` the store uses, so a replayed alert goes pending, fires and resolves at the clock
time it would have live, and no label that arrived later can make it fire early. A replay writes
nothing to the store's alert state.

Several rule sets (the configured one, and a candidate from `--rules`) are judged on the same
evaluations, so a back-test compares them on exactly the same numbers: for each alert, which set
fires it first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from triage.alerts.evaluate import UNKNOWN, AlertEvaluation, JudgeMemo, evaluate_rules
from triage.alerts.rules import FEED_SIGNAL, effective_rules
from triage.alerts.state import FIRING, Alert, AlertEvent, transition
from triage.config import AlertRule, Config, ModelConfig, Window
from triage.engine import Engine, EngineError, ModelReport
from triage.metrics.operations import quiet_spans

CURRENT = "current"
CANDIDATE = "candidate"
RuleSet = Mapping[str, Sequence[AlertRule]]  # model name → rules


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with a Z, or None."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def event_json(
    event: AlertEvent, signal: str, scope: Mapping[str, str], runbook: str | None
) -> dict[str, Any]:
    """One alert state change of a replay timeline as JSON: the history entry, with the alert's
    signal, scope and runbook."""
    return {**event.to_json(), "signal": signal, "scope": dict(scope), "runbook": runbook}


@dataclass
class AlertTrack:
    """The alert state of one rule set through a replay, in memory, and every change it went through."""

    name: str
    rules: RuleSet
    alerts: dict[str, Alert] = field(default_factory=dict)
    events: list[AlertEvent] = field(default_factory=list)
    # (fingerprint, window) judged, of the windows that ended during the replay: from its first
    # step on (that step judges the windows before it too, as a live check then would have).
    judged: set[tuple[str, datetime]] = field(default_factory=set)
    judgements: JudgeMemo = field(default_factory=JudgeMemo)  # cells judged at earlier steps
    start: datetime | None = None  # the first step's clock time

    def advance(self, evaluations: Sequence[AlertEvaluation], at: datetime) -> list[AlertEvent]:
        """Apply one step's evaluations at clock time `at`; the state changes, in order."""
        start = self.start = self.start or at
        changes: list[AlertEvent] = []
        for evaluation in evaluations:
            self.judged.update(
                (evaluation.fingerprint, cell.window_start)
                for cell in evaluation.cells
                if cell.status != UNKNOWN and start <= cell.window_end <= at
            )
            alert, event = transition(self.alerts.get(evaluation.fingerprint), evaluation, at)
            if alert is not None:
                self.alerts[evaluation.fingerprint] = alert
            if event is not None:
                changes.append(event)
        self.events += changes
        return changes

    def first_firing(self) -> dict[str, datetime]:
        """fingerprint → the clock time it first fired."""
        first: dict[str, datetime] = {}
        for event in self.events:
            if event.to_state == FIRING and event.fingerprint not in first:
                first[event.fingerprint] = event.at
        return first

    def timeline(self) -> list[dict[str, Any]]:
        """Every state change as JSON, in clock order."""
        return [
            event_json(event, alert.signal, dict(alert.scope), alert.runbook)
            for event in self.events
            if (alert := self.alerts.get(event.fingerprint)) is not None
        ]


@dataclass(frozen=True)
class Step:
    """One tick of the replay clock: the evaluations and what changed in each rule set."""

    at: datetime
    reports: Mapping[str, ModelReport]
    changes: Mapping[str, list[AlertEvent]]


class Replayer:
    """Moves a clock forward through logged traffic, evaluating models and rule sets as of it.

    Steps must move forward; `reset` starts the alert state over (a seek backwards).
    """

    def __init__(
        self,
        engine: Engine,
        models: Sequence[ModelConfig],
        candidate: RuleSet | None = None,
    ) -> None:
        self.engine = engine
        self.models = tuple(models)
        current = {model.name: effective_rules(model) for model in self.models}
        self.rule_sets: dict[str, RuleSet] = {CURRENT: current}
        if candidate is not None:
            self.rule_sets[CANDIDATE] = {name: candidate.get(name, rules) for name, rules in current.items()}
        self.tracks: dict[str, AlertTrack] = {}
        self.last: datetime | None = None
        self.reset()

    def reset(self) -> None:
        """Forget every alert: the next step starts from a clean state."""
        self.tracks = {name: AlertTrack(name, rules) for name, rules in self.rule_sets.items()}
        self.last = None

    def step(self, at: datetime) -> Step:
        """Evaluate every model as of `at` and advance each rule set's alerts."""
        return self.judge(at, self.evaluate(at))

    def run(self, times: Iterable[datetime], ahead: int = 2) -> Iterator[Step]:
        """`step` through `times`, evaluating up to `ahead` later times in worker threads while the
        rules judge the current one (DuckDB and numpy run outside the interpreter lock)."""
        with ThreadPoolExecutor(max_workers=ahead, thread_name_prefix="triage-replay") as pool:
            pending: deque[tuple[datetime, Future[dict[str, ModelReport]]]] = deque()
            for at in times:
                pending.append((at, pool.submit(self.evaluate, at)))
                if len(pending) > ahead:
                    current, reports = pending.popleft()
                    yield self.judge(current, reports.result())
            while pending:
                current, reports = pending.popleft()
                yield self.judge(current, reports.result())

    def evaluate(self, at: datetime) -> dict[str, ModelReport]:
        """Every model's report as of `at` (models with nothing ingested are left out)."""
        reports: dict[str, ModelReport] = {}
        for model in self.models:
            try:
                reports[model.name] = self.engine.evaluate(model.name, as_of=at)
            except EngineError:
                continue  # nothing ingested for this model
        return reports

    def judge(self, at: datetime, reports: Mapping[str, ModelReport]) -> Step:
        """Advance each rule set's alerts on the reports as of `at`; steps must move forward."""
        if self.last is not None and at < self.last:
            raise ValueError(f"replay steps move forward: {iso(at)} is before {iso(self.last)}")
        self.last = at
        changes: dict[str, list[AlertEvent]] = {}
        for name, track in self.tracks.items():
            events: list[AlertEvent] = []
            for model in self.models:
                report = reports.get(model.name)
                if report is None:
                    continue
                evaluations = evaluate_rules(
                    track.rules[model.name],
                    report.tables(),
                    model,
                    at,
                    report.reference_tables(),
                    track.judgements,
                    report.reference_arrival,
                )
                events += track.advance(evaluations, at)
            changes[name] = events
        return Step(at, reports, changes)


def replay_span(engine: Engine, models: Sequence[ModelConfig]) -> tuple[datetime, datetime] | None:
    """The first and last prediction time over `models` — the last up to now when there is one: a
    row stamped decades ahead (a producer's clock) would make the replay run for decades of windows;
    None when nothing is stored."""
    now = datetime.now(UTC)
    ranges = [span for model in models if (span := engine.store.time_range(model, now)) is not None]
    if not ranges:
        return None
    return min(first for first, _ in ranges), max(last for _, last in ranges)


def step_size(models: Sequence[ModelConfig]) -> timedelta:
    """The default replay step: the smallest window of the models (a month counts as 28 days)."""
    hours = {"h": 1, "d": 24, "w": 168, "mo": 24 * 28}
    return min(timedelta(hours=hours[m.window.unit] * m.window.count) for m in models)


def default_start(models: Sequence[ModelConfig], first: datetime) -> datetime:
    """Where a replay starts by default: the end of the window holding the first prediction, or
    the end of the reference period when that is later (inside it, "normal" is still being defined)."""
    window: Window = min(models, key=lambda m: step_size([m])).window
    start = window.end_of(window.start_of(first))
    ends = [m.reference.end for m in models if m.reference.kind == "range" and m.reference.end is not None]
    return max([start, *ends])


def silence_times(replayer: Replayer, start: datetime, end: datetime) -> set[datetime]:
    """Clock times between a replay's steps at which a feed silence rule changes its mind: where
    the model's predictions stopped (`quiet_spans`), the moment the silence reached each threshold
    of a `feed.silence_s` rule, and the moment they came back. Inside (start, end) only. (A slice's
    silence, `feed.unusual_s`, is judged at the steps: how much longer than usual it is depends on
    earlier days, and a night-time region's nightly gap would add steps every night.)"""
    found: set[datetime] = set()
    cursor = replayer.engine.store.cursor()
    try:
        for model in replayer.models:
            if replayer.engine.store.time_range(model) is None:
                continue  # nothing ingested for this model
            rules = [rule for rules in replayer.rule_sets.values() for rule in rules.get(model.name, ())]
            limits = {
                limit
                for rule in rules
                if rule.signal == FEED_SIGNAL and not rule.where
                for limit in (rule.warn, rule.critical)
                if limit is not None and limit > 0
            }
            for limit in limits:
                for last, after in quiet_spans(cursor, model, limit, start, end):
                    found.update((last + timedelta(seconds=limit), after))
    finally:
        cursor.close()
    return {at for at in found if start < at < end}


def clock_times(start: datetime, end: datetime, step: timedelta) -> Iterator[datetime]:
    """start, start + step, … up to `end`, and `end` itself when the last step falls short of it."""
    at = start
    while at < end:
        yield at
        at += step
    yield end


def compare(current: AlertTrack, candidate: AlertTrack) -> list[dict[str, Any]]:
    """Per alert that fired in either rule set: when each fired first, and the verdict for the candidate.

    verdict: "earlier", "later", "same", "only current" (the candidate misses it), "only candidate".
    """
    mine, theirs = current.first_firing(), candidate.first_firing()
    alerts = {**candidate.alerts, **current.alerts}
    rows = []
    for fingerprint in sorted(set(mine) | set(theirs), key=lambda f: (min(_times(f, mine, theirs)), f)):
        a, b = mine.get(fingerprint), theirs.get(fingerprint)
        if a is None:
            verdict = "only candidate"
        elif b is None:
            verdict = "only current"
        else:
            verdict = "earlier" if b < a else "later" if b > a else "same"
        alert = alerts[fingerprint]
        rows.append(
            {
                "fingerprint": fingerprint,
                "model": alert.model,
                "rule": alert.rule,
                "signal": alert.signal,
                "scope": dict(alert.scope),
                "current_fired_at": iso(a),
                "candidate_fired_at": iso(b),
                "verdict": verdict,
                "difference_s": None if a is None or b is None else (b - a).total_seconds(),
            }
        )
    return rows


def _times(fingerprint: str, *firsts: dict[str, datetime]) -> list[datetime]:
    return [first[fingerprint] for first in firsts if fingerprint in first]


@dataclass(frozen=True)
class Timeline:
    """A whole headless replay: the clock's path, and per rule set its alerts and state changes."""

    start: datetime
    end: datetime
    step: timedelta
    steps: int
    silence_steps: int  # of `steps`: between the regular ones, where a feed went silent (`silence_times`)
    models: tuple[str, ...]
    tracks: Mapping[str, AlertTrack]

    def to_json(self) -> dict[str, Any]:
        """The `triage replay --headless --json` document (described in the README)."""
        document: dict[str, Any] = {
            "from": iso(self.start),
            "to": iso(self.end),
            "step_s": self.step.total_seconds(),
            "steps": self.steps,
            "silence_steps": self.silence_steps,
            "models": list(self.models),
            "rule_sets": {
                name: {
                    "rules": {
                        model: [rule.name for rule in rules] for model, rules in sorted(track.rules.items())
                    },
                    "firing_alerts": len(track.first_firing()),
                    "judged_cells": len(track.judged),
                    "timeline": track.timeline(),
                }
                for name, track in self.tracks.items()
            },
        }
        if CANDIDATE in self.tracks:
            document["comparison"] = compare(self.tracks[CURRENT], self.tracks[CANDIDATE])
        return document


def run_replay(
    config: Config,
    engine: Engine,
    *,
    models: Sequence[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    step: timedelta | None = None,
    candidate: RuleSet | None = None,
) -> Timeline:
    """Replay `models` (default all) headless from `start` to `end` (default: the logged traffic)."""
    chosen = [config.model(name) for name in models] if models else list(config.models)
    span = replay_span(engine, chosen)
    if span is None:
        raise EngineError("nothing ingested yet; run `triage ingest` first")
    first, last = span
    start = start or default_start(chosen, first)
    end = end or last
    if end < start:
        raise EngineError(f"the replay ends ({iso(end)}) before it starts ({iso(start)})")
    step = step or step_size(chosen)
    replayer = Replayer(engine, chosen, candidate)
    regular = set(clock_times(start, end, step))
    silences = silence_times(replayer, start, end) - regular
    steps = sum(1 for _ in replayer.run(sorted(regular | silences)))
    return Timeline(start, end, step, steps, len(silences), tuple(m.name for m in chosen), replayer.tracks)
