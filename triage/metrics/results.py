"""Typed result rows of the statistics engine: the contract behind `triage check --json`.

Every row names its cell: the window (UTC, start inclusive, end exclusive), the model version
(None = all versions), the slice (`segment` is the segment column, None for all traffic, with
`segment_value`), and `n`, the number of rows behind it (a drift row: the feature's values). A
statistic that cannot be computed for a cell (too few rows, a constant column, no labels yet)
is None, and `note` says why (`not_enough`'s wording for too few). Field names are the JSON
field names; `to_json()` gives the JSON object.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from typing import Any, TextIO

# DESIGN §4's PSI conventions: warn from 0.1, critical from 0.25. They colour and count cells
# (TUI grid, `check`'s summary); alerts have their own rules.
PSI_WARN = 0.1
PSI_CRIT = 0.25
# `ks_d_psi_blind` from which a cell counts as shifted, and as critically so: the default
# `feature-shift` rule's thresholds. A flag at 3 % ones reaches PSI 0.1 (warn) at ≈ 11 % ones and
# 0.25 (critical) at ≈ 17 % where its bins can see it: KS D 0.08 and 0.14.
KS_SHIFT = 0.1
KS_SHIFT_CRIT = 0.2


def _json_value(value: Any) -> Any:
    """A result as JSON values: times ISO 8601 UTC, non-finite numbers None, rows and their nested
    results (reliability points) dicts — each field once, where `dataclasses.asdict` deep-copies
    every value first (≈ 1.5 s of the 10 M `triage check --json`)."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if value is None or kind in _PLAIN:  # most values: checked first, since is_dataclass is slow
        return value
    if is_dataclass(value) and not isinstance(value, type):
        return {name: _json_value(getattr(value, name)) for name in _field_names(kind)}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z") if value.tzinfo else value.isoformat() + "Z"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return value


_PLAIN = (str, int, bool)


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(kind: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))
    return names


def _as_json(row: Any) -> dict[str, Any]:
    """A result dataclass as a JSON object (`_json_value`)."""
    found: dict[str, Any] = _json_value(row)
    return found


class JsonRows:
    """A result table's rows as JSON objects, each converted only as `write_json` writes it: a
    document of millions of cells (thousands of slices) is never held as dicts, nor as one
    string."""

    def __init__(self, rows: Iterable[Any]) -> None:
        self.rows = rows

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (_as_json(row) for row in self.rows)


# One encoder for every row (`json.dumps` with an option builds one per call: a check of many slices
# writes millions of rows).
_ROW_ENCODER = json.JSONEncoder(allow_nan=False)


def write_json(value: Any, out: TextIO, depth: int = 0) -> None:
    """`value` as JSON to `out`, written as it goes, indented two spaces a level; the rows of a
    `JsonRows` converted one by one, each on one line. NaN and infinities are refused, as
    `json.dumps(allow_nan=False)` does."""
    pad = "  " * depth
    if isinstance(value, dict) and value:
        out.write("{\n")
        for index, (key, item) in enumerate(value.items()):
            out.write(f"{pad}  {json.dumps(key)}: ")
            write_json(item, out, depth + 1)
            out.write(",\n" if index < len(value) - 1 else "\n")
        out.write(pad + "}")
    elif isinstance(value, JsonRows | list):
        first = True
        for item in value:
            out.write(("[\n" if first else ",\n") + pad + "  ")
            if isinstance(value, JsonRows):
                out.write(_ROW_ENCODER.encode(item))
            else:
                write_json(item, out, depth + 1)
            first = False
        out.write("[]" if first else "\n" + pad + "]")
    else:
        out.write(json.dumps(value, allow_nan=False))


def not_enough(n: int, min_samples: int, what: str = "rows") -> str:
    """The note of a cell with too few rows (or `what`): "not enough data: 12 rows < min_samples 200"."""
    return f"not enough data: {n} {what} < min_samples {min_samples}"


@dataclass(frozen=True, slots=True)
class Cell:
    """Which window × version × slice a row describes."""

    window_start: datetime
    window_end: datetime
    version: str | None
    segment: str | None
    segment_value: str | None
    n: int


@dataclass(frozen=True, slots=True)
class Row:
    """Base of every result row: the cell fields come first, then the statistics."""

    window_start: datetime
    window_end: datetime
    version: str | None
    segment: str | None
    segment_value: str | None
    n: int
    enough_data: bool
    note: str | None

    def to_json(self) -> dict[str, Any]:
        return _as_json(self)


@dataclass(frozen=True, slots=True)
class DriftRow(Row):
    """Drift of one feature (or of the score, feature `__score__`) in one cell vs the reference."""

    feature: str
    kind: str  # "numeric" | "categorical"
    n_reference: int
    psi: float | None
    js: float | None
    ks_d: float | None
    ks_p: float | None
    chi2: float | None
    chi2_p: float | None
    chi2_pooled_p: float | None  # chi2's p with sparse categories pooled: what alert rules gate on
    wasserstein: float | None
    wasserstein_norm: float | None
    # KS D where PSI cannot see a move (None elsewhere): the slice's reference PSI has one inner
    # edge — every decile is one value, ≥ 80 % of the reference (a 0/1 flag, a mostly-zero count) —
    # so its bins are (−∞, c) and [c, ∞) and a move from c up stays in one bin, PSI 0.
    ks_d_psi_blind: float | None = None


def drift_rank(row: DriftRow) -> float:
    """How drifted a cell is, to rank cells by: its PSI, or where PSI is blind its KS D on PSI's
    scale when larger (KS_SHIFT as PSI_WARN, KS_SHIFT_CRIT as PSI_CRIT, linear between and past)."""
    d = row.ks_d_psi_blind
    psi = row.psi or 0.0
    if d is None:
        return psi
    slope = (PSI_CRIT - PSI_WARN) / (KS_SHIFT_CRIT - KS_SHIFT)
    scaled = d * PSI_WARN / KS_SHIFT if d <= KS_SHIFT else PSI_WARN + (d - KS_SHIFT) * slope
    return max(psi, scaled)


@dataclass(frozen=True, slots=True)
class DataQualityRow(Row):
    """Missing values, unseen categories and out-of-range values of one feature in one cell."""

    feature: str
    kind: str
    n_reference: int  # the slice reference's rows: the denominator of its missing rate
    missing_rate: float | None
    missing_rate_reference: float | None
    missing_rate_change: float | None
    unseen_share: float | None
    unseen_categories: tuple[str, ...]
    # Good–Turing: the unseen share the reference itself predicts with nothing changed, and the
    # standard error of that prediction (Esty).
    unseen_share_expected: float | None
    unseen_share_expected_se: float | None
    out_of_range_share: float | None


@dataclass(frozen=True, slots=True)
class SchemaChange:
    """A column that is missing, new or of another type than in the reference."""

    column: str
    change: str  # "missing" | "added" | "retyped"
    reference_type: str | None
    current_type: str | None

    def to_json(self) -> dict[str, Any]:
        return _as_json(self)


@dataclass(frozen=True, slots=True)
class ReliabilityPoint:
    """One bin of a reliability diagram: mean score vs observed positive rate."""

    bin_low: float
    bin_high: float
    n: int
    mean_score: float
    positive_rate: float


@dataclass(frozen=True, slots=True)
class CalibrationRow(Row):
    """Decision rate (all rows) and calibration (labelled rows as of the evaluation time)."""

    n_labeled: int
    decision_rate: float | None
    ece: float | None
    ece_equal_mass: float | None
    mce: float | None
    brier: float | None
    log_loss: float | None
    reliability: tuple[ReliabilityPoint, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class PerformanceRow(Row):
    """Delayed-label performance at the decision, each with a 95 % interval."""

    n_labeled: int
    label_coverage: float | None
    # Labelled share of the rows decided positive: precision's denominator (flagged requests are
    # reviewed within hours, the rest wait for chargebacks): None without positive decisions.
    decision_label_coverage: float | None
    label_lag_p50_s: float | None
    label_lag_p95_s: float | None
    precision: float | None
    precision_ci_low: float | None
    precision_ci_high: float | None
    recall: float | None
    recall_ci_low: float | None
    recall_ci_high: float | None
    f1: float | None
    fpr: float | None
    fpr_ci_low: float | None
    fpr_ci_high: float | None
    fnr: float | None
    fnr_ci_low: float | None
    fnr_ci_high: float | None
    accuracy: float | None
    accuracy_ci_low: float | None
    accuracy_ci_high: float | None
    auroc: float | None
    auroc_ci_low: float | None
    auroc_ci_high: float | None
    average_precision: float | None
    expected_cost: float | None
    expected_cost_ci_low: float | None
    expected_cost_ci_high: float | None
    # A regression model's (the fields above are a binary classifier's): None for a classifier.
    mae: float | None = None
    mae_ci_low: float | None = None
    mae_ci_high: float | None = None
    rmse: float | None = None
    rmse_ci_low: float | None = None
    rmse_ci_high: float | None = None
    mape: float | None = None
    mape_ci_low: float | None = None
    mape_ci_high: float | None = None


@dataclass(frozen=True, slots=True)
class OperationsRow(Row):
    """Latency, errors, fallbacks and cost; `route` None means all routes."""

    route: str | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    error_rate: float | None
    fallback_rate: float | None
    cost_per_1k: float | None
    tokens_per_request: float | None
    # The 95 % normal interval of cost_per_1k: 1000 · (mean ± z·s/√n) over each row's cost (0 when
    # absent), s with ddof 1, not floored — a mean of a few hundred heavy-tailed costs moves by chance.
    cost_per_1k_ci_low: float | None = None
    cost_per_1k_ci_high: float | None = None
    # The 95 % interval of latency_p95_ms: ± z·√(0.95·0.05/n) / f, f ≈ 0.02 / (p96 − p94).
    latency_p95_ms_ci_low: float | None = None
    latency_p95_ms_ci_high: float | None = None


@dataclass(frozen=True, slots=True)
class FeedRow(Row):
    """How long predictions have been silent as of T, all versions, in the window that holds T: the
    model's row (all traffic), then one per slice of the evaluated windows. `n` counts the
    evaluated windows' predictions; `last_prediction` is the latest timestamp among them (None
    when there is none) and `silence_s` is T minus it.

    `behind_s` is how long the model went on predicting after the row's last prediction (0 for
    the model's row): a slice whose traffic stopped while the rest flows. Once it is behind by a
    minute (or `stale_after`, if shorter), that silence is compared with 7 earlier days, or the
    slice's whole history (`operations._usual`): `usual_n` is the fewest predictions the slice had
    in those spans and `usual_gap_s` the longest it went without FEED_USUAL_MIN from a moment in
    them (at most `behind_s`). `unusual_s` is `behind_s` less `usual_gap_s` (all of `behind_s`
    before it is compared); None (not enough data) with nothing to compare with.

    `recent_n` counts the row's predictions in the hour up to the model's last prediction, and
    `fewest_n` / `most_n` the fewest and the most it had in that hour on each of the 7 days before
    (`operations.volume`); `volume_ratio` is recent_n over fewest_n when fewer, over most_n when
    more, else 1 — and 1 too when the count compared with is below VOLUME_USUAL_MIN; None
    without an earlier day."""

    last_prediction: datetime | None
    silence_s: float | None
    behind_s: float | None
    usual_n: int | None
    unusual_s: float | None
    usual_gap_s: float | None = None
    recent_n: int | None = None
    fewest_n: int | None = None
    most_n: int | None = None
    volume_ratio: float | None = None


@dataclass(frozen=True, slots=True)
class ReferenceInfo:
    """What the reference was and how many rows it holds.

    `complete` is false while its period is still open as of T (a range ending after T, a
    version's first days not yet over or not yet begun): nothing is measured against it then.
    """

    kind: str  # "range" | "files" | "version"
    description: str
    start: datetime | None
    end: datetime | None
    n: int
    complete: bool = True

    @property
    def note(self) -> str | None:
        """Why nothing is measured against the reference yet, when its period is still open."""
        if self.complete:
            return None
        until = "its first predictions arrive" if self.end is None else f"{self.end:%Y-%m-%d %H:%M} UTC"
        return f"reference period open until {until}: drift and data quality are measured once it is complete"

    def to_json(self) -> dict[str, Any]:
        return _as_json(self) | {"note": self.note}


@dataclass(frozen=True, slots=True)
class WindowInfo:
    """One evaluated window and its volume."""

    window_start: datetime
    window_end: datetime
    n: int

    def to_json(self) -> dict[str, Any]:
        return _as_json(self)
