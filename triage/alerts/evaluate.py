"""Rules × result tables → one evaluation per (rule, scope): the same pure function for check, TUI, replay.

Each cell (window × scope) of a rule's signal is judged in this order:
1. gates — a None value, `enough_data` False, fewer than `min_samples` rows (`n_labeled` for
   labelled signals), labels not mature (`labels_mature`: a coverage below `min_label_coverage`,
   of the flagged rows for precision) or, for calibration, not settled (`labels_settled`: under
   SETTLED_LABELS of the reference's coverage) make the cell *unknown*: it never alerts and
   neither confirms nor clears an alert (a cell whose labels are still to come *waits* for them);
2. thresholds — fixed (`warn`/`critical`), relative to a baseline (`warn_change`/`critical_change`;
   baseline "reference" = the statistic over the reference windows of the same scope
   (`baseline_of`: a proportion's pooled counts, else the mean weighted by (labelled) rows) —
   of all versions when fewer than `min_samples` rows stand behind the scope's own (a new canary);
   "previous:30d" = over the same scope's windows in the 30 days before the cell;
   baseline windows pass the cell's own label-coverage gate, so a mature cell is never compared
   with immature windows whose early labels are a biased sample),
   and a band (mean ± k·σ of the statistic over the reference windows, σ their sample standard
   deviation scaled by √(n̄_reference / n) for cells smaller than the reference windows); the
   worst level crossed wins;
   with `outside_band`, a crossed cell inside the prediction band of the reference windows at its
   place in the cycles the reference repeats (`_phases`: its time of day on a weekend or a weekday,
   else on any day, for windows under a day; weekend or weekday for one-day windows; all of them
   otherwise) is ok: the reference's own daily or weekly cycle (unknown where the reference's
   windows in its phase all hold too few rows). An operations statistic's band (a p95, a cost:
   their day-to-day spread, not sampling noise) is not widened for a small cell, is only ever its
   phase's, is never unknown, and from fewer than OPERATIONS_BAND_WINDOWS windows applies only
   where 2 of them cross the threshold (`reference_crosses`): else the next phase's band (the same
   hour on any day), else the threshold decides;
3. an effect-size floor (`min_effect` on `effect`, default the signal itself);
4. a significance gate when the rule has `q` (p-value signals always do): the cell's p-value —
   the signal itself, the drift test of a drift statistic (KS for numeric, the chi-square with
   sparse categories pooled for categorical: `chi2_pooled_p`), Fisher's exact test of a proportion
   (`two_proportion_p`: its normal limit on large tables) against the pooled counts behind its
   baseline (rates of the cell's rows; precision, recall, FPR, FNR, accuracy with the trials
   recovered from their Wilson intervals; a missing rate: against the reference slice's own
   count; an unseen share: against the share the reference's own rare categories predict,
   `unseen_share_expected`, with that estimate's own error, `compound_binomial_p`), or a
   z-test against the baseline with both standard errors from the 95 % intervals (AUROC, expected
   cost), a chi-square of the cell's reliability diagram against the reference's per-bin
   calibration, with the classes its labels hold at its age (ECE; see `reliability_p` and
   `metrics.arrival`) — is Benjamini–Hochberg adjusted across every tested
   cell of the rule (feature × slice × window); a crossed cell alerts only if it is ≤ q, and
   above q it is unknown (past the threshold, but not beyond noise: it neither alerts nor clears).

Persistence: the run of consecutive crossed windows (unknown windows skipped) ending at the latest
known window; pending below `for_windows`, firing at or above it. A latest known window older than
`for_windows + STALE_WINDOWS` windows before the table's current one is stale — unless newer windows
only wait for labels (min_samples predictions, too few of them labelled so far), or hold rows too
few to judge and it is within HELD_THIN — and the condition
is ok (a slice that stopped getting traffic resolves; a thin night of a small one does not).
Time is never read from the clock.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import numpy as np
from scipy import special

from triage.alerts.fdr import bh_adjusted
from triage.alerts.rules import (
    DRIFT_STATISTICS,
    EACH_WHEN_OMITTED,
    P_VALUE_FIELDS,
    RATE_FIELDS,
    RELIABILITY_FIELDS,
    SCOPE_FIELDS,
    SETTLED_LABELS,
    WILSON_FIELDS,
    band_sigmas,
    direction,
    effect_floor,
    has_interval,
    is_labelled,
    is_p_value,
    labelled_signal,
    previous_span,
    significance_q,
    split_signal,
)
from triage.config import AlertRule, ModelConfig, Reference
from triage.metrics.arrival import ArrivalKey, LabelArrival
from triage.metrics.calibration import N_BINS, pooled_reliability
from triage.metrics.results import ReliabilityPoint, Row

OK, CROSSED, UNKNOWN = "ok", "crossed", "unknown"
PENDING, FIRING = "pending", "firing"
WARNING, CRITICAL = "warning", "critical"
SEVERITY_RANK = {None: 0, WARNING: 1, CRITICAL: 2}  # higher is worse
DISTRIBUTION_TABLES = frozenset({"drift", "data_quality"})
_Z95 = float(special.ndtri(0.975))
MIN_BAND_WINDOWS = 3
# An operations band of fewer windows judges only where 2 or more of the reference's own windows in
# its phase cross the threshold (`_Judge.reference_crosses`): from 3 days t(2) makes it 19σ wide,
# and a failover that lifted a route's p95 by half sat inside it.
OPERATIONS_BAND_WINDOWS = 7
# Expected positives (and negatives) per group of reliability bins in the calibration test.
MIN_EXPECTED = 5.0
_RATE_FLOOR = 1e-3
# An alert is judged on its latest known window only if that lies within the last
# `for_windows + STALE_WINDOWS` windows of the table; older evidence resolves it — unless the scope
# still has rows in the newer windows, too few to judge (a small slice's night or weekend), for
# up to HELD_THIN.
STALE_WINDOWS = 7
HELD_THIN = timedelta(days=3)
# Windows waiting for their labels hold older evidence for up to this long: labels that have not
# come in a month (a label pipeline that stopped) are not coming.
LABEL_WAIT = timedelta(days=30)

Tables = Mapping[str, Sequence[Row]]
Arrivals = Mapping[ArrivalKey, LabelArrival]  # when the reference's labels came, per scope
Windows = Mapping[datetime, tuple[Row, ...]]  # one table's rows by window start
ScopeKey = tuple[str | None, ...]
Phase = tuple[str, time] | time | str  # `_phases`: (kind of day, time of day), a time of day, a kind
_WINDOW_START = operator.attrgetter("window_start")
_START = operator.itemgetter(0)


@dataclass(frozen=True, slots=True)
class CellResult:
    """One window of one scope: the value, how it was judged, and the evidence behind it."""

    window_start: datetime
    window_end: datetime
    n: int
    n_labeled: int | None
    value: float | None
    status: str  # "ok" | "crossed" | "unknown"
    severity: str | None = None
    threshold: float | None = None
    baseline: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    effect: float | None = None
    note: str | None = None
    awaiting_labels: bool = False  # unknown only until more labels arrive

    def evidence(self) -> dict[str, Any]:
        """The JSON evidence of this cell (times as ISO 8601 UTC)."""
        data = dataclasses.asdict(self)
        for key in ("window_start", "window_end"):
            data[key] = _iso(data[key])
        return data


@dataclass(frozen=True)
class AlertEvaluation:
    """A rule on one scope after judging all its windows: the condition the alert state follows."""

    fingerprint: str
    model: str
    rule: str
    signal: str
    scope: tuple[tuple[str, str], ...]
    condition: str  # "ok" | "pending" | "firing" | "unknown"
    severity: str | None
    direction: str
    for_windows: int
    run: int  # consecutive crossed windows ending at the latest known one
    runbook: str | None
    latest: CellResult | None  # the latest known window (None: every window is unknown)
    cells: tuple[CellResult, ...]
    stale: bool = False  # the latest known window is older evidence than the horizon: ok

    @property
    def judged(self) -> bool:
        """Whether the scope has a judged window within its horizon, or held over newer windows
        that are thin or wait for their labels (not old evidence resolved as stale)."""
        return self.latest is not None and not self.stale

    @property
    def scope_dict(self) -> dict[str, str]:
        return dict(self.scope)


def fingerprint(model: str, rule: str, scope: Mapping[str, str]) -> str:
    """The stable identity of an alert: a hash of (model, rule name, scope), never of the window."""
    return _fingerprint(model, rule, tuple(sorted(scope.items())))


@functools.lru_cache(maxsize=1 << 14)  # every refresh asks again for every scope of every rule
def _fingerprint(model: str, rule: str, scope: tuple[tuple[str, str], ...]) -> str:
    text = json.dumps([model, rule, scope], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _by_window(rows: Iterable[Row]) -> dict[datetime, tuple[Row, ...]]:
    """A table's rows by window start, in table order within each window: one pass at C speed when
    they come window by window, as the engine's tables do (correct in any order)."""
    windows: dict[datetime, tuple[Row, ...]] = {}
    for start, group in itertools.groupby(rows, key=_WINDOW_START):
        run = tuple(group)
        windows[start] = windows[start] + run if start in windows else run
    return windows


def _in_range(reference: Reference, row: Row) -> bool:
    """Whether the row's window lies inside a time-range reference."""
    start, end = reference.start, reference.end
    return (
        reference.kind == "range"
        and (start is None or row.window_start >= start)
        and (end is None or row.window_end <= end)
    )


def _in_progress(model: ModelConfig, row: Row, now: datetime) -> bool:
    """Whether the row's window is one of the model's configured windows and has not ended at
    `now`: what the distribution rules do not judge yet. The day so far (at 09:00, its night and
    morning) is not a day: with traffic on a daily cycle its features' mix differs from every
    whole reference day's, and a check every few minutes paged on it each morning."""
    start, end = row.window_start, row.window_end
    return now < end and model.window.start_of(start) == start and model.window.end_of(start) == end


def _reference_rows(windows: Windows, reference: Reference) -> list[Row]:
    """The windows of one table that lie inside the reference (a time range or a version's first
    days); the rows of a window share its bounds, so a range takes or leaves whole windows.

    A version reference is relabelled as all versions, so every version is compared with it.
    A file-set reference is not part of the logs: its windows come from the engine.
    """
    if reference.kind == "range":
        return [row for rows in windows.values() if _in_range(reference, rows[0]) for row in rows]
    if reference.kind != "version":
        return []
    selected: list[Row] = []
    until: datetime | None = None  # the end of the version's first `days`, once it has rows
    for start in sorted(windows):
        if until is not None and start >= until:
            break
        own = [row for row in windows[start] if row.version == reference.version]
        if own and until is None:
            until = start + timedelta(days=reference.days or 0)
        selected += [
            dataclasses.replace(row, version=None)
            for row in own
            if until is not None and row.window_end <= until
        ]
    return selected


class JudgeMemo:
    """Cell judgements kept between evaluations of the same rules (a live TUI's refreshes, replay
    steps), so that only the windows whose rows changed are selected and judged again.

    A cell's judgement (gates, thresholds, effect floor, p-value: everything before the
    Benjamini–Hochberg step, which is redone over all cells) depends on its row, the rule, the
    rule's `min_samples`, the reference rows of the rule's table and when their labels came — for
    a reference baseline, on nothing else: not on the other windows, nor on `now` except for the
    calibration test of a window younger than the reference's labels took to come (judged again
    as `now` moves, `_Judged.cells`). So a rule's judgements are kept while those are equal,
    window by window (`_Judged`): the engine hands back the very row objects of windows it did
    not recompute. Rules with a "previous:…" baseline are judged afresh.
    Not thread-safe: one evaluation at a time.
    """

    def __init__(self) -> None:
        self._rules: dict[tuple[str, str], _Judged] = {}

    def judged(
        self,
        model: str,
        rule: AlertRule,
        min_samples: int,
        reference: tuple[Row, ...],
        arrival: Arrivals,
    ) -> _Judged:
        """The kept judgements of `rule`, or new ones if the rule, its `min_samples`, its
        reference rows or their labels' arrival changed."""
        key = (model, rule.name)
        kept = self._rules.get(key)
        if kept is None or not kept.keeps(rule, min_samples, reference, arrival):
            kept = self._rules[key] = _Judged(rule, min_samples, reference, arrival)
        return kept


class _Where:
    """A rule's `where` on its table's rows: the scopes it covers (verdicts kept per scope values)."""

    def __init__(self, rule: AlertRule, fields: tuple[str, ...]) -> None:
        patterns = {name: _pattern(rule.where, name) for name in fields}
        patterns |= {name: value for name, value in rule.where.items() if name not in patterns}
        self._wanted = tuple(patterns.values())
        # A tuple of the scope's fields first, then the filters outside it (every scope has three).
        self._values_of = operator.attrgetter(*patterns)
        self._width = len(fields)
        self._verdicts: dict[tuple[str | None, ...], bool] = {}
        # With a single version, its rows stand for all versions (the rule covers each version).
        self.each_version = (patterns.get("version") or "").startswith(("*", "!"))
        self.version = fields.index("version")

    def index(self, rows: Iterable[Row]) -> dict[ScopeKey, list[Row]]:
        """The covered rows by scope, in their order."""
        selected: dict[ScopeKey, list[Row]] = defaultdict(list)
        for row in rows:
            values = self._values_of(row)
            verdict = self._verdicts.get(values)
            if verdict is None:
                verdict = self._verdicts[values] = all(
                    _matches(p, v) for p, v in zip(self._wanted, values, strict=True)
                )
            if verdict:
                selected[values[: self._width]].append(row)
        return dict(selected)

    def covers(self, key: ScopeKey, single: bool) -> bool:
        """Whether a selected scope counts: with a `single` version, its all-versions scope does not."""
        return not single or key[self.version] is not None


@dataclass
class _Window:
    """One window of a rule's table: its rows, the covered ones by scope and their versions, and
    their cells (judged on demand; `before` lends the cells of rows it shares until then)."""

    rows: tuple[Row, ...]
    selected: dict[ScopeKey, list[Row]]
    versions: frozenset[str | None]
    before: _Window | None
    cells: dict[ScopeKey, list[CellResult]] = dataclasses.field(default_factory=dict)

    def judged(self, key: ScopeKey, judge: _Judge) -> list[CellResult]:
        cells = self.cells.get(key)
        if cells is None:
            rows, kept = self.selected[key], {}
            if self.before is not None and key in self.before.cells:
                kept = dict(zip(map(id, self.before.selected[key]), self.before.cells[key], strict=True))
            cells = self.cells[key] = [
                cell if (cell := kept.get(id(row))) is not None else judge.judge(row) for row in rows
            ]
        return cells


class _Judged:
    """One rule's windows, judgements and adjusted cells, kept so that the next evaluation costs
    what changed: the windows whose rows changed, and the cells whose adjusted p-value moved.

    A window whose rows are the kept ones (compared by identity first) keeps its selection and
    cells; in another, each row it had keeps its cell. Each scope's series keeps its cells before
    the first window that changed. An adjusted cell is kept while its cell and adjusted p-value
    are: only the Benjamini–Hochberg arithmetic itself runs over every cell (in numpy).
    """

    def __init__(
        self, rule: AlertRule, min_samples: int, reference: tuple[Row, ...], arrival: Arrivals
    ) -> None:
        self.rule = rule
        self.table = split_signal(rule.signal)[0]
        self.fields = SCOPE_FIELDS[self.table]
        self.min_samples = min_samples
        self.reference = reference
        self.arrival = arrival
        self._now = datetime.min.replace(tzinfo=UTC)  # of the last `cells` call
        self.previous = _previous_baseline(rule)
        self.latest: Row | None = None  # a row of the latest window with a covered scope
        self._where = _Where(rule, self.fields)
        self._judge: _Judge | None = None
        self._windows: dict[datetime, _Window] = {}
        self._single: bool | None = None  # whether one version's rows stand for all versions
        self._series: dict[ScopeKey, list[CellResult]] = {}  # judged cells by scope, in window order
        self._kept: dict[ScopeKey, int] = {}  # how many of a series' cells the last call kept
        # The last adjustment: every series' cells in `_series` order, with their adjusted p-values.
        self._adjusted: list[CellResult] = []
        self._p_adjusted = np.empty(0)
        self._offsets: dict[ScopeKey, int] = {}
        self._generation = 0  # `cells` calls so far
        self._adjusted_at = -1  # the `cells` call the last adjustment followed

    def keeps(self, rule: AlertRule, min_samples: int, reference: tuple[Row, ...], arrival: Arrivals) -> bool:
        return (
            self.rule == rule
            and self.min_samples == min_samples
            and self.reference == reference
            and self.arrival == arrival  # the same counts (`LabelArrival.__eq__`)
        )

    def cells(
        self, windows: Sequence[tuple[datetime, tuple[Row, ...]]], now: datetime
    ) -> dict[ScopeKey, list[CellResult]]:
        """Each covered scope's cells over `windows` (in window order) as of `now`; only these
        windows are kept. A window younger than the reference's labels took to come in
        (`LabelArrival.settled_age`) is judged by its age: judged again when `now` moves.

        The kept state changes only once all is judged: a judgement that raises leaves it as it was.
        """
        current: dict[datetime, _Window] = {}
        changed = set(self._windows)  # windows gone, then also those new or with other rows
        young = self._young(now)
        for start, rows in windows:
            window = self._windows.get(start)
            aged = young is not None and start >= young
            if window is not None and window.rows == rows and not aged:
                changed.discard(start)
            else:
                selected = self._where.index(rows)
                versions = frozenset(key[self._where.version] for key in selected)
                window = _Window(rows, selected, versions, None if aged else window)
                changed.add(start)
            current[start] = window
        if self._judge is not None:
            self._judge.now = now
        versions = frozenset().union(*(window.versions for window in current.values()))
        single = self._where.each_version and len(versions - {None}) == 1
        series = self._series
        if single != self._single:
            series, changed = {}, set(current)
        heads = {key: len(cells) for key, cells in series.items()}
        if changed:
            series, heads = self._patch(current, series, min(changed), single, now)
        self._windows, self._single, self._series, self._kept = current, single, series, heads
        self._now = now
        self._generation += 1
        self.latest = next(
            (
                covered[0]
                for window in reversed(current.values())
                for key, covered in window.selected.items()
                if self._where.covers(key, single)
            ),
            None,
        )
        return series

    def _patch(
        self,
        windows: dict[datetime, _Window],
        series: dict[ScopeKey, list[CellResult]],
        since: datetime,
        single: bool,
        now: datetime,
    ) -> tuple[dict[ScopeKey, list[CellResult]], dict[ScopeKey, int]]:
        """Each series cut before window `since`, then extended with the windows from it on (a
        scope first seen in those comes after the others, as in a fresh evaluation); and how many
        cells of each series were kept."""
        patched: dict[ScopeKey, list[CellResult]] = {}
        for key, cells in series.items():
            cut = bisect.bisect_left(cells, since, key=_WINDOW_START)
            if cut:
                patched[key] = cells[:cut]
        heads = {key: len(cells) for key, cells in patched.items()}
        judge = self._judge_for(windows, single, now)
        for start, window in windows.items():
            if start < since:
                continue
            for key in window.selected:
                if not self._where.covers(key, single):
                    continue
                if key in patched:
                    patched[key] += window.judged(key, judge)
                else:
                    patched[key] = list(window.judged(key, judge))
            window.before = None
        return patched, heads

    def _young(self, now: datetime) -> datetime | None:
        """The earliest window start whose judgement moves with `now` since the last call (None:
        none — the same `now`, or no arrival to match)."""
        if not self.arrival or now == self._now:
            return None
        settled = max(arrival.settled_age for arrival in self.arrival.values())
        try:
            return min(now, self._now) - timedelta(seconds=settled)
        except OverflowError:  # labels of every age: every window
            return datetime.min.replace(tzinfo=UTC)

    def _judge_for(self, windows: dict[datetime, _Window], single: bool, now: datetime) -> _Judge:
        """The rule's judge (made once; with the scopes' history for a "previous:…" baseline)."""
        if self._judge is None:
            history: dict[ScopeKey, list[Row]] = defaultdict(list)
            if self.previous:
                for window in windows.values():
                    for key, rows in window.selected.items():
                        if self._where.covers(key, single):
                            history[key] += rows
            reference = _index(self.reference, self.fields)
            self._judge = _Judge(
                self.rule, self.table, self.fields, self.min_samples, reference, history, self.arrival
            )
            self._judge.now = now
        return self._judge

    def adjusted(self, q: float) -> dict[ScopeKey, list[CellResult]]:
        """The series of the last `cells` call after Benjamini–Hochberg across every tested cell:
        crossed cells above q no longer count."""
        flat = [cell for cells in self._series.values() for cell in cells]
        p = np.array([-1.0 if cell.p_value is None else cell.p_value for cell in flat])
        tested = p != -1.0
        p_adjusted = np.full(p.size, np.nan)
        p_adjusted[tested] = bh_adjusted(p[tested])
        # Where each cell was in the last adjustment (the kept head of its series), else -1.
        # Kept only if the last adjustment was of the series the last `cells` call started from.
        follows = self._adjusted_at == self._generation - 1
        source = np.full(p.size, -1)
        offsets, at = {}, 0
        for key, cells in self._series.items():
            offsets[key] = at
            kept = self._kept.get(key, 0) if follows else 0
            if kept:
                before = self._offsets[key]
                source[at : at + kept] = np.arange(before, before + kept)
            at += len(cells)
        before = np.append(self._p_adjusted, np.nan)[source]
        same = (source >= 0) & ((before == p_adjusted) | (np.isnan(before) & np.isnan(p_adjusted)))
        adjusted = _gather(self._adjusted, source)
        for i in np.flatnonzero(~same).tolist():
            adjusted[i] = flat[i] if not tested[i] else _adjust(flat[i], float(p_adjusted[i]), q)
        self._adjusted, self._p_adjusted, self._offsets = adjusted, p_adjusted, offsets
        self._adjusted_at = self._generation
        return {
            key: adjusted[offsets[key] : offsets[key] + len(cells)] for key, cells in self._series.items()
        }


def evaluate_rules(
    rules: Sequence[AlertRule],
    tables: Tables,
    model: ModelConfig,
    now: datetime,
    reference: Tables | None = None,
    memo: JudgeMemo | None = None,
    arrival: Arrivals | None = None,
) -> list[AlertEvaluation]:
    """Evaluate `rules` on the result tables as of `now` (rows of windows starting after it are ignored).

    `tables` maps table names ("drift", "data_quality", "calibration", "performance",
    "operations") to result rows over all evaluated windows; `reference` holds tables over the
    reference period cut into windows; a table it lacks is taken from the windows of `tables`
    inside the reference; `arrival`, when the reference's labels came, per scope
    (`metrics.arrival`: the calibration test's expectation for a window whose labels are still
    coming). A `memo` keeps the cells' judgements for the next call (`JudgeMemo`).
    """
    windows = {table: _by_window(rows) for table, rows in tables.items()}
    given = reference or {}
    reference = {
        table: _reference_rows(found, model.reference)
        for table, found in windows.items()
        if table not in given
    } | dict(given)
    evaluations: list[AlertEvaluation] = []
    for rule in rules:
        evaluations += _evaluate_rule(rule, windows, reference, model, now, memo, arrival or {})
    return evaluations


def _evaluate_rule(
    rule: AlertRule,
    windows: Mapping[str, Windows],
    reference: Tables,
    model: ModelConfig,
    now: datetime,
    memo: JudgeMemo | None,
    arrival: Arrivals,
) -> list[AlertEvaluation]:
    table = split_signal(rule.signal)[0]
    minimum = rule.min_samples or model.min_samples
    reference_rows = tuple(reference.get(table, ()))
    if table != "calibration":
        arrival = {}  # only the calibration test reads it: no other rule is judged again for it
    if memo is None or _previous_baseline(rule):
        judged = _Judged(rule, minimum, reference_rows, arrival)
    else:
        judged = memo.judged(model.name, rule, minimum, reference_rows, arrival)
    # A window inside a time-range reference is what normal is: it is not judged against itself.
    current = sorted(
        (
            (s, rows)
            for s, rows in windows.get(table, {}).items()
            if s <= now and not _in_range(model.reference, rows[0])
        ),
        key=_START,
    )
    # A distribution is judged once its window has ended (`_in_progress`) — unless no evaluated
    # window has (`check --last 1` in the day): the day so far is then all there is to judge.
    if table in DISTRIBUTION_TABLES:
        ended = [(s, rows) for s, rows in current if not _in_progress(model, rows[0], now)]
        current = ended or current
    series = judged.cells(current, now)
    q = significance_q(rule)
    if q is not None:
        series = judged.adjusted(q)
    horizon = held = waited = now
    latest = judged.latest
    if latest is not None:
        try:
            stale = (rule.for_windows + STALE_WINDOWS - 1) * (latest.window_end - latest.window_start)
            horizon, held = latest.window_start - stale, latest.window_start - max(stale, HELD_THIN)
            waited = latest.window_start - max(stale, LABEL_WAIT)
        except OverflowError:  # so many (or so long) windows that the horizon is before the year 1
            horizon = held = waited = datetime.min.replace(tzinfo=UTC)
    side = direction(rule)
    return [
        _summarise(rule, model.name, judged.fields, key, cells, side, (horizon, held, waited))
        for key, cells in series.items()
    ]


def _previous_baseline(rule: AlertRule) -> bool:
    """Whether the rule compares with the scope's preceding windows ("previous:30d")."""
    return rule.baseline is not None and previous_span(rule.baseline) is not None


def _gather(items: list[CellResult], indices: np.ndarray) -> list[Any]:
    """`items[i]` for each index, None for -1, at C speed."""
    if not indices.size:
        return []
    found = operator.itemgetter(*indices.tolist())([*items, None])
    return list(found) if indices.size > 1 else [found]


def _pattern(where: Mapping[str, str], name: str) -> str | None:
    if name in where:
        return where[name]
    if name in EACH_WHEN_OMITTED or (name == "segment_value" and "segment" in where):
        return "*"
    return None  # the aggregate row only


def _matches(pattern: str | None, value: str | None) -> bool:
    if pattern is None:
        return value is None
    if pattern == "*":
        return True
    if pattern.startswith("!"):
        return value != pattern[1:]
    return value == pattern


def _index(rows: Iterable[Row], fields: Sequence[str]) -> dict[ScopeKey, list[Row]]:
    """Rows by their scope (every table's scope has at least three fields: a tuple per row)."""
    key = operator.attrgetter(*fields)
    index: dict[ScopeKey, list[Row]] = defaultdict(list)
    for row in rows:
        index[key(row)].append(row)
    return index


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True, slots=True)
class _Crossing:
    level: str | None
    threshold: float | None
    baseline: float | None


@dataclass(frozen=True)
class _Baseline:
    """A baseline value, the rows (or labelled rows) behind it, and its standard error if known."""

    value: float
    weight: float  # rows, labelled rows, or the trials of a proportion
    se: float | None
    successes: int | None = None  # of a proportion


@dataclass(frozen=True)
class _Band:
    """mean and σ of the statistic over reference windows holding `size` rows on average."""

    mean: float
    sigma: float
    size: float
    windows: int


def baseline_of(table: str, name: str, rows: Sequence[Row]) -> _Baseline | None:
    """The statistic `table.name` over `rows` as a rule's baseline takes it (the reference windows,
    or a preceding span): pooled counts of a proportion (its trials, from the row's n or its
    Wilson interval), else the mean weighted by each row's n — labelled rows for a labelled
    signal — with its standard error when the rows carry 95 % intervals."""
    if _is_proportion(name):
        counts = [c for r in rows if (c := _counts(r, name)) is not None]
        trials = sum(n for _, n in counts)
        if trials <= 0:
            return None
        successes = sum(k for k, _ in counts)
        return _Baseline(successes / trials, trials, None, successes)
    labelled = labelled_signal(table, name)
    total = sum(_weight(r, labelled) for r in rows)
    if total <= 0:
        return None
    value = sum(_weight(r, labelled) * float(getattr(r, name)) for r in rows) / total
    # A window without an interval (one request, or one class) adds its value, not its error.
    errors = (
        [(_weight(r, labelled), _standard_error(r, name)) for r in rows] if has_interval(table, name) else []
    )
    se = None
    if any(e is not None for _, e in errors):
        se = math.sqrt(sum((w * e) ** 2 for w, e in errors if e is not None)) / total
    return _Baseline(value, total, se)


def label_share(row: Row, name: str) -> float | None:
    """The labelled share of what the row's statistic `name` rests on: for precision the rows
    decided positive (flagged requests are reviewed within hours, the rest wait days for
    chargebacks), else all its rows; labelled rows / rows where the row has no such value (no
    positive decision: precision undefined, the rest judged on all rows)."""
    field = "decision_label_coverage" if name == "precision" else "label_coverage"
    coverage = _number(getattr(row, field, None))
    if coverage is None and row.n:
        coverage = int(getattr(row, "n_labeled", row.n)) / row.n
    return coverage


def labels_mature(row: Row, name: str, min_coverage: float, min_samples: int) -> bool:
    """Whether the row's labels cover `min_coverage` of what its statistic rests on (`label_share`)
    — for precision also once its labelled flagged rows alone reach `min_samples`: a model that
    flags five times as much outruns its reviewers, and its precision must not wait for them."""
    coverage = label_share(row, name)
    if coverage is not None and coverage >= min_coverage:
        return True
    counts = _counts(row, name) if name == "precision" else None
    return counts is not None and counts[1] >= min_samples


def labels_settled(labelled: int, n: int, reference_share: float | None) -> bool:
    """Whether `labelled` of `n` rows reach `SETTLED_LABELS` of the reference's labelled share (at
    it exactly, they do; without a reference share or rows, nothing to wait for)."""
    return reference_share is None or not n or labelled / n >= SETTLED_LABELS * reference_share - 1e-12


def _is_proportion(name: str) -> bool:
    """Whether the statistic is a share with known trials: tested exactly (Fisher) against the
    pooled counts of its baseline."""
    return name in WILSON_FIELDS or (
        name in RATE_FIELDS and name not in ("missing_rate_change", "unseen_share")
    )


def _weight(row: Row, labelled: bool) -> int:
    """The rows behind a row's statistic: its labelled rows for a labelled signal, else its n."""
    return int(getattr(row, "n_labeled", row.n) if labelled else row.n)


def _counts(row: Row, name: str) -> tuple[int, int] | None:
    """(successes, trials) behind a proportion: a share of the row's n, or from its Wilson interval."""
    value = _number(getattr(row, name))
    if value is None:
        return None
    if name in RATE_FIELDS:
        return round(value * row.n), row.n
    low = _number(getattr(row, f"{name}_ci_low"))
    high = _number(getattr(row, f"{name}_ci_high"))
    trials = None if low is None or high is None else wilson_trials(value, low, high)
    return None if trials is None else (round(value * trials), trials)


def _standard_error(row: Row, name: str) -> float | None:
    """The standard error of the statistic from the row's 95 % interval, if it has one: its wider
    side over z — an interval clipped at a bound (an expected cost floored at 0, an AUROC at 1)
    keeps its other side whole, where the full width would understate the error."""
    low = _number(getattr(row, f"{name}_ci_low"))
    high = _number(getattr(row, f"{name}_ci_high"))
    value = _number(getattr(row, name))
    if low is None or high is None:
        return None
    if value is None or not low <= value <= high:
        return (high - low) / (2 * _Z95)
    return max(high - value, value - low) / _Z95


class _Judge:
    """Judges the cells of one rule: settings resolved once, reference baselines cached per scope."""

    def __init__(
        self,
        rule: AlertRule,
        table: str,
        fields: tuple[str, ...],
        min_samples: int,
        reference: Mapping[ScopeKey, list[Row]],
        history: Mapping[ScopeKey, list[Row]],
        arrival: Arrivals,
    ) -> None:
        self.rule = rule
        self.table = table
        self.name = split_signal(rule.signal)[1]
        self.fields = fields
        self.scope_of = operator.attrgetter(*fields)  # a row's ScopeKey
        self.direction = direction(rule)
        self.labelled = is_labelled(rule)
        self.min_samples = min_samples
        self.reference = reference
        self.history = history
        self.arrival = arrival
        self.now = datetime.min.replace(tzinfo=UTC)  # the evaluation's time (`_Judged.cells` sets it)
        self.q = significance_q(rule)
        self.floor = effect_floor(rule)
        self.interval = has_interval(table, self.name)
        self.sigmas = band_sigmas(rule.band) if rule.band else None
        self.outside_sigmas = band_sigmas(rule.outside_band) if rule.outside_band else None
        # An operations statistic's band is the day-to-day spread of a p95 or a cost, not sampling
        # noise: it is not widened for a smaller cell (a 2 % canary's by √50 held its 2.4× p95); it
        # is only ever its phase's (all hours pooled, a night's doubling sat inside the day's spread),
        # and from fewer than OPERATIONS_BAND_WINDOWS windows it needs `reference_crosses`.
        self.operations = table == "operations"
        # The baseline a significance test compares with: the rule's own, else the reference.
        self.expected_baseline = rule.baseline or "reference"
        # Shares with known trials: tested exactly (Fisher) against the pooled baseline counts.
        self.proportion = _is_proportion(self.name)
        self.tested_against_baseline = self.q is not None and (self.interval or self.proportion)
        self._references: dict[tuple[ScopeKey, Phase | None], _Baseline | None] = {}
        self._bands: dict[tuple[ScopeKey, Phase | None, str], _Band | None] = {}
        self._crosses: dict[tuple[ScopeKey, Phase | None], bool] = {}
        self._reliability: dict[ScopeKey, tuple[ReliabilityPoint, ...]] = {}

    def weight(self, row: Row) -> int:
        return _weight(row, self.labelled)

    def judge(self, row: Row) -> CellResult:
        """Gates, thresholds, effect floor and the p-value of one cell (before BH across cells)."""
        value = _number(getattr(row, self.name))
        window = (row.window_start, row.window_end, row.n, getattr(row, "n_labeled", None), value)
        gate = self.gate(row, value)
        if gate is not None:
            return CellResult(*window, UNKNOWN, note=gate[0], awaiting_labels=gate[1])
        assert value is not None
        expected = None
        if self.rule.baseline is not None or self.tested_against_baseline:
            expected = self.baseline(row, self.expected_baseline)
        if is_p_value(self.rule):
            crossing: _Crossing | None = _Crossing(self.rule.severity or WARNING, self.q, None)
        else:
            crossing = self.crossing(row, value, expected)
        if crossing is None:
            return CellResult(*window, UNKNOWN, note="no baseline for this scope")
        status, note, effect, p_value = (CROSSED if crossing.level else OK), None, None, None
        if status == CROSSED and self.outside_sigmas is not None:
            status, note = self.within_band(row, value)
            if status == UNKNOWN:
                return CellResult(*window, UNKNOWN, note=note)
        if self.floor is not None:
            effect = _number(getattr(row, self.floor[0]))
            if effect is None and status == CROSSED:  # only a crossed cell needs its effect
                return CellResult(*window, UNKNOWN, note=f"no {self.floor[0]}")
            if status == CROSSED and effect is not None and abs(effect) < self.floor[1]:
                status, note = OK, f"{self.floor[0]} {effect:.4g} < floor {self.floor[1]}"
        if self.q is not None:
            p_value = self.p_value(row, value, expected)
            if p_value is None and status == CROSSED:
                return CellResult(*window, UNKNOWN, note="no p-value")
        return CellResult(
            *window,
            status,
            severity=(self.rule.severity or crossing.level) if status == CROSSED else None,
            threshold=crossing.threshold,
            baseline=crossing.baseline,
            p_value=p_value,
            effect=effect,
            note=note,
        )

    def gate(self, row: Row, value: float | None) -> tuple[str, bool] | None:
        """Why the cell cannot be judged, and whether only missing labels are why (a labelled
        signal's window with min_samples predictions but too few labelled rows or too low a
        coverage so far: labels arrive days late, a slow slice's after the old evidence's
        horizon); None if it can."""
        waiting = (
            self.labelled
            and row.n >= self.min_samples
            and (self.weight(row) < self.min_samples or not self.mature(row))
        )
        if value is None:
            return row.note or "no value", waiting
        if not row.enough_data:
            return row.note or "not enough data", waiting
        count = self.weight(row)
        if count < self.min_samples:
            return f"{count} rows < min_samples {self.min_samples}", waiting
        if not self.mature(row):
            coverage = label_share(row, self.name)
            shown = "unknown" if coverage is None else f"{coverage:.3f}"
            of = " of the positive decisions" if self.name == "precision" else ""
            return f"label coverage{of} {shown} < {self.rule.min_label_coverage}", True
        settled = self.settled_coverage(row)
        if settled is not None and not labels_settled(count, row.n, settled):
            return (
                f"labels still arriving: {count / row.n:.3f} of its rows, under {SETTLED_LABELS:.0%} of "
                f"the reference's {settled:.3f} (the first labels are the classes that come first)",
                True,
            )
        return None

    def settled_coverage(self, row: Row) -> float | None:
        """A calibration signal's reference coverage — labelled rows / rows pooled over the reference
        windows of the row's scope (all versions' for a new canary) — which its cells' labels must
        nearly reach (`SETTLED_LABELS`) to be judged: calibration compares label rates score bin by
        score bin, and any class whose labels come later (legitimate requests confirmed by a month
        without dispute) biases them until then; None for other signals, or without a reference."""
        if self.table != "calibration" or not self.labelled:
            return None
        for key in self._candidates(row):
            rows = self.reference.get(key, ())
            total = sum(r.n for r in rows)
            if total:
                return sum(self.weight(r) for r in rows) / total
        return None

    def mature(self, row: Row) -> bool:
        """Whether the row passes the rule's `min_label_coverage` (always, when it has none)."""
        if not self.labelled or self.rule.min_label_coverage is None:
            return True
        return labels_mature(row, self.name, self.rule.min_label_coverage, self.min_samples)

    def crossing(self, row: Row, value: float, expected: _Baseline | None) -> _Crossing | None:
        """The worst level crossed by fixed, relative and band thresholds; None if none applies."""
        rule = self.rule
        found: list[_Crossing] = []
        if rule.warn is not None or rule.critical is not None:
            found.append(self.fixed(value))
        if rule.baseline is not None and expected is not None:
            found.append(self.relative(value, expected.value))
        if self.sigmas is not None:
            band = self.band(row)
            if band is not None:
                found.append(self.banded(value, band, self.weight(row), self.sigmas))
        if not found:
            return None
        crossed = [c for c in found if c.level]
        if crossed:
            return max(crossed, key=lambda c: SEVERITY_RANK[c.level])
        # None crossed: the threshold nearest the value, the first that would fire (a band's may
        # lie well inside a fixed one), shown with its baseline as the cell's evidence.
        return min(found, key=lambda c: math.inf if c.threshold is None else abs(c.threshold - value))

    def fixed(self, value: float) -> _Crossing:
        warn, critical = self.rule.warn, self.rule.critical
        if critical is not None and _beyond(value, critical, self.direction):
            return _Crossing(CRITICAL, critical, None)
        if warn is not None and _beyond(value, warn, self.direction):
            return _Crossing(WARNING, warn, None)
        return _Crossing(None, warn if warn is not None else critical, None)

    def relative(self, value: float, baseline: float) -> _Crossing:
        """`warn_change = -0.2`: 20 % below the baseline; the sign follows the rule's direction."""
        side = self.direction
        if side == "both":
            side = "below" if value < baseline else "above"
        sign = -1.0 if side == "below" else 1.0

        def level(change: float | None) -> float | None:
            return None if change is None else baseline + sign * abs(change) * abs(baseline)

        warn, critical = level(self.rule.warn_change), level(self.rule.critical_change)
        for name, threshold in ((CRITICAL, critical), (WARNING, warn)):
            # A zero baseline has no relative scale: any move in the alerting direction crosses.
            if threshold is not None and _beyond(value, threshold, side) and value != baseline:
                return _Crossing(name, threshold, baseline)
        return _Crossing(None, warn if warn is not None else critical, baseline)

    def banded(self, value: float, band: _Band, count: int, sigmas: float) -> _Crossing:
        """Outside mean ± k·σ; σ widened by √(size / n) for cells smaller than the reference windows."""
        sigma = band.sigma * math.sqrt(band.size / count) if 0 < count < band.size else band.sigma
        upper, lower = band.mean + sigmas * sigma, band.mean - sigmas * sigma
        if self.direction in ("above", "both") and value > upper:
            return _Crossing(WARNING, upper, band.mean)
        if self.direction in ("below", "both") and value < lower:
            return _Crossing(WARNING, lower, band.mean)
        return _Crossing(None, lower if self.direction == "below" else upper, band.mean)

    def within_band(self, row: Row, value: float) -> tuple[str, str | None]:
        """A crossed cell's status under `outside_band`, and why: OK inside the prediction band of
        the reference windows in its most alike phase with 3 windows of enough data (`_phases`: at
        its time of day on the same kind of day, then on any day; on weekends or weekdays like it;
        all of them for windows longer than a day) — of all the scope's reference windows when no
        phase has (a small slice's evening hours: a cycling feature differs from the pooled
        reference in every hour, and the hours with enough data show by how much); UNKNOWN when
        the reference has windows in a phase it passes but none with enough data (a small slice's
        weekends: the band of its weekdays would judge a Saturday by Tuesdays); CROSSED outside the
        band (the note gives the band and its edge) — but OK for a PSI whose JS divergence stays
        within its own band (`psi_alone`) —, or when too few windows give no band at all (no
        note). An operations statistic's band differs (the module docstring): its phase's only,
        never unknown, unwidened, and from few windows only where the reference crosses.

        k·σ becomes t·σ·√(1 + 1/m), t the Student quantile (m − 1 degrees of freedom) of k·σ's
        normal coverage: from m windows σ is itself an estimate (five windows' σ is off by a
        third or more about a third of the time), and a new window is not one of them.
        """
        assert self.outside_sigmas is not None
        band, when, found = None, "", None
        phases = _phases(row)
        # The windows of the scope whose band this is (all versions' for a new canary); with no
        # scope of 3 windows with enough data, the first that has windows at all.
        scope, _ = self._reference(row, MIN_BAND_WINDOWS)
        scopes = [scope] if scope is not None else self._candidates(row)
        for at in phases:
            band = self.band(row, at)
            if band is not None and self.operations and not self.judges_by(row, band, at):
                band = None  # a thin band its own windows never cross: the next phase's, if any
            if band is not None:
                when, found = _when(at), at
                break
            if self.operations:
                continue  # never unknown: without its phase's band the threshold decides
            like = self._in_phase(scopes, at)
            if like and not any(r.enough_data and self.mature(r) for r in like):
                return UNKNOWN, (
                    f"no reference window{_when(at)} with enough data: its cycle cannot be told from news"
                )
        if band is None and (not phases or not self.operations):
            # A window longer than a day has no phase: its band is all the reference windows'.
            band = self.band(row)
            when = f" (too few{_when(phases[-1])})" if phases else ""
        if band is None or (self.operations and not self.judges_by(row, band, found)):
            return CROSSED, None
        count = 0 if self.operations else self.weight(row)  # 0: not widened (`banded`)
        crossed = self.banded(value, band, count, self.prediction_sigmas(band))
        where = (
            f"the {self.outside_sigmas:g}σ prediction band of the {band.windows} reference windows{when} "
            f"(mean {band.mean:.4g}, σ {band.sigma:.3g})"
        )
        if not crossed.level:
            return OK, f"within {where}"
        # Crossed, the band's edge says how far past its own cycle the cell is (a threshold of 0.25
        # alone reads as four times over for an hour whose PSI is 0.2–0.7 every day).
        widened = f", σ widened for its {count} rows" if 0 < count < band.size else ""
        past = f"past its threshold and outside {where}: edge {crossed.threshold:.4g}{widened}"
        alone = self.psi_alone(row, found, count)
        return (OK, f"{past}; {alone}") if alone else (CROSSED, past)

    def judges_by(self, row: Row, band: _Band, at: Phase | None) -> bool:
        """Whether an operations band of phase `at` (all windows: None) judges the row: from
        OPERATIONS_BAND_WINDOWS windows on, or fewer where its reference crosses the threshold."""
        return band.windows >= OPERATIONS_BAND_WINDOWS or self.reference_crosses(row, at)

    def reference_crosses(self, row: Row, at: Phase | None) -> bool:
        """Whether 2 or more of the scope's reference windows in phase `at` (all, None) with enough
        data cross the rule's thresholds against the baseline of their phase: the threshold then
        lies within the scope's own spread there — an all-route p95 where a 5 % LLM route begins
        moved 212–529 ms over its reference days, past +50 % of their mean on three — and the band
        decides; else the threshold does (a route's steady p95 doubled by a failover; one crossing
        is more likely an incident in the reference than its spread, and its band would cover the
        next one)."""
        key = (self.scope_of(row), at)
        if key not in self._crosses:
            crossed = 0
            for r in self.reference_rows(row):
                value = _number(getattr(r, self.name))
                if not r.enough_data or value is None or (at is not None and at not in _phases(r)):
                    continue
                expected = self.baseline(r, self.expected_baseline) if self.rule.baseline else None
                crossing = self.crossing(r, value, expected)
                crossed += bool(crossing is not None and crossing.level)
            self._crosses[key] = crossed >= 2
        return self._crosses[key]

    def prediction_sigmas(self, band: _Band) -> float:
        """The band's k·σ as t·√(1 + 1/m) (`within_band`)."""
        assert self.outside_sigmas is not None
        m = band.windows
        return float(special.stdtrit(m - 1, special.ndtr(self.outside_sigmas))) * math.sqrt(1 + 1 / m)

    def psi_alone(self, row: Row, at: Phase | None, count: int) -> str | None:
        """Why a PSI past its band is no move, or None: the Jensen–Shannon divergence on the same
        bins stays within its own band of the same windows. To first order both are Σ (q − p)² / p
        (the divergence an eighth of it, in nats), so a move crosses both bands; but PSI's log
        ratio makes a bin the cell leaves empty worth (ε − p)·ln(ε/p) — 0.69 for a decile — so in
        a cell of ~100 rows, where an hour's feature leaves a bin (nearly) empty every few days,
        PSI is two-humped and no band holds it, while JS is bounded."""
        js = _number(getattr(row, "js", None)) if self.name == "psi" else None
        band = self.band(row, at, JS_DIVERGENCE) if js is not None else None
        if js is None or band is None:
            return None
        crossed = self.banded(js**2, band, count, self.prediction_sigmas(band))
        if crossed.level:
            return None
        return (
            f"but JS {js:.4g} is within its own band (edge {math.sqrt(crossed.threshold or 0.0):.4g}): "
            "PSI alone, from a bin it left (nearly) empty"
        )

    def band(self, row: Row, at: Phase | None = None, name: str | None = None) -> _Band | None:
        """The band of the row's scope from its reference windows with enough data (at least 3);
        with `at`, only those in that phase (`_phases`); of the statistic `name`, else the rule's."""
        name = name or self.name
        key = (self.scope_of(row), at, name)
        if key not in self._bands:
            rows = [
                r
                for r in self.reference_rows(row, MIN_BAND_WINDOWS)
                if r.enough_data and _statistic(r, name) is not None and (at is None or at in _phases(r))
            ]
            band = None
            if len(rows) >= MIN_BAND_WINDOWS:
                values = [value for r in rows if (value := _statistic(r, name)) is not None]
                mean = sum(values) / len(values)
                sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
                size = sum(self.weight(r) for r in rows) / len(rows)
                band = _Band(mean, sigma, size, len(rows))
            self._bands[key] = band
        return self._bands[key]

    def reference_rows(self, row: Row, windows: int = 0) -> list[Row]:
        """The scope's reference windows with the statistic; all versions' if its own are too thin
        and its version has none of its own (a new canary) — a version with a reference of its own
        is not judged by another's where its slice's is too thin (its decision rate may differ from
        the others' by design).

        Only windows that pass the rule's label-coverage gate count (like the cells they judge).
        Too thin: fewer than `min_samples` rows, or fewer than `windows` windows with enough data.
        """
        return self._reference(row, windows)[1]

    def _reference(self, row: Row, windows: int = 0) -> tuple[ScopeKey | None, list[Row]]:
        """`reference_rows`, and the scope they are of (None: none)."""
        for candidate in self._candidates(row):
            rows = self._usable(candidate, windows)
            if rows:
                return candidate, rows
        return None, []

    def _in_phase(self, scopes: Sequence[ScopeKey], at: Phase) -> list[Row]:
        """The reference windows with rows in phase `at` of the first of `scopes` that has any."""
        for key in scopes:
            found = [r for r in self.reference.get(key, ()) if at in _phases(r) and r.n]
            if found:
                return found
        return []

    def _candidates(self, row: Row) -> list[ScopeKey]:
        """The scopes whose reference windows may judge the row: its own, then all versions' for a
        version without any of its own anywhere (a new canary)."""
        key = self.scope_of(row)
        keys = [key]
        if "version" in self.fields and row.version is not None:
            position = self.fields.index("version")
            if not self._usable(self._all_traffic(key)):
                keys.append((*key[:position], None, *key[position + 1 :]))
        return keys

    def _usable(self, key: ScopeKey, windows: int = 0) -> list[Row]:
        """The reference windows of a scope with the statistic, if they are not too thin."""
        rows = [
            r
            for r in self.reference.get(key, ())
            if _number(getattr(r, self.name)) is not None and self.mature(r)
        ]
        usable = sum(1 for r in rows if r.enough_data)
        return rows if sum(self.weight(r) for r in rows) >= self.min_samples and usable >= windows else []

    def _all_traffic(self, key: ScopeKey) -> ScopeKey:
        """The scope of the same version (and feature) over all traffic: every route and slice."""
        every = {"route", "segment", "segment_value"}
        return tuple(None if field in every else value for field, value in zip(self.fields, key, strict=True))

    def baseline(self, row: Row, baseline: str) -> _Baseline | None:
        """The statistic over the reference or the preceding span (`baseline_of`). The reference's
        windows in the row's most alike phase (`_phases`: at its time of day on the same kind of
        day, at its time of day, on weekends or weekdays like it) where at least 3 of them have
        enough data, else all of them: a night hour's latency is the reference's nights', not the
        day's — judged by the pooled hours, an incident that doubled latency cleared every night
        and fired again every morning."""
        span = previous_span(baseline)
        if span is None:
            phases = _phases(row)
            key = (self.scope_of(row), phases[0] if phases else None)
            if key not in self._references:
                rows = self.reference_rows(row)
                chosen = rows
                for at in phases:
                    in_phase = [r for r in rows if at in _phases(r)]
                    if sum(r.enough_data for r in in_phase) >= MIN_BAND_WINDOWS:
                        chosen = in_phase
                        break
                self._references[key] = self.summary(chosen)
            return self._references[key]
        start = row.window_start - span
        return self.summary(
            [
                r
                for r in self.history.get(self.scope_of(row), [])
                if r.window_start >= start
                and r.window_end <= row.window_start
                and _number(getattr(r, self.name)) is not None
                and self.mature(r)
            ]
        )

    def reference_reliability(self, row: Row) -> tuple[ReliabilityPoint, ...]:
        """The reliability diagram of the scope's reference windows, pooled (cached per scope)."""
        key = self.scope_of(row)
        if key not in self._reliability:
            rows = [r for r in self.reference_rows(row) if r.enough_data]
            self._reliability[key] = pooled_reliability(rows)  # type: ignore[arg-type]
        return self._reliability[key]

    def class_shares(self, row: Row) -> np.ndarray | None:
        """The shares of the reference's negatives and positives per score bin that were labelled
        as long after their window's start as the row's window is old at `now`
        (`LabelArrival.class_shares`), from the scope whose reference windows judge it; None
        without them, or once the reference's labels were all in at that age."""
        key = self._reference(row)[0]
        arrival = None if key is None else self.arrival.get(key)
        if arrival is None:
            return None
        return arrival.class_shares((self.now - row.window_start).total_seconds())

    def summary(self, rows: Sequence[Row]) -> _Baseline | None:
        return baseline_of(self.table, self.name, rows)

    def unseen_p(self, row: Row, value: float) -> float | None:
        """The cell's unseen values against the share its reference predicts (`unseen_share_expected`,
        Good–Turing): a long tail of rare categories is not news. That share is an estimate from the
        reference's own values, with its standard error (`unseen_share_expected_se`): a small
        reference's estimate is far from exact, and a window of thousands of values would find its
        error significant if the test took it as the true share (`compound_binomial_p`)."""
        expected = _number(getattr(row, "unseen_share_expected", None))
        missing = _number(getattr(row, "missing_rate", None))
        if expected is None or missing is None:
            return None
        values = round(row.n * (1.0 - missing))
        se = _number(getattr(row, "unseen_share_expected_se", None)) or 0.0
        return compound_binomial_p(round(value * values), values, min(expected, 1.0), se, self.direction)

    def p_value(self, row: Row, value: float, expected: _Baseline | None) -> float | None:
        """The cell's p-value under "nothing changed" (see the module docstring)."""
        if self.name in P_VALUE_FIELDS:
            return value
        if self.table == "drift" and self.name in DRIFT_STATISTICS:
            numeric = getattr(row, "kind", None) == "numeric"
            # Categorical: the chi-square with sparse categories pooled (Cochran), valid on small cells.
            return _number(getattr(row, "ks_p" if numeric else "chi2_pooled_p"))
        if self.name == "unseen_share":
            return self.unseen_p(row, value)
        if self.name == "missing_rate_change":
            rate = _number(getattr(row, "missing_rate", None))
            reference = _number(getattr(row, "missing_rate_reference", None))
            rows = int(getattr(row, "n_reference", 0) or 0)
            if rate is None or reference is None or not rows:
                return None
            # Two samples: the reference's rate is itself counted on its slice's rows.
            return two_proportion_p(round(rate * row.n), row.n, round(reference * rows), rows, self.direction)
        if self.name in RELIABILITY_FIELDS and self.table == "calibration":
            points = getattr(row, "reliability", ())
            pooled = self.reference_reliability(row)
            return reliability_p(points, pooled, self.class_shares(row)) if points and pooled else None
        if expected is None:
            return None
        if self.proportion:
            cell = _counts(row, self.name)
            if cell is None or expected.successes is None:
                return None
            return two_proportion_p(
                cell[0], cell[1], expected.successes, round(expected.weight), self.direction
            )
        se = _standard_error(row, self.name) if self.interval else None
        if se is None:
            return None
        se = math.hypot(se, expected.se or 0.0)
        if se <= 0:
            return 0.0 if value != expected.value else 1.0
        z = (value - expected.value) / se
        return _tails(self.direction, float(special.ndtr(-z)), float(special.ndtr(z)))


WEEKEND = (5, 6)  # Saturday and Sunday (`datetime.weekday`), in UTC like the windows


JS_DIVERGENCE = "js²"  # a band's statistic: the square of the row's JS distance


def _statistic(row: Row, name: str) -> float | None:
    """The row's field `name`, or `JS_DIVERGENCE`; None where missing or not finite."""
    value = _number(getattr(row, "js" if name == JS_DIVERGENCE else name))
    return None if value is None else value**2 if name == JS_DIVERGENCE else value


def _phases(row: Row) -> tuple[Phase, ...]:
    """Where a window sits in the cycles a reference repeats, most alike first: for a window shorter
    than a day, its start time of day on a weekend or on a weekday, then its time of day on any day
    (night traffic is not the afternoon's, and a Saturday evening not a Tuesday's); for a one-day
    window, "weekend" or "weekday" (a Saturday is not a Tuesday, and a reference of two weeks has
    four Saturdays and Sundays, not four Saturdays); none for longer windows, which hold whole
    cycles."""
    length = row.window_end - row.window_start
    kind = "weekend" if row.window_start.weekday() in WEEKEND else "weekday"
    if length < timedelta(days=1):
        return (kind, row.window_start.time()), row.window_start.time()
    if length == timedelta(days=1):
        return (kind,)
    return ()


def _when(at: Phase) -> str:
    """A phase as words after "windows": " on weekends starting at 18:00"."""
    if isinstance(at, tuple):
        return f" on {at[0]}s starting at {at[1]:%H:%M}"
    return f" starting at {at:%H:%M}" if isinstance(at, time) else f" on {at}s"


def _beyond(value: float, threshold: float, side: str) -> bool:
    if side == "above":
        return value >= threshold
    if side == "below":
        return value <= threshold
    return abs(value) >= abs(threshold)


def _tails(side: str, upper: float, lower: float) -> float:
    if side == "above":
        return upper
    if side == "below":
        return lower
    return min(1.0, 2 * min(upper, lower))


def reliability_p(
    cell: Sequence[ReliabilityPoint],
    reference: Sequence[ReliabilityPoint],
    shares: np.ndarray | None = None,
) -> float:
    """p-value of "the cell is calibrated like the reference", from the two reliability diagrams.

    In bin b the cell has n_b rows with mean score s_b and O_b = n_b·o_b positives; the reference
    has N_b rows whose positive rate exceeds their mean score by d_b. Under the null the cell's
    positive rate is e_b = s_b + d_b — of its labelled rows: with `shares[b] = (r0, r1)`, the
    shares of the reference's negatives and positives in bin b labelled when it was labelled as
    much as the cell (`LabelArrival.class_shares`), e_b·r1 / (e_b·r1 + (1 − e_b)·r0): a window
    whose frauds are labelled and whose legitimate rows are not yet expects more frauds among its
    labels — clipped to [0.001, 0.999], and O_b − n_b·e_b
    has mean 0 and variance at most n_b·e_b(1 − e_b)·(1 + n_b/N_b) (the reference's d_b is itself
    an estimate — from N_b·(ρ_b·r1 + (1 − ρ_b)·r0) rows with shares, ρ_b its positive rate: those
    labelled at that age; a bin the reference lacks is taken as calibrated, d_b = 0, N_b = ∞).
    Adjacent bins are merged, in score order, until each group expects at least
    `MIN_EXPECTED` positives and as many negatives (Cochran's rule for the χ² approximation; a
    short last group joins the one before): one row in a sparse top bin would otherwise weigh
    like a hundred. X = Σ_groups (O − E)²/V is χ² with one degree of freedom per group — a
    Hosmer–Lemeshow statistic against the reference's calibration instead of perfect calibration,
    so a 0.07 ECE on 250 labelled rows reads as the noise it mostly is, and on 25 000 it does not.
    """
    residual = {(p.bin_low, p.bin_high): (p.n, p.mean_score, p.positive_rate) for p in reference if p.n > 0}
    groups: list[list[float]] = []  # [observed, expected, variance, rows]
    current = [0.0, 0.0, 0.0, 0.0]
    for point in sorted(cell, key=lambda p: p.bin_low):
        if point.n <= 0:
            continue
        size, score, rate = residual.get((point.bin_low, point.bin_high), (0, 0.0, 0.0))
        expected = _clipped_rate(point.mean_score + (rate - score))
        if shares is not None:
            negatives, positives = shares[round(point.bin_low * N_BINS)]
            labelled = expected * positives + (1.0 - expected) * negatives
            if labelled > 0:
                expected = _clipped_rate(expected * positives / labelled)
            if size:  # the reference's rows of the bin labelled at that age
                size = max(size * (rate * positives + (1.0 - rate) * negatives), 1.0)
        inflation = 1.0 + (point.n / size if size else 0.0)
        current[0] += point.n * point.positive_rate
        current[1] += point.n * expected
        current[2] += point.n * expected * (1.0 - expected) * inflation
        current[3] += point.n
        if current[1] >= MIN_EXPECTED and current[3] - current[1] >= MIN_EXPECTED:
            groups.append(current)
            current = [0.0, 0.0, 0.0, 0.0]
    if current[3] > 0:
        if groups:
            groups[-1] = [a + b for a, b in zip(groups[-1], current, strict=True)]
        else:
            groups.append(current)
    statistic = sum((o - e) ** 2 / v for o, e, v, _ in groups if v > 0)
    dof = sum(1 for *_, v, _ in groups if v > 0)
    return 1.0 if dof == 0 else float(special.chdtrc(dof, statistic))


def _clipped_rate(rate: float) -> float:
    return min(max(rate, _RATE_FLOOR), 1.0 - _RATE_FLOOR)


def wilson_trials(value: float, low: float, high: float) -> int | None:
    """The trials n behind a proportion and its 95 % Wilson interval.

    Each Wilson bound e solves (p̂ − e)² = z²·e(1 − e)/n, so n = z²·e(1 − e)/(p̂ − e)², taken at the
    bound farther from p̂ (the nearer one is 0 or 1 when p̂ is).
    """
    bound = high if abs(high - value) >= abs(value - low) else low
    if bound == value:
        return None
    trials = round(_Z95 * _Z95 * bound * (1.0 - bound) / (value - bound) ** 2)
    return trials if trials >= 1 else None


# The exact tests below are pure functions of a few numbers, and a replay or a live refresh asks
# the same ones again for every settled window: they are remembered.
@functools.lru_cache(maxsize=1 << 16)
def binomial_p(k: int, n: int, p0: float, side: str) -> float:
    """Exact binomial tail of k successes in n under a known rate p0, in the alerting direction."""
    upper = 1.0 if k <= 0 else float(special.bdtrc(k - 1, n, p0))  # P(X >= k)
    return _tails(side, upper, float(special.bdtr(k, n, p0)))  # P(X <= k)


# `compound_binomial_p` sums a term per count that carries its mass; beyond this many, its normal limit.
EXACT_TERMS = 5000
# Fisher's test gives way to the pooled z-test where every expected count is at least this.
NORMAL_COUNT = 1000


def two_proportion_p(k: int, n: int, k0: int, n0: int, side: str) -> float:
    """k of n against k0 of n0, both samples (a cell's rate against its baseline's pooled counts,
    a missing rate against the reference slice's own count): Fisher's exact test — or, where
    every expected count of its 2×2 table is NORMAL_COUNT or more, its normal limit, the pooled
    two-proportion z-test (the exact test sums a term per possible count: 0.3–2 ms on a day of
    a 10 M-row store, whose tables hold tens of thousands of each)."""
    total, successes = n + n0, k + k0
    if min(n, n0) * min(successes, total - successes) < NORMAL_COUNT * total:
        return fisher_exact_p(k, n, k0, n0, side)
    pooled = successes / total
    z = (k / n - k0 / n0) / math.sqrt(pooled * (1.0 - pooled) * (1.0 / n + 1.0 / n0))
    return _tails(side, float(special.ndtr(-z)), float(special.ndtr(z)))


def compound_binomial_p(k: int, n: int, share: float, se: float, side: str) -> float:
    """Tail of k successes in n when the rate is known only as an estimate, `share` ± `se`: a
    beta-binomial, the Beta with that mean and standard deviation. Its exact tails over the
    counts that carry its mass (up to 40 standard deviations above the mean) while they are
    fewer than EXACT_TERMS; beyond, k/n taken as a Beta with the beta-binomial's mean and
    variance (continuity-corrected: within a few % of the exact tails and never below them in
    our checks, where a normal limit's tails are far too thin — 3e-5 for 2e-3 — as the Beta is
    skewed). With se 0, the binomial."""
    spread = share * (1.0 - share)
    if se <= 0.0 or spread <= 0.0:
        return binomial_p(k, n, share, side)
    size = max(spread / (se * se) - 1.0, 1e-9)  # α + β of the Beta (as spread as a Beta gets)
    variance = n * spread * (size + n) / (size + 1.0)  # of k
    end = min(n, max(k, math.ceil(n * share + 40.0 * math.sqrt(variance))))
    if end >= EXACT_TERMS:
        width = max(spread * n * n / variance - 1.0, 1e-9)
        a, b = share * width, (1.0 - share) * width
        upper = 1.0 if k <= 0 else float(special.betainc(b, a, 1.0 - (k - 0.5) / n))
        lower = 1.0 if k >= n else float(special.betainc(a, b, (k + 0.5) / n))
        return _tails(side, upper, lower)
    a, b = share * size, (1.0 - share) * size
    counts = np.arange(end + 1)
    log_pmf = _log_choose(n, counts) + special.betaln(counts + a, n - counts + b) - special.betaln(a, b)
    return _tails(side, min(_sum_exp(log_pmf[k:]), 1.0), min(_sum_exp(log_pmf[: k + 1]), 1.0))


@functools.lru_cache(maxsize=1 << 16)
def fisher_exact_p(k: int, n: int, k0: int, n0: int, side: str) -> float:
    """Fisher's exact test of k of n against a baseline of k0 of n0 (one-sided in the alerting
    direction; two-sided = twice the smaller tail): the hypergeometric tail of k given k + k0."""
    total, successes = n + n0, k + k0
    low, high = max(0, n - (total - successes)), min(n, successes)
    support = np.arange(low, high + 1)
    log_pmf = (
        _log_choose(successes, support)
        + _log_choose(total - successes, n - support)
        - _log_choose(total, np.asarray(n))
    )
    upper = _sum_exp(log_pmf[support >= k]) if k <= high else 0.0
    lower = _sum_exp(log_pmf[support <= k]) if k >= low else 0.0
    return _tails(side, min(upper, 1.0), min(lower, 1.0))


def _sum_exp(logs: np.ndarray) -> float:
    """Σ exp(logs), computed without underflow."""
    top = float(logs.max())
    return math.exp(top) * float(np.exp(logs - top).sum())


def _log_choose(n: int, k: np.ndarray) -> np.ndarray:
    return special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)


def _adjust(cell: CellResult, p_adjusted: float, q: float) -> CellResult:
    """The cell with its BH-adjusted p-value: a crossed cell above q is unknown — its value is past
    the threshold but not beyond noise, too little evidence either way: it neither alerts nor
    clears an alert (an immature window's first labels must not resolve an incident that the
    mature windows before it still show)."""
    demoted = cell.status == CROSSED and p_adjusted > q
    # Built directly: dataclasses.replace costs more than the rest of the evaluation.
    return CellResult(
        cell.window_start,
        cell.window_end,
        cell.n,
        cell.n_labeled,
        cell.value,
        UNKNOWN if demoted else cell.status,
        None if demoted else cell.severity,
        cell.threshold,
        cell.baseline,
        cell.p_value,
        p_adjusted,
        cell.effect,
        f"not significant: BH-adjusted p {p_adjusted:.3g} > q {q}" if demoted else cell.note,
        cell.awaiting_labels,
    )


def _summarise(
    rule: AlertRule,
    model: str,
    fields: Sequence[str],
    key: ScopeKey,
    cells: Sequence[CellResult],
    side: str,
    horizons: tuple[datetime, datetime, datetime],
) -> AlertEvaluation:
    """The condition of one scope from its judged windows. Known windows before the first of
    `horizons` are stale, unless the newer windows wait for their labels and the known one is not
    before the third, or have rows too few to judge and it is not before the second."""
    scope = tuple((name, value) for name, value in zip(fields, key, strict=True) if value is not None)
    known = [cell for cell in cells if cell.status != UNKNOWN]
    run = next((i for i, cell in enumerate(reversed(known)) if cell.status != CROSSED), len(known))
    latest = known[-1] if known else None
    newer = [cell for cell in cells if latest is not None and cell.window_start > latest.window_start]
    stale = False
    if latest is None:
        condition = UNKNOWN
    elif (
        latest.window_start < horizons[0]
        and not (latest.window_start >= horizons[2] and any(cell.awaiting_labels for cell in newer))
        and not (latest.window_start >= horizons[1] and any(cell.n > 0 for cell in newer))
    ):
        # Old evidence is no evidence: like a Prometheus series that vanished, the alert resolves
        # (unless newer windows only wait for their labels, or are a thin stretch of the slice).
        condition, run, stale = OK, 0, True
        latest = dataclasses.replace(latest, note=f"no window judged since {_iso(latest.window_end)}")
    elif run == 0:
        condition = OK
    else:
        condition = FIRING if run >= rule.for_windows else PENDING
    return AlertEvaluation(
        fingerprint=fingerprint(model, rule.name, dict(scope)),
        model=model,
        rule=rule.name,
        signal=rule.signal,
        scope=scope,
        condition=condition,
        severity=latest.severity if latest is not None and run else None,
        direction=side,
        for_windows=rule.for_windows,
        run=run,
        runbook=rule.runbook,
        latest=latest,
        cells=tuple(cells),
        stale=stale,
    )


def _iso(value: datetime) -> str:
    """ISO 8601 UTC ending in Z (naive times are UTC, as in the store)."""
    text = value.isoformat()
    return text.replace("+00:00", "Z") if value.tzinfo else text + "Z"
