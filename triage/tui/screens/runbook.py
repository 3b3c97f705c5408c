"""Runbook: the Markdown for the human, the steps for the executor. Choosing a step shows its dry
run; running it asks for the typed confirmation of a destructive step, runs it in a worker with
progress, and shows the verification and the audit record. Failures are shown, never raised."""

from __future__ import annotations

from typing import Literal

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Container, VerticalScroll
from textual.widgets import DataTable, LoadingIndicator, Markdown, Static

from triage.printable import printable
from triage.tui import format as fmt
from triage.tui.actions import bindings
from triage.tui.data import AlertView, DryRun, RunbookView, Snapshot, StepOutcome
from triage.tui.messages import DryRunReady, RunbookLoaded, StepFinished, StepProgress
from triage.tui.screens.base import TriageScreen, refill
from triage.tui.screens.modals import PromptScreen
from triage.tui.widgets import cells
from triage.tui.widgets.table import PanelTable

SAFETY_STYLE = {"read_only": cells.OK, "reversible": "bold #d7af00", "destructive": cells.CRIT}


def dry_run_text(dry: DryRun) -> Group:
    """The exact request that would be sent, and what running it will ask for."""
    lines: list[Text] = [Text("DRY RUN — nothing has been sent", style="bold #5fafd7"), Text(dry.request)]
    if dry.params:
        params = ", ".join(f"{k}={printable(v)}" for k, v in dry.params.items())  # from the alert's scope
        lines.append(Text(f"parameters: {params}", style="dim"))
    if dry.confirmation:
        lines.append(Text(f"destructive: x asks you to type “{dry.confirmation}”", style="bold #d7af00"))
    else:
        lines.append(Text("x: run this step", style="dim"))
    return Group(*lines)


def outcome_text(outcome: StepOutcome, log: list[str]) -> Group:
    """The result of a run: verdict, verification, progress lines and audit records."""
    verdict = Text(
        ("✓ " if outcome.ok else "✗ ") + outcome.summary, style=cells.OK if outcome.ok else "bold #ff5f5f"
    )
    parts: list[Text] = [verdict]
    if outcome.verification:
        parts.append(Text(f"verification: {outcome.verification}"))
    parts.extend(Text(f"  {line}", style="dim") for line in log)
    if outcome.audit:
        parts.append(Text("audit record:", style="bold"))
        parts.extend(Text(f"  {record}", style="dim") for record in outcome.audit)
    return Group(*parts)


class RunbookScreen(TriageScreen):
    """A runbook opened from an alert (its parameters come from the alert) or from the palette."""

    PANEL = "Runbook"

    BINDINGS = bindings("runbook")

    def __init__(self, ref: str, alert: AlertView | None = None) -> None:
        super().__init__()
        self.ref = ref
        self.alert = alert
        self.view: RunbookView | None = None
        self.step: str | None = None
        self.dry: DryRun | None = None
        self.running = False
        self.lines: list[str] = []
        self.generation = 0

    def compose_body(self) -> ComposeResult:
        with Container(id="rb-body"):
            yield PanelTable(id="steps", cursor_type="row")
            with VerticalScroll(id="prose"):
                yield Markdown("", id="markdown")
            with VerticalScroll(id="rb-detail"):
                yield LoadingIndicator(id="rb-busy")
                yield Static("choose a step (enter) to see its dry run", id="detail")

    def on_mount(self) -> None:
        table = self.query_one("#steps", DataTable)
        for name in ("step", "safety", "what it does"):
            table.add_column(name, key=name)
        self.query_one("#rb-busy").display = False
        self.query_one("#rb-detail").display = False
        self.set_context(self.PANEL, self.ref, "loading…")
        self._load(self.ref)

    @work(thread=True, exclusive=True, exit_on_error=False, group="runbook")
    def _load(self, ref: str) -> None:
        try:
            view = self.triage.source.runbook(ref)
        except Exception as exc:
            self.post_message(RunbookLoaded(0, None, fmt.error_line(exc)))
            return
        self.post_message(RunbookLoaded(0, view, None))

    @on(RunbookLoaded)
    def _loaded(self, message: RunbookLoaded) -> None:
        with self.app.batch_update():
            if message.runbook is None:
                self.set_context(self.PANEL, self.ref, "could not be opened")
                self.query_one("#markdown", Markdown).update(
                    f"**Could not open `{self.ref}`:** {message.error}"
                )
                return
            self.view = view = message.runbook
            self.query_one("#markdown", Markdown).update(view.markdown)
            rows = [
                (s.id, [s.id, Text(s.safety, style=SAFETY_STYLE.get(s.safety, "")), s.title])
                for s in view.steps
            ]
            table = self.query_one("#steps", DataTable)
            refill(table, rows)
            ids = [s.id for s in view.steps]
            if view.step in ids:
                table.move_cursor(row=ids.index(view.step))
            table.focus()
            self._show_context()

    def _show_context(self) -> None:
        title = self.view.title if self.view else self.ref
        alert = (
            f"for {self.alert.rule} ({self.alert.fingerprint[:8]})"
            if self.alert
            else "no alert: fill parameters"
        )
        self.set_context(self.PANEL, title, alert)

    def render_snapshot(self, snapshot: Snapshot) -> None:
        if self.alert is not None:
            fresh = next((a for a in snapshot.alerts if a.fingerprint == self.alert.fingerprint), None)
            self.alert = fresh or self.alert
        self._show_context()

    def _show_detail(self, renderable: Group | Text | str) -> None:
        with self.app.batch_update():
            self.query_one("#rb-detail").display = True
            if not self.wide:
                self.query_one("#prose").display = False
            self.query_one("#detail", Static).update(renderable)

    def action_toggle_prose(self) -> None:
        """Switch the lower area between the runbook text and the step detail."""
        prose = self.query_one("#prose")
        prose.display = not prose.display
        if not self.wide:
            self.query_one("#rb-detail").display = not prose.display

    def _cursor_step(self) -> str | None:
        table = self.query_one("#steps", DataTable)
        if not table.row_count:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    @on(DataTable.RowSelected, "#steps")
    def action_choose(self) -> None:
        """Dry-run the step under the cursor."""
        step = self._cursor_step()
        if step is None or self.running:
            return
        self.step, self.dry = step, None
        self.generation += 1
        self._show_detail(Text(f"rendering the request of {step}…", style="dim"))
        self._dry_run(self.generation, step, self.alert)

    @work(thread=True, exclusive=True, exit_on_error=False, group="dry-run")
    def _dry_run(self, generation: int, step: str, alert: AlertView | None) -> None:
        try:
            dry = self.triage.source.dry_run(self.ref, step, alert)
        except Exception as exc:
            self.post_message(DryRunReady(generation, step, None, fmt.error_line(exc)))
            return
        self.post_message(DryRunReady(generation, step, dry, None))

    @on(DryRunReady)
    def _dry_run_ready(self, message: DryRunReady) -> None:
        if message.generation != self.generation:
            return
        if message.dry_run is None:
            self._show_detail(
                Text(f"✗ dry run of {message.step_id} failed: {message.error}", style="bold #ff5f5f")
            )
            return
        self.dry = message.dry_run
        self._show_detail(dry_run_text(message.dry_run))

    def action_run(self) -> None:
        """Run the dry-run step: destructive steps first ask for the typed phrase."""
        if self.running:
            self.notify("A step is already running.", severity="warning")
            return
        if self.dry is None or self.dry.step_id != self._cursor_step():
            self.action_choose()
            self.notify("Review the dry run, then press x to run it.")
            return
        dry = self.dry
        if dry.confirmation is None:
            self._start(dry.step_id, None)
            return

        def confirmed(answer: str | None) -> None:
            if answer is not None:
                self._start(dry.step_id, answer)

        question = f"This step is destructive. Type “{dry.confirmation}” to run {dry.step_id}:"
        self.app.push_screen(PromptScreen("Confirm", question, expected=dry.confirmation), confirmed)

    def _start(self, step: str, confirmation: str | None) -> None:
        self.running = True
        self.lines = []
        self.generation += 1
        self.query_one("#rb-busy").display = True
        self._show_detail(Text(f"running {step}… (the rest of triage keeps working)", style="bold"))
        self._run(self.generation, step, confirmation, self.alert)

    @work(thread=True, exit_on_error=False, group="step")
    def _run(self, generation: int, step: str, confirmation: str | None, alert: AlertView | None) -> None:
        def progress(line: str) -> None:
            self.post_message(StepProgress(generation, line))

        try:
            outcome = self.triage.source.run_step(self.ref, step, alert, confirmation, progress)
        except Exception as exc:
            outcome = StepOutcome(step, False, f"failed: {fmt.error_line(exc)}", "", ())
        self.post_message(StepFinished(generation, outcome))
        severity: Literal["information", "error"] = "information" if outcome.ok else "error"
        self.app.notify(f"{step}: {outcome.summary}", title="Runbook step", severity=severity, markup=False)

    @on(StepProgress)
    def _progress(self, message: StepProgress) -> None:
        if message.generation != self.generation:
            return
        self.lines.append(message.line)
        lines = [Text(f"running {self.step}…", style="bold"), *(Text(f"  {line}") for line in self.lines)]
        self._show_detail(Group(*lines))

    @on(StepFinished)
    def _finished(self, message: StepFinished) -> None:
        if message.generation != self.generation:
            return
        self.running = False
        self.dry = None
        with self.app.batch_update():
            self.query_one("#rb-busy").display = False
            self._show_detail(outcome_text(message.outcome, self.lines))
