"""Fixed TUI data made of the real result rows, a scriptable `DataSource`, and tests of the pure
view functions on that data (`triage.tui.views`, `triage.tui.format`)."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from rich.text import Text

from triage.metrics.results import (
    CalibrationRow,
    DataQualityRow,
    DriftRow,
    OperationsRow,
    PerformanceRow,
    ReferenceInfo,
    ReliabilityPoint,
    WindowInfo,
    drift_rank,
)
from triage.report import top_drift
from triage.tui import format as fmt
from triage.tui import views
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
from triage.tui.screens.home import health_cells
from triage.tui.widgets.cells import CRIT

NOW = datetime(2026, 1, 15, 14, 5, tzinfo=UTC)
DAY = timedelta(days=1)
FIRST = datetime(2026, 1, 2, tzinfo=UTC)
WINDOWS = [FIRST + i * DAY for i in range(14)]  # 01-02 … 01-15, the last one partial
CANARY_FROM = datetime(2026, 1, 8, tzinfo=UTC)
INCIDENT_FROM = datetime(2026, 1, 13, tzinfo=UTC)
SEGMENTS = {"country": ("DE", "FR", "US"), "device": ("android", "ios")}
SHARE = {"DE": 0.3, "FR": 0.1, "US": 0.6, "android": 0.55, "ios": 0.45}
FEATURES = {
    "amount": "numeric",
    "account_age_days": "numeric",
    "ip_risk_score": "numeric",
    "payment_type": "categorical",
    "merchant_category": "categorical",
    "__score__": "numeric",
}
RUNBOOK = "kserve-canary-traffic"


def _wiggle(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (no randomness in fixtures)."""
    return (sum(ord(c) * (i + 7) for i, c in enumerate("|".join(map(str, parts)))) % 997) / 997


def _cells(start: datetime, with_versions: bool) -> list[tuple[str | None, str | None, str | None, int]]:
    """(version, segment, value, n) of every cell of one window of the fraud model."""
    total = 5000 if start < WINDOWS[-1] else 4000
    versions: list[tuple[str | None, float]] = [(None, 1.0)]
    if with_versions:
        versions.append(("v1", 1.0 if start < CANARY_FROM else 0.8))
        if start >= CANARY_FROM:
            versions.append(("v2", 0.2))
    cells = []
    for version, share in versions:
        n = int(total * share)
        cells.append((version, None, None, n))
        for segment, values in SEGMENTS.items():
            for value in values:
                cells.append((version, segment, value, int(n * SHARE[value])))
    return cells


def _base(start: datetime, version: str | None, segment: str | None, value: str | None, n: int) -> dict:
    enough = n >= 200
    return {
        "window_start": start,
        "window_end": start + DAY,
        "version": version,
        "segment": segment,
        "segment_value": value,
        "n": n,
        "enough_data": enough,
        "note": None if enough else f"not enough data: {n} rows < min_samples 200",
    }


def _incident(start: datetime, version: str | None, value: str | None) -> bool:
    return start >= INCIDENT_FROM and version in (None, "v2") and value in (None, "DE")


def drift_rows() -> list[DriftRow]:
    """PSI low everywhere but for `amount` in DE (and all traffic) on v2 since 01-13."""
    rows = []
    for start in WINDOWS:
        for version, segment, value, n in _cells(start, True):
            base = _base(start, version, segment, value, n)
            for feature, kind in FEATURES.items():
                psi = 0.005 + 0.06 * _wiggle(start.day, version, value, feature)
                if feature == "amount" and _incident(start, version, value):
                    psi = 0.42 if value == "DE" else 0.16
                numeric = kind == "numeric"
                rows.append(
                    DriftRow(
                        **base,
                        feature=feature,
                        kind=kind,
                        n_reference=20000,
                        psi=psi,
                        js=psi / 2.5,
                        ks_d=psi / 3 if numeric else None,
                        ks_p=max(1e-9, 0.5 - psi) if numeric else None,
                        chi2=None if numeric else psi * 900,
                        chi2_p=None if numeric else max(1e-9, 0.4 - psi),
                        chi2_pooled_p=None if numeric else max(1e-9, 0.4 - psi),
                        wasserstein=psi * 40 if numeric else None,
                        wasserstein_norm=psi / 1.5 if numeric else None,
                    )
                )
    return rows


def quality_rows() -> list[DataQualityRow]:
    """Missing rates near 1 % everywhere."""
    rows = []
    for start in WINDOWS:
        for version, segment, value, n in _cells(start, True):
            for feature, kind in FEATURES.items():
                missing = 0.01 + 0.01 * _wiggle(start.day, feature)
                rows.append(
                    DataQualityRow(
                        **_base(start, version, segment, value, n),
                        feature=feature,
                        kind=kind,
                        n_reference=20_000,
                        missing_rate=missing,
                        missing_rate_reference=0.012,
                        missing_rate_change=missing - 0.012,
                        unseen_share=0.0 if kind == "categorical" else None,
                        unseen_categories=(),
                        unseen_share_expected=0.0 if kind == "categorical" else None,
                        unseen_share_expected_se=0.0 if kind == "categorical" else None,
                        out_of_range_share=0.004 if kind == "numeric" else None,
                    )
                )
    return rows


def _coverage(start: datetime) -> float:
    """Labels arrive over about four days."""
    age = (NOW - start).days
    return min(0.92, 0.05 + 0.22 * age)


def calibration_rows() -> list[CalibrationRow]:
    """v1 calibrated; v2 over-confident once the incident starts."""
    rows = []
    for start in WINDOWS:
        for version, segment, value, n in _cells(start, True):
            if segment is not None:
                continue
            labeled = int(n * _coverage(start))
            bad = _incident(start, version, value) and version == "v2"
            skew = 0.18 if bad else 0.02
            points = tuple(
                ReliabilityPoint(
                    i / 10, (i + 1) / 10, max(1, labeled // 10), i / 10 + 0.05, max(0.0, i / 10 + 0.05 - skew)
                )
                for i in range(10)
            )
            rows.append(
                CalibrationRow(
                    **_base(start, version, segment, value, n),
                    n_labeled=labeled,
                    decision_rate=0.031 + (0.02 if bad else 0.0) + 0.004 * _wiggle(start.day, version),
                    ece=(0.15 if bad else 0.02) + 0.01 * _wiggle(start.day, version)
                    if labeled >= 200
                    else None,
                    ece_equal_mass=(0.14 if bad else 0.025) if labeled >= 200 else None,
                    mce=(0.3 if bad else 0.06) if labeled >= 200 else None,
                    brier=(0.09 if bad else 0.05) if labeled >= 200 else None,
                    log_loss=(0.31 if bad else 0.18) if labeled >= 200 else None,
                    reliability=points if labeled >= 200 else (),
                )
            )
    return rows


def performance_rows() -> list[PerformanceRow]:
    """Precision near 0.8 with Wilson-like intervals that widen as slices shrink."""
    rows = []
    for start in WINDOWS:
        for version, segment, value, n in _cells(start, True):
            labeled = int(n * _coverage(start))
            enough = labeled >= 200
            base = _base(start, version, segment, value, n) | {"enough_data": enough}
            base["note"] = None if enough else "not enough labelled rows"
            drop = 0.2 if _incident(start, version, value) and version == "v2" else 0.0
            precision = 0.81 - drop + 0.03 * _wiggle(start.day, version, value)
            half = 1.0 / max(labeled, 1) ** 0.5
            metric = {
                name: (
                    value_ if enough else None,
                    value_ - half if enough else None,
                    value_ + half if enough else None,
                )
                for name, value_ in (
                    ("precision", precision),
                    ("recall", 0.7 - drop / 2),
                    ("fpr", 0.012),
                    ("fnr", 0.3 + drop / 2),
                    ("accuracy", 0.97),
                    ("auroc", 0.93 - drop / 3),
                )
            }
            rows.append(
                PerformanceRow(
                    **base,
                    n_labeled=labeled,
                    label_coverage=labeled / n if n else None,
                    decision_label_coverage=0.95 if labeled else None,
                    label_lag_p50_s=36 * 3600.0,
                    label_lag_p95_s=96 * 3600.0,
                    precision=metric["precision"][0],
                    precision_ci_low=metric["precision"][1],
                    precision_ci_high=metric["precision"][2],
                    recall=metric["recall"][0],
                    recall_ci_low=metric["recall"][1],
                    recall_ci_high=metric["recall"][2],
                    f1=0.75 if enough else None,
                    fpr=metric["fpr"][0],
                    fpr_ci_low=metric["fpr"][1],
                    fpr_ci_high=metric["fpr"][2],
                    fnr=metric["fnr"][0],
                    fnr_ci_low=metric["fnr"][1],
                    fnr_ci_high=metric["fnr"][2],
                    accuracy=metric["accuracy"][0],
                    accuracy_ci_low=metric["accuracy"][1],
                    accuracy_ci_high=metric["accuracy"][2],
                    auroc=metric["auroc"][0],
                    auroc_ci_low=metric["auroc"][1],
                    auroc_ci_high=metric["auroc"][2],
                    average_precision=0.78 if enough else None,
                    expected_cost=(1.4 + 3 * drop) if enough else None,
                    expected_cost_ci_low=(1.2 + 3 * drop) if enough else None,
                    expected_cost_ci_high=(1.6 + 3 * drop) if enough else None,
                )
            )
    return rows


def operations_rows() -> list[OperationsRow]:
    """Latency doubles on v2 during the incident; two routes."""
    rows = []
    for start in WINDOWS:
        for version, segment, value, n in _cells(start, True):
            if segment is not None:
                continue
            for route, share in ((None, 1.0), ("primary", 0.97), ("fallback", 0.03)):
                slow = 2.2 if _incident(start, version, value) and version == "v2" else 1.0
                wiggle = _wiggle(start.day, version, route)
                rows.append(
                    OperationsRow(
                        **_base(start, version, None, None, int(n * share)),
                        route=route,
                        latency_p50_ms=(38 + 6 * wiggle) * slow,
                        latency_p95_ms=(120 + 25 * wiggle) * slow,
                        latency_p99_ms=(210 + 40 * wiggle) * slow,
                        error_rate=0.002 + 0.002 * wiggle,
                        fallback_rate=0.03 if route is None else (1.0 if route == "fallback" else 0.0),
                        cost_per_1k=0.42 + 0.05 * wiggle + (0.2 if version == "v2" else 0.0),
                        tokens_per_request=310 + 20 * wiggle,
                    )
                )
    return rows


def fraud_model() -> ModelView:
    """The fraud model: two versions, a canary since 01-08, an incident on v2 in DE since 01-13."""
    return ModelView(
        name="fraud",
        window="1d",
        threshold=0.5,
        min_samples=200,
        versions=("v1", "v2"),
        segments=tuple(SEGMENTS),
        features=tuple(FEATURES),
        cost_false_positive=5.0,
        cost_false_negative=120.0,
        reference=ReferenceInfo("range", "2026-01-02 .. 2026-01-05", WINDOWS[0], WINDOWS[3], 20000),
        windows=tuple(WindowInfo(s, s + DAY, 5000 if s < WINDOWS[-1] else 4000) for s in WINDOWS),
        drift=tuple(drift_rows()),
        data_quality=tuple(quality_rows()),
        calibration=tuple(calibration_rows()),
        performance=tuple(performance_rows()),
        operations=tuple(operations_rows()),
        reference_calibration=tuple(
            r for r in calibration_rows() if r.version is None and r.window_start == FIRST
        ),
    )


def churn_model() -> ModelView:
    """A quiet second model with one version and no labels."""
    starts = WINDOWS[-5:]
    drift = []
    ops = []
    for start in starts:
        base = _base(start, None, None, None, 900)
        for feature in ("tenure", "plan"):
            drift.append(
                DriftRow(
                    **base,
                    feature=feature,
                    kind="numeric",
                    n_reference=4000,
                    psi=0.01,
                    js=0.004,
                    ks_d=0.01,
                    ks_p=0.8,
                    chi2=None,
                    chi2_p=None,
                    chi2_pooled_p=None,
                    wasserstein=0.2,
                    wasserstein_norm=0.01,
                )
            )
        for version in (None, "default"):
            ops.append(
                OperationsRow(
                    **_base(start, version, None, None, 900),
                    route=None,
                    latency_p50_ms=12.0,
                    latency_p95_ms=31.0,
                    latency_p99_ms=55.0,
                    error_rate=0.0,
                    fallback_rate=None,
                    cost_per_1k=None,
                    tokens_per_request=None,
                )
            )
    return ModelView(
        name="churn",
        window="1d",
        threshold=0.5,
        min_samples=200,
        versions=("default",),
        segments=(),
        features=("tenure", "plan"),
        cost_false_positive=1.0,
        cost_false_negative=1.0,
        reference=None,
        windows=tuple(WindowInfo(s, s + DAY, 900) for s in starts),
        drift=tuple(drift),
        data_quality=(),
        calibration=(),
        performance=(),
        operations=tuple(ops),
    )


def demo_alerts() -> list[AlertView]:
    """The incident's alerts: drift (critical, firing), ECE (warning, firing), latency (pending) and
    a resolved one."""
    runbook = f"runbooks/{RUNBOOK}.md#shift-traffic"
    return [
        AlertView(
            fingerprint="a1f3c9d2e4b5a6c7",
            model="fraud",
            rule="feature-drift",
            signal="drift.psi",
            severity="critical",
            state="firing",
            scope={"feature": "amount", "version": "v2", "segment": "country", "segment_value": "DE"},
            value=0.42,
            threshold=0.25,
            window_start=WINDOWS[-1],
            window_end=WINDOWS[-1] + DAY,
            since=datetime(2026, 1, 13, 2, 0, tzinfo=UTC),
            n=240,
            runbook=runbook,
            evidence={"p_adjusted": 1.2e-07, "run": 3, "for_windows": 2},
        ),
        AlertView(
            fingerprint="b2e4d6f8a0c1e3f5",
            model="fraud",
            rule="calibration-ece",
            signal="calibration.ece",
            severity="warning",
            state="firing",
            scope={"version": "v2"},
            value=0.158,
            threshold=0.08,
            window_start=WINDOWS[-3],
            window_end=WINDOWS[-3] + DAY,
            since=datetime(2026, 1, 14, 9, 30, tzinfo=UTC),
            n=500,
            runbook=runbook,
        ),
        AlertView(
            fingerprint="c3d5e7f9b1a2c4e6",
            model="fraud",
            rule="latency-p95",
            signal="operations.latency_p95_ms",
            severity="warning",
            state="pending",
            scope={"version": "v2"},
            value=291.0,
            threshold=195.0,
            window_start=WINDOWS[-1],
            window_end=WINDOWS[-1] + DAY,
            since=datetime(2026, 1, 15, 13, 0, tzinfo=UTC),
            n=300,
            runbook=None,
        ),
        AlertView(
            fingerprint="d4c6a8e0f2b3d5a7",
            model="churn",
            rule="error-rate",
            signal="operations.error_rate",
            severity="warning",
            state="resolved",
            scope={"version": "default"},
            value=0.0,
            threshold=0.02,
            window_start=WINDOWS[-2],
            window_end=WINDOWS[-2] + DAY,
            since=datetime(2026, 1, 12, 8, 0, tzinfo=UTC),
            n=900,
            runbook=None,
        ),
    ]


def demo_events() -> list[TimelineEvent]:
    """The incident's trail: the drift alert going pending then firing, an ack, the runbook step, and
    the churn error-rate alert resolving."""
    drift = {"model": "fraud", "fingerprint": "a1f3c9d2e4b5a6c7", "signal": "drift.psi"}
    where = "feature=amount version=v2 segment=country segment_value=DE"
    return [
        TimelineEvent(
            datetime(2026, 1, 12, 8, 0, tzinfo=UTC),
            "alert",
            "resolved",
            "error-rate",
            "version=default",
            model="churn",
            fingerprint="d4c6a8e0f2b3d5a7",
            signal="operations.error_rate",
        ),
        TimelineEvent(
            datetime(2026, 1, 13, 2, 0, tzinfo=UTC),
            "alert",
            "pending",
            "feature-drift",
            f"{where} · 0.31 vs 0.25",
            severity="critical",
            window_start=WINDOWS[-3],
            **drift,
        ),
        TimelineEvent(
            datetime(2026, 1, 14, 2, 0, tzinfo=UTC),
            "alert",
            "firing",
            "feature-drift",
            f"{where} · 0.42 vs 0.25",
            severity="critical",
            window_start=WINDOWS[-2],
            **drift,
        ),
        TimelineEvent(
            datetime(2026, 1, 14, 2, 20, tzinfo=UTC),
            "acknowledged",
            "acknowledged",
            "feature-drift",
            f"oncall: shifting traffic · {where}",
            **drift,
        ),
        TimelineEvent(
            datetime(2026, 1, 14, 2, 31, tzinfo=UTC),
            "runbook",
            "succeeded",
            f"{RUNBOOK}#shift-traffic",
            "oncall · HTTP 200",
            fingerprint="a1f3c9d2e4b5a6c7",
        ),
    ]


def demo_snapshot(as_of: datetime = NOW) -> Snapshot:
    """Two models, four alerts, one runbook, an incident's trail: what every TUI test starts from."""
    return Snapshot(
        as_of=as_of,
        models=(fraud_model(), churn_model()),
        alerts=tuple(demo_alerts()),
        runbooks=(RunbookRef(RUNBOOK, "KServe: move a canary's traffic back to the stable revision"),),
        events=tuple(demo_events()),
    )


RUNBOOK_MARKDOWN = """# KServe: move a canary's traffic back

Use it when the canary is worse than the baseline. It is **reversible**.

1. `inspect` shows the split.
2. `shift-traffic` sets the canary's share to 0 %.
"""


class FakeSource:
    """A `DataSource` over `demo_snapshot()`: records what was asked, and can hang or fail a step."""

    def __init__(self, snapshot: Snapshot | None = None) -> None:
        self.base = snapshot or demo_snapshot()
        self.alerts = {a.fingerprint: a for a in self.base.alerts}
        self.snapshots: list[datetime] = []
        self.calls: list[tuple[str, ...]] = []
        self.release = threading.Event()
        self.release.set()
        self.fail_step: str | None = None
        self.snapshot_gate: threading.Event | None = None
        self.closed = False

    def snapshot(self, as_of: datetime) -> Snapshot:
        self.snapshots.append(as_of)
        if self.snapshot_gate is not None:
            self.snapshot_gate.wait(10)
        return replace(self.base, as_of=as_of, alerts=tuple(self.alerts.values()))

    def ingest_new(self) -> int:
        self.calls.append(("ingest",))
        return 0

    def prepare(self) -> None:
        self.calls.append(("prepare",))

    def histogram(self, model: str, cell: DriftRow, as_of: datetime) -> Histogram:
        self.calls.append(("histogram", model, cell.feature))
        shift = 0.1 if cell.psi and cell.psi > 0.25 else 0.0
        reference = (0.1, 0.2, 0.3, 0.25, 0.15)
        window = tuple(
            round(max(0.0, r + (shift if i == 4 else -shift / 4)), 3) for i, r in enumerate(reference)
        )
        return Histogram(("<10", "10-50", "50-200", "200-1k", "≥1k"), reference, window)

    def acknowledge(self, fingerprint: str, note: str) -> None:
        self.calls.append(("acknowledge", fingerprint, note))
        self.alerts[fingerprint] = replace(self.alerts[fingerprint], acknowledged_by="oncall", ack_note=note)

    def silence(self, fingerprint: str, until: datetime, note: str) -> None:
        self.calls.append(("silence", fingerprint, until.isoformat()))
        self.alerts[fingerprint] = replace(self.alerts[fingerprint], silenced_until=until)

    def runbook(self, ref: str) -> RunbookView:
        self.calls.append(("runbook", ref))
        return RunbookView(
            name=RUNBOOK,
            title="KServe: move a canary's traffic back to the stable revision",
            markdown=RUNBOOK_MARKDOWN,
            steps=(
                StepView("inspect", "Show the traffic split", "read_only", "kubernetes", "GET /apis/…/fraud"),
                StepView(
                    "shift-traffic", "Set the canary's traffic to 0 %", "destructive", "kubernetes", "PATCH"
                ),
            ),
            step=ref.partition("#")[2] or None,
        )

    def dry_run(self, runbook: str, step: str, alert: AlertView | None) -> DryRun:
        self.calls.append(("dry_run", step))
        phrase = "fraud 0" if step == "shift-traffic" else None
        path = "/apis/serving.kserve.io/v1beta1/namespaces/models/inferenceservices/fraud"
        request = f"PATCH http://127.0.0.1:8787{path} ({step})"
        return DryRun(step, request, phrase, {"name": alert.model if alert else "fraud", "percent": "0"})

    def run_step(
        self, runbook: str, step: str, alert: AlertView | None, confirmation: str | None, progress: Progress
    ) -> StepOutcome:
        self.calls.append(("run_step", step, confirmation or ""))
        progress(f"PATCH …/inferenceservices/fraud ({step})")
        if not self.release.wait(30):
            raise TimeoutError("the test never released the step")
        if self.fail_step == step:
            raise ConnectionError("read timed out after 10 s (http://127.0.0.1:8787)")
        progress("verify: poll 1: traffic[latestRevision=true].percent = 0")
        return StepOutcome(
            step,
            True,
            "HTTP 200; verified after 1 poll(s): percent = 0",
            "status.components.predictor.traffic[latestRevision=true].percent = 0",
            ("audit 7f2c: before 14:05:10Z, after 14:05:11Z, outcome ok",),
        )

    def interrupt(self) -> None:
        self.calls.append(("interrupt",))
        self.release.set()
        if self.snapshot_gate is not None:
            self.snapshot_gate.set()

    def close(self) -> None:
        self.closed = True


# -- tests of the view functions on the fixture ------------------------------------------------


def test_health_rows_show_the_incident_on_v2() -> None:
    rows = {(h.model, h.version): h for h in views.health(demo_snapshot())}
    assert set(rows) == {("fraud", "v1"), ("fraud", "v2"), ("churn", "default")}
    v2 = rows[("fraud", "v2")]
    assert v2.status["drift"] == "crit"
    assert v2.status["calibration"] == "warn"
    assert rows[("fraud", "v1")].status["drift"] == "ok"
    assert rows[("churn", "default")].status["performance"] == "n/a"
    assert v2.volume == 800 and v2.latency_p95_ms is not None and v2.latency_p95_ms > 250


def test_a_silent_feed_colours_the_volume_of_every_version_of_its_model() -> None:
    """A slice whose predictions stopped (`slice-feed-stale`, scoped to the slice, all versions)
    makes the volume red on each of its model's rows, not on another model's; latency stays as
    its own alerts say."""
    silent = replace(
        demo_alerts()[0],
        fingerprint="c3d5e7f9a1b2c4d6",
        rule="slice-feed-stale",
        signal="feed.behind_s",
        scope={"segment": "country", "segment_value": "FR"},
        value=5 * 3600.0,
        threshold=4 * 3600.0,
    )
    snapshot = replace(demo_snapshot(), alerts=(*demo_snapshot().alerts, silent))
    rows = {(h.model, h.version): h for h in views.health(snapshot)}
    assert [("n" in rows[key].hot) for key in (("fraud", "v1"), ("fraud", "v2"), ("churn", "default"))] == [
        True,
        True,
        False,
    ]
    assert "latency_p95_ms" not in rows[("fraud", "v1")].hot
    volume = health_cells(rows[("fraud", "v1")])[2]
    assert isinstance(volume, Text) and volume.style == CRIT
    quiet = views.health(demo_snapshot())
    assert not any("n" in h.hot for h in quiet)


@pytest.mark.parametrize(
    ("psi", "ks_d", "blind", "levels"),
    [
        (0.0, 0.55, True, ("ok", "crit", "crit")),  # a 0/1 flag from 5 % to 60 % ones: PSI is blind
        (0.0, 0.12, True, ("ok", "warn", "warn")),
        (0.06, 0.15, True, ("watch", "warn", "warn")),
        (0.06, 0.55, False, ("watch", "ok", "watch")),  # PSI sees this feature: its level stands
        (0.3, 0.15, True, ("crit", "warn", "crit")),
        (0.0, None, False, ("ok", "ok", "ok")),  # categorical
    ],
)
def test_a_grid_cell_shows_the_worse_of_its_psi_and_blind_ks_levels(psi, ks_d, blind, levels) -> None:
    row = next(r for r in drift_rows() if r.enough_data and r.kind == "numeric")
    row = replace(row, psi=psi, ks_d=ks_d, ks_d_psi_blind=ks_d if blind else None)
    assert (views.psi_level(row), views.ks_level(row), views.drift_level(row)) == levels
    assert views.drift_level(replace(row, enough_data=False)) == "none"


def test_a_flag_that_turned_on_ranks_by_its_ks_d_where_psi_is_blind() -> None:
    """A 0/1 flag at PSI 0 and KS D 0.15 where PSI is blind ranks as PSI ≈ 0.175 would (between
    0.1 and 0.25, as D is between 0.1 and 0.2): above a feature at PSI 0.15, in the report's top
    drift and in the TUI grid's sort; a KS D where PSI can see is not used."""
    row = next(r for r in drift_rows() if r.enough_data and r.kind == "numeric" and r.segment is None)
    flag = replace(row, feature="flag", psi=0.0, ks_d=0.15, ks_d_psi_blind=0.15)
    amount = replace(row, feature="amount", psi=0.15, ks_d=0.4, ks_d_psi_blind=None)
    assert drift_rank(flag) == pytest.approx(0.175) and drift_rank(amount) == 0.15
    assert drift_rank(replace(flag, ks_d_psi_blind=0.05)) == pytest.approx(0.05)
    assert drift_rank(replace(flag, ks_d_psi_blind=0.3)) == pytest.approx(0.4)
    assert [r.feature for r in top_drift([amount, flag])] == ["flag", "amount"]
    model = replace(fraud_model(), drift=(amount, flag))
    assert views.drift_grid(model, row.window_start, row.version).features[:2] == ("flag", "amount")


def test_drift_grid_sorts_the_worst_cell_first_and_filters() -> None:
    model = fraud_model()
    grid = views.drift_grid(model, WINDOWS[-1], "v2")
    assert grid.features[0] == "amount"
    assert grid.slices[0] == views.ALL and grid.slices[1] == views.Slice("country", "DE")
    assert views.psi_level(grid.cell("amount", views.Slice("country", "DE"))) == "crit"
    # v2 in FR has 80 rows: not enough data.
    assert views.psi_level(grid.cell("amount", views.Slice("country", "FR"))) == "none"
    by_slice = views.drift_grid(model, WINDOWS[-1], "v2", text="ios")
    assert by_slice.slices == (views.Slice("device", "ios"),) and len(by_slice.features) == len(FEATURES)
    assert views.drift_grid(model, WINDOWS[-1], None, text="nothing-like-this").features == ()
    by_name = views.drift_grid(model, WINDOWS[-1], None, sort="name")
    assert list(by_name.features) == sorted(FEATURES, key=views.feature_label)


def test_alerts_are_ordered_worst_first() -> None:
    ordered = [a.rule for a in views.sorted_alerts(demo_alerts())]
    assert ordered == ["feature-drift", "calibration-ece", "latency-p95", "error-rate"]
    assert [a.rule for a in views.firing(demo_alerts())] == ["feature-drift", "calibration-ece"]


def test_signal_series_follows_the_alert_scope() -> None:
    alert = demo_alerts()[0]
    series = views.signal_series(fraud_model(), alert)
    assert [t for t, _ in series] == WINDOWS[6:]  # v2 exists since 01-08
    assert series[-1][1] == pytest.approx(0.42)


@pytest.mark.parametrize(
    ("count", "width", "expected"),
    [(3, 10, [(0, 1), (1, 2), (2, 3)]), (10, 3, [(0, 3), (3, 7), (7, 10)]), (0, 5, [])],
)
def test_buckets_cover_every_point_once(count: int, width: int, expected: list[tuple[int, int]]) -> None:
    assert views.buckets(count, width) == expected


def test_downsample_keeps_peaks_with_max_and_gaps_as_none() -> None:
    values = [0.1, 0.9, 0.2, None, None, None, 0.3, 0.4]
    assert views.downsample(values, 4, "max") == [0.9, 0.2, None, 0.4]
    assert views.downsample(values, 100) == values
    assert len(views.downsample([1.0] * 1000, 37)) == 37


def test_step_window_clamps_to_the_range() -> None:
    model = fraud_model()
    assert views.step_window(model, WINDOWS[-1], 1) == WINDOWS[-1]
    assert views.step_window(model, WINDOWS[0], -1) == WINDOWS[0]
    assert views.step_window(model, WINDOWS[5], -2) == WINDOWS[3]
    assert views.resolve_window(model, None) == WINDOWS[-1]


def test_formatting_is_short_and_explicit_about_missing_values() -> None:
    assert fmt.count(12345) == "12.3k" and fmt.count(None) == fmt.MISSING
    assert fmt.pct(0.0234) == "2.3%" and fmt.sig(1.2e-7) == "1.20e-07"
    assert fmt.duration(3 * 86400 + 4 * 3600) == "3d 4h" and fmt.duration(42) == "42s"
    # An alert's silence (`feed.silence_s`, seconds) reads as a duration; other signals as numbers.
    assert fmt.signal_value("feed.silence_s", 7500.0) == "2h 5m"
    assert fmt.signal_value("feed.unusual_s", 90.0) == fmt.signal_value("feed.usual_gap_s", 90.0) == "1m 30s"
    assert fmt.signal_value("drift.psi", 0.25) == "0.25"
    assert fmt.stamp(NOW) == "2026-01-15 14:05Z"
    assert fmt.ci(0.812, 0.78, 0.841) == "81.2% [78.0–84.1]"
    assert fmt.error_line(ValueError("first line\nsecond")) == "first line"
    assert fmt.error_line(TimeoutError()) == "TimeoutError"


def test_alerts_differing_only_in_their_slice_group_under_the_all_traffic_one():
    base = demo_alerts()[0]  # feature-drift on amount, v2, country=DE
    slices = [
        replace(base, fingerprint=f"f{i}", scope={**base.scope, "segment_value": value})
        for i, value in enumerate(("BR", "US"))
    ]
    everywhere = replace(
        base, fingerprint="all", severity="warning", scope={"feature": "amount", "version": "v2"}
    )
    other_version = replace(base, fingerprint="v1", scope={**base.scope, "version": "v1"})
    groups = views.grouped([base, *slices, everywhere, other_version, demo_alerts()[1]])
    heads = {head.fingerprint: more for head, more in groups}
    assert heads["all"] == 3  # DE, BR and US fire besides all traffic
    assert heads["v1"] == 0 and heads[demo_alerts()[1].fingerprint] == 0
    assert len(groups) == 3
    assert [head.fingerprint for head, _ in groups] == [
        head.fingerprint for head in views.sorted_alerts(head for head, _ in groups)
    ]
