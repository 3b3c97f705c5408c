"""Rule evaluation on synthetic result rows: thresholds, baselines, bands, persistence, gates, BH."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from triage.alerts import evaluate as evaluate_module
from triage.alerts.evaluate import (
    CRITICAL,
    CROSSED,
    FIRING,
    OK,
    PENDING,
    UNKNOWN,
    WARNING,
    AlertEvaluation,
    CellResult,
    JudgeMemo,
    _by_window,
    _Judge,
    _reference_rows,
    _standard_error,
    baseline_of,
    binomial_p,
    compound_binomial_p,
    evaluate_rules,
    fingerprint,
    fisher_exact_p,
    reliability_p,
    two_proportion_p,
    wilson_trials,
)
from triage.alerts.rules import default_rules, effective_rules, split_signal
from triage.alerts.state import AlertStore, check_alerts
from triage.config import AlertRule, Columns, ModelConfig, Reference, Window, parse_window
from triage.metrics.intervals import wilson
from triage.metrics.quality import good_turing
from triage.metrics.results import (
    CalibrationRow,
    DataQualityRow,
    DriftRow,
    OperationsRow,
    PerformanceRow,
    ReliabilityPoint,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
REFERENCE_DAYS = 7
NOW = T0 + 30 * DAY


def model_config(**changes: Any) -> ModelConfig:
    """A model whose reference is the first week."""
    settings: dict[str, Any] = {
        "name": "fraud",
        "predictions": "logs/*.parquet",
        "columns": Columns(id="id", timestamp="ts", score="score"),
        "reference": Reference(start=T0, end=T0 + REFERENCE_DAYS * DAY),
    }
    return ModelConfig(**(settings | changes))


def _cell(day: int, **scope: Any) -> dict[str, Any]:
    return {
        "window_start": T0 + day * DAY,
        "window_end": T0 + (day + 1) * DAY,
        "version": scope.get("version"),
        "segment": scope.get("segment"),
        "segment_value": scope.get("segment_value"),
        "n": scope.get("n", 5000),
        "enough_data": scope.get("enough_data", True),
        "note": scope.get("note"),
    }


def _js_like(psi: float) -> float:
    """The JS distance (base 2) that goes with a PSI for a small move: both are Σ (q − p)² / p to
    first order, PSI once and JS divergence an eighth of it (in nats)."""
    return math.sqrt(psi / (8 * math.log(2)))


def drift_row(day: int, psi: float | None = 0.01, feature: str = "amount", **kw: Any) -> DriftRow:
    kind = kw.pop("kind", "numeric")
    return DriftRow(
        **_cell(day, **kw),
        feature=feature,
        kind=kind,
        n_reference=100_000,
        psi=psi,
        js=kw.get("js", 0.01 if psi is None else _js_like(psi)),
        ks_d=kw.get("ks_d", 0.01),
        ks_p=kw.get("ks_p", 0.5) if kind == "numeric" else None,
        chi2=None,
        chi2_p=kw.get("chi2_p", 0.5) if kind == "categorical" else None,
        chi2_pooled_p=kw.get("chi2_pooled_p", 0.5) if kind == "categorical" else None,
        wasserstein=kw.get("wasserstein", 0.01),
        wasserstein_norm=kw.get("wasserstein_norm", 0.01),
    )


def quality_row(day: int, feature: str = "amount", **kw: Any) -> DataQualityRow:
    return DataQualityRow(
        **_cell(day, **kw),
        feature=feature,
        kind="numeric",
        n_reference=kw.get("n_reference", 100_000),
        missing_rate=kw.get("missing_rate", 0.01),
        missing_rate_reference=kw.get("missing_rate_reference", 0.01),
        missing_rate_change=kw.get("missing_rate", 0.01) - kw.get("missing_rate_reference", 0.01),
        unseen_share=kw.get("unseen_share", 0.0),
        unseen_categories=(),
        unseen_share_expected=kw.get("unseen_share_expected", 0.0),
        unseen_share_expected_se=kw.get("unseen_share_expected_se"),
        out_of_range_share=0.0,
    )


def calibration_row(day: int, **kw: Any) -> CalibrationRow:
    """A window labelled on 80 % of its rows unless `n` says otherwise."""
    n_labeled = kw.get("n_labeled", 4000)
    return CalibrationRow(
        **_cell(day, **{"n": round(n_labeled / 0.8), **kw}),
        n_labeled=n_labeled,
        decision_rate=kw.get("decision_rate", 0.1),
        ece=kw.get("ece", 0.02),
        ece_equal_mass=None,
        mce=None,
        brier=None,
        log_loss=None,
        reliability=kw.get("reliability", ()),
    )


def point(low: float, n: int, mean_score: float, positive_rate: float) -> ReliabilityPoint:
    """One equal-width reliability bin [low, low + 0.1)."""
    return ReliabilityPoint(low, round(low + 0.1, 1), n, mean_score, positive_rate)


def performance_row(day: int, precision: float | None = 0.8, **kw: Any) -> PerformanceRow:
    """Precision of `trials` flagged rows (default n_labeled), Wilson interval; AUROC ± half_width."""
    n_labeled = kw.get("n_labeled", 4000)
    trials = kw.get("trials", n_labeled)
    low, high = (None, None) if precision is None else wilson(round(precision * trials), trials)
    auroc, half = kw.get("auroc"), kw.get("half_width", 0.02)
    given: dict[str, Any] = {
        **_cell(day, **kw),
        "n_labeled": n_labeled,
        "label_coverage": kw.get("label_coverage", 0.8),
        "decision_label_coverage": kw.get("decision_label_coverage", 0.9),
        "precision": precision,
        "precision_ci_low": low,
        "precision_ci_high": high,
        "auroc": auroc,
        "auroc_ci_low": None if auroc is None else auroc - half,
        "auroc_ci_high": None if auroc is None else auroc + half,
    }
    rest = {f.name: None for f in dataclasses.fields(PerformanceRow) if f.name not in given}
    return PerformanceRow(**given, **rest)


def operations_row(day: int, **kw: Any) -> OperationsRow:
    """A window's operations; its p95's interval ± 0.5 % unless `p95_half` says otherwise."""
    p95 = kw.get("latency_p95_ms", 100.0)
    half = kw.get("p95_half", None if p95 is None else 0.005 * p95)
    return OperationsRow(
        **_cell(day, **kw),
        route=kw.get("route"),
        latency_p50_ms=None,
        latency_p95_ms=p95,
        latency_p99_ms=None,
        error_rate=kw.get("error_rate", 0.001),
        fallback_rate=None,
        cost_per_1k=None,
        tokens_per_request=None,
        latency_p95_ms_ci_low=None if p95 is None else p95 - half,
        latency_p95_ms_ci_high=None if p95 is None else p95 + half,
    )


def only(evaluations: list[AlertEvaluation], **scope: str) -> AlertEvaluation:
    """The one evaluation with exactly this scope."""
    found = [e for e in evaluations if e.scope_dict == scope]
    assert len(found) == 1, [e.scope_dict for e in evaluations]
    return found[0]


def evaluate(rule: AlertRule, model: ModelConfig | None = None, now: datetime = NOW, **tables: list):
    return evaluate_rules([rule], tables, model or model_config(), now)


# -- fixed thresholds ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("psi", "condition", "severity", "threshold"),
    [
        (0.05, OK, None, 0.1),
        (0.1, FIRING, WARNING, 0.1),
        (0.2, FIRING, WARNING, 0.1),
        (0.3, FIRING, CRITICAL, 0.25),
    ],
)
def test_fixed_threshold_above(psi, condition, severity, threshold):
    rule = AlertRule(name="drift", signal="drift.psi", warn=0.1, critical=0.25)
    result = only(evaluate(rule, drift=[drift_row(9, 0.01), drift_row(10, psi)]), feature="amount")
    assert (result.condition, result.severity) == (condition, severity)
    assert result.latest is not None and result.latest.threshold == threshold
    assert result.latest.value == psi and result.latest.window_start == T0 + 10 * DAY


@pytest.mark.parametrize(
    ("precision", "condition", "severity"),
    [(0.8, OK, None), (0.7, FIRING, WARNING), (0.65, FIRING, WARNING), (0.5, FIRING, CRITICAL)],
)
def test_fixed_threshold_below_inferred_for_precision(precision, condition, severity):
    rule = AlertRule(name="precision", signal="performance.precision", warn=0.7, critical=0.5)
    result = only(evaluate(rule, performance=[performance_row(10, precision)]))
    assert result.direction == "below"
    assert (result.condition, result.severity) == (condition, severity)


def test_explicit_direction_overrides_inference():
    rule = AlertRule(name="low-volume", signal="drift.psi", warn=0.001, direction="below")
    assert only(evaluate(rule, drift=[drift_row(10, 0.0005)]), feature="amount").condition == FIRING
    assert only(evaluate(rule, drift=[drift_row(10, 0.5)]), feature="amount").condition == OK


# -- baselines ----------------------------------------------------------------------------------


def _reference_precision(values: list[tuple[float, int]]) -> list[PerformanceRow]:
    return [performance_row(day, p, n_labeled=n) for day, (p, n) in enumerate(values)]


@pytest.mark.parametrize(("precision", "severity"), [(0.70, None), (0.63, WARNING), (0.5, CRITICAL)])
def test_relative_to_reference_uses_the_weighted_reference_mean(precision, severity):
    # weighted mean: (0.9·1000 + 0.7·3000) / 4000 = 0.75 → warn at 0.6, critical at 0.45·… below
    reference = _reference_precision([(0.9, 1000), (0.7, 3000)])
    rule = AlertRule(
        name="precision-drop",
        signal="performance.precision",
        baseline="reference",
        warn_change=-0.1,
        critical_change=-0.3,
    )
    result = only(evaluate(rule, performance=[*reference, performance_row(10, precision)]))
    assert result.latest is not None
    assert result.latest.baseline == pytest.approx(0.75)
    expected_threshold = 0.75 * (1 - 0.3) if severity == CRITICAL else 0.75 * (1 - 0.1)
    assert result.latest.threshold == pytest.approx(expected_threshold)
    assert result.severity == severity
    assert result.condition == (OK if severity is None else FIRING)


def test_reference_baseline_falls_back_to_all_versions():
    reference = [performance_row(day, 0.8) for day in range(REFERENCE_DAYS)]
    canary = performance_row(10, 0.6, version="v2")
    baseline = performance_row(10, 0.8, version="v1")
    rule = AlertRule(
        name="precision-drop",
        signal="performance.precision",
        where={"version": "*"},
        baseline="reference",
        warn_change=-0.2,
    )
    results = evaluate(rule, performance=[*reference, canary, baseline])
    assert only(results, version="v2").condition == FIRING
    assert only(results, version="v2").latest.baseline == pytest.approx(0.8)
    assert only(results, version="v1").condition == OK


def test_a_version_with_a_reference_of_its_own_is_not_judged_by_another_in_a_thin_slice():
    """v2 flags a third of its traffic by design (its own reference says so) but was 5 % of the
    reference traffic: its slice's reference windows are too thin. Its slice is not judged by all
    versions' slice (a tenth flagged: it paged critical on a world where nothing changed), while a
    version without any reference of its own (a new canary) still is."""
    slice_ = {"segment": "region", "segment_value": "A"}
    reference = [
        row
        for day in range(REFERENCE_DAYS)
        for row in (
            calibration_row(day, decision_rate=0.1),
            calibration_row(day, decision_rate=0.1, **slice_),
            calibration_row(day, decision_rate=0.33, version="v2", n=250),
            calibration_row(day, decision_rate=None, version="v2", n=60, enough_data=False, **slice_),
        )
    ]
    latest = [calibration_row(10, decision_rate=0.33, version=version, **slice_) for version in ("v2", "v3")]
    rule = AlertRule(
        name="decision-rate",
        signal="calibration.decision_rate",
        where={"version": "*", "segment": "*"},
        baseline="reference",
        warn_change=0.5,
    )
    results = evaluate(rule, calibration=[*reference, *latest])
    assert only(results, version="v3", **slice_).condition == FIRING  # a canary: all versions' slice
    assert only(results, version="v3", **slice_).latest.baseline == pytest.approx(0.1)
    assert only(results, version="v2", **slice_).condition == UNKNOWN  # no baseline: not judged


def test_previous_span_baseline_and_missing_history():
    history = [operations_row(day, latency_p95_ms=100.0 if day < 8 else 300.0) for day in range(11)]
    rule = AlertRule(
        name="latency",
        signal="operations.latency_p95_ms",
        baseline="previous:3d",
        warn_change=0.5,
        critical_change=1.0,
    )
    before = model_config(reference=Reference(end=T0))  # every day judged
    result = only(evaluate(rule, before, operations=history))
    # day 10 against days 7..9 = (100 + 300 + 300) / 3
    assert result.latest is not None and result.latest.baseline == pytest.approx(700 / 3)
    assert result.condition == OK
    cells = {cell.window_start: cell for cell in result.cells}
    assert cells[T0 + 8 * DAY].severity == CRITICAL  # 300 vs the 100 of days 5..7
    assert cells[T0].status == UNKNOWN and cells[T0].note == "no baseline for this scope"


# -- data-driven band -----------------------------------------------------------------------------

BAND_VALUES = [0.020, 0.030, 0.025, 0.020, 0.030, 0.025, 0.022]


def _band() -> tuple[float, float]:
    return float(np.mean(BAND_VALUES)), float(np.std(BAND_VALUES, ddof=1))


def _band_rule(**changes: Any) -> AlertRule:
    return AlertRule(name="ece", signal="calibration.ece", band="3sigma", **changes)


def test_band_is_mean_plus_three_sigma_of_the_reference_windows():
    mean, sigma = _band()
    reference = [calibration_row(day, ece=value) for day, value in enumerate(BAND_VALUES)]
    for value, condition in ((mean + 2.9 * sigma, OK), (mean + 3.1 * sigma, FIRING), (mean - 5 * sigma, OK)):
        result = only(evaluate(_band_rule(), calibration=[*reference, calibration_row(10, ece=value)]))
        assert result.condition == condition, value
        assert result.latest is not None and result.latest.threshold == pytest.approx(mean + 3 * sigma)
        assert result.latest.baseline == pytest.approx(mean)


def test_band_both_directions_and_small_cells_get_a_wider_band():
    mean, sigma = _band()
    reference = [calibration_row(day, ece=value, n_labeled=4000) for day, value in enumerate(BAND_VALUES)]
    below = calibration_row(10, ece=mean - 3.5 * sigma)
    assert only(evaluate(_band_rule(direction="both"), calibration=[*reference, below])).condition == FIRING
    # a quarter of the reference windows' labelled rows: σ doubles, so 3.5σ is inside 6σ
    small = calibration_row(10, ece=mean + 3.5 * sigma, n_labeled=1000)
    result = only(evaluate(_band_rule(), calibration=[*reference, small]))
    assert result.condition == OK
    assert result.latest is not None and result.latest.threshold == pytest.approx(mean + 6 * sigma)


def test_band_needs_three_reference_windows():
    reference = [calibration_row(day, ece=value) for day, value in enumerate(BAND_VALUES[:2])]
    result = only(evaluate(_band_rule(), calibration=[*reference, calibration_row(10, ece=0.5)]))
    # The reference's own windows are what normal is: only day 10 is judged, and has no band.
    assert [(cell.window_start, cell.status) for cell in result.cells] == [(T0 + 10 * DAY, UNKNOWN)]
    assert result.condition == UNKNOWN


def test_windows_inside_a_time_range_reference_are_not_judged():
    """The reference is what normal is: its windows are not judged against it (the first check
    after it ends would page on the reference's own days); those of a file-set reference are."""
    rows = [drift_row(day, 0.5, ks_p=1e-12) for day in range(REFERENCE_DAYS + 1)]
    rule = AlertRule(name="drift", signal="drift.psi", warn=0.1)
    now = T0 + (REFERENCE_DAYS + 1) * DAY
    ranged = only(evaluate(rule, now=now, drift=rows), feature="amount")
    assert [cell.window_start for cell in ranged.cells] == [T0 + REFERENCE_DAYS * DAY]
    assert ranged.condition == FIRING
    assert evaluate(rule, now=now, drift=rows[:REFERENCE_DAYS]) == []  # nothing after the reference yet
    files = model_config(reference=Reference(files="train/*.parquet"))
    judged = only(evaluate(rule, files, now=now, drift=rows), feature="amount")
    assert len(judged.cells) == REFERENCE_DAYS + 1


# -- a daily cycle with windows shorter than a day --------------------------------------------------

HOUR = timedelta(hours=1)


MOVED_JS = 0.5  # a JS distance past any band of these tests: a move that JS sees as well as PSI


def hourly_drift(hour: int, psi: float, **kw: Any) -> DriftRow:
    """The drift row of the hour `hour` hours after T0, its KS test significant."""
    row = drift_row(0, psi=psi, ks_p=1e-12, **kw)
    return dataclasses.replace(row, window_start=T0 + hour * HOUR, window_end=T0 + (hour + 1) * HOUR)


def _night(hour: int) -> bool:
    return hour % 24 < 6


def test_an_hour_is_compared_with_the_reference_hours_at_its_time_of_day():
    """Latency on a daily cycle (nights 340 ms, days 800 ms) doubled by an incident: a night hour at
    680 ms is twice the reference's nights — critical — though under the pooled hours' mean ×1.5.
    An hour whose time of day has fewer than 3 reference windows with enough rows takes them all."""
    hourly = model_config(window=Window(1, "h"))
    rule = AlertRule(
        name="latency",
        signal="operations.latency_p95_ms",
        baseline="reference",
        warn_change=0.5,
        critical_change=1.0,
    )

    def hour(at: int, latency: float, n: int = 5000) -> OperationsRow:
        row = operations_row(0, latency_p95_ms=latency, n=n, enough_data=n >= 200)
        return dataclasses.replace(row, window_start=T0 + at * HOUR, window_end=T0 + (at + 1) * HOUR)

    reference = [hour(h, 340.0 if _night(h) else 800.0) for h in range(REFERENCE_DAYS * 24)]
    pooled = float(np.mean([r.latency_p95_ms for r in reference]))
    night = 10 * 24 + 3
    judged = only(
        evaluate(rule, hourly, now=T0 + (night + 1) * HOUR, operations=[*reference, hour(night, 680.0)])
    )
    assert judged.latest is not None and (judged.condition, judged.severity) == (FIRING, CRITICAL)
    assert judged.latest.baseline == pytest.approx(340.0) and 1.5 * pooled > 680.0
    # Two of the reference's 03:00 hours with enough rows: too few; the pooled hours decide.
    thin = [
        hour(h, r.latency_p95_ms or 0.0, 5000 if h % 24 != 3 or h < 48 else 50)
        for h, r in enumerate(reference)
    ]
    quiet = only(evaluate(rule, hourly, now=T0 + (night + 1) * HOUR, operations=[*thin, hour(night, 680.0)]))
    assert quiet.latest is not None and quiet.condition == OK
    weighted = np.average([r.latency_p95_ms for r in thin], weights=[r.n for r in thin])  # rows behind each
    assert quiet.latest.baseline == pytest.approx(weighted)


def test_under_a_day_a_crossed_cell_alerts_only_outside_the_band_of_its_time_of_day():
    """The reference week's night hours drift from the pooled reference every night (PSI ≈ 0.3), its
    day hours do not (≈ 0.02): a night at 0.31 is the reference's own cycle; a night at 0.6, or an
    afternoon at 0.15, is news."""
    hourly = model_config(window=Window(1, "h"))
    rule = next(r for r in default_rules(hourly) if r.name == "feature-drift")
    assert rule.outside_band == "3sigma"
    rng = np.random.default_rng(3)
    reference = [
        hourly_drift(hour, (0.3 if _night(hour) else 0.02) + rng.uniform(-0.01, 0.01))
        for hour in range(REFERENCE_DAYS * 24)
    ]
    nights = [row.psi for row in reference if row.window_start.hour == 3]
    assert len(nights) == REFERENCE_DAYS

    def judged(rule: AlertRule, at: int, psi: float) -> AlertEvaluation:
        drift = [*reference, hourly_drift(at, psi, js=MOVED_JS)]
        return only(evaluate(rule, hourly, now=T0 + (at + 1) * HOUR, drift=drift), feature="amount")

    night, noon = 10 * 24 + 3, 10 * 24 + 14
    quiet = judged(rule, night, 0.31)
    assert quiet.condition == OK and quiet.latest is not None
    assert quiet.latest.note == (
        "within the 3σ prediction band of the 7 reference windows starting at 03:00 "
        f"(mean {np.mean(nights):.4g}, σ {np.std(nights, ddof=1):.3g})"
    )
    # The band of seven windows: Student's t (6 degrees of freedom) at 3σ's coverage, and the new
    # window's own spread: mean ± 5.24σ.
    width = stats.t.ppf(stats.norm.cdf(3), 6) * math.sqrt(1 + 1 / 7) * np.std(nights, ddof=1)
    edge = np.mean(nights) + width
    assert judged(rule, night, edge - 1e-6).condition == OK
    assert judged(rule, night, edge + 1e-6).condition == FIRING
    assert (judged(rule, night, 0.6).condition, judged(rule, night, 0.6).severity) == (FIRING, CRITICAL)
    loud = judged(rule, night, 0.6).latest
    assert loud is not None and loud.note == (
        "past its threshold and outside the 3σ prediction band of the 7 reference windows starting at "
        f"03:00 (mean {np.mean(nights):.4g}, σ {np.std(nights, ddof=1):.3g}): edge {edge:.4g}"
    )
    small = dataclasses.replace(hourly_drift(night, 2.0, js=MOVED_JS), n=500)  # σ widened by √(5000 / 500)
    cell = only(
        evaluate(rule, hourly, now=T0 + (night + 1) * HOUR, drift=[*reference, small]), feature="amount"
    ).latest
    wide = np.mean(nights) + width * math.sqrt(10)
    assert cell is not None and cell.note is not None
    assert cell.note.endswith(f": edge {wide:.4g}, σ widened for its 500 rows")
    assert (judged(rule, noon, 0.15).condition, judged(rule, noon, 0.15).severity) == (FIRING, WARNING)
    # Without the gate (a week-long window's default), the night's own cycle fires.
    assert judged(dataclasses.replace(rule, outside_band=None), night, 0.31).condition == FIRING
    weekly = {r.name: r.outside_band for r in default_rules(model_config(window=Window(1, "w")))}
    assert set(weekly.values()) == {None}
    distribution = {"feature-drift", "feature-shift", "score-drift", "missing-rate", "unseen-categories"}
    rates = {"decision-rate", "calibration-ece", "precision-drop", "recall-drop"}
    # One-day windows: the weekly cycle for the distribution rules only (a canary's rates, a day's
    # few hundred labels: a band of five weekdays, widened for small cells, swallows an incident).
    for window, gated in (
        (Window(6, "h"), distribution | rates),
        (Window(24, "h"), distribution),
        (Window(1, "d"), distribution),
    ):
        rules = default_rules(model_config(window=window, labels="labels.jsonl"))
        assert {r.name for r in rules} >= distribution | rates
        assert {r.name for r in rules if r.outside_band} == gated, window


def test_an_hour_is_judged_by_the_same_hour_on_the_same_kind_of_day():
    """Two reference weeks whose Saturday and Sunday evenings differ from the pooled reference
    (PSI ≈ 5: a weekend crowd), their weekday evenings not (≈ 0.1): a Saturday 18:00 at 5.2 is the
    reference's own weekend, judged by the four weekend evenings; a Tuesday 18:00 at 5.2 is news,
    judged by the ten weekday evenings — where the band of all fourteen evenings held it."""
    hourly = model_config(window=Window(1, "h"), reference=Reference(start=T0, end=T0 + 14 * DAY))
    rule = next(r for r in default_rules(hourly) if r.name == "feature-drift")
    rng = np.random.default_rng(9)

    def weekend(hour: int) -> bool:
        return (T0 + hour * HOUR).weekday() >= 5

    reference = [
        hourly_drift(hour, (5.0 if weekend(hour) and hour % 24 == 18 else 0.1) + rng.uniform(-0.05, 0.05))
        for hour in range(14 * 24)
    ]
    evenings = [r.psi for h, r in enumerate(reference) if h % 24 == 18 and weekend(h)]
    assert len(evenings) == 4

    def judged(hour: int, psi: float) -> AlertEvaluation:
        drift = [*reference, hourly_drift(hour, psi)]
        return only(evaluate(rule, hourly, now=T0 + (hour + 1) * HOUR, drift=drift), feature="amount")

    saturday, tuesday = 16 * 24 + 18, 19 * 24 + 18
    assert [(T0 + h * HOUR).strftime("%a %H") for h in (saturday, tuesday)] == ["Sat 18", "Tue 18"]
    quiet = judged(saturday, 5.2)
    assert quiet.condition == OK and quiet.latest is not None
    assert quiet.latest.note == (
        "within the 3σ prediction band of the 4 reference windows on weekends starting at 18:00 "
        f"(mean {np.mean(evenings):.4g}, σ {np.std(evenings, ddof=1):.3g})"
    )
    loud = judged(tuesday, 5.2)
    assert (loud.condition, loud.severity) == (FIRING, CRITICAL)
    every = [r.psi for h, r in enumerate(reference) if h % 24 == 18]
    pooled = stats.t.ppf(stats.norm.cdf(3), 13) * math.sqrt(1 + 1 / 14) * np.std(every, ddof=1)
    assert np.mean(every) + pooled > 5.2  # inside the band of all fourteen evenings


def test_an_hour_with_too_few_reference_windows_is_judged_by_all_of_them():
    """A small slice's 03:00 had enough rows on one reference night only (a Thursday): its own band
    cannot be made, so the band of all the scope's reference windows judges a weekday's 03:00 (a
    night at 0.31 is within the nights' and days' spread; 0.9 is not), not the bare threshold. Its
    reference weekend nights all had too few rows: a Sunday's 03:00 is unknown, not judged by
    the weekdays."""
    hourly = model_config(window=Window(1, "h"))
    rule = next(r for r in default_rules(hourly) if r.name == "feature-drift")
    rng = np.random.default_rng(8)
    reference = [
        dataclasses.replace(
            hourly_drift(hour, (0.3 if _night(hour) else 0.02) + rng.uniform(-0.01, 0.01)),
            enough_data=hour % 24 != 3 or hour < 24,
        )
        for hour in range(REFERENCE_DAYS * 24)
    ]
    judged = [row.psi for row in reference if row.enough_data]
    assert len(judged) == REFERENCE_DAYS * 24 - (REFERENCE_DAYS - 1)
    monday, sunday = 11 * 24 + 3, 10 * 24 + 3
    assert [(T0 + h * HOUR).strftime("%a %H") for h in (monday, sunday)] == ["Mon 03", "Sun 03"]

    def evaluated(psi: float, night: int = monday) -> AlertEvaluation:
        drift = [*reference, hourly_drift(night, psi)]
        return only(evaluate(rule, hourly, now=T0 + (night + 1) * HOUR, drift=drift), feature="amount")

    quiet = evaluated(0.31)
    assert quiet.condition == OK and quiet.latest is not None
    assert quiet.latest.note == (
        f"within the 3σ prediction band of the {len(judged)} reference windows (too few starting at "
        f"03:00) (mean {np.mean(judged):.4g}, σ {np.std(judged, ddof=1):.3g})"
    )
    assert evaluated(0.9).condition == FIRING
    weekend = evaluated(0.9, sunday)
    assert weekend.condition == UNKNOWN and weekend.cells[-1].note == (
        "no reference window on weekends starting at 03:00 with enough data: its cycle cannot be told "
        "from news"
    )


def test_a_psi_past_its_band_from_one_emptied_bin_alone_is_ok_a_move_is_not():
    """An hour of a small slice (100 rows) whose feature puts 1 % of its rows in the pooled
    reference's lowest decile: one or two rows land there each reference day; the day none does,
    PSI's floored log ratio adds (ε − 0.1)·ln(ε/0.1) − (0.01 − 0.1)·ln(0.1) ≈ 0.48 for that one row,
    past the band of the reference's hours, where a fifth of the rows moving to the top decile
    adds 0.40. JS on the same bins hardly moves for the one row: the cell is OK and says why. The
    move moves both and fires."""
    hourly = model_config(window=Window(1, "h"), min_samples=100)
    rule = next(r for r in default_rules(hourly) if r.name == "feature-drift")
    pooled = np.full(10, 0.1)

    def hour(at: int, counts: np.ndarray) -> DriftRow:
        share = counts / counts.sum()
        floored = np.maximum(share, 1e-4)
        psi = float(np.sum((floored - pooled) * np.log(floored / pooled)))
        return dataclasses.replace(
            hourly_drift(at, psi, js=float(jensenshannon(share, pooled, base=2))), n=int(counts.sum())
        )

    typical = np.array([1, 13, 12, 11, 10, 10, 11, 11, 11, 10])
    reference = []
    for day in range(REFERENCE_DAYS):
        counts = typical.copy()
        counts[0] += day % 2  # one or two rows in the lowest decile
        counts[1 + day % 3] -= day % 2
        reference.append(hour(day * 24 + 3, counts))
    tuesday = 12 * 24 + 3
    assert (T0 + tuesday * HOUR).strftime("%a %H") == "Tue 03"
    emptied = typical.copy()
    emptied[:2] = [0, 14]
    moved = typical.copy()
    moved[1:5] -= 6
    moved[9] += 24
    weekdays = [r for r in reference if r.window_start.weekday() < 5]

    def edge(statistic: Any) -> float:
        """The weekday band's edge, from the sample σ."""
        values = np.array([statistic(r) for r in weekdays])
        m = len(values)
        return values.mean() + stats.t.ppf(stats.norm.cdf(3), m - 1) * math.sqrt(1 + 1 / m) * values.std(
            ddof=1
        )

    psi_edge = edge(lambda r: r.psi)
    # JS's band is on the divergence (JS²), like PSI to first order
    js_edge = math.sqrt(edge(lambda r: r.js**2))

    def judged(counts: np.ndarray) -> AlertEvaluation:
        cell = hour(tuesday, counts)
        drift = [*reference, cell]
        return only(evaluate(rule, hourly, now=T0 + (tuesday + 1) * HOUR, drift=drift), feature="amount")

    alone, both = hour(tuesday, emptied), hour(tuesday, moved)
    assert alone.psi is not None and both.psi is not None and alone.js is not None and both.js is not None
    assert alone.psi > both.psi > psi_edge > rule.critical  # both past PSI's band and critical
    assert alone.js < js_edge < both.js
    quiet = judged(emptied)
    assert quiet.condition == OK and quiet.latest is not None and quiet.latest.note is not None
    assert quiet.latest.note.endswith(
        f"; but JS {alone.js:.4g} is within its own band (edge {js_edge:.4g}): "
        "PSI alone, from a bin it left (nearly) empty"
    )
    loud = judged(moved)
    assert (loud.condition, loud.severity) == (FIRING, CRITICAL)


def test_a_one_day_window_alerts_only_outside_the_band_of_weekends_or_of_weekdays():
    """Two reference weeks whose weekends drift from the pooled reference every weekend (PSI ≈ 0.2),
    their weekdays not (≈ 0.02): a Saturday at 0.21 is the reference's own week; a Saturday at 0.6,
    or a Tuesday at 0.15, is news. Four weekend days make the weekend band (Student's t with 3
    degrees of freedom: wide), ten weekdays the weekday one."""
    weeks = model_config(reference=Reference(start=T0, end=T0 + 14 * DAY))
    rule = next(r for r in default_rules(weeks) if r.name == "feature-drift")
    assert rule.outside_band == "3sigma"
    rng = np.random.default_rng(5)

    def weekend(day: int) -> bool:
        return (T0 + day * DAY).weekday() >= 5

    reference = [
        drift_row(day, (0.2 if weekend(day) else 0.02) + rng.uniform(-0.01, 0.01), ks_p=1e-12)
        for day in range(14)
    ]
    weekends = [row.psi for row in reference if weekend(reference.index(row))]
    assert len(weekends) == 4 and all(psi is not None for psi in weekends)
    sigma = float(np.std(weekends, ddof=1))  # the sample σ of the four weekends

    def judged(day: int, psi: float) -> AlertEvaluation:
        drift = [*reference, drift_row(day, psi, ks_p=1e-12, js=MOVED_JS)]
        return only(evaluate(rule, weeks, now=T0 + (day + 1) * DAY, drift=drift), feature="amount")

    saturday, tuesday = 16, 19
    assert (T0 + saturday * DAY).strftime("%a") == "Sat" and (T0 + tuesday * DAY).strftime("%a") == "Tue"
    quiet = judged(saturday, 0.21)
    assert quiet.condition == OK and quiet.latest is not None
    assert quiet.latest.note == (
        "within the 3σ prediction band of the 4 reference windows on weekends "
        f"(mean {np.mean(weekends):.4g}, σ {sigma:.3g})"
    )
    width = stats.t.ppf(stats.norm.cdf(3), 3) * math.sqrt(1 + 1 / 4) * sigma
    edge = float(np.mean(weekends)) + width
    assert judged(saturday, edge - 1e-6).condition == OK
    assert judged(saturday, edge + 1e-6).condition == FIRING
    assert (judged(saturday, 0.6).condition, judged(saturday, 0.6).severity) == (FIRING, CRITICAL)
    assert (judged(tuesday, 0.15).condition, judged(tuesday, 0.15).severity) == (FIRING, WARNING)
    # The weekdays' band is not the weekends': a Tuesday like a reference Saturday fires.
    assert judged(tuesday, 0.21).condition == FIRING


def test_a_window_longer_than_a_day_takes_the_band_of_all_reference_windows() -> None:
    """Weekly windows hold whole cycles (no phase): a week whose PSI is the reference weeks' own
    (0.20 ± 0.01, past the 0.1 threshold every week) is ok within their band; one far outside
    fires (audit 24: the band was never consulted without a phase, the threshold alone fired)."""
    week = 7 * DAY
    model = model_config(reference=Reference(start=T0, end=T0 + 6 * week))
    rule = AlertRule(name="drift", signal="drift.psi", warn=0.1, critical=0.25, outside_band="3sigma")

    def weekly(i: int, psi: float) -> DriftRow:
        row = drift_row(0, psi, ks_p=1e-12)
        return dataclasses.replace(row, window_start=T0 + i * week, window_end=T0 + (i + 1) * week)

    reference = [weekly(i, 0.2 + 0.01 * (-1) ** i) for i in range(6)]
    psis = [row.psi for row in reference]

    def judged(psi: float) -> AlertEvaluation:
        drift = [*reference, weekly(7, psi)]
        return only(evaluate(rule, model, now=T0 + 8 * week, drift=drift), feature="amount")

    quiet = judged(0.205)
    assert quiet.condition == OK and quiet.latest is not None
    assert quiet.latest.note == (
        "within the 3σ prediction band of the 6 reference windows "
        f"(mean {np.mean(psis):.4g}, σ {np.std(psis, ddof=1):.3g})"
    )
    assert judged(0.4).condition == FIRING


def test_a_daily_latency_band_holds_a_route_mix_and_no_incident():
    """With one-day windows latency takes the band of the reference's days in its phase — from 7 of
    them, or fewer where the reference's own days cross the threshold — unwidened for a small cell:
    - an all-route p95 where a 5 % LLM route begins moves 212–529 ms over its weekdays (two past
      +50 % of their mean): a Friday at +58 % is inside their band, ok;
    - a route's p95 up 52 % by a failover, against 3 reference weekdays that never crossed (their
      band, t(2), is 19σ wide and would hold it): fires;
    - a new 2 % canary judged by all versions' steady p95 (σ 10 ms): 2.4× fires (a band widened
      by √50 for its share would reach 518 ms and hold it)."""
    logged = Columns(id="id", timestamp="ts", score="score", version="v", latency_ms="ms", route="route")
    weeks = model_config(columns=logged, reference=Reference(start=T0, end=T0 + 14 * DAY))
    rule = next(r for r in default_rules(weeks) if r.name == "latency-p95")
    assert rule.outside_band == "3sigma"

    def judged(model: ModelConfig, rows: list[OperationsRow], **scope: str) -> AlertEvaluation:
        return only(evaluate(rule, model, now=max(r.window_end for r in rows), operations=rows), **scope)

    mixed = [212, 529, 250, 300, 480, 260, 230, 280, 320, 240, 310, 270, 290, 300]
    mix = [operations_row(day, latency_p95_ms=float(p95)) for day, p95 in enumerate(mixed)]
    friday = operations_row(15, latency_p95_ms=500.0)
    result = judged(weeks, [*mix, friday])
    assert result.condition == OK and result.latest is not None and result.latest.note is not None
    assert result.latest.note.startswith(
        "within the 3σ prediction band of the 10 reference windows on weekdays "
    )

    days = model_config(columns=logged, reference=Reference(start=T0, end=T0 + 5 * DAY))
    values = [1939.0, 2057.0, 1921.0, 1990.0, 1960.0]  # Thursday to Monday
    steady = [operations_row(day, latency_p95_ms=p95) for day, p95 in enumerate(values)]
    failover = judged(days, [*steady, operations_row(12, latency_p95_ms=3013.0)])
    assert (failover.condition, failover.severity) == (FIRING, WARNING)

    everyone = [operations_row(day, latency_p95_ms=190.0 + 20 * (day % 2), n=15000) for day in range(14)]
    canary = operations_row(15, latency_p95_ms=480.0, n=300, version="v2")
    result = judged(weeks, [*everyone, canary], version="v2")
    assert (result.condition, result.severity) == (FIRING, CRITICAL)

    # One incident day in a week's reference (400 ms among 200s) crosses once: not the scope's spread,
    # and its band (mean 240, σ 80) would cover a 3.5× rise. Thin reference weekends leave a
    # Saturday to its threshold, not unknown.
    week = model_config(columns=logged, reference=Reference(start=T0, end=T0 + 7 * DAY))
    spiked = [operations_row(day, latency_p95_ms=400.0 if day == 4 else 200.0) for day in range(7)]
    assert (T0 + 4 * DAY).weekday() < 5
    rise = judged(week, [*spiked, operations_row(13, latency_p95_ms=700.0)])
    assert (rise.condition, rise.severity) == (FIRING, CRITICAL)
    thin = [
        operations_row(day, latency_p95_ms=200.0, n=100, enough_data=False)
        if (T0 + day * DAY).weekday() >= 5
        else operations_row(day, latency_p95_ms=200.0)
        for day in range(14)
    ]
    saturday = judged(weeks, [*thin, operations_row(16, latency_p95_ms=900.0)])
    assert (saturday.condition, saturday.severity) == (FIRING, CRITICAL)


def test_a_canarys_cost_per_1k_alerts_only_beyond_its_sampling_noise() -> None:
    """A 280-request canary's cost per 1k is a mean of heavy-tailed costs (per request s = 3 per 1k):
    +33 % over all versions' steady reference (0.60, 15 000 requests a day) is inside its own
    sampling noise — unknown, not a page (audit 23: a quiet canary's cost alerted twice) — while
    2.4× is far beyond it and fires critical. The p-value is the z-test of both intervals."""
    logged = Columns(id="id", timestamp="ts", score="score", version="v", cost="cost", route="route")
    weeks = model_config(columns=logged, reference=Reference(start=T0, end=T0 + 14 * DAY))
    rule = next(r for r in default_rules(weeks) if r.name == "cost-per-1k")
    assert rule.q is not None

    def cost_row(day: int, cost: float, n: int, **kw: Any) -> OperationsRow:
        half = stats.norm.ppf(0.975) * 3.0 / math.sqrt(n)
        row = operations_row(day, n=n, **kw)
        return dataclasses.replace(
            row, cost_per_1k=cost, cost_per_1k_ci_low=cost - half, cost_per_1k_ci_high=cost + half
        )

    everyone = [cost_row(day, 0.6 + 0.01 * (-1) ** day, 15_000) for day in range(14)]

    def judged(cost: float) -> AlertEvaluation:
        rows = [*everyone, cost_row(15, cost, 280, version="v3")]
        return only(evaluate(rule, weeks, now=T0 + 16 * DAY, operations=rows), version="v3")

    noisy = judged(0.8)
    assert noisy.condition == UNKNOWN and noisy.cells[-1].status == UNKNOWN
    spike = judged(1.44)
    assert (spike.condition, spike.severity) == (FIRING, CRITICAL)
    # The baseline is the reference's weekdays (the canary's Friday's phase), weighted by their rows.
    weekdays = [r for r in everyone if r.window_start.weekday() < 5]
    baseline = np.mean([r.cost_per_1k for r in weekdays])
    se_baseline = math.sqrt(len(weekdays) * (15_000 * 3.0 / math.sqrt(15_000)) ** 2) / (
        len(weekdays) * 15_000
    )
    z = (1.44 - baseline) / math.hypot(3.0 / math.sqrt(280), se_baseline)
    assert spike.latest is not None and spike.latest.p_value == pytest.approx(stats.norm.sf(z), rel=1e-6)
    z_noisy = (0.8 - baseline) / math.hypot(3.0 / math.sqrt(280), se_baseline)
    assert stats.norm.sf(z_noisy) > 0.05  # why it is unknown: not beyond noise


def test_a_weekly_view_judges_by_the_default_rules_of_weekly_windows() -> None:
    """`check --window 7d` of an hourly model: the default rules of a 7-day model judge it (no band:
    a week holds whole cycles), so a new 5 % canary whose decision rate halves fires critical. The
    hourly model's own rules would take the band of the 4 reference weeks, widened by √20 for the
    canary (t(3)·√1.25 ≈ 11σ of it), and hold the collapse (audit 25)."""
    hourly = model_config(window=parse_window("1h"), reference=Reference(start=T0, end=T0 + 28 * DAY))
    week = 7 * DAY

    def weekly(row: CalibrationRow, i: int) -> CalibrationRow:
        return dataclasses.replace(row, window_start=T0 + i * week, window_end=T0 + (i + 1) * week)

    reference = [
        weekly(calibration_row(0, n_labeled=40_000, decision_rate=0.1 + 0.002 * (-1) ** i), i)
        for i in range(4)
    ]
    reference += [dataclasses.replace(row, version="v1") for row in reference]
    fifth = [
        weekly(calibration_row(0, n_labeled=40_000, decision_rate=0.1), 5),
        weekly(calibration_row(0, n_labeled=38_000, decision_rate=0.1025, version="v1"), 5),
        weekly(calibration_row(0, n_labeled=2_000, decision_rate=0.05, version="v2"), 5),
    ]

    def canary(rules: tuple[AlertRule, ...]) -> AlertEvaluation:
        rule = next(r for r in rules if r.name == "decision-rate")
        evaluations = evaluate_rules([rule], {"calibration": reference + fifth}, hourly, T0 + 6 * week)
        return only(evaluations, version="v2")

    found, evaluations = check_alerts(
        AlertStore(duckdb.connect()),
        hourly,
        {"calibration": reference + fifth},
        T0 + 6 * week,
        record=False,
        window=parse_window("7d"),
    )
    viewed = only([e for e in evaluations if e.rule == "decision-rate"], version="v2")
    assert (viewed.condition, viewed.severity) == (FIRING, CRITICAL)
    assert any(a.rule == "decision-rate" and dict(a.scope) == {"version": "v2"} for a in found)
    assert canary(effective_rules(hourly, parse_window("7d"))).condition == FIRING
    own = canary(effective_rules(hourly))
    assert own.condition == OK and own.latest is not None and own.latest.note is not None
    assert own.latest.note.startswith("within the 3σ prediction band of the 4 reference windows")


def test_standard_errors_from_clipped_intervals_and_thin_reference_windows() -> None:
    """A z-test reads a statistic's standard error off its 95 % interval: from its wider side where
    the other is clipped (an expected cost floored at 0, an AUROC at 1), not its full width, which
    understates the error; a reference window without an interval (one request that day) adds its
    value to the baseline, not an exact one (audit 25: its se became None, read as 0)."""
    z = stats.norm.ppf(0.975)
    costs = np.zeros(200)
    costs[0] = 0.05  # a canary of 200 requests, one of them an LLM call
    se = costs.std(ddof=1) / math.sqrt(200)
    floored = dataclasses.replace(
        performance_row(10),
        expected_cost=costs.mean(),
        expected_cost_ci_low=0.0,
        expected_cost_ci_high=costs.mean() + z * se,
    )
    assert _standard_error(floored, "expected_cost") == pytest.approx(se, rel=1e-12)
    clipped = dataclasses.replace(performance_row(10, auroc=0.99, half_width=0.03), auroc_ci_high=1.0)
    assert _standard_error(clipped, "auroc") == pytest.approx(0.03 / z, rel=1e-12)

    def costly(day: int, n: int, half: float | None) -> OperationsRow:
        low, high = (None, None) if half is None else (1.0 - half, 1.0 + half)
        row = operations_row(day, n=n, route="r")
        return dataclasses.replace(row, cost_per_1k=1.0, cost_per_1k_ci_low=low, cost_per_1k_ci_high=high)

    full = [costly(day, 300, 0.5) for day in range(7)]
    with_thin = baseline_of("operations", "cost_per_1k", [*full, costly(7, 1, None)])
    assert with_thin is not None and with_thin.se is not None
    expected = math.sqrt(7 * (300 * 0.5 / z) ** 2) / (7 * 300 + 1)
    assert with_thin.se == pytest.approx(expected, rel=1e-12)


def test_an_hours_latency_takes_the_same_hour_of_every_day_when_its_weekends_are_too_few() -> None:
    """Hourly windows, a two-week reference: a Saturday 03:00 has 4 reference windows (weekends at
    03:00) that never cross +50 % — too thin a band to judge by (t(3)) — so the band of 03:00 on
    every day (14 windows) judges it: an all-route p95 that swings 200–500 ms with the hour's share
    of LLM calls is within it at 480 (audit 26: 32 weekend-hour alerts in a quiet week); 1 200 ms
    (a doubling past anything seen) fires. Other hours' windows are not pooled."""
    logged = Columns(id="id", timestamp="ts", score="score", latency_ms="ms", route="route")
    hourly = model_config(
        columns=logged, window=Window(1, "h"), reference=Reference(start=T0, end=T0 + 14 * DAY)
    )
    rule = next(r for r in default_rules(hourly) if r.name == "latency-p95")
    assert rule.outside_band == "3sigma"
    hour = timedelta(hours=1)

    def at(h: int, p95: float) -> OperationsRow:
        row = operations_row(0, latency_p95_ms=p95, n=600)
        return dataclasses.replace(row, window_start=T0 + h * hour, window_end=T0 + (h + 1) * hour)

    swings = [300, 420, 210, 480, 260, 500, 320, 230, 450, 280, 390, 240, 470, 310]  # 03:00 of each day
    weekend = [day for day in range(14) if (T0 + day * DAY).weekday() >= 5]
    for day in weekend:  # the weekend's 03:00 never crosses +50 % of the weekends' own mean
        swings[day] = 300 + 10 * (day % 2)
    reference = [at(24 * day + 3, float(p95)) for day, p95 in enumerate(swings)]
    reference += [at(24 * day + 12, 150.0) for day in range(14)]  # noon: another phase, steady
    saturday = next(day for day in range(14, 21) if (T0 + day * DAY).weekday() == 5)

    def judged(p95: float) -> AlertEvaluation:
        rows = [*reference, at(24 * saturday + 3, p95)]
        return only(evaluate(rule, hourly, now=T0 + (24 * saturday + 4) * hour, operations=rows))

    quiet = judged(480.0)
    assert quiet.condition == OK and quiet.latest is not None and quiet.latest.note is not None
    assert quiet.latest.note.startswith(
        "within the 3σ prediction band of the 14 reference windows starting at 03:00"
    )
    assert judged(1200.0).condition == FIRING


def test_a_canarys_p95_alerts_only_beyond_its_sampling_noise() -> None:
    """A 200-request canary's p95 is its tenth-largest latency: +60 % over all versions' steady
    reference, with an interval of ±160 ms (two LLM calls among its slowest ten), is noise —
    unknown, not a page (audit 26: 35-row canary hours paged) — while 2.4× with the same interval
    fires critical. Without a test both crossed +50 %."""
    logged = Columns(id="id", timestamp="ts", score="score", version="v", latency_ms="ms", route="route")
    weeks = model_config(columns=logged, reference=Reference(start=T0, end=T0 + 14 * DAY))
    rule = next(r for r in default_rules(weeks) if r.name == "latency-p95")
    assert rule.q is not None
    everyone = [operations_row(day, latency_p95_ms=200.0 + 4 * (day % 2), n=15_000) for day in range(14)]

    def judged(p95: float) -> AlertEvaluation:
        canary = operations_row(15, latency_p95_ms=p95, n=200, version="v3", p95_half=160.0)
        rows = [*everyone, canary]
        return only(evaluate(rule, weeks, now=T0 + 16 * DAY, operations=rows), version="v3")

    assert judged(320.0).condition == UNKNOWN
    spike = judged(480.0)
    assert (spike.condition, spike.severity) == (FIRING, CRITICAL)


def test_a_small_slices_weekend_is_not_judged_by_its_weekdays():
    """A small slice whose reference weekends all held too few rows (120 < min_samples) has no
    weekend band; its weekdays' band would judge a busy Saturday by Tuesdays (a feature with a
    weekly cycle pages critical): the Saturday is unknown, with the reason, and a Tuesday is still
    judged. A reference without any weekend day judges a Saturday by all its days (the README)."""
    weeks = model_config(reference=Reference(start=T0, end=T0 + 14 * DAY))
    rule = next(r for r in default_rules(weeks) if r.name == "feature-drift")
    rng = np.random.default_rng(6)
    days = {day: (T0 + day * DAY).weekday() >= 5 for day in range(14)}
    reference = [
        drift_row(day, None, n=120, enough_data=False)
        if weekend
        else drift_row(day, 0.05 + rng.uniform(-0.01, 0.01), ks_p=1e-12)
        for day, weekend in days.items()
    ]

    def judged(day: int, psi: float, earlier: list[DriftRow]) -> AlertEvaluation:
        drift = [*earlier, drift_row(day, psi, ks_p=1e-12)]
        return only(evaluate(rule, weeks, now=T0 + (day + 1) * DAY, drift=drift), feature="amount")

    saturday, tuesday = 16, 19
    busy = judged(saturday, 2.0, reference)
    assert busy.condition == UNKNOWN and busy.latest is None
    assert busy.cells[-1].note == (
        "no reference window on weekends with enough data: its cycle cannot be told from news"
    )
    assert (judged(tuesday, 2.0, reference).condition, judged(tuesday, 2.0, reference).severity) == (
        FIRING,
        CRITICAL,
    )
    weekdays_only = [row for day, row in enumerate(reference) if not days[day]]
    assert judged(saturday, 2.0, weekdays_only).condition == FIRING

    # A slice whose reference days were all thin has no band anywhere: its Saturday is unknown too.
    all_thin = [drift_row(day, None, n=120, enough_data=False) for day in range(14)]
    assert judged(saturday, 2.0, all_thin).condition == UNKNOWN
    # A canary without a reference of its own is judged by all versions' windows: its Saturday too.
    canary_rule = dataclasses.replace(rule, where={**rule.where, "version": "*"})
    drift = [*reference, drift_row(saturday, 2.0, ks_p=1e-12, version="v2")]
    canary = only(
        evaluate(canary_rule, weeks, now=T0 + (saturday + 1) * DAY, drift=drift),
        feature="amount",
        version="v2",
    )
    assert canary.condition == UNKNOWN and canary.cells[-1].note.startswith("no reference window on weekends")


# -- persistence ----------------------------------------------------------------------------------


def _series(values: list[float | None], **kw: Any) -> list[DriftRow]:
    return [drift_row(10 + i, v, enough_data=v is not None, **kw) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("values", "condition", "run"),
    [
        ([0.01, 0.3, 0.3], PENDING, 2),
        ([0.3, 0.3, 0.3], FIRING, 3),
        ([0.3, 0.3, 0.3, 0.01], OK, 0),
        ([0.3, 0.3, None, 0.3], FIRING, 3),  # an unknown window neither confirms nor breaks a run
        ([0.3, 0.01, 0.3, 0.3], PENDING, 2),
        ([0.3, 0.3, 0.3, None], FIRING, 3),  # a trailing unknown window keeps the last known state
    ],
)
def test_for_windows_persistence(values, condition, run):
    rule = AlertRule(name="drift", signal="drift.psi", warn=0.1, for_windows=3)
    rows = [
        drift_row(10 + i, 0.01 if v is None else v, enough_data=v is not None) for i, v in enumerate(values)
    ]
    result = only(evaluate(rule, drift=rows), feature="amount")
    assert (result.condition, result.run) == (condition, run)


def test_rows_after_now_are_ignored():
    rule = AlertRule(name="drift", signal="drift.psi", warn=0.1)
    rows = [drift_row(10, 0.01), drift_row(11, 0.5)]
    assert only(evaluate(rule, now=T0 + 11 * DAY, drift=rows), feature="amount").condition == OK
    assert only(evaluate(rule, now=T0 + 12 * DAY, drift=rows), feature="amount").condition == FIRING


def test_a_distribution_is_judged_once_its_window_has_ended_an_operation_at_once():
    """At 11:00 day 11 is its night and morning: a feature on a daily cycle differs from whole days
    there, so the drift rules wait for the day's end; latency is judged in the day so far (an
    incident pages within hours). A window of another size than the model's (a view) is whole."""
    drift = AlertRule(name="drift", signal="drift.psi", warn=0.1)
    rows = [drift_row(10, 0.01), drift_row(11, 0.5)]
    morning = T0 + 11 * DAY + timedelta(hours=11)
    latest = only(evaluate(drift, now=morning, drift=rows), feature="amount").latest
    assert latest is not None and latest.window_start == T0 + 10 * DAY
    assert only(evaluate(drift, now=T0 + 12 * DAY, drift=rows), feature="amount").condition == FIRING
    # No ended window evaluated (`check --last 1` in the day): the day so far is all there is.
    assert only(evaluate(drift, now=morning, drift=rows[1:]), feature="amount").condition == FIRING
    latency = AlertRule(name="latency", signal="operations.latency_p95_ms", warn=200.0)
    slow = [operations_row(10), operations_row(11, latency_p95_ms=400.0)]
    assert only(evaluate(latency, now=morning, operations=slow)).condition == FIRING
    week = [dataclasses.replace(row, window_end=row.window_start + 7 * DAY) for row in rows]  # a 7d view
    assert only(evaluate(drift, now=morning, drift=week), feature="amount").condition == FIRING


# -- gates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "note"),
    [
        (drift_row(10, None), "no value"),
        (drift_row(10, math.nan), "no value"),
        (drift_row(10, 0.9, enough_data=False), "not enough data"),
        (drift_row(10, 0.9, n=150), "150 rows < min_samples 200"),
    ],
)
def test_gated_cells_never_alert(row, note):
    rule = AlertRule(name="drift", signal="drift.psi", warn=0.1)
    result = only(evaluate(rule, drift=[row]), feature="amount")
    assert result.condition == UNKNOWN and result.latest is None
    assert result.cells[0].status == UNKNOWN and result.cells[0].note == note


def test_min_samples_of_the_rule_and_labelled_rows():
    rule = AlertRule(name="precision", signal="performance.precision", warn=0.7, min_samples=1000)
    assert only(evaluate(rule, performance=[performance_row(10, 0.5, n_labeled=900)])).condition == UNKNOWN
    assert only(evaluate(rule, performance=[performance_row(10, 0.5, n_labeled=1000)])).condition == FIRING


def test_label_coverage_gate():
    rule = AlertRule(name="precision", signal="performance.precision", warn=0.7, min_label_coverage=0.3)
    immature = performance_row(10, 0.5, decision_label_coverage=0.2, trials=150)
    result = only(evaluate(rule, performance=[immature]))
    assert result.condition == UNKNOWN
    assert result.cells[0].note == "label coverage of the positive decisions 0.200 < 0.3"
    assert (
        only(evaluate(rule, performance=[performance_row(10, 0.5, decision_label_coverage=0.3)])).condition
        == FIRING
    )
    # precision's coverage is its denominator's: flagged rows reviewed while the rest wait for chargebacks
    reviewed = performance_row(10, 0.5, label_coverage=0.05, decision_label_coverage=0.95, trials=150)
    assert only(evaluate(rule, performance=[reviewed])).condition == FIRING
    # flags that outrun review: a fifth of them labelled, but 1500 of them, past min_samples
    flood = performance_row(10, 0.5, decision_label_coverage=0.2, trials=1500)
    assert only(evaluate(rule, performance=[flood])).condition == FIRING
    # calibration rows have no coverage field: n_labeled / n
    ece = AlertRule(name="ece", signal="calibration.ece", warn=0.05, min_label_coverage=0.5)
    assert (
        only(evaluate(ece, calibration=[calibration_row(10, ece=0.2, n=5000, n_labeled=2000)])).condition
        == UNKNOWN
    )
    cell = calibration_row(10, ece=0.2, n=5000, n_labeled=3000)
    assert only(evaluate(ece, calibration=[cell])).condition == FIRING


def test_calibration_waits_for_labels_as_settled_as_the_reference():
    """Frauds are labelled within days, legitimate requests after a month: at 60 % of its rows a
    window's labels hold too many frauds against a reference labelled on 80 %, and its ECE reads
    high. It waits, holding older evidence, until its labels cover 80 % of the reference's share."""
    rule = AlertRule(name="ece", signal="calibration.ece", warn=0.05, min_label_coverage=0.5)
    reference = [calibration_row(day, ece=0.02, n=5000, n_labeled=4000) for day in range(REFERENCE_DAYS)]

    def judged(labelled: int) -> CellResult:
        cell = calibration_row(10, ece=0.09, n=5000, n_labeled=labelled)
        return only(evaluate(rule, calibration=[*reference, cell])).cells[-1]

    young = judged(3000)
    assert (young.status, young.awaiting_labels) == (UNKNOWN, True)
    assert young.note == (
        "labels still arriving: 0.600 of its rows, under 80% of the reference's 0.800 "
        "(the first labels are the classes that come first)"
    )
    assert judged(3199).status == UNKNOWN
    assert judged(3200).status == CROSSED  # 64 % of its rows: 80 % of the reference's 80 %, settled
    # precision rests on the flagged rows, reviewed first: it does not wait for the rest
    precision = AlertRule(name="p", signal="performance.precision", warn=0.7, min_label_coverage=0.5)
    early = performance_row(10, 0.5, n_labeled=600, label_coverage=0.12, decision_label_coverage=0.9)
    assert only(evaluate(precision, performance=[early])).condition == FIRING


def test_reference_baseline_uses_only_windows_past_the_coverage_gate():
    # Early labels are a biased sample (reviewed flags first): days 0-2 are labelled at 20 % and
    # read 0.9, days 3-6 at 70 % read 0.7. Pooled, the baseline would be (3·0.9 + 4·0.7)/7 = 0.786
    # and a mature 0.66 would read as 16 % down; against the mature windows it is 5.7 % down.
    immature = [performance_row(day, 0.9, decision_label_coverage=0.2, trials=150) for day in range(3)]
    mature = [performance_row(day, 0.7, decision_label_coverage=0.7) for day in range(3, REFERENCE_DAYS)]
    rule = AlertRule(
        name="precision-drop",
        signal="performance.precision",
        baseline="reference",
        warn_change=-0.1,
        min_label_coverage=0.6,
    )
    reference = [*immature, *mature]
    steady = only(
        evaluate(rule, performance=[*reference, performance_row(10, 0.66, decision_label_coverage=0.7)])
    )
    assert steady.latest is not None and steady.latest.baseline == pytest.approx(0.7)
    assert steady.latest.threshold == pytest.approx(0.63)
    assert steady.condition == OK
    dropped = only(
        evaluate(rule, performance=[*reference, performance_row(10, 0.6, decision_label_coverage=0.7)])
    )
    assert dropped.condition == FIRING
    # no reference window is mature yet: no baseline, the cell is unknown rather than misjudged
    young = only(
        evaluate(rule, performance=[*immature, performance_row(10, 0.6, decision_label_coverage=0.7)])
    )
    assert young.condition == UNKNOWN and young.cells[-1].note == "no baseline for this scope"


# -- calibration: the reliability chi-square ------------------------------------------------------


def test_reliability_p_single_bin_by_hand():
    # n = 100 at mean score 0.2 with 30 positives; the reference (N = 100) is calibrated there:
    # E = 20, V = 100·0.2·0.8·(1 + 100/100) = 32, X = 10²/32 = 3.125 on 1 dof → p = 0.0771.
    p = reliability_p([point(0.2, 100, 0.2, 0.3)], [point(0.2, 100, 0.2, 0.2)])
    assert p == pytest.approx(stats.chi2.sf(3.125, 1))
    assert p == pytest.approx(0.0771, abs=1e-4)
    # the reference runs 0.1 above its scores in that bin: the cell is as calibrated as it, X = 0
    assert reliability_p([point(0.2, 100, 0.2, 0.3)], [point(0.2, 100, 0.2, 0.3)]) == pytest.approx(1.0)


def test_reliability_p_same_gap_is_noise_on_250_rows_and_a_change_on_25000():
    # gap 0.03 at score 0.1 against a huge calibrated reference (N = 10⁶, inflation ≈ 1):
    # n = 250: E = 25, V = 22.5, X = 7.5²/22.5 = 2.5 → p = 0.114; n = 25 000: X = 250 → p ≈ 1e-56.
    reference = [point(0.1, 1_000_000, 0.1, 0.1)]
    small = reliability_p([point(0.1, 250, 0.1, 0.13)], reference)
    large = reliability_p([point(0.1, 25_000, 0.1, 0.13)], reference)
    assert small == pytest.approx(stats.chi2.sf(2.5 / (1 + 250 / 1e6), 1))
    assert small > 0.1
    assert large < 1e-50


def test_reliability_p_merges_sparse_bins():
    # One row at 0.95 that is negative: alone its (0 − 0.95)²/(0.95·0.05) = 19 would read p ≈ 1e-5.
    # Its bin expects < 5 positives, so it joins the bin before (E = 10, 190 negatives): the group
    # has O = 10, E = 10 + 0.95, V = 200·0.05·0.95 + 0.95·0.05 = 9.5475 → X = 0.0945, p = 0.759.
    cell = [point(0.0, 200, 0.05, 0.05), point(0.9, 1, 0.95, 0.0)]
    p = reliability_p(cell, [])
    assert p == pytest.approx(stats.chi2.sf(0.95**2 / 9.5475, 1))
    assert p > 0.7
    # two groups that each expect ≥ 5 positives and negatives stay apart: 2 dof
    two = [point(0.0, 200, 0.05, 0.05), point(0.5, 20, 0.5, 0.5)]
    assert reliability_p(two, []) == pytest.approx(1.0)


def _ece_rule(**changes: Any) -> AlertRule:
    return AlertRule(name="ece", signal="calibration.ece", warn=0.03, q=0.05, **changes)


def test_ece_alerts_only_when_the_reliability_differs_beyond_noise():
    # Reference: 7 windows × 1000 labelled rows at 0.15 scoring 0.15 (N = 7000, perfectly calibrated).
    # A cell of 250 labelled rows at 0.19 (ECE 0.04 ≥ warn 0.03): E = 37.5, O = 47.5,
    # V = 250·0.15·0.85·(1 + 250/7000) = 33.01, X = 3.03 → p = 0.082 > q: not significant.
    # The same gap on 4000 labelled rows: X = 160²/801.4 = 31.9 → p ≈ 2e-8: firing.
    reference = [
        calibration_row(day, ece=0.0, n_labeled=1000, reliability=(point(0.1, 1000, 0.15, 0.15),))
        for day in range(REFERENCE_DAYS)
    ]
    small = calibration_row(10, ece=0.04, n_labeled=250, reliability=(point(0.1, 250, 0.15, 0.19),))
    result = only(evaluate(_ece_rule(), calibration=[*reference, small]))
    assert result.condition == UNKNOWN  # past the threshold but within noise: no evidence either way
    cell = result.cells[-1]
    assert cell.p_value == pytest.approx(stats.chi2.sf(10**2 / (250 * 0.15 * 0.85 * (1 + 250 / 7000)), 1))
    assert cell.note is not None and cell.note.startswith("not significant")
    large = calibration_row(10, ece=0.04, n_labeled=4000, reliability=(point(0.1, 4000, 0.15, 0.19),))
    fired = only(evaluate(_ece_rule(), calibration=[*reference, large]))
    assert fired.condition == FIRING and fired.latest is not None
    assert fired.latest.p_value is not None and fired.latest.p_value < 1e-7
    # without reliability points there is no test: a crossed cell stays unknown
    bare = calibration_row(10, ece=0.2, n_labeled=4000)
    last = only(evaluate(_ece_rule(), calibration=[*reference, bare])).cells[-1]
    assert (last.status, last.note) == (UNKNOWN, "no p-value")


# -- scope filters and fingerprints ----------------------------------------------------------------


def _grid(day: int = 10) -> list[DriftRow]:
    rows = []
    for feature in ("amount", "__score__", "payment_type"):
        for version in (None, "v1", "v2"):
            for segment, value in ((None, None), ("country", "BR"), ("country", "US"), ("device", "ios")):
                rows.append(
                    drift_row(day, 0.5, feature, version=version, segment=segment, segment_value=value)
                )
    return rows


def _scopes(rule: AlertRule, rows: list[DriftRow]) -> set[tuple]:
    return {tuple(sorted(e.scope_dict.items())) for e in evaluate(rule, drift=rows)}


def test_where_filters():
    rows = _grid()
    base = {"name": "d", "signal": "drift.psi", "warn": 0.1}
    # omitted version and segment: the all-versions, all-traffic rows of each feature
    assert _scopes(AlertRule(**base), rows) == {
        (("feature", f),) for f in ("amount", "__score__", "payment_type")
    }
    features = _scopes(AlertRule(**base, where={"feature": "!__score__", "segment": "*"}), rows)
    assert len(features) == 2 * 4 and all(dict(s)["feature"] != "__score__" for s in features)
    country = _scopes(AlertRule(**base, where={"feature": "amount", "segment": "country"}), rows)
    assert country == {
        (("feature", "amount"), ("segment", "country"), ("segment_value", v)) for v in ("BR", "US")
    }
    per_version = _scopes(AlertRule(**base, where={"feature": "amount", "version": "*"}), rows)
    assert per_version == {
        (("feature", "amount"),),
        *((("feature", "amount"), ("version", v)) for v in ("v1", "v2")),
    }


def test_a_single_version_stands_for_all_versions():
    rows = [drift_row(10, 0.5, version=v) for v in (None, "v1")]
    rule = AlertRule(name="d", signal="drift.psi", warn=0.1, where={"version": "*"})
    assert [e.scope_dict for e in evaluate(rule, drift=rows)] == [{"feature": "amount", "version": "v1"}]


def test_fingerprints_are_stable_unique_and_ignore_the_window():
    rule = AlertRule(
        name="feature-drift", signal="drift.psi", warn=0.1, where={"version": "*", "segment": "*"}
    )
    first = evaluate(rule, drift=_grid(10))
    later = evaluate(rule, drift=_grid(20))
    prints = [e.fingerprint for e in first]
    assert len(prints) == len(set(prints)) == 3 * 3 * 4
    assert {e.fingerprint: e.scope for e in first} == {e.fingerprint: e.scope for e in later}
    # pinned: a fingerprint must not change between releases, or every alert would be new
    assert fingerprint("fraud", "feature-drift", {"feature": "amount"}) == "2ed4ea776125c63e"
    assert fingerprint(
        "fraud", "feature-drift", {"segment": "country", "segment_value": "BR"}
    ) != fingerprint("fraud", "feature-drift", {"segment": "country", "segment_value": "US"})
    assert fingerprint("fraud", "a", {}) != fingerprint("fraud", "b", {}) != fingerprint("other", "b", {})


# -- significance: Benjamini–Hochberg and effect-size floors --------------------------------------


def test_p_value_signal_alerts_where_bh_and_the_effect_floor_both_hold():
    rng = np.random.default_rng(7)
    p_values = np.concatenate([rng.uniform(0, 1, 80), rng.uniform(0, 1e-4, 20)])
    effects = np.concatenate([rng.uniform(0, 0.3, 80), rng.uniform(0, 0.3, 20)])
    rows = [
        drift_row(10 + (i % 5), 0.01, f"f{i // 5}", ks_p=float(p), wasserstein_norm=float(e))
        for i, (p, e) in enumerate(zip(p_values, effects, strict=True))
    ]
    rule = AlertRule(name="ks", signal="drift.ks_p", where={"feature": "*"})
    results = evaluate(rule, drift=rows)
    adjusted = stats.false_discovery_control(p_values, method="bh")
    expected = {
        (f"f{i // 5}", T0 + (10 + i % 5) * DAY)
        for i in range(100)
        if adjusted[i] <= 0.05 and effects[i] >= 0.1
    }
    crossed = {
        (e.scope_dict["feature"], c.window_start) for e in results for c in e.cells if c.status == CROSSED
    }
    assert crossed == expected
    assert 0 < len(expected) < 20  # both conditions matter on this grid
    by_cell = {(e.scope_dict["feature"], c.window_start): c for e in results for c in e.cells}
    for i in range(100):
        cell = by_cell[(f"f{i // 5}", T0 + (10 + i % 5) * DAY)]
        assert cell.p_adjusted == pytest.approx(adjusted[i], rel=1e-12)


def test_q_gates_a_drift_statistic_on_its_test_and_counts_the_whole_grid():
    rule = AlertRule(name="drift", signal="drift.psi", where={"feature": "*"}, warn=0.1, q=0.05)
    noisy = drift_row(10, 0.3, "small", ks_p=0.01)  # big PSI, p not significant among 20 tests
    strong = drift_row(10, 0.3, "large", ks_p=1e-9)
    categorical = drift_row(10, 0.3, "payment_type", kind="categorical", chi2_p=1e-6, chi2_pooled_p=1e-6)
    # A sparse table: chi2_p is tiny from rare categories alone, the pooled test (Cochran) is not.
    sparse = drift_row(10, 0.4, "language", kind="categorical", chi2_p=1e-7, chi2_pooled_p=0.3)
    quiet = [drift_row(10, 0.01, f"q{i}", ks_p=0.5) for i in range(16)]
    results = evaluate(rule, drift=[noisy, strong, categorical, sparse, *quiet])
    assert only(results, feature="small").condition == UNKNOWN
    assert "not significant" in (only(results, feature="small").cells[-1].note or "")
    assert only(results, feature="large").condition == FIRING
    assert only(results, feature="payment_type").condition == FIRING
    assert only(results, feature="language").condition == UNKNOWN
    assert only(results, feature="large").latest.p_adjusted == pytest.approx(1e-9 * 20)


def test_rate_significance_is_fishers_exact_test_against_the_baseline_rows():
    reference = [calibration_row(day, decision_rate=0.1, n=2_000) for day in range(REFERENCE_DAYS)]
    rule = AlertRule(
        name="decision-rate",
        signal="calibration.decision_rate",
        baseline="reference",
        warn_change=0.25,
        direction="both",
        q=0.05,
    )
    small = calibration_row(10, decision_rate=0.135, n=200)  # +35 %, but 27 of 200 is not surprising
    result = only(evaluate(rule, calibration=[*reference, small]))
    assert result.condition == UNKNOWN
    # two-sided: twice the smaller one-sided tail of 27/200 against 1400/14000
    greater = stats.fisher_exact([[27, 173], [1400, 12600]], alternative="greater").pvalue
    assert result.cells[-1].p_value == pytest.approx(2 * greater, rel=1e-9)
    large = calibration_row(10, decision_rate=0.07, n=20_000)
    assert only(evaluate(rule, calibration=[*reference, large])).condition == FIRING


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
    st.integers(1, 3000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
)
def test_fisher_tails_equal_scipy(cell, baseline):
    (k, n), (k0, n0) = cell, baseline
    table = [[k, n - k], [k0, n0 - k0]]
    for side, alternative in (("above", "greater"), ("below", "less")):
        expected = stats.fisher_exact(table, alternative=alternative).pvalue
        assert fisher_exact_p(k, n, k0, n0, side) == pytest.approx(expected, rel=1e-6, abs=1e-300)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))), st.floats(0, 1))
def test_binomial_tails_equal_scipy(cell, rate):
    k, n = cell
    # p-values to 1e-6 relative (issue 3); in the far tails (below 1e-250) scipy's cdf and bdtr
    # drift apart by a few 1e-6 relative (e.g. 14 of 311 at 0.914: 5.45923e-294 vs 5.45925e-294),
    # and no alert decision depends on a p-value that small.
    far = 1e-250
    assert binomial_p(k, n, rate, "above") == pytest.approx(stats.binom.sf(k - 1, n, rate), rel=1e-6, abs=far)
    assert binomial_p(k, n, rate, "below") == pytest.approx(stats.binom.cdf(k, n, rate), rel=1e-6, abs=far)


def test_missing_rate_change_is_tested_against_the_reference_slices_own_count():
    """Fisher's exact test of the window's missing values against the reference slice's: its rate
    is counted on its own rows, 2 000 of 100 000 here; 9 of 366 in an outside audit's quiet world,
    where a test against 2.46 % as if exact gave p = 1e-10 to 33 of 352 (Fisher: 5e-5)."""
    rule = AlertRule(name="missing", signal="data_quality.missing_rate_change", warn=0.05, q=0.05)
    small = quality_row(10, missing_rate=0.08, missing_rate_reference=0.02, n=200)  # 16 of 200 vs 2 %
    big = quality_row(10, "other", missing_rate=0.3, missing_rate_reference=0.02, n=5000)
    audit = quality_row(
        10, "os", missing_rate=33 / 352, missing_rate_reference=9 / 366, n=352, n_reference=366
    )
    results = evaluate(rule, data_quality=[small, big, audit])
    fisher = stats.fisher_exact([[16, 184], [2000, 98_000]], alternative="greater").pvalue
    assert only(results, feature="amount").cells[0].p_value == pytest.approx(fisher, rel=1e-9)
    assert only(results, feature="other").condition == FIRING
    found = only(results, feature="os").cells[0].p_value
    assert found == pytest.approx(
        stats.fisher_exact([[33, 319], [9, 357]], alternative="greater").pvalue, rel=1e-9
    )
    assert found > 1e-5


@pytest.mark.parametrize(
    ("k", "n", "k0", "n0"),
    [(16, 200, 2000, 100_000), (0, 300, 5, 400), (40, 50, 3, 60), (9000, 60_000, 30_000, 200_000)],
)
def test_two_proportions_are_compared_exactly_or_by_their_normal_limit(
    k: int, n: int, k0: int, n0: int
) -> None:
    """Fisher's exact test (scipy's); where every expected count of the 2×2 table is 1 000 or
    more, the pooled two-proportion z-test, computed here by hand."""
    total, successes = n + n0, k + k0
    expected = [a * b / total for a in (n, n0) for b in (successes, total - successes)]
    for side, alternative in (("above", "greater"), ("below", "less")):
        found = two_proportion_p(k, n, k0, n0, side)
        if min(expected) < 1000:
            table = [[k, n - k], [k0, n0 - k0]]
            assert found == pytest.approx(stats.fisher_exact(table, alternative=alternative).pvalue, rel=1e-9)
        else:
            pooled = successes / total
            z = (k / n - k0 / n0) / math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n0))
            assert found == pytest.approx(
                stats.norm.sf(z) if side == "above" else stats.norm.cdf(z), rel=1e-9
            )


@pytest.mark.parametrize(
    ("k", "n", "share", "se"),
    [
        (16, 220, 0.0262, 0.006),
        (300, 1000, 0.25, 0.02),
        (6, 300, 0.005, 0.0005),
        (40, 60_000, 0.0003, 0.0001),
        (0, 500, 0.01, 0.004),
        (2500, 20_000, 0.1, 0.01),
        (6003, 100_000, 0.02, 0.01),
        (17441, 338_000, 0.05, 0.00014),
    ],
)
def test_a_rate_known_as_an_estimate_is_tested_as_a_beta_binomial(
    k: int, n: int, share: float, se: float
) -> None:
    """The tails of a beta-binomial whose Beta has mean `share` and sd `se`, summed here over
    scipy's betabinom pmf (its sf, 1 − cdf, loses tails below 1e-12): exactly where fewer than
    5 000 counts carry its mass; beyond, the Beta approximation within 15 % and not below (an
    outside audit's 100 000 values at 2 % ± 1 %: 2.15e-3, where a normal limit gave 3.2e-5)."""
    size = share * (1 - share) / se**2 - 1
    a, b = share * size, (1 - share) * size
    pmf = stats.betabinom.pmf(np.arange(n + 1), n, a, b)
    upper, lower = float(pmf[k:].sum()), float(pmf[: k + 1].sum())
    variance = n * share * (1 - share) * (size + n) / (size + 1)
    exact = min(n, max(k, math.ceil(n * share + 40 * math.sqrt(variance)))) < 5000
    for side, tail in (("above", upper), ("below", lower)):
        found = compound_binomial_p(k, n, share, se, side)
        if exact:
            assert found == pytest.approx(tail, rel=1e-7, abs=1e-300), side
        else:
            assert tail * 0.999 <= found <= tail * 1.15, side
    assert not exact or n < 100_000  # the large cases take the Beta approximation
    assert compound_binomial_p(k, n, share, 0.0, "above") == pytest.approx(
        stats.binom.sf(k - 1, n, share), rel=1e-9
    )


def test_wilson_proportions_are_tested_exactly_with_their_recovered_trials():
    reference = [performance_row(day, 0.8, trials=500) for day in range(REFERENCE_DAYS)]
    rule = AlertRule(
        name="precision-drop", signal="performance.precision", baseline="reference", warn_change=-0.1, q=0.05
    )
    few = performance_row(10, 0.6, trials=10)  # 6 of 10 flagged were fraud, vs 2800 of 3500
    result = only(evaluate(rule, performance=[*reference, few]))
    assert result.condition == UNKNOWN
    expected = stats.fisher_exact([[6, 4], [2800, 700]], alternative="less").pvalue
    assert result.cells[-1].p_value == pytest.approx(expected, rel=1e-9)
    many = performance_row(10, 0.6, trials=400)
    assert only(evaluate(rule, performance=[*reference, many])).condition == FIRING


def test_an_ok_cell_shows_the_threshold_nearest_to_firing():
    """A fixed critical 0.15 and a 3σ band around the reference's ECE (0.02 ± 0.005: upper 0.035):
    a cell at 0.03 crosses neither, and its evidence is the band's edge and mean — the threshold
    it would fire at first — not the far fixed one; at 0.04 the band's warning fires."""
    rule = AlertRule(name="ece", signal="calibration.ece", band="3sigma", critical=0.15)
    eces = [0.015, 0.025, 0.015, 0.025, 0.015, 0.025, 0.02]
    reference = [calibration_row(day, ece=ece) for day, ece in enumerate(eces)]
    mean = sum(eces) / len(eces)
    sigma = math.sqrt(sum((e - mean) ** 2 for e in eces) / (len(eces) - 1))  # the sample σ: 0.005
    cell = only(evaluate(rule, calibration=[*reference, calibration_row(10, ece=0.03)])).cells[-1]
    assert cell.status == OK
    assert cell.threshold == pytest.approx(mean + 3 * sigma) and cell.baseline == pytest.approx(mean)
    fired = only(evaluate(rule, calibration=[*reference, calibration_row(10, ece=0.04)]))
    assert fired.condition == FIRING and fired.latest is not None
    assert fired.latest.threshold == pytest.approx(mean + 3 * sigma)


def test_a_crossing_within_noise_neither_fires_nor_clears():
    """Precision collapsed in mature windows (80 % -> 50 % on 400 trials each): firing. The newest
    window's first 12 labels read 60 % — past the threshold, but 7 of 12 is no evidence either way
    (Fisher's p ≈ 0.1): the alert stays firing instead of resolving until the next labels."""
    reference = [performance_row(day, 0.8, trials=500) for day in range(REFERENCE_DAYS)]
    rule = AlertRule(
        name="precision-drop", signal="performance.precision", baseline="reference", warn_change=-0.1, q=0.05
    )
    collapsed = [performance_row(day, 0.5, trials=400) for day in range(10, 13)]
    immature = performance_row(13, 7 / 12, trials=12)
    result = only(evaluate(rule, performance=[*reference, *collapsed, immature]))
    newest = result.cells[-1]
    assert newest.value == pytest.approx(7 / 12) and newest.value < newest.threshold
    assert newest.status == UNKNOWN and (newest.note or "").startswith("not significant")
    assert result.condition == FIRING and result.latest is not None
    assert result.latest.window_start == T0 + 12 * DAY and result.run == 3


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_trials_are_recovered_from_the_interval(cell):
    k, n = cell
    low, high = wilson(k, n)
    assert wilson_trials(k / n, low, high) == n


def test_interval_metrics_are_tested_with_the_interval_width():
    reference = [performance_row(day, auroc=0.8) for day in range(REFERENCE_DAYS)]
    rule = AlertRule(
        name="auroc-drop", signal="performance.auroc", baseline="reference", warn_change=-0.1, q=0.05
    )
    wide = performance_row(10, auroc=0.6, half_width=0.3)
    narrow = performance_row(10, auroc=0.6, half_width=0.02)
    assert only(evaluate(rule, performance=[*reference, wide])).condition == UNKNOWN
    result = only(evaluate(rule, performance=[*reference, narrow]))
    assert result.condition == FIRING
    se = 0.04 / (2 * stats.norm.ppf(0.975))  # the cell's, and the mean of 7 equal windows' se / √7
    z = (0.6 - 0.8) / math.hypot(se, se / math.sqrt(7))
    assert result.latest.p_value == pytest.approx(stats.norm.cdf(z))


def test_effect_floor_on_a_threshold_rule():
    rule = AlertRule(name="ece", signal="calibration.ece", warn=0.01, min_effect=0.05)
    assert only(evaluate(rule, calibration=[calibration_row(10, ece=0.03)])).condition == OK
    assert only(evaluate(rule, calibration=[calibration_row(10, ece=0.06)])).condition == FIRING


def test_a_cell_within_its_thresholds_is_ok_without_its_effect_field() -> None:
    """The effect floor only demotes a crossed cell: a categorical feature (no Wasserstein) within
    its JS threshold is ok and clears, not unknown (audit 24); a crossed one cannot be judged."""
    rule = AlertRule(name="js", signal="drift.js", warn=0.1, effect="wasserstein_norm", min_effect=0.05)
    quiet = drift_row(10, 0.01, kind="categorical", js=0.01, wasserstein_norm=None)
    assert only(evaluate(rule, drift=[quiet]), feature="amount").cells[-1].status == OK
    moved = dataclasses.replace(quiet, js=0.3)
    cell = only(evaluate(rule, drift=[moved]), feature="amount").cells[-1]
    assert (cell.status, cell.note) == (UNKNOWN, "no wasserstein_norm")


def test_old_evidence_is_stale_and_resolves():
    rule = AlertRule(name="drift", signal="drift.psi", warn=0.1, where={"segment": "country"})
    gone = [drift_row(10, 0.5, segment="country", segment_value="IN")]
    alive = [drift_row(day, 0.01, segment="country", segment_value="US") for day in range(10, 21)]
    scope = {"feature": "amount", "segment": "country", "segment_value": "IN"}
    recent = only(evaluate(rule, now=T0 + 17 * DAY, drift=gone + alive[:8]), **scope)
    assert recent.condition == FIRING and recent.judged  # day 10 is within the last 1 + 7 windows of day 17
    stale = only(evaluate(rule, drift=gone + alive), **scope)
    assert stale.condition == OK and stale.run == 0 and not stale.judged  # `check`: nothing judged here
    assert stale.latest is not None and stale.latest.note == "no window judged since 2026-01-12T00:00:00Z"


def test_a_thin_stretch_of_a_small_slice_holds_its_alert_for_up_to_three_days():
    """Hourly windows: a small slice's alert stays firing through hours too thin to judge (a night,
    a weekend: its traffic shrank, it did not go) for up to 3 days past its last judged window;
    then it resolves, as a slice without any rows does after for_windows + 7 windows."""
    rule = AlertRule(name="drift", signal="drift.psi", warn=0.1, where={"segment": "country"})
    hour = timedelta(hours=1)

    def at(h: int, psi: float | None, value: str, n: int = 500) -> DriftRow:
        row = drift_row(0, psi, segment="country", segment_value=value, n=n, enough_data=n >= 200)
        return dataclasses.replace(row, window_start=T0 + h * hour, window_end=T0 + (h + 1) * hour)

    scope = {"feature": "amount", "segment": "country", "segment_value": "IN"}

    def condition(hours: int, thin: bool) -> str:
        rows = [at(0, 0.5, "IN")] + [at(h, 0.01, "US") for h in range(hours + 1)]
        rows += [at(h, None, "IN", n=40) for h in range(1, hours + 1)] if thin else []
        before = model_config(reference=Reference(end=T0))  # every hour judged
        return only(evaluate(rule, before, now=T0 + (hours + 1) * hour, drift=rows), **scope).condition

    assert condition(7, thin=False) == FIRING  # within the last 1 + 7 windows
    assert condition(8, thin=False) == OK
    assert condition(20, thin=True) == FIRING
    assert condition(72, thin=True) == FIRING
    assert condition(73, thin=True) == OK


def test_reference_windows_come_from_the_tables_when_not_given():
    rows = [calibration_row(day, decision_rate=0.1 if day < REFERENCE_DAYS else 0.2) for day in range(10)]

    def reference_rows(rows: list, reference: Reference) -> list:
        return _reference_rows(_by_window(rows), reference)

    range_reference = reference_rows(rows, model_config().reference)
    assert [row.window_start.day for row in range_reference] == list(range(1, 8))
    canary = [calibration_row(day, version="v2", decision_rate=0.3) for day in range(3, 10)]
    first_days = reference_rows(rows + canary, Reference(version="v2", days=2))
    assert [(row.version, row.window_start.day) for row in first_days] == [(None, 4), (None, 5)]
    assert reference_rows(rows, Reference(files="train/*.parquet")) == []
    rule = AlertRule(
        name="decision-rate", signal="calibration.decision_rate", baseline="reference", warn_change=0.5
    )
    result = only(evaluate(rule, calibration=rows))
    assert result.latest is not None and result.latest.baseline == pytest.approx(0.1)
    assert result.condition == FIRING


def test_windows_waiting_for_labels_keep_old_evidence_alive():
    rule = AlertRule(name="precision", signal="performance.precision", warn=0.7, min_label_coverage=0.5)
    mature = performance_row(10, 0.5)
    waiting = [performance_row(day, 0.9, decision_label_coverage=0.2, trials=150) for day in range(11, 21)]
    result = only(evaluate(rule, performance=[mature, *waiting]))
    assert result.condition == FIRING and result.latest is not None
    assert result.latest.window_start == T0 + 10 * DAY
    assert all(cell.awaiting_labels for cell in result.cells[1:])
    starved = [performance_row(day, 0.9, n=62, n_labeled=50) for day in range(11, 21)]  # too few rows
    assert only(evaluate(rule, performance=[mature, *starved])).condition == OK


def test_windows_whose_labels_are_still_too_few_keep_old_evidence_alive():
    """A slow slice: a day's 400 predictions reach 200 labels (min_samples) only 12 days after it
    ends, past the horizon of old evidence (for_windows + 7 windows). Its precision falls on day
    10; judged on day 23, the newer days wait for their labels (not a slice that went away), so
    the drop fires — before, it resolved as stale the moment it could be judged. A day of 60
    predictions is thin, not waiting."""
    rule = AlertRule(name="precision", signal="performance.precision", warn=0.7, min_label_coverage=0.3)
    fallen = performance_row(10, 0.18, n=400, n_labeled=240, label_coverage=0.6)
    younger = [
        performance_row(day, None, n=400, n_labeled=15 * (23 - day), label_coverage=15 * (23 - day) / 400)
        for day in range(11, 23)
    ]
    assert all(row.n_labeled < 200 for row in younger)
    younger = [dataclasses.replace(row, enough_data=False) for row in younger]
    result = only(evaluate(rule, performance=[fallen, *younger], now=T0 + 23 * DAY))
    assert result.condition == FIRING and result.latest is not None
    assert result.latest.window_start == T0 + 10 * DAY
    assert all(cell.awaiting_labels for cell in result.cells[1:])
    thin = [dataclasses.replace(row, n=60) for row in younger]
    assert only(evaluate(rule, performance=[fallen, *thin], now=T0 + 23 * DAY)).condition == OK


def test_labels_that_stopped_coming_hold_old_evidence_for_a_month_only():
    """The label pipeline died after day 10: every later day has its 400 predictions and no label.
    They wait for their labels for 30 days after the alert's last judged window (LABEL_WAIT), then
    the alert resolves as stale. A day whose labels are in (90 % coverage) but whose statistic has
    no value (no positive label: recall undefined) is not waiting for anything."""
    rule = AlertRule(name="precision", signal="performance.precision", warn=0.7, min_label_coverage=0.3)
    fallen = performance_row(10, 0.18, n=400, n_labeled=240, label_coverage=0.6)

    def condition(days: int, **kw: Any) -> str:
        later = [
            dataclasses.replace(performance_row(day, None, n=400, **kw), enough_data=False)
            for day in range(11, 11 + days)
        ]
        return only(evaluate(rule, performance=[fallen, *later], now=T0 + (11 + days) * DAY)).condition

    assert condition(29, n_labeled=0, label_coverage=0.0) == FIRING
    assert condition(31, n_labeled=0, label_coverage=0.0) == OK
    recall = AlertRule(name="recall", signal="performance.recall", warn=0.5)
    undefined = [
        performance_row(day, None, n=5000, n_labeled=4500, label_coverage=0.9) for day in range(11, 21)
    ]
    caught = dataclasses.replace(performance_row(10, None, n=5000), recall=0.3, recall_ci_low=0.28)
    result = only(evaluate(recall, performance=[caught, *undefined], now=T0 + 21 * DAY))
    assert result.condition == OK and not any(cell.awaiting_labels for cell in result.cells[1:])


# -- judgements kept between evaluations (JudgeMemo) ----------------------------------------------


def _default_rule_tables(days: int) -> dict[str, list]:
    """Result tables for the default rules: reference week and later windows, two features."""
    rng = np.random.default_rng(days)
    tables: dict[str, list] = {"drift": [], "calibration": [], "performance": [], "operations": []}
    for day in range(days):
        late = day >= REFERENCE_DAYS
        for feature in ("amount", "age"):
            psi = float(rng.uniform(0.15, 0.4) if late and day % 3 == 0 else rng.uniform(0, 0.05))
            p = float(rng.uniform(0, 1e-6) if psi > 0.1 else rng.uniform(0.05, 1))
            tables["drift"].append(drift_row(day, psi, feature, ks_p=p, wasserstein_norm=psi))
        tables["calibration"].append(calibration_row(day, decision_rate=float(rng.uniform(0.08, 0.12))))
        precision = float(rng.uniform(0.5, 0.6) if late and day % 4 == 0 else rng.uniform(0.78, 0.82))
        tables["performance"].append(performance_row(day, precision, auroc=float(rng.uniform(0.85, 0.9))))
        tables["operations"].append(operations_row(day, latency_p95_ms=float(rng.uniform(90, 300))))
    return tables


def _default_rules(model: ModelConfig) -> list[AlertRule]:
    rules = list(effective_rules(model))
    assert {split_signal(rule.signal)[0] for rule in rules} >= {
        "drift",
        "calibration",
        "performance",
        "operations",
    }
    return rules


def test_kept_judgements_equal_fresh_ones_as_rows_reference_and_rules_change(monkeypatch):
    columns = Columns(id="id", timestamp="ts", score="score", latency_ms="latency_ms", error="error")
    model = model_config(labels="labels/*.jsonl", columns=columns)
    memo = JudgeMemo()
    judged: list[Any] = []
    judge = _Judge.judge
    monkeypatch.setattr(_Judge, "judge", lambda self, row: judged.append(row) or judge(self, row))

    def same(tables: dict[str, list], rules: list[AlertRule], now: datetime = NOW) -> int:
        """Evaluate with the memo and without; equal results; how many cells the memo judged."""
        judged.clear()
        kept = evaluate_rules(rules, tables, model, now, memo=memo)
        count = len(judged)
        assert kept == evaluate_rules(rules, tables, model, now)
        return count

    tables, rules = _default_rule_tables(25), _default_rules(model)
    cells = same(tables, rules)
    assert cells > 100
    assert same(tables, rules) == 0  # nothing changed: nothing judged again
    assert same(tables, rules, NOW + DAY) == 0  # `now` alone changes no judgement

    # The newest window recomputed (new row objects, other values) and a window added.
    changed = {name: list(rows) for name, rows in tables.items()}
    changed["drift"][-1] = drift_row(24, 0.5, "age", ks_p=1e-9, wasserstein_norm=0.5)
    changed["performance"].append(performance_row(25, 0.4, auroc=0.7))
    assert 0 < same(changed, rules, NOW + DAY) < cells // 4

    # A reference window recomputed: every cell of its table is judged against a new baseline.
    moved = {name: list(rows) for name, rows in changed.items()}
    moved["performance"][2] = performance_row(2, 0.6, auroc=0.8)
    performance_cells = sum(
        len(e.cells)
        for e in evaluate_rules(rules, moved, model, NOW + DAY)
        if e.signal.startswith("performance")
    )
    assert same(moved, rules, NOW + DAY) >= performance_cells

    # A rule of the same name with other settings is a new rule.
    stricter = [dataclasses.replace(r, warn=0.05) if r.signal == "drift.psi" else r for r in rules]
    assert same(moved, stricter, NOW + DAY) > 0


def _scoped_drift(day: int, rng: np.random.Generator, feature: str, version: str | None, region: str | None):
    psi = float(rng.choice([rng.uniform(0, 0.05), rng.uniform(0.12, 0.4)]))
    scope = {"version": version} | ({"segment": "region", "segment_value": region} if region else {})
    p = float(rng.choice([rng.uniform(0, 1e-4), rng.uniform(0.01, 1)]))
    return drift_row(day, psi, feature, ks_p=p, wasserstein_norm=psi, **scope)


def test_kept_judgements_equal_fresh_ones_through_random_changes(monkeypatch):
    """Windows recomputed anywhere in the history, new and dropped windows, scopes new to a window,
    a second version appearing and leaving, equal rows rebuilt, tables out of window order,
    evaluations that failed half-way: at every step the memo's evaluations equal a fresh one's."""
    rng = np.random.default_rng(11)
    judge, adjust = _Judge.judge, evaluate_module.bh_adjusted

    def failing(after: int):
        """A judge, or a Benjamini–Hochberg step, that raises once `after` calls were made."""
        calls = iter(range(after, -1, -1))

        def judged(self: _Judge, row: Any) -> Any:
            if next(calls, 0) == 0:
                raise RuntimeError("judge failed")
            return judge(self, row)

        def adjusted(p: Any) -> Any:
            if next(calls, 0) == 0:
                raise RuntimeError("adjustment failed")
            return adjust(p)

        return judged, adjusted

    model = model_config()
    rules = [
        AlertRule(name="psi", signal="drift.psi", warn=0.1, critical=0.25, q=0.05, for_windows=2),
        AlertRule(name="ks", signal="drift.ks_p", where={"version": "*"}, q=0.01),
        AlertRule(name="w1", signal="drift.wasserstein_norm", where={"segment": "region"}, band="3sigma"),
    ]
    scopes = [
        (feature, version, region)
        for feature in ("amount", "age")
        for version in (None, "v1")
        for region in (None, "eu", "us")
    ]

    def window(day: int, extra: tuple = ()) -> list:
        return [_scoped_drift(day, rng, *scope) for scope in [*scopes, *extra]]

    days = {day: window(day) for day in range(12)}
    memo = JudgeMemo()
    now = T0 + 11 * DAY
    for step in range(60):
        change = int(rng.integers(7))
        day = int(rng.integers(len(days)))
        if change == 0:  # one row recomputed, anywhere in the history
            rows = days[day]
            i = int(rng.integers(len(rows)))
            rows[i] = _scoped_drift(day, rng, rows[i].feature, rows[i].version, rows[i].segment_value)
        elif change == 1:  # a new window, sometimes with a scope no window had before
            fresh = (("new", "v1", None),) if rng.random() < 0.5 else ()
            days[len(days)] = window(len(days), fresh)
            now = max(now, T0 + (len(days) - 1) * DAY)
        elif change == 2:  # a window rebuilt with equal rows
            days[day] = [dataclasses.replace(row) for row in days[day]]
        elif change == 3:  # a second version comes, or goes
            second = [row for row in days[day] if row.version == "v2"]
            if second:
                days[day] = [row for row in days[day] if row.version != "v2"]
            else:
                days[day] = days[day] + [_scoped_drift(day, rng, "amount", "v2", None)]
        elif change == 4:  # the clock moves back or forward a few windows
            now = T0 + int(rng.integers(max(1, len(days) - 4), len(days))) * DAY
        elif change == 5:  # a whole window recomputed
            days[day] = window(day)
        ordered = [row for d in sorted(days) for row in days[d]]
        rows = ordered if change != 6 else list(rng.permutation(np.array(ordered, dtype=object)))
        if step % 5 == 4:  # the evaluation fails part-way: the memo must not keep half of it
            judged, adjusted = failing(int(rng.integers(2)))
            monkeypatch.setattr(_Judge, "judge", judged)
            monkeypatch.setattr(evaluate_module, "bh_adjusted", adjusted)
            with pytest.raises(RuntimeError):
                evaluate_rules(rules, {"drift": rows}, model, now, memo=memo)
            monkeypatch.undo()
        kept = evaluate_rules(rules, {"drift": rows}, model, now, memo=memo)
        assert kept == evaluate_rules(rules, {"drift": rows}, model, now), f"step {step}, change {change}"
    assert any(e.condition == FIRING for e in kept) and any(e.latest and e.latest.p_adjusted for e in kept)


def test_an_adjustment_that_failed_keeps_nothing_for_the_next(monkeypatch):
    """Equal p-values make every adjusted p-value equal: cells kept from the wrong place would pass
    for the right ones. After a failed Benjamini–Hochberg step the next evaluation matches a fresh one."""
    rule = AlertRule(name="ks", signal="drift.ks_p", q=0.05)
    model, memo = model_config(), JudgeMemo()
    rows = [drift_row(day, 0.01, feature, ks_p=0.5) for day in range(10) for feature in ("age", "amount")]
    evaluate_rules([rule], {"drift": rows}, model, NOW, memo=memo)
    rows += [drift_row(10, 0.01, feature, ks_p=0.5) for feature in ("age", "amount")]

    def failing(p: Any) -> Any:
        raise RuntimeError("adjustment failed")

    monkeypatch.setattr(evaluate_module, "bh_adjusted", failing)
    with pytest.raises(RuntimeError):
        evaluate_rules([rule], {"drift": rows}, model, NOW, memo=memo)
    monkeypatch.undo()
    assert evaluate_rules([rule], {"drift": rows}, model, NOW, memo=memo) == evaluate_rules(
        [rule], {"drift": rows}, model, NOW
    )


def test_the_unseen_share_test_counts_the_error_of_its_expectation():
    """1 000 values, 300 of categories the reference lacks, where it predicts 25 % ± 2 %: the
    binomial tail alone (p ≈ 1e-4) would page; the beta-binomial with that Beta (mean 0.25, sd
    0.02) gives p ≈ 0.02 > q. An outside audit's small window, 16 unseen of 220 against 2.62 % ±
    0.60 % (the true share was 3.57 %: p 6e-3), had paged at the binomial's 2.6e-4; now 1.7e-3."""
    rule = AlertRule(
        name="unseen", signal="data_quality.unseen_share", where={"feature": "*"}, warn=0.02, q=0.01
    )

    def beta_binomial_sf(k: int, n: int, share: float, se: float) -> float:
        size = share * (1 - share) / se**2 - 1
        return float(stats.betabinom.sf(k - 1, n, share * size, (1 - share) * size))

    common = {"missing_rate": 0.0, "missing_rate_reference": 0.0}
    row = quality_row(
        10,
        "merchant",
        n=1000,
        unseen_share=0.3,
        unseen_share_expected=0.25,
        unseen_share_expected_se=0.02,
        **common,
    )
    (found,) = evaluate(rule, data_quality=[row])
    assert found.cells[-1].p_value == pytest.approx(beta_binomial_sf(300, 1000, 0.25, 0.02), rel=1e-7)
    assert found.condition == UNKNOWN
    exact = stats.binomtest(300, 1000, 0.25, alternative="greater").pvalue
    (alone,) = evaluate(rule, data_quality=[dataclasses.replace(row, unseen_share_expected_se=None)])
    assert alone.cells[-1].p_value == pytest.approx(exact, rel=1e-9) and alone.condition == FIRING
    audit = quality_row(
        10,
        "z15",
        n=220,
        unseen_share=16 / 220,
        unseen_share_expected=0.0262,
        unseen_share_expected_se=0.006,
        **common,
    )
    (small,) = evaluate(rule, data_quality=[audit])
    assert small.cells[-1].p_value == pytest.approx(beta_binomial_sf(16, 220, 0.0262, 0.006), rel=1e-7)
    assert small.cells[-1].p_value > 1e-3  # 1.7e-3: past q only when alone, not across a grid


def test_a_quiet_long_tail_judged_against_small_references_does_not_page():
    """An outside audit's quiet world: merchants from a Zipf tail of 800, slice references of a few
    hundred values, windows of thousands. Each reference's Good–Turing prediction is off by its own
    error, and a window that large finds that error significant unless the test counts it."""
    rng = np.random.default_rng(27)
    weights = 1.0 / np.arange(1, 801) ** 1.1
    weights /= weights.sum()
    rows = []
    for k in range(40):
        reference = rng.choice(800, size=int(rng.integers(250, 600)), p=weights)
        seen = np.bincount(reference, minlength=800)
        expected, se = good_turing(seen[seen > 0].tolist(), reference.size)
        window = rng.choice(800, size=5000, p=weights)
        rows.append(
            quality_row(
                10,
                f"merchant{k}",
                n=5000,
                missing_rate=0.0,
                missing_rate_reference=0.0,
                unseen_share=float((seen[window] == 0).mean()),
                unseen_share_expected=expected,
                unseen_share_expected_se=se,
            )
        )
    (rule,) = [r for r in default_rules(model_config()) if r.name == "unseen-categories"]
    assert all(r.condition != FIRING for r in evaluate(rule, data_quality=rows))
    # Tested as if each prediction were exact, a good share of them would page.
    exact = [dataclasses.replace(r, unseen_share_expected_se=None) for r in rows]
    assert sum(r.condition == FIRING for r in evaluate(rule, data_quality=exact)) >= 5


def test_unseen_share_is_tested_against_what_the_references_rare_categories_predict():
    """A reference whose tail of rare categories is one value in a hundred seen once (Good–Turing:
    1 % of new values fall outside it with nothing changed) makes 8 unseen values of 300 (p ≈ 0.01)
    no news across a grid; without such a tail, 8 of 300 is news, and so are 18 of 300 with it."""
    rule = AlertRule(
        name="unseen", signal="data_quality.unseen_share", where={"feature": "*"}, warn=0.02, q=0.05
    )
    common = {"n": 300, "missing_rate": 0.0, "missing_rate_reference": 0.0}
    tail = quality_row(10, "language", unseen_share=8 / 300, unseen_share_expected=0.01, **common)
    plain = quality_row(10, "channel", unseen_share=8 / 300, unseen_share_expected=0.0, **common)
    new = quality_row(10, "browser", unseen_share=18 / 300, unseen_share_expected=0.01, **common)
    # Among the grid's other cells, quiet ones (BH adjusts across all of them).
    quiet = [
        quality_row(10, f"f{i}", unseen_share=0.0, unseen_share_expected=0.01, **common) for i in range(20)
    ]
    results = evaluate(rule, data_quality=[tail, plain, new, *quiet])
    assert only(results, feature="language").condition == UNKNOWN
    assert "not significant" in (only(results, feature="language").cells[-1].note or "")
    assert only(results, feature="channel").condition == FIRING
    assert only(results, feature="browser").condition == FIRING
    p = stats.binomtest(18, 300, 0.01, alternative="greater").pvalue
    assert only(results, feature="browser").latest.p_value == pytest.approx(p, rel=1e-9)
