"""Realistic prediction and label logs with known incidents, for the demo, the tests and the benchmarks.

The world is a card-fraud classifier (model ``fraud``) scoring payment requests:

- 13 features of realistic shapes — lognormal ``amount`` (by country), a spending level shared by
  ``amount`` and ``avg_amount_30d`` (null for accounts without history), their ratio, account and
  card ages, negative-binomial transaction counts, a heavy-tailed ``distance_from_home_km``, a beta
  ``ip_risk_score``, zero-inflated ``failed_logins_24h``, ``session_duration_s``, and the
  categorical ``payment_type`` and ``merchant_category``;
- segments ``country`` (8, skewed), ``device`` (3), ``cohort`` (new/returning, from the account
  age) and ``amount_band``;
- traffic with diurnal and weekly seasonality; versions v1 (baseline) and v2 (canary at 5 %, then
  50 % after a switch date); three routes (``fast_path``, ``standard``, and ``llm_review``, the only
  one that spends tokens and money); lognormal latency by version and route, a timeout budget that
  falls back, errors;
- ground truth drawn from a logistic model of the features plus a latent term no model sees; the
  scores are that model's calibrated-ish probabilities; labels reach 60-80 % of the traffic, flagged
  requests through manual review within hours, the rest through chargebacks days to 30+ days later.

Incidents (none with ``quiet``; every random draw is the same either way, so the quiet world is the
same world without them) start after the reference period, spaced so that each is detectable on
its own, and are recorded in ``manifest.json`` with the signal of ``triage check --json`` that
they should move. Everything is vectorised with numpy and written through DuckDB in chunks of at
most `MAX_ROWS_PER_FILE` predictions.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

MODEL = "fraud"
THRESHOLD = 0.5
BASELINE, CANARY = "v1", "v2"
VERSIONS = (BASELINE, CANARY)
FORMATS = ("parquet", "jsonl", "csv")
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)
MAX_ROWS_PER_FILE = 1_000_000
MANIFEST = "manifest.json"
CONFIG = "triage.toml"
PREDICTIONS_DIR = "logs/predictions"
LABELS_DIR = "logs/labels"
FORMAT_VERSION = 1

COUNTRIES = ("US", "GB", "DE", "BR", "IN", "FR", "MX", "JP")
_COUNTRY_SHARE = (0.30, 0.12, 0.11, 0.15, 0.10, 0.08, 0.08, 0.06)
_COUNTRY_MEDIAN_AMOUNT = np.array([48.0, 40.0, 42.0, 28.0, 15.0, 38.0, 25.0, 55.0])
DEVICES = ("android", "ios", "web")
_DEVICE_SHARE = (0.41, 0.33, 0.26)
COHORTS = ("new", "returning")
AMOUNT_BANDS = ("<25", "25-100", "100-500", "500+")
_AMOUNT_BAND_EDGES = np.array([25.0, 100.0, 500.0])
PAYMENT_TYPES = ("card", "wallet", "bank_transfer", "bnpl", "crypto")  # crypto: only the incident
_PAYMENT_SHARE = (0.61, 0.21, 0.11, 0.07)
MERCHANT_CATEGORIES = (
    "grocery",
    "restaurants",
    "fashion",
    "electronics",
    "travel",
    "digital_goods",
    "gaming",
    "fuel",
    "health",
    "home",
)
_MERCHANT_SHARE = (0.19, 0.14, 0.12, 0.10, 0.08, 0.09, 0.06, 0.08, 0.07, 0.07)
ROUTES = ("fast_path", "standard", "llm_review")

NUMERIC_FEATURES = (
    "amount",
    "account_age_days",
    "card_age_days",
    "txn_count_24h",
    "txn_count_7d",
    "avg_amount_30d",
    "amount_to_avg_ratio",
    "distance_from_home_km",
    "ip_risk_score",
    "failed_logins_24h",
    "session_duration_s",
)
CATEGORICAL_FEATURES = ("payment_type", "merchant_category")
SEGMENTS = ("country", "device", "cohort", "amount_band")

# Role → column name, as a real team's logs would name them.
COLUMNS = {
    "id": "request_id",
    "timestamp": "ts",
    "version": "model_version",
    "score": "score",
    "prediction": "decision",
    "label": "is_fraud",
    "labeled_at": "labeled_at",
    "latency_ms": "latency_ms",
    "cost": "cost_usd",
    "tokens": "tokens",
    "error": "error",
    "fallback": "fallback",
    "route": "route",
}
COSTS = {"false_positive": 5.0, "false_negative": 120.0}

# The true fraud log-odds is _INTERCEPT + _STRENGTH · (Σ weight · transform(feature)); both models
# learned it, and a latent N(0, 1) term that no model sees makes the task imperfect. The numbers
# give ≈ 9 % fraud, ≈ 4 % flagged at the threshold, precision ≈ 0.67 and AUROC ≈ 0.90.
_INTERCEPT = -5.5
_STRENGTH = 1.7
_PAYMENT_EFFECT = np.array([0.0, -0.3, -0.6, 0.5, 0.0])  # the models have never seen crypto
_MERCHANT_EFFECT = np.array([-0.6, -0.5, 0.0, 0.6, 0.3, 0.8, 0.5, -0.3, -0.2, 0.0])
_LATENT_SD = 1.0
_KAPPA = 1.0 / math.sqrt(1.0 + math.pi * _LATENT_SD**2 / 8.0)  # E[σ(z + u)] ≈ σ(κ z), u ~ N(0, σ²)
_V1_NOISE, _V2_NOISE = 0.35, 0.25

# Labels: flagged requests are reviewed by analysts (minutes to hours); the rest are learned from
# chargebacks and customer disputes (days to 30+ days).
_LABEL_SHARE_FLAGGED, _LABEL_SHARE_OTHER = 0.95, 0.68
_REVIEW_LAG_MEDIAN_S, _REVIEW_LAG_SIGMA = 45 * 60.0, 1.0
_CHARGEBACK_LAG_MEDIAN_S, _CHARGEBACK_LAG_SIGMA = 3 * 86400.0, 1.2
_DISPUTE_WINDOW_S = 90 * 86400.0  # no chargeback is accepted later: such requests stay unlabelled

# Operations: latency by version (ms), the LLM call, the timeout budget, per-token prices (USD).
_MODEL_LATENCY = {BASELINE: (38.0, 0.32), CANARY: (46.0, 0.30)}
_FAST_LATENCY = (9.0, 0.4)
_LLM_LATENCY = (900.0, 0.45)
_TIMEOUT_MS = 3000.0
_PROMPT_PRICE, _COMPLETION_PRICE = 2.5e-6, 10e-6
_ERROR_RATE, _FALLBACK_RATE = 0.003, 0.004

# Traffic seasonality: weekly factors Monday..Sunday (mean 1) and a diurnal curve (mean 1, UTC).
_WEEKLY = np.array([0.95, 0.97, 1.0, 1.02, 1.12, 1.04, 0.90])

# Incident kinds, their strength, and when they start as a share of the post-reference span.
FEATURE_DRIFT = "feature_drift"
NEW_CATEGORY = "new_category"
SCORE_COMPRESSION = "score_compression"
LATENCY_COST_SPIKE = "latency_cost_spike"
CONCEPT_DRIFT = "concept_drift"
_AMOUNT_DRIFT_FACTOR = 1.8  # BR amounts; ≈ 0.55 σ of log amount
_CRYPTO_SHARE = 0.07  # of all traffic once crypto launches
_CRYPTO_EFFECT = 0.9  # crypto's true extra fraud log-odds, unknown to both models
# v2 logits shrink toward ≈ their mean: v2 flags ≈ 0.7 % instead of ≈ 4 %.
_COMPRESSION_CENTER, _COMPRESSION_FACTOR = -3.6, 0.7
_SPIKE_LATENCY_FACTOR, _SPIKE_PRICE_FACTOR = 2.4, 3.0
# The true log-odds flatten around their mean (≈ -4.27) and shift so that fraud stays ≈ as common:
# precision at the threshold falls from ≈ 0.67 to ≈ 0.38, AUROC from ≈ 0.90 to ≈ 0.76.
_CONCEPT_CENTER, _CONCEPT_FACTOR, _CONCEPT_SHIFT = -4.27, 0.5, 1.0
_CANARY_SWITCH_AT = 0.06
_ONSET_AT = {
    FEATURE_DRIFT: 0.16,
    NEW_CATEGORY: 0.30,
    CONCEPT_DRIFT: 0.46,
    SCORE_COMPRESSION: 0.64,
    LATENCY_COST_SPIKE: 0.80,
}
_SPIKE_DURATION = 0.10

_MS_PER_HOUR = 3_600_000
_MS_PER_DAY = 24 * _MS_PER_HOUR
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_APPEND_TAG = np.uint64(1 << 63)
_APPEND_ROW_BITS = 22  # rows per appended span < 4 194 304


class GenerateError(ValueError):
    """Arguments the generator cannot honour (bad sizes, an existing output, a missing manifest)."""


@dataclass(frozen=True)
class Scope:
    """Where an incident acts: model, and version / segment value / feature / route, or None = all."""

    model: str
    version: str | None = None
    segment: str | None = None
    segment_value: str | None = None
    feature: str | None = None
    route: str | None = None


@dataclass(frozen=True)
class Signal:
    """A `table.field` of `triage check --json`, the way it should move ("up"/"down"), and its feature."""

    signal: str
    direction: str
    feature: str | None = None


@dataclass(frozen=True)
class Incident:
    """An injected problem: active on [onset, end) (end None = until the end), in `scope`.

    `signal` and `direction` are the primary statistic it moves (on `scope.feature`); `also` lists
    other statistics it moves visibly.
    """

    id: str
    kind: str
    description: str
    onset: datetime
    end: datetime | None
    scope: Scope
    signal: str
    direction: str
    also: tuple[Signal, ...] = ()

    def active(self, ts_ms: np.ndarray) -> np.ndarray:
        """Which of the timestamps (ms since the epoch, UTC) fall in [onset, end)."""
        mask = ts_ms >= _ms(self.onset)
        if self.end is not None:
            mask &= ts_ms < _ms(self.end)
        return mask


@dataclass(frozen=True)
class Rollout:
    """The scheduled traffic split: the canary's share before and after `switch_at`."""

    baseline: str
    canary: str
    canary_percent_before: float
    switch_at: datetime
    canary_percent_after: float

    def canary_share(self, ts_ms: np.ndarray) -> np.ndarray:
        """The canary's share of traffic (0..1) at each timestamp (ms since the epoch)."""
        after = ts_ms >= _ms(self.switch_at)
        return np.where(after, self.canary_percent_after, self.canary_percent_before) / 100.0


@dataclass(frozen=True)
class LogFile:
    """A written log file: path relative to the output folder (POSIX separators) and its rows."""

    path: str
    rows: int


@dataclass(frozen=True)
class Manifest:
    """What `generate` wrote and the truth behind it: the world, its rollout, incidents and files."""

    model: str
    seed: int
    rows: int
    days: int
    quiet: bool
    format: str
    start: datetime
    end: datetime
    window: str
    threshold: float
    reference_start: datetime
    reference_end: datetime
    rollout: Rollout
    incidents: tuple[Incident, ...]
    prediction_files: tuple[LogFile, ...]
    label_files: tuple[LogFile, ...]
    label_rows: int
    config: str = CONFIG
    format_version: int = FORMAT_VERSION

    def incident(self, incident_id: str) -> Incident:
        """The incident with this id; KeyError if there is none."""
        for incident in self.incidents:
            if incident.id == incident_id:
                return incident
        raise KeyError(incident_id)

    def to_json(self) -> dict[str, Any]:
        """The manifest.json document (times as ISO 8601 UTC strings ending in Z)."""
        return {
            "format_version": self.format_version,
            "model": self.model,
            "seed": self.seed,
            "rows": self.rows,
            "days": self.days,
            "quiet": self.quiet,
            "format": self.format,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "window": self.window,
            "threshold": self.threshold,
            "config": self.config,
            "reference": {"start": _iso(self.reference_start), "end": _iso(self.reference_end)},
            "rollout": {
                "baseline": self.rollout.baseline,
                "canary": self.rollout.canary,
                "canary_percent_before": self.rollout.canary_percent_before,
                "switch_at": _iso(self.rollout.switch_at),
                "canary_percent_after": self.rollout.canary_percent_after,
            },
            "incidents": [_incident_json(incident) for incident in self.incidents],
            "files": {
                "predictions": [{"path": f.path, "rows": f.rows} for f in self.prediction_files],
                "labels": [{"path": f.path, "rows": f.rows} for f in self.label_files],
            },
            "label_rows": self.label_rows,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Rebuild a manifest from its manifest.json document."""
        rollout = data["rollout"]
        return cls(
            model=data["model"],
            seed=data["seed"],
            rows=data["rows"],
            days=data["days"],
            quiet=data["quiet"],
            format=data["format"],
            start=_parse_iso(data["start"]),
            end=_parse_iso(data["end"]),
            window=data["window"],
            threshold=data["threshold"],
            reference_start=_parse_iso(data["reference"]["start"]),
            reference_end=_parse_iso(data["reference"]["end"]),
            rollout=Rollout(
                baseline=rollout["baseline"],
                canary=rollout["canary"],
                canary_percent_before=rollout["canary_percent_before"],
                switch_at=_parse_iso(rollout["switch_at"]),
                canary_percent_after=rollout["canary_percent_after"],
            ),
            incidents=tuple(_incident_from_json(item) for item in data["incidents"]),
            prediction_files=tuple(LogFile(f["path"], f["rows"]) for f in data["files"]["predictions"]),
            label_files=tuple(LogFile(f["path"], f["rows"]) for f in data["files"]["labels"]),
            label_rows=data["label_rows"],
            config=data["config"],
            format_version=data["format_version"],
        )


@dataclass(frozen=True)
class AppendResult:
    """What `append_traffic` wrote: one predictions file, one labels file, and their row counts."""

    predictions: Path
    labels: Path
    rows: int
    label_rows: int
    canary_rows: int


@dataclass
class _Batch:
    """Simulated requests: prediction columns (categories as codes) and their eventual labels."""

    columns: dict[str, np.ndarray]
    label_keys: np.ndarray
    label_values: np.ndarray
    labeled_at_ms: np.ndarray


@dataclass
class _Labels:
    """Labels gathered across chunks, written at the end partitioned by the week they arrive."""

    keys: list[np.ndarray] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    labeled_at_ms: list[np.ndarray] = field(default_factory=list)

    def add(self, batch: _Batch) -> None:
        self.keys.append(batch.label_keys)
        self.values.append(batch.label_values)
        self.labeled_at_ms.append(batch.labeled_at_ms)


def choose_window(days: int) -> str:
    """The window that gives a generated span enough windows: 1h up to 2 days, 6h to 7, 1d to 120, else 1w."""
    if days <= 2:
        return "1h"
    if days <= 7:
        return "6h"
    if days <= 120:
        return "1d"
    return "1w"


def reference_span(start: datetime, days: int) -> tuple[datetime, datetime]:
    """The reference period: the first quarter of the span, rounded up to whole windows."""
    window_h = {"1h": 1, "6h": 6, "1d": 24, "1w": 168}[choose_window(days)]
    hours = math.ceil(days * 24 / 4 / window_h) * window_h
    return start, start + timedelta(hours=min(hours, days * 24 - 1))


def plan_rollout(start: datetime, days: int) -> Rollout:
    """v2 serves 5 % of traffic until shortly after the reference period, then 50 %."""
    return Rollout(BASELINE, CANARY, 5.0, _after_reference(start, days, _CANARY_SWITCH_AT), 50.0)


def plan_incidents(start: datetime, days: int) -> tuple[Incident, ...]:
    """The five incidents of a generated world, their onsets spread over the post-reference span."""
    onset = {kind: _after_reference(start, days, share) for kind, share in _ONSET_AT.items()}
    spike_end = _after_reference(start, days, _ONSET_AT[LATENCY_COST_SPIKE] + _SPIKE_DURATION)
    spike_end = max(spike_end, onset[LATENCY_COST_SPIKE] + timedelta(hours=2))
    return (
        Incident(
            id="amount-drift-br",
            kind=FEATURE_DRIFT,
            description=f"amount ×{_AMOUNT_DRIFT_FACTOR} for country=BR only (a BR gateway pricing "
            "change); other countries unchanged",
            onset=onset[FEATURE_DRIFT],
            end=None,
            scope=Scope(MODEL, segment="country", segment_value="BR", feature="amount"),
            signal="drift.psi",
            direction="up",
        ),
        Incident(
            id="new-payment-type",
            kind=NEW_CATEGORY,
            description=f"payment_type 'crypto' launches ({_CRYPTO_SHARE:.0%} of traffic); its "
            "checkout sends no geolocation, so distance_from_home_km is null for it",
            onset=onset[NEW_CATEGORY],
            end=None,
            scope=Scope(MODEL, feature="payment_type"),
            signal="data_quality.unseen_share",
            direction="up",
            also=(Signal("data_quality.missing_rate", "up", "distance_from_home_km"),),
        ),
        Incident(
            id="concept-drift",
            kind=CONCEPT_DRIFT,
            description="fraudsters change tactics: P(fraud | features) flattens, so flagged "
            "requests are less often fraud while the inputs and scores look unchanged",
            onset=onset[CONCEPT_DRIFT],
            end=None,
            scope=Scope(MODEL),
            signal="performance.precision",
            direction="down",
            also=(Signal("performance.auroc", "down"),),
        ),
        Incident(
            id="v2-score-compression",
            kind=SCORE_COMPRESSION,
            description=f"v2 logits shrink ×{_COMPRESSION_FACTOR} toward {_COMPRESSION_CENTER} "
            "(a broken calibration layer), so v2 flags far fewer requests at the threshold",
            onset=onset[SCORE_COMPRESSION],
            end=None,
            scope=Scope(MODEL, version=CANARY),
            signal="calibration.decision_rate",
            direction="down",
            also=(Signal("drift.psi", "up", COLUMNS["score"]),),
        ),
        Incident(
            id="llm-latency-cost-spike",
            kind=LATENCY_COST_SPIKE,
            description=f"the llm_review route fails over to a bigger model: LLM latency "
            f"×{_SPIKE_LATENCY_FACTOR} (more timeouts fall back) and token prices ×{_SPIKE_PRICE_FACTOR}",
            onset=onset[LATENCY_COST_SPIKE],
            end=spike_end,
            scope=Scope(MODEL, route="llm_review"),
            signal="operations.latency_p95_ms",
            direction="up",
            also=(
                Signal("operations.cost_per_1k", "up"),
                Signal("operations.fallback_rate", "up"),
            ),
        ),
    )


def generate(
    out_dir: str | Path,
    rows: int,
    days: int,
    seed: int,
    quiet: bool = False,
    fmt: str = "parquet",
    start: datetime = DEFAULT_START,
    overwrite: bool = False,
    until: datetime | None = None,
) -> Manifest:
    """Write `rows` predictions over `days` days from `start` (UTC) into `out_dir`, and return the manifest.

    Writes ``logs/predictions/<day>.<fmt>`` (one file per day, split past `MAX_ROWS_PER_FILE`),
    ``logs/labels/<ISO week the labels arrive, 2026-W03>.jsonl``, ``triage.toml`` (relative paths) and
    ``manifest.json``. The same arguments give byte-identical files; `quiet` gives the same world
    without incidents. An existing output (a ``manifest.json``) is replaced only with `overwrite`.

    `until` plans the world over all `days` (rate, reference, rollout, incident onsets) but writes
    only the traffic before it; the manifest's `end` is then `until` (its `rows` stays the planned
    total, so `append_traffic` continues at the same rate). The demo streams the rest live.
    """
    if rows < 1 or days < 1:
        raise GenerateError(f"need at least 1 row and 1 day, got rows={rows}, days={days}")
    if seed < 0:
        raise GenerateError(f"seed must be a non-negative integer, got {seed}")
    if fmt not in FORMATS:
        raise GenerateError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    start = _utc(start)
    end = start + timedelta(days=days)
    if until is not None:
        until = _utc(until)
        if not start < until <= end:
            raise GenerateError(f"until ({_iso(until)}) must be within ({_iso(start)}, {_iso(end)}]")
        end = until
    end_ms = _ms(end)
    out = Path(out_dir)
    _prepare(out, overwrite)

    incidents = () if quiet else plan_incidents(start, days)
    rollout = plan_rollout(start, days)
    start_ms = _ms(start)
    day_weights = np.array([_day_weight(start_ms + d * _MS_PER_DAY) for d in range(days)])
    day_rows = np.random.default_rng([seed, 0]).multinomial(rows, day_weights / day_weights.sum())

    con = _connect()
    prediction_files: list[LogFile] = []
    labels = _Labels()
    first_key = 0
    for day, n_day in enumerate(day_rows.tolist()):
        day_start = start_ms + day * _MS_PER_DAY
        if day_start >= end_ms:
            break
        ts_ms = _sample_times(
            day_start, day_start + _MS_PER_DAY, n_day, np.random.default_rng([seed, 1, day])
        )
        ts_ms = ts_ms[ts_ms < end_ms]
        parts = max(1, math.ceil(n_day / MAX_ROWS_PER_FILE))
        stem = _day_name(day_start)
        for part, part_ts in enumerate(np.array_split(ts_ms, parts)):
            keys = np.arange(first_key, first_key + part_ts.size, dtype=np.uint64)
            first_key += part_ts.size
            rng = np.random.default_rng([seed, 2, day, part])
            batch = _simulate(
                part_ts, _request_ids(keys, seed), rollout.canary_share(part_ts), incidents, rng
            )
            name = f"{stem}.{fmt}" if parts == 1 else f"{stem}-part{part + 1:02d}.{fmt}"
            relative = f"{PREDICTIONS_DIR}/{name}"
            _write_predictions(con, batch.columns, out / relative, fmt)
            prediction_files.append(LogFile(relative, int(part_ts.size)))
            labels.add(batch)
    label_files = _write_labels_by_week(con, labels, out)
    con.close()

    reference_start, reference_end = reference_span(start, days)
    manifest = Manifest(
        model=MODEL,
        seed=seed,
        rows=rows,
        days=days,
        quiet=quiet,
        format=fmt,
        start=start,
        end=end,
        window=choose_window(days),
        threshold=THRESHOLD,
        reference_start=reference_start,
        reference_end=reference_end,
        rollout=rollout,
        incidents=incidents,
        prediction_files=tuple(prediction_files),
        label_files=label_files,
        label_rows=sum(f.rows for f in label_files),
    )
    (out / CONFIG).write_text(config_text(manifest), encoding="utf-8")
    (out / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=2) + "\n", encoding="utf-8")
    return manifest


def read_manifest(out_dir: str | Path) -> Manifest:
    """The manifest of a generated output folder; GenerateError if it has none."""
    path = Path(out_dir) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GenerateError(f"{path}: not found; run `triage generate` first") from None
    except (OSError, ValueError) as exc:
        raise GenerateError(f"{path}: cannot read the manifest ({exc})") from None
    return Manifest.from_json(data)


def append_traffic(
    out_dir: str | Path,
    start: datetime,
    end: datetime,
    seed: int,
    canary_percent: float | None = None,
    rows: int | None = None,
) -> AppendResult:
    """Append the world's traffic for [start, end) to a generated folder, as one new file of each kind.

    The traffic continues the world of ``manifest.json`` — the same feature distributions,
    seasonality, and the incidents whose span covers each request (none if it was quiet).
    `canary_percent` (0..100) is the control plane's split: the share of requests v2 serves;
    None follows the manifest's rollout schedule. `rows` defaults to a Poisson draw at the
    world's traffic rate. Writes ``logs/predictions/live-<start>-<end>.<fmt>`` and
    ``logs/labels/live-<start>-<end>.jsonl`` (labels may lie in the future: they arrive late), so
    ``triage ingest`` picks them up with the configured globs. Request ids never collide with the
    generated ones or with other appended spans that start at a different millisecond.
    Deterministic for (manifest, start, end, seed, canary_percent, rows).
    """
    out = Path(out_dir)
    manifest = read_manifest(out)
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise GenerateError(f"end ({_iso(end)}) must be after start ({_iso(start)})")
    if canary_percent is not None and not 0.0 <= canary_percent <= 100.0:
        raise GenerateError(f"canary_percent must be within 0..100, got {canary_percent}")
    if seed < 0:
        raise GenerateError(f"seed must be a non-negative integer, got {seed}")
    start_ms, end_ms = _ms(start), _ms(end)
    split_key = -1 if canary_percent is None else round(canary_percent * 1000)
    rng = np.random.default_rng([seed, 3, start_ms, end_ms, split_key + 1])
    if rows is None:
        expected = manifest.rows / manifest.days * _expected_days(start_ms, end_ms)
        rows = int(rng.poisson(expected))
    if not 0 <= rows < 1 << _APPEND_ROW_BITS:
        raise GenerateError(f"rows must be within 0..{(1 << _APPEND_ROW_BITS) - 1}, got {rows}")

    stem = f"live-{_stamp(start_ms)}-{_stamp(end_ms)}"
    predictions = out / PREDICTIONS_DIR / f"{stem}.{manifest.format}"
    labels_path = out / LABELS_DIR / f"{stem}.jsonl"
    if predictions.exists() or labels_path.exists():
        raise GenerateError(f"{predictions}: traffic for this span was already appended")
    ts_ms = _sample_times(start_ms, end_ms, rows, rng)
    span_tag = np.uint64((start_ms - _ms(manifest.start)) % (1 << 40))
    keys = _APPEND_TAG | (span_tag << np.uint64(_APPEND_ROW_BITS)) | np.arange(rows, dtype=np.uint64)
    if canary_percent is None:
        share = manifest.rollout.canary_share(ts_ms)
    else:
        share = np.full(rows, canary_percent / 100.0)
    batch = _simulate(ts_ms, _request_ids(keys, manifest.seed), share, manifest.incidents, rng)

    con = _connect()
    predictions.parent.mkdir(parents=True, exist_ok=True)
    labels_path.parent.mkdir(parents=True, exist_ok=True)
    # Written under a hidden name that the globs do not match, then renamed: a concurrent
    # `triage ingest` (the live demo) never reads a half-written file.
    partial_predictions = predictions.with_name(f".{predictions.name}.partial")
    partial_labels = labels_path.with_name(f".{labels_path.name}.partial")
    _write_predictions(con, batch.columns, partial_predictions, manifest.format)
    order = np.argsort(batch.labeled_at_ms, kind="stable")
    _write_label_file(
        con,
        batch.label_keys[order],
        batch.label_values[order],
        batch.labeled_at_ms[order],
        partial_labels,
    )
    con.close()
    os.replace(partial_predictions, predictions)
    os.replace(partial_labels, labels_path)
    return AppendResult(
        predictions=predictions,
        labels=labels_path,
        rows=rows,
        label_rows=int(batch.label_keys.size),
        canary_rows=int(np.count_nonzero(batch.columns["model_version"] == 1)),
    )


def config_text(manifest: Manifest) -> str:
    """The triage.toml for a generated folder: relative paths, every role, features, segments, reference."""
    ext = manifest.format
    roles = "\n".join(f'{role} = "{column}"' for role, column in COLUMNS.items())
    incidents = "none (quiet)" if manifest.quiet else f"{len(manifest.incidents)}, see {MANIFEST}"
    return f"""\
# Written by `triage generate`: {manifest.rows} predictions over {manifest.days} days from \
{manifest.start.date().isoformat()}, seed {manifest.seed}. Injected incidents: {incidents}.
[store]
path = "triage.duckdb"

[[model]]
name = "{manifest.model}"
predictions = "{PREDICTIONS_DIR}/*.{ext}"
labels = "{LABELS_DIR}/*.jsonl"
threshold = {manifest.threshold}
window = "{manifest.window}"

[model.columns]
{roles}

[model.features]
numeric = {_toml_list(NUMERIC_FEATURES)}
categorical = {_toml_list(CATEGORICAL_FEATURES)}

[model.segments]
columns = {_toml_list(SEGMENTS)}

# Normal: the first quarter of the span, before the canary switch and any incident.
[model.reference]
start = "{_iso(manifest.reference_start)}"
end = "{_iso(manifest.reference_end)}"

# A false alarm costs a manual review and a customer's friction; a missed fraud, a chargeback.
[model.costs]
false_positive = {COSTS["false_positive"]}
false_negative = {COSTS["false_negative"]}
"""


def _simulate(
    ts_ms: np.ndarray,
    request_ids: np.ndarray,
    canary_share: np.ndarray,
    incidents: Sequence[Incident],
    rng: np.random.Generator,
) -> _Batch:
    """Simulate one request per timestamp. Every draw happens whatever the incidents are."""
    n = ts_ms.size
    by_kind = {incident.kind: incident for incident in incidents}

    def active(kind: str) -> np.ndarray:
        incident = by_kind.get(kind)
        return incident.active(ts_ms) if incident else np.zeros(n, dtype=bool)

    country = _codes(rng, _COUNTRY_SHARE, n)
    device = _codes(rng, _DEVICE_SHARE, n)

    # Spending level is per customer: it drives both this amount and the 30-day average.
    spend = rng.normal(0.0, 0.6, n)
    log_median = np.log(_COUNTRY_MEDIAN_AMOUNT)[country]
    amount = np.exp(log_median + 0.7 * spend + rng.normal(0.0, 0.85, n))
    avg_amount = np.exp(log_median + 0.7 * spend + rng.normal(0.0, 0.25, n))
    drift = by_kind.get(FEATURE_DRIFT)
    if drift is not None:
        shifted = active(FEATURE_DRIFT) & (country == COUNTRIES.index(drift.scope.segment_value or ""))
        amount = np.where(shifted, amount * _AMOUNT_DRIFT_FACTOR, amount)
    amount = np.maximum(np.round(amount, 2), 0.5)

    is_new = rng.random(n) < 0.16
    new_age = rng.exponential(9.0, n)
    old_age = 30.0 + rng.lognormal(math.log(420.0), 0.9, n)
    account_age = np.minimum(np.floor(np.where(is_new, new_age, old_age)), 4000.0)
    card_age = np.minimum(account_age, np.floor(rng.lognormal(math.log(200.0), 1.1, n)))
    no_history = (account_age < 2.0) | (rng.random(n) < 0.005)
    avg_amount = np.where(no_history, np.nan, np.round(avg_amount, 2))
    ratio = np.round(amount / avg_amount, 4)

    velocity = rng.gamma(1.5, 1.6, n)
    txn_24h = rng.poisson(velocity)
    txn_7d = txn_24h + rng.poisson(6.0 * velocity)
    travelling = rng.random(n) < 0.15
    distance = np.where(
        travelling,
        rng.lognormal(math.log(600.0), 1.2, n),
        rng.lognormal(math.log(8.0), 1.0, n),
    )
    distance_missing = rng.random(n) < 0.015
    ip_risk = np.round(rng.beta(1.6, 9.0, n), 4)
    failed_logins = rng.poisson(np.where(rng.random(n) < 0.03, 2.5, 0.08))
    session = rng.lognormal(math.log(95.0), 0.9, n)
    session = np.where(rng.random(n) < 0.02, np.nan, np.round(session, 1))

    payment = _codes(rng, _PAYMENT_SHARE, n)
    crypto = active(NEW_CATEGORY) & (rng.random(n) < _CRYPTO_SHARE)
    payment = np.where(crypto, PAYMENT_TYPES.index("crypto"), payment).astype(np.int8)
    distance = np.where(distance_missing | crypto, np.nan, np.round(distance, 1))
    merchant = _codes(rng, _MERCHANT_SHARE, n)

    # What the models compute; a missing value enters as a typical one.
    features = (
        0.45 * (np.log(amount) - 3.6)
        + 1.2 * np.exp(-account_age / 20.0)
        + 0.6 * np.exp(-card_age / 15.0)
        + 0.35 * np.log1p(txn_24h)
        + 0.45 * np.log(np.clip(np.nan_to_num(ratio, nan=1.0), 0.05, 50.0))
        + 0.3 * np.log1p(np.nan_to_num(distance, nan=8.0) / 25.0)
        + 4.0 * (ip_risk - 0.15)
        + 0.6 * np.minimum(failed_logins, 5)
        - 0.35 * (np.log(np.nan_to_num(session, nan=95.0)) - 4.5)
        + _PAYMENT_EFFECT[payment]
        + _MERCHANT_EFFECT[merchant]
    )
    model_logit = _INTERCEPT + _STRENGTH * features
    true_logit = model_logit + np.where(payment == PAYMENT_TYPES.index("crypto"), _CRYPTO_EFFECT, 0.0)
    flattened = _CONCEPT_CENTER + _CONCEPT_FACTOR * (true_logit - _CONCEPT_CENTER) + _CONCEPT_SHIFT
    true_logit = np.where(active(CONCEPT_DRIFT), flattened, true_logit)
    is_fraud = rng.random(n) < _sigmoid(true_logit + rng.normal(0.0, _LATENT_SD, n))

    is_canary = rng.random(n) < canary_share
    v1_logit = _KAPPA * model_logit + rng.normal(0.0, _V1_NOISE, n)
    v2_logit = _KAPPA * model_logit + rng.normal(0.0, _V2_NOISE, n)
    compressed = _COMPRESSION_CENTER + _COMPRESSION_FACTOR * (v2_logit - _COMPRESSION_CENTER)
    v2_logit = np.where(active(SCORE_COMPRESSION), compressed, v2_logit)
    score = np.round(_sigmoid(np.where(is_canary, v2_logit, v1_logit)), 6)
    decision = score >= THRESHOLD

    # Small amounts take the rules fast path; large or random ones get an LLM review.
    route_draw, llm_draw = rng.random(n), rng.random(n)
    fast = (amount < 15.0) & (route_draw < 0.85)
    llm = ~fast & (llm_draw < 0.17 + 0.3 * (amount >= 300.0))
    route = np.where(fast, 0, np.where(llm, 2, 1)).astype(np.int8)

    spike = active(LATENCY_COST_SPIKE) & llm
    (v1_median, v1_sigma), (v2_median, v2_sigma) = _MODEL_LATENCY[BASELINE], _MODEL_LATENCY[CANARY]
    model_z = rng.normal(0.0, 1.0, n)
    model_ms = np.exp(
        np.where(
            is_canary, math.log(v2_median) + v2_sigma * model_z, math.log(v1_median) + v1_sigma * model_z
        )
    )
    fast_ms = rng.lognormal(math.log(_FAST_LATENCY[0]), _FAST_LATENCY[1], n)
    llm_ms = rng.lognormal(math.log(_LLM_LATENCY[0]), _LLM_LATENCY[1], n)
    llm_ms = np.where(spike, llm_ms * _SPIKE_LATENCY_FACTOR, llm_ms)
    latency = np.where(fast, fast_ms, model_ms + np.where(llm, llm_ms, 0.0))
    timed_out = llm & (latency > _TIMEOUT_MS)
    latency = np.round(np.where(timed_out, _TIMEOUT_MS + fast_ms, latency), 1)
    error = rng.random(n) < _ERROR_RATE
    fallback = timed_out | error | (rng.random(n) < _FALLBACK_RATE)

    prompt = np.maximum(np.round(rng.normal(720.0, 90.0, n)), 200.0)
    completion = np.round(rng.lognormal(math.log(110.0), 0.4, n))
    price = np.where(spike, _SPIKE_PRICE_FACTOR, 1.0)
    cost = np.round((prompt * _PROMPT_PRICE + completion * _COMPLETION_PRICE) * price, 6)

    review_lag = rng.lognormal(math.log(_REVIEW_LAG_MEDIAN_S), _REVIEW_LAG_SIGMA, n)
    chargeback_lag = rng.lognormal(math.log(_CHARGEBACK_LAG_MEDIAN_S), _CHARGEBACK_LAG_SIGMA, n)
    lag_s = np.maximum(np.where(decision, review_lag, chargeback_lag), 60.0)
    labeled = rng.random(n) < np.where(decision, _LABEL_SHARE_FLAGGED, _LABEL_SHARE_OTHER)
    labeled &= lag_s <= _DISPUTE_WINDOW_S
    lag_ms = (lag_s * 1000.0).astype(np.int64)

    columns = {
        "request_id": request_ids,
        "ts_ms": ts_ms,
        "model_version": is_canary.astype(np.int8),
        "route": route,
        "score": score,
        "decision": decision,
        "latency_ms": latency,
        "error": error,
        "fallback": fallback,
        "cost_usd": np.where(llm, cost, np.nan),
        "tokens": np.where(llm, prompt + completion, np.nan),
        "country": country,
        "device": device,
        "cohort": (account_age >= 30.0).astype(np.int8),
        "amount_band": np.searchsorted(_AMOUNT_BAND_EDGES, amount, side="right").astype(np.int8),
        "amount": amount,
        "account_age_days": account_age.astype(np.int32),
        "card_age_days": card_age.astype(np.int32),
        "txn_count_24h": txn_24h.astype(np.int32),
        "txn_count_7d": txn_7d.astype(np.int32),
        "avg_amount_30d": avg_amount,
        "amount_to_avg_ratio": ratio,
        "distance_from_home_km": distance,
        "ip_risk_score": ip_risk,
        "failed_logins_24h": failed_logins.astype(np.int32),
        "session_duration_s": session,
        "payment_type": payment,
        "merchant_category": merchant,
    }
    return _Batch(
        columns=columns,
        label_keys=request_ids[labeled],
        label_values=is_fraud[labeled].astype(np.int8),
        labeled_at_ms=ts_ms[labeled] + lag_ms[labeled],
    )


# Categorical columns are simulated as small integer codes and named when written.
_CATEGORIES: dict[str, Sequence[str]] = {
    "model_version": VERSIONS,
    "route": ROUTES,
    "country": COUNTRIES,
    "device": DEVICES,
    "cohort": COHORTS,
    "amount_band": AMOUNT_BANDS,
    "payment_type": PAYMENT_TYPES,
    "merchant_category": MERCHANT_CATEGORIES,
}


def _write_predictions(
    con: duckdb.DuckDBPyConnection, columns: dict[str, np.ndarray], path: Path, fmt: str
) -> None:
    select = []
    for name in columns:
        if name == "request_id":
            select.append("'req_' || format('{:016x}', request_id) AS request_id")
        elif name == "ts_ms":
            select.append(f"{_time_sql('ts_ms', fmt)} AS ts")
        elif name == "tokens":
            select.append("CAST(tokens AS INTEGER) AS tokens")
        elif name in _CATEGORIES:
            select.append(f"{_lookup_sql(name, _CATEGORIES[name])} AS {name}")
        else:
            select.append(name)
    _copy(con, columns, f"SELECT {', '.join(select)} FROM batch", path, fmt)


def _write_labels_by_week(con: duckdb.DuckDBPyConnection, labels: _Labels, out: Path) -> tuple[LogFile, ...]:
    """One file per ISO week (Monday 00:00 UTC) in which labels arrived, in order of arrival."""
    keys = np.concatenate(labels.keys)
    values = np.concatenate(labels.values)
    labeled_at = np.concatenate(labels.labeled_at_ms)
    if labeled_at.size == 0:
        return ()
    order = np.argsort(labeled_at, kind="stable")
    keys, values, labeled_at = keys[order], values[order], labeled_at[order]
    first_monday = (int(labeled_at[0]) // _MS_PER_DAY + 3) // 7 * 7 - 3  # epoch day 0 was a Thursday
    week_starts = np.arange(first_monday * _MS_PER_DAY, int(labeled_at[-1]) + 1, 7 * _MS_PER_DAY)
    bounds = np.searchsorted(labeled_at, np.append(week_starts, labeled_at[-1] + 1)).tolist()
    files: list[LogFile] = []
    for week_start, lo, hi in zip(week_starts.tolist(), bounds[:-1], bounds[1:], strict=True):
        if hi == lo:
            continue
        year, week, _ = (_EPOCH + timedelta(milliseconds=week_start)).isocalendar()
        relative = f"{LABELS_DIR}/{year}-W{week:02d}.jsonl"
        _write_label_file(con, keys[lo:hi], values[lo:hi], labeled_at[lo:hi], out / relative)
        files.append(LogFile(relative, hi - lo))
    return tuple(files)


def _write_label_file(
    con: duckdb.DuckDBPyConnection,
    keys: np.ndarray,
    values: np.ndarray,
    labeled_at_ms: np.ndarray,
    path: Path,
) -> None:
    columns = {"request_id": keys, "is_fraud": values, "labeled_at_ms": labeled_at_ms}
    query = (
        "SELECT 'req_' || format('{:016x}', request_id) AS request_id, is_fraud, "
        f"{_time_sql('labeled_at_ms', 'jsonl')} AS labeled_at FROM batch"
    )
    _copy(con, columns, query, path, "jsonl")


def _copy(
    con: duckdb.DuckDBPyConnection, columns: dict[str, np.ndarray], query: str, path: Path, fmt: str
) -> None:
    options = {
        "parquet": "FORMAT parquet, COMPRESSION zstd",
        "jsonl": "FORMAT json",
        "csv": "FORMAT csv, HEADER true",
    }[fmt]
    target = str(path).replace("'", "''")
    con.register("batch", columns)
    try:
        con.execute(f"COPY ({query}) TO '{target}' ({options})")
    finally:
        con.unregister("batch")


def _time_sql(column: str, fmt: str) -> str:
    # Parquet keeps a UTC-adjusted timestamp; text formats get ISO 8601 with an explicit Z.
    if fmt == "parquet":
        return f"CAST(epoch_ms({column}) AS TIMESTAMPTZ)"
    return f"strftime(epoch_ms({column}), '%Y-%m-%dT%H:%M:%S.%gZ')"


def _lookup_sql(column: str, names: Sequence[str]) -> str:
    return "[" + ", ".join(f"'{name}'" for name in names) + f"][{column} + 1]"


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _request_ids(keys: np.ndarray, seed: int) -> np.ndarray:
    """Random-looking, unique 64-bit ids: the splitmix64 finalizer, a bijection, of key ⊕ a seed hash."""
    x = keys ^ np.uint64((seed * 0x9E3779B97F4A7C15) % (1 << 64))
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _sample_times(start_ms: int, end_ms: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` sorted timestamps in [start_ms, end_ms) from the diurnal × weekly traffic intensity."""
    edges = _minute_edges(start_ms, end_ms)
    weights = _intensity(edges[:-1]) * np.diff(edges)
    minute = rng.choice(weights.size, size=n, p=weights / weights.sum())
    offset = rng.random(n) * (edges[minute + 1] - edges[minute])
    return np.sort(edges[minute] + offset.astype(np.int64))


def _expected_days(start_ms: int, end_ms: int) -> float:
    """∫ intensity over [start, end), in days of average traffic."""
    edges = _minute_edges(start_ms, end_ms)
    return float((_intensity(edges[:-1]) * np.diff(edges)).sum() / _MS_PER_DAY)


def _minute_edges(start_ms: int, end_ms: int) -> np.ndarray:
    inner = np.arange((start_ms // 60_000 + 1) * 60_000, end_ms, 60_000, dtype=np.int64)
    return np.concatenate(([start_ms], inner, [end_ms])).astype(np.int64)


def _intensity(ts_ms: np.ndarray) -> np.ndarray:
    """Relative traffic at each time: a diurnal curve peaking in the UTC evening, times the weekday factor."""
    hour = (ts_ms % _MS_PER_DAY) / _MS_PER_HOUR
    diurnal = (
        1.0
        + 0.55 * np.cos(2 * np.pi * (hour - 19.0) / 24.0)
        + 0.15 * np.cos(4 * np.pi * (hour - 13.0) / 24.0)
    )
    weekday = (ts_ms // _MS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday
    return diurnal * _WEEKLY[weekday]


def _day_weight(day_start_ms: int) -> float:
    return _expected_days(day_start_ms, day_start_ms + _MS_PER_DAY)


def _codes(rng: np.random.Generator, shares: Sequence[float], n: int) -> np.ndarray:
    return rng.choice(len(shares), size=n, p=np.asarray(shares) / sum(shares)).astype(np.int8)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _after_reference(start: datetime, days: int, share: float) -> datetime:
    """The whole hour `share` of the way through the post-reference span."""
    _, reference_end = reference_span(start, days)
    span_h = (start + timedelta(days=days) - reference_end) / timedelta(hours=1)
    return reference_end + timedelta(hours=math.floor(share * span_h))


def _prepare(out: Path, overwrite: bool) -> None:
    """Create the output folders; clear a previous generation's files only with `overwrite`."""
    if (out / MANIFEST).exists():
        if not overwrite:
            raise GenerateError(
                f"{out}: already holds generated logs ({MANIFEST}); pass --force to replace them"
            )
        for folder in (PREDICTIONS_DIR, LABELS_DIR):
            shutil.rmtree(out / folder, ignore_errors=True)
        for name in (MANIFEST, CONFIG, "triage.duckdb", "triage.duckdb.wal"):
            (out / name).unlink(missing_ok=True)
    elif out.exists() and any(
        (out / folder).exists() and any((out / folder).iterdir()) for folder in (PREDICTIONS_DIR, LABELS_DIR)
    ):
        raise GenerateError(
            f"{out}: {PREDICTIONS_DIR} or {LABELS_DIR} already holds files; choose an empty folder"
        )
    (out / PREDICTIONS_DIR).mkdir(parents=True, exist_ok=True)
    (out / LABELS_DIR).mkdir(parents=True, exist_ok=True)


def _incident_json(incident: Incident) -> dict[str, Any]:
    scope = incident.scope
    return {
        "id": incident.id,
        "kind": incident.kind,
        "description": incident.description,
        "onset": _iso(incident.onset),
        "end": _iso(incident.end) if incident.end else None,
        "scope": {
            "model": scope.model,
            "version": scope.version,
            "segment": scope.segment,
            "segment_value": scope.segment_value,
            "feature": scope.feature,
            "route": scope.route,
        },
        "signal": incident.signal,
        "direction": incident.direction,
        "also": [{"signal": s.signal, "direction": s.direction, "feature": s.feature} for s in incident.also],
    }


def _incident_from_json(data: dict[str, Any]) -> Incident:
    return Incident(
        id=data["id"],
        kind=data["kind"],
        description=data["description"],
        onset=_parse_iso(data["onset"]),
        end=_parse_iso(data["end"]) if data["end"] else None,
        scope=Scope(**data["scope"]),
        signal=data["signal"],
        direction=data["direction"],
        also=tuple(Signal(**item) for item in data["also"]),
    )


def _toml_list(names: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{name}"' for name in names) + "]"


def _utc(value: datetime) -> datetime:
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _ms(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(milliseconds=1)


def _iso(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime:
    return _utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


def _day_name(ts_ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ts_ms)).strftime("%Y-%m-%d")


def _stamp(ts_ms: int) -> str:
    value = _EPOCH + timedelta(milliseconds=ts_ms)
    return value.strftime("%Y%m%dT%H%M%S") + f".{value.microsecond // 1000:03d}Z"
