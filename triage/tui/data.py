"""What the screens read and do, as one `DataSource` protocol and the immutable values it returns.

Screens never touch the store, the engine, the alerts or the runbook executor: a worker thread
calls a `DataSource` method and posts the result back to the UI thread. A snapshot is computed as
of a given time, so the same screens serve live mode, `--at` and replay. The real source
(`triage.tui.source.EngineSource`) is the only TUI module that imports those parts; this one stays
light, so the first screen paints before the engine has even been imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from triage.metrics.results import (
    CalibrationRow,
    DataQualityRow,
    DriftRow,
    OperationsRow,
    PerformanceRow,
    ReferenceInfo,
    WindowInfo,
)


@dataclass(frozen=True)
class ModelView:
    """One model's evaluated tables as of the snapshot time, plus what the screens need to label them."""

    name: str
    window: str
    threshold: float
    min_samples: int
    versions: tuple[str, ...]
    segments: tuple[str, ...]
    features: tuple[str, ...]
    cost_false_positive: float
    cost_false_negative: float
    reference: ReferenceInfo | None
    windows: tuple[WindowInfo, ...]
    drift: tuple[DriftRow, ...]
    data_quality: tuple[DataQualityRow, ...]
    calibration: tuple[CalibrationRow, ...]
    performance: tuple[PerformanceRow, ...]
    operations: tuple[OperationsRow, ...]
    reference_calibration: tuple[CalibrationRow, ...] = ()
    pending_labels: int = 0  # labels that arrived for settled windows and are not counted yet
    pending_windows: int = 0
    cost_segment: str | None = None  # the costs differ in some values of this segment
    last_prediction: datetime | None = None  # the latest prediction as of the snapshot
    stale_after_s: float | None = None  # the model's `stale_after`: a longer silence is stale
    task: str = "binary"  # `ModelConfig.task`: a regression model has errors, not precision


@dataclass(frozen=True)
class AlertView:
    """An alert instance as the screens show it.

    `scope` keys, each optional: version, feature, segment, segment_value, route.
    """

    fingerprint: str
    model: str
    rule: str
    signal: str  # "table.field", e.g. "drift.psi"
    severity: str  # "critical" | "warning"
    state: str  # "pending" | "firing" | "resolved"
    scope: Mapping[str, str]
    value: float | None
    threshold: float | None
    window_start: datetime | None
    window_end: datetime | None
    since: datetime | None
    n: int | None
    runbook: str | None  # "runbooks/name.md#step" as written in the rule
    acknowledged_by: str | None = None
    ack_note: str | None = None
    silenced_until: datetime | None = None
    evidence: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class RunbookRef:
    """A runbook file the palette can open."""

    name: str
    title: str


@dataclass(frozen=True)
class TimelineEvent:
    """Something that happened, for the Timeline: an alert state change, an ack, a silence, a runbook step."""

    at: datetime
    kind: str  # "alert" | "acknowledged" | "silenced" | "runbook"
    what: str  # "firing", "resolved", … or the step's outcome
    title: str  # the rule, or runbook#step
    detail: str  # scope and value, or the operator and response
    model: str | None = None
    fingerprint: str | None = None
    severity: str | None = None
    window_start: datetime | None = None
    signal: str | None = None  # an alert's signal (table.field): which panel shows it


@dataclass(frozen=True)
class Snapshot:
    """Everything the panels show, computed as of `as_of`; `quarantined` counts rows ingest refused."""

    as_of: datetime
    models: tuple[ModelView, ...]
    alerts: tuple[AlertView, ...]
    runbooks: tuple[RunbookRef, ...]
    quarantined: int = 0
    events: tuple[TimelineEvent, ...] = ()  # oldest first, up to as_of

    def model(self, name: str | None) -> ModelView | None:
        """The named model, or the first one when `name` is None or unknown."""
        for model in self.models:
            if model.name == name:
                return model
        return self.models[0] if self.models else None


@dataclass(frozen=True)
class Histogram:
    """Reference vs window shares per bin of one drift cell (bins as the PSI uses them)."""

    labels: tuple[str, ...]
    reference: tuple[float, ...]
    window: tuple[float, ...]


@dataclass(frozen=True)
class StepView:
    """One executable step of a runbook."""

    id: str
    title: str
    safety: str  # "read_only" | "reversible" | "destructive"
    target: str
    request: str  # "PATCH /apis/…" (template, before parameters are filled)


@dataclass(frozen=True)
class RunbookView:
    """A runbook: its Markdown for the human and its steps for the executor."""

    name: str
    title: str
    markdown: str
    steps: tuple[StepView, ...]
    step: str | None = None  # the step the alert's rule points at


@dataclass(frozen=True)
class DryRun:
    """The exact request a step would send (secrets redacted) and the phrase that confirms it."""

    step_id: str
    request: str
    confirmation: str | None  # typed phrase required for destructive steps
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StepOutcome:
    """What running a step did: the response, the verification and the audit records written."""

    step_id: str
    ok: bool
    summary: str
    verification: str
    audit: tuple[str, ...]


Progress = Callable[[str], None]


class DataSource(Protocol):
    """What the TUI needs from the rest of triage; every method may block and runs in a worker."""

    def snapshot(self, as_of: datetime) -> Snapshot:
        """All models, alerts and runbooks as of `as_of` (predictions and labels up to then)."""
        ...

    def ingest_new(self) -> int:
        """Ingest new files and rows of the configured logs; the number of new rows."""
        ...

    def prepare(self) -> None:
        """Build and keep what later snapshots would each build (seconds on a large store), after
        the first snapshot is on screen."""
        ...

    def histogram(self, model: str, cell: DriftRow, as_of: datetime) -> Histogram:
        """Reference vs window distribution of the drift cell `cell`."""
        ...

    def acknowledge(self, fingerprint: str, note: str) -> None:
        """Acknowledge an alert (who is the current user)."""
        ...

    def silence(self, fingerprint: str, until: datetime, note: str) -> None:
        """Silence an alert until `until`."""
        ...

    def runbook(self, ref: str) -> RunbookView:
        """The runbook `ref` ("name", "name#step" or a path as written in an alert rule)."""
        ...

    def dry_run(self, runbook: str, step: str, alert: AlertView | None) -> DryRun:
        """Render the step's request with parameters filled from the alert; nothing is sent."""
        ...

    def run_step(
        self, runbook: str, step: str, alert: AlertView | None, confirmation: str | None, progress: Progress
    ) -> StepOutcome:
        """Run one step (audited, verified); failures come back as an outcome, not an exception."""
        ...

    def interrupt(self) -> None:
        """Stop the store queries in flight: the app is closing and must not wait for them."""
        ...

    def close(self) -> None:
        """Release the store and any connections."""
        ...
