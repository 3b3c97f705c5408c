"""The real `DataSource`: the store, the engine, alert state and the runbook executor.

The only TUI module that imports those parts. It is imported by the app's first worker, after the
first screen has painted (the engine pulls in scipy, which takes longer to import than Textual).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from itertools import chain, pairwise
from operator import attrgetter
from pathlib import Path

import duckdb

from triage.alerts.evaluate import FIRING, PENDING, UNKNOWN, AlertEvaluation, JudgeMemo, evaluate_rules
from triage.alerts.rules import effective_rules, value_text
from triage.alerts.state import Alert, AlertEvent, AlertStore, alert_rank, check_alerts
from triage.config import Config, ModelConfig
from triage.engine import LIVE_LABEL_SLACK, Engine, EngineError, ModelReport
from triage.metrics.drift import numeric_histograms
from triage.metrics.frame import Scope
from triage.metrics.profile import ensure_profile
from triage.metrics.quality import categorical_counts
from triage.metrics.results import DriftRow
from triage.replay import CURRENT, Replayer, RuleSet
from triage.runbooks.audit import AuditEntry, AuditLog
from triage.runbooks.executor import AlertContext, Executor, Plan, ProgressEvent
from triage.runbooks.format import Runbook, RunbookError, find_runbook, load_runbook, runbook_paths
from triage.store import Store, StoreError, connect
from triage.store.tables import NUMERIC
from triage.tui.data import (
    AlertView,
    DryRun,
    Histogram,
    ModelView,
    Progress,
    RunbookRef,
    RunbookView,
    Snapshot,
    StepOutcome,
    StepView,
    TimelineEvent,
)

RESOLVED_SHOWN_FOR = timedelta(days=7)  # resolved alerts stay on the list this long
CLOSE_WAIT_S = 10.0  # closing waits this long for a refresh to let go of the store
INTERRUPT_EVERY_S = 0.05
IDLE_CLOSE_S = 1.0  # the store closes after this long without a live cursor (other processes use it)
TOP_CATEGORIES = 9  # a categorical histogram shows these, the rest as "other"
CLOCK_SKEW = timedelta(minutes=1)  # a shown time further from now is a simulated one
HISTORY_SHOWN = 500  # alert history entries on the Timeline
_VERSION, _FEATURE = attrgetter("version"), attrgetter("feature")
EVIDENCE_KEYS = ("baseline", "p_value", "p_adjusted", "effect", "n_labeled", "run", "for_windows", "note")


def model_view(model: ModelConfig, report: ModelReport) -> ModelView:
    """What the panels need of one model's evaluation."""
    # Read with C-level maps: these tables hold a row per cell of the whole history.
    tables = (report.drift, report.calibration, report.performance, report.operations)
    versions = sorted(set(map(_VERSION, chain.from_iterable(tables))) - {None})
    return ModelView(
        name=model.name,
        window=report.window.text,
        threshold=model.threshold,
        min_samples=model.min_samples,
        versions=tuple(versions),
        segments=report.segments,
        features=tuple(sorted(set(map(_FEATURE, report.drift)))),
        cost_false_positive=model.costs.false_positive,
        cost_false_negative=model.costs.false_negative,
        cost_segment=model.costs.segment,
        reference=report.reference,
        windows=report.windows,
        drift=report.drift,
        data_quality=report.data_quality,
        calibration=report.calibration,
        performance=report.performance,
        operations=report.operations,
        reference_calibration=report.reference_calibration,
        pending_labels=sum(n for _, n in report.pending_labels),
        pending_windows=len(report.pending_labels),
        last_prediction=report.feed[0].last_prediction,
        stale_after_s=model.stale_after.total_seconds() if model.stale_after else None,
        task=model.task,
    )


def alert_view(alert: Alert, now: datetime, suggested: str | None) -> AlertView:
    """An alert from the store as the screens show it; `suggested` is a runbook serving its signal."""
    evidence = {key: alert.evidence[key] for key in EVIDENCE_KEYS if alert.evidence.get(key) is not None}
    n = alert.evidence.get("n")
    return AlertView(
        fingerprint=alert.fingerprint,
        model=alert.model,
        rule=alert.rule,
        signal=alert.signal,
        severity=alert.severity or "warning",
        state=alert.state,
        scope=dict(alert.scope),
        value=alert.value,
        threshold=alert.threshold,
        window_start=alert.window_start,
        window_end=alert.window_end,
        since=alert.fired_at or alert.started_at,
        n=int(n) if isinstance(n, int | float) else None,
        runbook=alert.runbook or suggested,
        acknowledged_by=alert.ack.by if alert.ack else None,
        ack_note=alert.ack.note if alert.ack else None,
        silenced_until=alert.silence.until if alert.silence and alert.silenced(now) else None,
        evidence=evidence,
    )


def evaluation_view(
    evaluation: AlertEvaluation, stored: Alert | None, now: datetime, suggested: str | None
) -> AlertView:
    """An alert as it would stand at a past time (`--at`), without recording anything."""
    cell = evaluation.latest
    crossed = (
        [c for c in evaluation.cells if c.status != UNKNOWN][-evaluation.run :] if evaluation.run else []
    )
    evidence = cell.evidence() if cell else {}
    evidence |= {"run": evaluation.run, "for_windows": evaluation.for_windows}
    return AlertView(
        fingerprint=evaluation.fingerprint,
        model=evaluation.model,
        rule=evaluation.rule,
        signal=evaluation.signal,
        severity=evaluation.severity or "warning",
        state=evaluation.condition,
        scope=evaluation.scope_dict,
        value=cell.value if cell else None,
        threshold=cell.threshold if cell else None,
        window_start=cell.window_start if cell else None,
        window_end=cell.window_end if cell else None,
        since=crossed[0].window_start if crossed else None,
        n=cell.n if cell else None,
        runbook=evaluation.runbook or suggested,
        acknowledged_by=stored.ack.by if stored and stored.ack else None,
        ack_note=stored.ack.note if stored and stored.ack else None,
        silenced_until=stored.silence.until if stored and stored.silence and stored.silenced(now) else None,
        evidence={key: evidence[key] for key in EVIDENCE_KEYS if evidence.get(key) is not None},
    )


def _scope_text(scope: Mapping[str, str]) -> str:
    return " ".join(f"{key}={value}" for key, value in scope.items()) or "all"


def alert_events(history: Sequence[AlertEvent], alerts: Mapping[str, Alert]) -> list[TimelineEvent]:
    """Alert history entries as Timeline events (the alert gives each its signal and scope)."""
    events = []
    for event in history:
        alert = alerts.get(event.fingerprint)
        scope = _scope_text(dict(alert.scope)) if alert else ""
        if event.event in ("acknowledged", "silenced"):
            kind, detail = event.event, f"{event.actor or '?'}: {event.note or ''} · {scope}"
        else:
            signal = alert.signal if alert else ""  # a silence as a duration, as the other views
            shown = f" · {value_text(signal, event.value)} vs {value_text(signal, event.threshold)}"
            value = "" if event.value is None else shown
            kind, detail = "alert", f"{scope}{value}" if event.threshold is not None else scope
        events.append(
            TimelineEvent(
                at=event.at,
                kind=kind,
                what=event.event,
                title=event.rule,
                detail=detail,
                model=event.model,
                fingerprint=event.fingerprint,
                severity=event.severity,
                window_start=event.window_start,
                signal=alert.signal if alert else None,
            )
        )
    return events


def action_event(entry: AuditEntry) -> TimelineEvent:
    """A runbook step from the audit log as a Timeline event (already redacted by the log)."""
    status = f"HTTP {entry.status}" if entry.status is not None else "no response"
    return TimelineEvent(
        at=entry.clock_at or entry.started_at,
        kind="runbook",
        what=entry.outcome_text,
        title=f"{entry.runbook}#{entry.step}",
        detail=f"{entry.operator} · {status}",
        fingerprint=entry.alert or None,
    )


def runbook_name(ref: str) -> tuple[str, str | None]:
    """`runbooks/kserve-canary-traffic.md#shift-traffic` → ("kserve-canary-traffic", "shift-traffic")."""
    path, _, step = ref.partition("#")
    return Path(path).name.removesuffix(".md"), step or None


def runbook_markdown(book: Runbook) -> str:
    """The runbook's prose without its front matter; step fences highlighted as TOML."""
    lines = book.path.read_text(encoding="utf-8").splitlines()
    closing = next((i for i in range(1, len(lines)) if lines[i].strip() == "+++"), 0)
    body = "\n".join(lines[closing + 1 :])
    return body.replace("```toml step", "```toml")


class InterruptibleStore(Store):
    """A `Store` held only while it is used, whose queries can all be stopped when the app closes.

    DuckDB locks the file for as long as a process has it open, and a writer excludes every
    other process (a cron `triage check`, `triage ingest`). So the connection closes once no
    cursor has been alive for `IDLE_CLOSE_S` — between two refreshes, the file is free — and the
    next `cursor()` opens it again, waiting for another process's lock as `Store.open` does. A
    cursor is alive while referenced: the engine's, each closed and dropped after its work.

    DuckDB's `interrupt()` stops the query running on a cursor at that instant; a worker that was
    between two queries would run the next one in full. So closing is sticky: no new cursor is
    handed out, and a daemon thread keeps interrupting the live cursors until they are gone.
    """

    def __init__(self, path: str, read_only: bool) -> None:
        super().__init__(connect(path, read_only), path, read_only)
        self._cursors: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()
        self._cursors_lock = threading.Lock()
        self._open_lock = threading.Lock()  # opening and closing the connection
        self._open = True
        self._used = time.monotonic()  # when a cursor was last handed out or seen alive
        self._closing = threading.Event()
        self._closed = threading.Event()
        self._interrupter = threading.Thread(
            target=self._keep_interrupting, name="triage-interrupt", daemon=True
        )
        threading.Thread(target=self._close_when_idle, name="triage-idle-close", daemon=True).start()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        if self._closing.is_set():
            raise StoreError(f"{self.path}: closing")
        with self._open_lock:
            if not self._open:
                self._connection = connect(self.path, self.read_only)
                self._open = True
            cursor = super().cursor()
            self._used = time.monotonic()
        with self._cursors_lock:
            self._cursors.add(cursor)
        return cursor

    def _close_when_idle(self) -> None:
        while not self._closed.wait(IDLE_CLOSE_S / 4):
            with self._open_lock:
                if not self._open or self._closing.is_set():
                    continue
                with self._cursors_lock:
                    alive = len(self._cursors) > 0
                now = time.monotonic()
                if alive:
                    self._used = now
                elif now - self._used >= IDLE_CLOSE_S:
                    self._connection.close()
                    self._open = False

    def interrupt(self) -> None:
        """Stop every query in flight now and any that a live cursor starts from now on."""
        if not self._closing.is_set():
            self._closing.set()
            self._interrupter.start()

    def _keep_interrupting(self) -> None:
        # Until the store is closed or no cursor is left: a worker busy in Python between two
        # queries (scipy on a large cell) must find its next query interrupted too, however long
        # that takes — otherwise it runs on after the app has gone.
        while self._interrupt_live_cursors():
            if self._closed.wait(INTERRUPT_EVERY_S):
                return

    def _interrupt_live_cursors(self) -> bool:
        """Interrupt each cursor still alive; False when none is left."""
        with self._cursors_lock:
            cursors = list(self._cursors)
        for cursor in cursors:
            with suppress(duckdb.Error):
                cursor.interrupt()
        return bool(cursors)

    def close(self) -> None:
        # Stop the interrupter first: a DuckDB object still referenced when Python shuts down is
        # reported as a leak on the user's terminal.
        self._closed.set()
        if self._interrupter.is_alive():
            self._interrupter.join()
        with self._open_lock:
            if self._open:
                super().close()
                self._open = False


class EngineSource:
    """The real `DataSource`: one read-write `Store` for the process (ingest and alert state), the
    `Engine` over it, the alert store and the runbook `Executor`.

    `record_alerts` is True in live mode (evaluations update alert state and history at `as_of`);
    False when looking at a past time, which evaluates the rules without writing anything.
    """

    def __init__(
        self,
        config: Config,
        *,
        record_alerts: bool = True,
        replay: Sequence[ModelConfig] | None = None,
        rules: RuleSet | None = None,
    ) -> None:
        self.config = config
        self.record_alerts = record_alerts and replay is None
        # Only the live view writes (ingest, alert state): a replay or a look back reads, and
        # lets `triage check` run beside it.
        read_only = not self.record_alerts
        self.store = InterruptibleStore(str(config.store_path), read_only)
        self.engine = Engine(config, self.store)
        self.audit = AuditLog(config.audit_path)
        self.executor = Executor(config.targets, self.audit)
        # Replay: the alerts follow the moving clock in memory (a seek backwards starts them over).
        self.shown_at: datetime | None = None  # the as-of time of the latest snapshot
        self.replayer = Replayer(self.engine, replay, rules) if replay is not None else None
        # An evaluation may build the reference profile into the store: one at a time (a superseded
        # refresh can still be running). Alert state has its own lock, so acknowledging never
        # waits for a refresh.
        self._engine_lock = threading.Lock()
        self._alerts_lock = threading.Lock()
        self._judgements = JudgeMemo()  # the cells judged by earlier refreshes (under the alerts lock)

    def ingest_new(self) -> int:
        # No separate warming: the snapshot that follows evaluates on this writable store, which
        # computes and stores exactly the windows whose rows or labels changed.
        with self._engine_lock:
            return self.engine.refresh(warm=False).rows_added

    def prepare(self) -> None:
        # The reference ECDFs: the new windows of a live refresh are measured against them.
        with self._engine_lock:
            for model in self.config.models:
                try:
                    self.engine.prepare(model.name)
                except EngineError:
                    continue  # nothing ingested for this model yet

    def snapshot(self, as_of: datetime) -> Snapshot:
        books = self._runbooks()
        if self.replayer is not None:
            return self._replay_snapshot(self.replayer, as_of, books)
        reports: list[tuple[ModelConfig, ModelReport]] = []
        # The live view stores what it computes: it is the present, though rows stamped after
        # `as_of` may have come in with its refresh (a look back's store is read-only).
        with self._engine_lock:
            for model in self.config.models:
                try:
                    report = self.engine.evaluate(model.name, as_of, label_slack=LIVE_LABEL_SLACK, store=True)
                except EngineError:
                    continue  # nothing ingested for this model yet
                reports.append((model, report))
        alerts: list[AlertView] = []
        with self._alerts_lock:
            cursor = self.store.cursor()
            try:
                state = AlertStore(cursor, read_only=self.store.read_only)
                for model, report in reports:
                    alerts += self._alerts(state, model, report, as_of, books)
                history = [e for e in state.history(limit=HISTORY_SHOWN) if e.at <= as_of]
                events = alert_events(
                    history, {a.fingerprint: a for a in state.alerts(include_resolved=True)}
                )
            finally:
                cursor.close()
        return self._snapshot(as_of, reports, alerts, events, books)

    def _replay_snapshot(self, replayer: Replayer, as_of: datetime, books: list[Runbook]) -> Snapshot:
        now = datetime.now(UTC)
        with self._engine_lock:
            if replayer.last is not None and as_of < replayer.last:
                replayer.reset()
            step = replayer.step(as_of)
        track = replayer.tracks[CURRENT]
        recent = as_of - RESOLVED_SHOWN_FOR
        alerts = [
            alert_view(alert, now, _serving(books, alert.signal, alert.rule))
            for alert in sorted(track.alerts.values(), key=alert_rank)
            if alert.active or (alert.resolved_at is not None and alert.resolved_at >= recent)
        ]
        reports = [
            (model, step.reports[model.name]) for model in replayer.models if model.name in step.reports
        ]
        events = alert_events(track.events[-HISTORY_SHOWN:], track.alerts)
        return self._snapshot(as_of, reports, alerts, events, books)

    def _snapshot(
        self,
        as_of: datetime,
        reports: list[tuple[ModelConfig, ModelReport]],
        alerts: list[AlertView],
        events: list[TimelineEvent],
        books: list[Runbook],
    ) -> Snapshot:
        self.shown_at = as_of
        _, quarantined = self.store.quarantined(limit=0)
        actions = [action_event(entry) for entry in self.audit.read().entries]
        return Snapshot(
            as_of=as_of,
            models=tuple(model_view(model, report) for model, report in reports),
            alerts=tuple(alerts),
            runbooks=tuple(RunbookRef(book.name, book.title) for book in books),
            quarantined=quarantined,
            events=tuple(sorted([*events, *(a for a in actions if a.at <= as_of)], key=lambda e: e.at)),
        )

    def _alerts(
        self,
        state: AlertStore,
        model: ModelConfig,
        report: ModelReport,
        as_of: datetime,
        books: list[Runbook],
    ) -> list[AlertView]:
        now = datetime.now(UTC)
        tables, reference = report.tables(), report.reference_tables()
        if self.record_alerts:
            check_alerts(
                state, model, tables, as_of, reference, self._judgements, arrival=report.reference_arrival
            )
            recent = as_of - RESOLVED_SHOWN_FOR
            return [
                alert_view(alert, now, _serving(books, alert.signal, alert.rule))
                for alert in state.alerts(model.name, include_resolved=True)
                if alert.active or (alert.resolved_at is not None and alert.resolved_at >= recent)
            ]
        evaluations = evaluate_rules(
            effective_rules(model),
            tables,
            model,
            as_of,
            reference,
            self._judgements,
            report.reference_arrival,
        )
        return [
            evaluation_view(e, state.get(e.fingerprint), now, _serving(books, e.signal, e.rule))
            for e in evaluations
            if e.condition in (PENDING, FIRING)
        ]

    def _runbooks(self) -> list[Runbook]:
        try:
            paths = runbook_paths(self.config.runbooks_dir)
        except RunbookError:
            return []
        books = []
        for path in paths:
            try:
                books.append(load_runbook(path))
            except RunbookError:
                continue  # `triage runbook list` names the broken ones
        return books

    def histogram(self, model: str, cell: DriftRow, as_of: datetime) -> Histogram:
        # No engine lock: the snapshot this cell came from already stored the reference profile,
        # so this only reads it, and a refresh running meanwhile does not delay the drill-down.
        config = self.config.model(model)
        segments = (cell.segment,) if cell.segment else ()
        # Only the cell's window: as of its last instant (or as of now, for the open window).
        scope = Scope.of(
            config, as_of=min(as_of, cell.window_end - timedelta(microseconds=1)), segments=segments, last=1
        )
        cursor = self.store.cursor()
        try:
            profile = ensure_profile(cursor, config, segments, as_of)
            reference = profile.slice(cell.segment, cell.segment_value)
            feature = next((f for f in profile.features if f.name == cell.feature), None)
            if reference is None or feature is None:
                raise EngineError(f"no reference profile for {cell.feature} in this slice")
            if feature.kind == NUMERIC:
                numeric = reference.numeric[feature.name]
                found = numeric_histograms(cursor, scope, profile, feature, [cell.window_start])
                bins = found.get((cell.window_start, cell.version, reference.slice_id))
                if bins is None:
                    raise EngineError("no values in this window for a histogram")
                counts = [bins.get(k, 0) for k in range(len(numeric.counts))]
                return shares(numeric_labels(numeric.edges), numeric.counts, counts)
            categories = reference.categorical[feature.name].counts
            key = ((cell.window_start, cell.version, cell.segment, cell.segment_value), feature.name)
            seen = categorical_counts(cursor, scope, [feature]).get(key, {})
            return category_histogram(categories, seen)
        finally:
            cursor.close()

    def acknowledge(self, fingerprint: str, note: str) -> None:
        self._writable("acknowledge")
        with self._alerts_lock:
            cursor = self.store.cursor()
            try:
                AlertStore(cursor).acknowledge(
                    fingerprint,
                    self.executor.operator,
                    note or "acknowledged in triage ui",
                    datetime.now(UTC),
                )
            finally:
                cursor.close()

    def silence(self, fingerprint: str, until: datetime, note: str) -> None:
        self._writable("silence")
        with self._alerts_lock:
            cursor = self.store.cursor()
            try:
                AlertStore(cursor).silence(
                    fingerprint, until, self.executor.operator, note, datetime.now(UTC)
                )
            finally:
                cursor.close()

    def _writable(self, what: str) -> None:
        if self.store.read_only:
            view = "a replay" if self.replayer is not None else "a look back (--at)"
            raise StoreError(
                f"{view} is read-only: {what} the alert in the live `triage ui` or with `triage alerts`"
            )

    def runbook(self, ref: str) -> RunbookView:
        name, step = runbook_name(ref)
        book = find_runbook(self.config.runbooks_dir, name)
        steps = tuple(
            StepView(s.id, s.title, s.safety, s.target, f"{s.request.method} {s.request.path}")
            for s in book.steps
        )
        return RunbookView(book.name, book.title, runbook_markdown(book), steps, step)

    def _plan(self, runbook: str, step: str, alert: AlertView | None) -> Plan:
        book = find_runbook(self.config.runbooks_dir, runbook_name(runbook)[0])
        context = None
        if alert is not None:
            values = {"model": alert.model, "rule": alert.rule, **alert.scope}
            shown = self.shown_at
            simulated = shown is not None and abs(datetime.now(UTC) - shown) > CLOCK_SKEW
            context = AlertContext(alert.fingerprint, values, shown if simulated else None)
        return self.executor.plan(book, step, alert=context)

    def dry_run(self, runbook: str, step: str, alert: AlertView | None) -> DryRun:
        plan = self._plan(runbook, step, alert)
        return DryRun(step, plan.dry_run(), plan.confirmation, {k: str(v) for k, v in plan.params.items()})

    def run_step(
        self, runbook: str, step: str, alert: AlertView | None, confirmation: str | None, progress: Progress
    ) -> StepOutcome:
        plan = self._plan(runbook, step, alert)

        def report(event: ProgressEvent) -> None:
            progress(f"{event.kind}: {event.message}")

        prepared = self.executor.prepare(plan, on_progress=report)
        result = self.executor.execute(prepared, confirmation=confirmation or "", on_progress=report)
        verification = ""
        if result.verification is not None:
            shown = ", ".join(f"{k} = {v!r}" for k, v in result.verification.observed.items())
            verdict = "passed" if result.verification.passed else "FAILED"
            verification = f"{verdict} after {result.verification.polls} poll(s): {shown}"
        audit = tuple(audit_line(entry) for entry in self.audit.read().entries if entry.id == result.audit_id)
        summary = f"{result.outcome.replace('_', ' ')}: {result.message}"
        return StepOutcome(step, result.ok, summary, verification, audit)

    def interrupt(self) -> None:
        self.store.interrupt()

    def close(self) -> None:
        # A refresh may still be running in a worker (the terminal went away mid-refresh). Its
        # queries are being interrupted; closing the DuckDB connection under a running query
        # deadlocks, so wait for the worker to let go, and if it does not, leave the connection to
        # the process exit (DuckDB's WAL keeps the store consistent either way).
        if not self._engine_lock.acquire(timeout=CLOSE_WAIT_S):
            return
        try:
            self.engine.close()
            self.store.close()
        finally:
            self._engine_lock.release()


def compact(value: float) -> str:
    """A bin edge in at most about six characters: 0.25, 1.2k, 3.4M."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def numeric_labels(edges: Sequence[float]) -> list[str]:
    """The PSI bins as labels: <e1, e1–e2, …, ≥ek (left-closed, open outer bins)."""
    if not edges:
        return ["all"]
    inner = [f"{compact(a)}–{compact(b)}" for a, b in pairwise(edges)]
    return [f"<{compact(edges[0])}", *inner, f"≥{compact(edges[-1])}"]


def shares(labels: Sequence[str], reference: Sequence[int], window: Sequence[int]) -> Histogram:
    """Counts per bin → shares of each side."""
    ref_total, win_total = sum(reference) or 1, sum(window) or 1
    return Histogram(
        tuple(labels), tuple(c / ref_total for c in reference), tuple(c / win_total for c in window)
    )


def category_histogram(reference: Mapping[str, int], window: Mapping[str, int]) -> Histogram:
    """The most frequent categories of either side, the rest summed as "other"."""
    names = sorted(set(reference) | set(window), key=lambda c: (-(reference.get(c, 0) + window.get(c, 0)), c))
    shown, rest = names[:TOP_CATEGORIES], names[TOP_CATEGORIES:]
    ref_counts = [reference.get(c, 0) for c in shown]
    win_counts = [window.get(c, 0) for c in shown]
    if rest:
        shown.append("other")
        ref_counts.append(sum(reference.get(c, 0) for c in rest))
        win_counts.append(sum(window.get(c, 0) for c in rest))
    return shares(shown, ref_counts, win_counts)


def _serving(books: list[Runbook], signal: str, rule: str) -> str | None:
    """The first runbook whose front matter says it serves this signal or rule."""
    return next((book.name for book in books if signal in book.alerts or rule in book.alerts), None)


def audit_line(entry: AuditEntry) -> str:
    """One audit record as a line for the screen (already redacted by the audit log)."""
    finished = f"{entry.finished_at:%H:%M:%SZ}" if entry.finished_at else "never"
    status = f"HTTP {entry.status}" if entry.status is not None else "no response"
    return (
        f"{entry.id} · {entry.operator} · started {entry.started_at:%Y-%m-%d %H:%M:%SZ}, "
        f"finished {finished} · {entry.runbook}#{entry.step} · {status}, {entry.attempts} attempt(s) · "
        f"{entry.outcome_text}"
    )
