"""Messages workers post to the UI thread. Each carries the generation it was started for, so a
handler drops a result that a newer request has superseded."""

from __future__ import annotations

from datetime import datetime

from textual.message import Message

from triage.tui.data import DryRun, Histogram, RunbookView, Snapshot, StepOutcome


class SnapshotLoaded(Message):
    """A snapshot finished computing; `problem` is a non-fatal trouble on the way (a failed ingest)."""

    def __init__(
        self,
        generation: int,
        snapshot: Snapshot,
        finished: datetime,
        problem: str | None,
        cached: bool = False,
    ) -> None:
        super().__init__()
        self.generation = generation
        self.snapshot = snapshot
        self.finished = finished
        self.problem = problem
        self.cached = cached  # the last session's snapshot, shown until the fresh one arrives


class SnapshotFailed(Message):
    """Computing a snapshot failed; `error` is one line for the status line."""

    def __init__(self, generation: int, error: str) -> None:
        super().__init__()
        self.generation = generation
        self.error = error


class HistogramLoaded(Message):
    """A drift cell's histogram, or why it could not be computed."""

    def __init__(self, generation: int, histogram: Histogram | None, error: str | None) -> None:
        super().__init__()
        self.generation = generation
        self.histogram = histogram
        self.error = error


class AlertChanged(Message):
    """An acknowledge or silence finished (error None) or failed."""

    def __init__(self, fingerprint: str, what: str, error: str | None) -> None:
        super().__init__()
        self.fingerprint = fingerprint
        self.what = what
        self.error = error


class RunbookLoaded(Message):
    """A runbook was read and parsed, or why not."""

    def __init__(self, generation: int, runbook: RunbookView | None, error: str | None) -> None:
        super().__init__()
        self.generation = generation
        self.runbook = runbook
        self.error = error


class DryRunReady(Message):
    """A step's dry run, or why it could not be rendered."""

    def __init__(self, generation: int, step_id: str, dry_run: DryRun | None, error: str | None) -> None:
        super().__init__()
        self.generation = generation
        self.step_id = step_id
        self.dry_run = dry_run
        self.error = error


class StepProgress(Message):
    """A progress line from a running step."""

    def __init__(self, generation: int, line: str) -> None:
        super().__init__()
        self.generation = generation
        self.line = line


class StepFinished(Message):
    """A step finished; `outcome.ok` False covers every failure, including exceptions."""

    def __init__(self, generation: int, outcome: StepOutcome) -> None:
        super().__init__()
        self.generation = generation
        self.outcome = outcome
