"""Runs runbook steps against configured targets, safely and with an audit trail.

Three calls, each usable from a worker thread of the TUI (none touches a terminal):

1. `Executor.plan(...)` — no network. Validates the parameters, renders the exact request
   with secrets redacted (values captured at run time show as `{name}`), the dry-run text and
   the confirmation phrase a destructive step needs. Raises `PlanError` for user mistakes.
2. `Executor.prepare(plan)` — read-only GETs: the cooldown check, each precondition GET and
   its captures, and the no-op check (a step whose verified state already holds is not run).
   Returns the fully rendered request, or an early `StepResult` saying why it stops.
3. `Executor.execute(prepared, confirmation=...)` — the call itself: cooldown re-checked and
   the `before` audit record written under one lock, the request sent with retries, the
   verification polled, the `after` record written. Never raises for HTTP failures.

`run_step` does 2 and 3 for callers with nothing to show in between. Progress is reported to
an optional callback as `ProgressEvent`s.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import random
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from triage.config import Target
from triage.runbooks import audit as outcomes
from triage.runbooks.audit import AuditLog
from triage.runbooks.client import (
    Attempt,
    CallResult,
    Clock,
    RetryPolicy,
    SystemClock,
    TargetClient,
    tls_context,
    tls_description,
)
from triage.runbooks.format import Runbook, Step
from triage.runbooks.redact import MASK, CredentialError, Redactor, credentials
from triage.runbooks.template import MISSING, all_hold, lookup, placeholder, render_text, render_value

# Outcomes a step can have besides those recorded in the audit log.
DEDUPED = "deduped"
PRECONDITION_FAILED = "precondition_failed"
UNCONFIRMED = "unconfirmed"
SUCCESS_OUTCOMES = (outcomes.OK, outcomes.NOOP)


class PlanError(Exception):
    """A mistake in what was asked (unknown step, bad parameter, no such target); one line."""


@dataclass(frozen=True)
class AlertContext:
    """The alert a step runs for: its fingerprint (the dedupe key) and values that fill params."""

    fingerprint: str
    values: Mapping[str, str] = field(default_factory=dict)  # model, version, segment …
    clock_at: datetime | None = None  # the time the screens showed, when it is not now (a demo)


@dataclass(frozen=True)
class ProgressEvent:
    """Something the executor is doing, for a status line; already redacted."""

    step: str
    kind: str  # "read" | "request" | "retry" | "verify" | "done"
    message: str


ProgressCallback = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class RenderedRequest:
    """A request as it will be sent, secrets redacted."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: Any = None

    def text(self) -> str:
        """The request as an HTTP-like block of text."""
        lines = [f"{self.method} {self.url}", *(f"{k}: {v}" for k, v in self.headers.items())]
        if self.body is not None:
            lines += ["", json.dumps(self.body, indent=2)]
        return "\n".join(lines)

    def record(self) -> dict[str, Any]:
        """The request as a JSON-able mapping, for the audit log."""
        return {"method": self.method, "url": self.url, "headers": dict(self.headers), "body": self.body}


@dataclass(frozen=True)
class Verification:
    """How the verification polling ended; `observed` is each condition's path → last value."""

    passed: bool
    polls: int
    observed: Mapping[str, Any]
    failures: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepResult:
    """What running one step came to; `captured` feeds the step's undo."""

    runbook: str
    step: str
    safety: str
    outcome: str  # audit outcomes, DEDUPED, PRECONDITION_FAILED or UNCONFIRMED
    message: str
    status: int | None = None
    attempts: tuple[Attempt, ...] = ()
    verification: Verification | None = None
    captured: Mapping[str, Any] = field(default_factory=dict)
    response: Any = None  # the decoded, redacted response body
    audit_id: str | None = None

    @property
    def ok(self) -> bool:
        """The wanted state holds: the step succeeded or had nothing to do."""
        return self.outcome in SUCCESS_OUTCOMES


@dataclass(frozen=True)
class Plan:
    """A step ready for a dry run; see the module docstring."""

    runbook: Runbook
    step: Step
    target: Target
    values: Mapping[str, Any]
    alert: AlertContext | None
    dedupe_key: str
    confirmation: str | None  # the phrase to type; None when the step needs none
    request: RenderedRequest
    redactor: Redactor
    is_undo: bool = False

    @property
    def params(self) -> dict[str, Any]:
        """The step's parameter values."""
        return {name: self.values[name] for name in self.step.params}

    def dry_run(self) -> str:
        """Everything the step will do, as text for a person; secrets redacted."""
        step = self.step
        cooldown = "none" if step.safety == "read_only" or not step.cooldown_s else f"{step.cooldown_s:g} s"
        lines = [
            f"Runbook {self.runbook.name} (sha256 {self.runbook.sha256[:12]}) · step {step.id}: "
            f"{render_text(step.title, self.values)}",
            f"Safety: {step.safety} · target {self.target.name} ({self.target.base_url}, "
            f"{tls_description(self.target)}, timeout {self.target.timeout_s:g} s) · cooldown {cooldown}",
            f"Alert: {self.alert.fingerprint if self.alert else 'none (dedupe on the parameters)'}",
        ]
        if self.params:
            lines.append("Params: " + " ".join(f"{k}={v}" for k, v in self.params.items()))
        for read in step.preconditions:
            lines.append(f"Before: GET {self.target.base_url}{render_text(read.get, self.values, url=True)}")
            lines += [f"  require {c.render(self.values).describe()}" for c in read.expect]
            lines += [f"  capture {name} = {path}" for name, path in read.capture.items()]
        lines += ["Request:", *("  " + line for line in self.request.text().splitlines())]
        if step.verify is not None:
            verify = step.verify
            lines.append(
                f"Verify: GET {self.target.base_url}{render_text(verify.get, self.values, url=True)} "
                f"every {verify.interval_s:g} s for up to {verify.timeout_s:g} s until"
            )
            lines += [f"  {c.render(self.values).describe()}" for c in verify.expect]
            if step.safety != "read_only":
                lines.append("  (if this already holds, the step is skipped as a no-op)")
        if step.undo is not None:
            undo_values = {**self.values, **{n: placeholder(n) for n in step.undo.captured_names()}}
            path = render_text(step.undo.request.path, undo_values, url=True)
            lines.append(f"Undo: {step.undo.request.method} {self.target.base_url}{path}")
        if self.confirmation is not None:
            lines.append(f"Destructive: type {self.confirmation!r} to confirm")
        return self.redactor.text("\n".join(lines))


@dataclass(frozen=True)
class Prepared:
    """A plan after its read-only checks: the exact request, or the reason it stops (`early`)."""

    plan: Plan
    values: Mapping[str, Any]
    before_state: Mapping[str, Any]
    request: RenderedRequest
    early: StepResult | None = None


def default_operator(env: Mapping[str, str]) -> str:
    """Who is acting: $TRIAGE_OPERATOR, else user@host."""
    if env.get("TRIAGE_OPERATOR"):
        return env["TRIAGE_OPERATOR"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _auth_preview(target: Target) -> dict[str, str]:
    scheme = {"bearer": "Bearer", "basic": "Basic"}.get(target.auth.type)
    return {"Authorization": f"{scheme} {MASK}"} if scheme else {}


def _jsonable(value: Any) -> Any:
    return None if value is MISSING else value


class Executor:
    """Plans and runs runbook steps against `targets`, recording every call in `audit`."""

    def __init__(
        self,
        targets: Mapping[str, Target],
        audit: AuditLog,
        *,
        operator: str | None = None,
        env: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.targets = dict(targets)
        self.audit = audit
        self.env = dict(os.environ if env is None else env)
        self.operator = operator or default_operator(self.env)
        self.retry = retry or RetryPolicy()
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        secrets: list[str] = []
        for target in self.targets.values():
            try:
                secrets += credentials(target, self.env).redactor.secrets
            except CredentialError:
                continue  # reported when a step uses that target
        self.redactor = Redactor(tuple(secrets))
        self._tls: dict[str, ssl.SSLContext | bool] = {}

    # -- 1. plan ---------------------------------------------------------------------------

    def plan(
        self,
        runbook: Runbook,
        step_id: str,
        *,
        params: Mapping[str, str] | None = None,
        alert: AlertContext | None = None,
        undo: bool = False,
        captured: Mapping[str, Any] | None = None,
    ) -> Plan:
        """Validate and render one step (or its undo) without any network; raise PlanError."""
        try:
            return self._plan(runbook, step_id, dict(params or {}), alert, undo, captured)
        except PlanError as exc:
            raise PlanError(self.redactor.text(str(exc))) from None

    def _plan(
        self,
        runbook: Runbook,
        step_id: str,
        given: dict[str, str],
        alert: AlertContext | None,
        undo: bool,
        captured: Mapping[str, Any] | None,
    ) -> Plan:
        try:
            original = runbook.step(step_id)
        except KeyError as exc:
            raise PlanError(str(exc.args[0])) from None
        declared = {name for step in runbook.steps for name in step.params}
        unknown = sorted(set(given) - declared)
        if unknown:
            raise PlanError(
                f"runbook {runbook.name} has no parameter {unknown[0]!r} "
                f"(it takes: {', '.join(sorted(declared))})"
            )
        target = self.targets.get(original.target)
        if target is None:
            configured = ", ".join(sorted(self.targets)) or "none"
            raise PlanError(
                f"step {original.id} calls target {original.target!r}, which is not in triage.toml "
                f"(add [targets.{original.target}]; configured: {configured})"
            )
        alert_key = alert.fingerprint if alert else ""
        step, earlier = original, dict[str, Any]()
        if undo:
            if original.undo is None:
                raise PlanError(f"step {original.id} of {runbook.name} has no undo")
            used_params, earlier = self._undo_source(runbook, original, alert_key, given, captured)
            given = {**{k: str(v) for k, v in used_params.items() if k in original.params}, **given}
            step = original.undo
        values: dict[str, Any] = {
            "operator": self.operator,
            "alert": alert_key,
            "runbook": runbook.name,
            "step": step.id,
        }
        values |= self._params(step, given, alert)
        values |= earlier
        for name in step.captured_names():
            values[name] = placeholder(name)
        params_only = {name: values[name] for name in step.params}
        confirmation = None
        if original.safety == "destructive" and not undo:
            template = step.confirm or " ".join("{" + name + "}" for name in step.params) or step.id
            confirmation = render_text(template, values)
        return Plan(
            runbook=runbook,
            step=step,
            target=target,
            values=values,
            alert=alert,
            dedupe_key=self._dedupe_key(runbook, step, alert_key, params_only),
            confirmation=confirmation,
            request=self._render(step, target, values, _auth_preview(target)),
            redactor=self.redactor,
            is_undo=undo,
        )

    def _params(self, step: Step, given: Mapping[str, str], alert: AlertContext | None) -> dict[str, Any]:
        values: dict[str, Any] = {}
        missing = []
        for name, spec in step.params.items():
            if name in given:
                text: str | None = given[name]
            elif spec.source and alert is not None and spec.source in alert.values:
                text = alert.values[spec.source]
            else:
                text = spec.default
            if text is None:
                missing.append(name)
                continue
            try:
                values[name] = spec.coerce(text)
            except ValueError as exc:
                raise PlanError(f"parameter {exc}") from None
        if missing:
            hints = ", ".join(
                f"{n} (from alert {step.params[n].source})" if step.params[n].source else n for n in missing
            )
            raise PlanError(f"step {step.id} needs --param for: {hints}")
        return values

    def _undo_source(
        self,
        runbook: Runbook,
        step: Step,
        alert: str,
        given: Mapping[str, str],
        captured: Mapping[str, Any] | None,
    ) -> tuple[Mapping[str, Any], dict[str, Any]]:
        """Params and captures of the run being undone: passed in, or its latest audit entry."""
        if captured is not None:
            return {}, dict(captured)
        for entry in reversed(self.audit.read().entries):
            same_step = entry.runbook == runbook.name and entry.step == step.id and entry.alert == alert
            matches = all(str(entry.params.get(k)) == v for k, v in given.items() if k in step.params)
            if same_step and matches and entry.outcome in (outcomes.OK, outcomes.VERIFY_FAILED):
                state = dict(entry.before_state) | dict(entry.after_state.get("captured", {}))
                return entry.params, state
        who = f"alert {alert}" if alert else "these parameters"
        raise PlanError(
            f"nothing to undo: no completed run of {runbook.name}#{step.id} for {who} in the audit log"
        )

    @staticmethod
    def _dedupe_key(runbook: Runbook, step: Step, alert: str, params: Mapping[str, Any]) -> str:
        if alert:
            return f"{runbook.name}#{step.id}@{alert}"
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        return f"{runbook.name}#{step.id}@params:{digest}"

    def _render(
        self, step: Step, target: Target, values: Mapping[str, Any], auth: Mapping[str, str]
    ) -> RenderedRequest:
        request = step.request
        headers = {"Accept": "application/json", **target.headers}
        headers |= {k: render_text(v, values) for k, v in request.headers.items()}
        body = None if request.body is None else render_value(request.body, values)
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        headers |= auth
        url = target.base_url + render_text(request.path, values, url=True)
        redact = self.redactor
        return RenderedRequest(request.method, redact.text(url), redact.value(headers), redact.value(body))

    # -- 2. prepare ------------------------------------------------------------------------

    def prepare(self, plan: Plan, on_progress: ProgressCallback | None = None) -> Prepared:
        """Run the step's read-only checks; see the module docstring. Never raises for HTTP failures."""
        step = plan.step
        notify = self._notifier(step, on_progress)

        def stop(outcome: str, message: str, **extra: Any) -> Prepared:
            result = self._result(plan, outcome, message, **extra)
            notify("done", result.message)
            return Prepared(plan, plan.values, {}, plan.request, result)

        if step.safety != "read_only" and step.cooldown_s:
            earlier = self._recent(plan)
            if earlier is not None:
                return stop(DEDUPED, earlier)
        try:
            client = self._client(plan.target)
        except (CredentialError, OSError, ssl.SSLError) as exc:
            return stop(outcomes.REFUSED, self.redactor.text(str(exc)))
        values = dict(plan.values)
        before: dict[str, Any] = {}
        checks: list[tuple[Any, Any]] = []
        with client:
            for read in step.preconditions:
                path = render_text(read.get, values, url=True)
                notify("read", f"GET {client.url(path)}")
                result = client.call("GET", path, notify=lambda m: notify("retry", m))
                if not result.ok:
                    return stop(
                        *self._failure(result, f"precondition GET {result.url}"), status=result.status
                    )
                for name, capture_path in read.capture.items():
                    found = lookup(result.body, render_text(capture_path, values))
                    if found is MISSING:
                        return stop(
                            PRECONDITION_FAILED,
                            f"cannot capture {name}: nothing at "
                            f"{render_text(capture_path, values)} in {result.url}",
                        )
                    values[name] = before[name] = found
                checks.append((read, result.body))
            if step.verify is not None and step.safety != "read_only":
                holds, observed = self._holds_now(client, step, values)
                if holds:
                    message = "already in the wanted state; nothing to do: " + ", ".join(
                        f"{k} = {v!r}" for k, v in observed.items()
                    )
                    self.audit.note(
                        runbook=plan.runbook.name,
                        runbook_sha256=plan.runbook.sha256,
                        step=step.id,
                        safety=step.safety,
                        alert=plan.alert.fingerprint if plan.alert else "",
                        clock_at=plan.alert.clock_at if plan.alert else None,
                        dedupe_key=plan.dedupe_key,
                        operator=self.operator,
                        params=plan.params,
                        outcome=outcomes.NOOP,
                        before_state=before,
                        message=message,
                        redactor=self.redactor,
                    )
                    return stop(outcomes.NOOP, message, captured=before)
            for read, body in checks:
                passed, failures = all_hold([c.render(values) for c in read.expect], body)
                if not passed:
                    return stop(
                        PRECONDITION_FAILED, "precondition failed: " + "; ".join(failures), captured=before
                    )
        request = self._render(step, plan.target, values, _auth_preview(plan.target))
        return Prepared(plan, values, before, request)

    def _recent(self, plan: Plan) -> str | None:
        """Why the step must not run again yet, if an earlier run is within its cooldown."""
        now = datetime.now(UTC)
        for entry in reversed(self.audit.read().entries):
            if entry.dedupe_key != plan.dedupe_key or not entry.may_have_applied:
                continue
            age = (now - entry.started_at).total_seconds()
            if age < plan.step.cooldown_s:
                return (
                    f"already run for this {'alert' if plan.alert else 'set of parameters'} "
                    f"by {entry.operator} "
                    f"at {entry.started_at:%Y-%m-%d %H:%M:%S} UTC ({entry.outcome_text}); "
                    f"cooldown ends in {plan.step.cooldown_s - age:.0f} s"
                )
            return None
        return None

    def _holds_now(
        self, client: TargetClient, step: Step, values: Mapping[str, Any]
    ) -> tuple[bool, dict[str, Any]]:
        assert step.verify is not None
        result = client.call("GET", render_text(step.verify.get, values, url=True))
        if not result.ok:
            return False, {}
        conditions = [c.render(values) for c in step.verify.expect]
        holds, _ = all_hold(conditions, result.body)
        return holds, {c.path: _jsonable(lookup(result.body, c.path)) for c in conditions}

    # -- 3. execute ------------------------------------------------------------------------

    def execute(
        self,
        prepared: Prepared,
        *,
        confirmation: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> StepResult:
        """Send the prepared request (see the module docstring); never raises for HTTP failures."""
        plan, step = prepared.plan, prepared.plan.step
        if prepared.early is not None:
            return prepared.early
        notify = self._notifier(step, on_progress)
        if plan.confirmation is not None and confirmation != plan.confirmation:
            result = self._result(
                plan, UNCONFIRMED, f"not run: type {plan.confirmation!r} to confirm this destructive step"
            )
            notify("done", result.message)
            return result
        try:
            client = self._client(plan.target)
        except (CredentialError, OSError, ssl.SSLError) as exc:
            return self._result(plan, outcomes.REFUSED, self.redactor.text(str(exc)))
        values = prepared.values
        with client:
            entry_id, blocking = self.audit.begin(
                runbook=plan.runbook.name,
                runbook_sha256=plan.runbook.sha256,
                step=step.id,
                safety=step.safety,
                alert=plan.alert.fingerprint if plan.alert else "",
                clock_at=plan.alert.clock_at if plan.alert else None,
                dedupe_key=plan.dedupe_key,
                operator=self.operator,
                params=plan.params,
                request=prepared.request.record(),
                redactor=self.redactor,
                cooldown_s=step.cooldown_s if step.safety != "read_only" and step.cooldown_s else None,
            )
            if entry_id is None:
                assert blocking is not None
                message = (
                    f"not run: already run by {blocking.operator} at "
                    f"{blocking.started_at:%H:%M:%S} UTC ({blocking.outcome_text})"
                )
                notify("done", message)
                return self._result(plan, DEDUPED, message)
            notify("request", f"{prepared.request.method} {prepared.request.url}")
            body = None if step.request.body is None else render_value(step.request.body, values)
            headers = {k: render_text(v, values) for k, v in step.request.headers.items()}
            path = render_text(step.request.path, values, url=True)
            call = client.call(step.request.method, path, headers, body, notify=lambda m: notify("retry", m))
            result = self._finish(plan, prepared, client, call, notify)
            self.audit.finish(
                entry_id,
                outcome=result.outcome,
                status=result.status,
                attempts=len(result.attempts),
                verified=None if result.verification is None else result.verification.passed,
                before_state=prepared.before_state,
                after_state={
                    "captured": {k: v for k, v in result.captured.items() if k in step.capture},
                    "observed": dict(result.verification.observed) if result.verification else {},
                },
                message=result.message,
                may_have_applied=self._may_have_applied(result, call),
                redactor=self.redactor,
            )
        notify("done", result.message)
        return replace(result, audit_id=entry_id)

    def _finish(
        self,
        plan: Plan,
        prepared: Prepared,
        client: TargetClient,
        call: CallResult,
        notify: Callable[[str, str], None],
    ) -> StepResult:
        step = plan.step
        common: dict[str, Any] = {"status": call.status, "attempts": call.attempts, "response": call.body}
        captured = dict(prepared.before_state)
        if call.status == 409 and not call.refused:
            if (
                call.ambiguous
                and step.verify is not None
                and self._holds_now(client, step, prepared.values)[0]
            ):
                # An earlier attempt was applied but its answer was lost; the 409 is our own change.
                return self._result(
                    plan, outcomes.OK, "applied by an earlier attempt (its answer was lost)", **common
                )
            detail = call.body.get("message") if isinstance(call.body, dict) else None
            message = "someone changed it first (HTTP 409 Conflict): re-run the step to act on the new state"
            return self._result(
                plan, outcomes.CONFLICT, message + (f" — {detail}" if detail else ""), **common
            )
        if not call.ok:
            outcome, message = self._failure(call, f"{call.method} {call.url}")
            return self._result(plan, outcome, message, captured=captured, **common)
        values = dict(prepared.values)
        for name, path in step.capture.items():
            found = lookup(call.body, render_text(path, values))
            values[name] = captured[name] = _jsonable(found)
        if step.verify is None:
            shown = ", ".join(f"{k} = {v!r}" for k, v in captured.items())
            return self._result(
                plan,
                outcomes.OK,
                f"HTTP {call.status}" + (f": {shown}" if shown else ""),
                captured=captured,
                **common,
            )
        verification = self._poll(client, step, values, notify)
        if verification.passed:
            shown = ", ".join(f"{k} = {v!r}" for k, v in verification.observed.items())
            message = f"HTTP {call.status}; verified after {verification.polls} poll(s): {shown}"
            return self._result(
                plan, outcomes.OK, message, captured=captured, verification=verification, **common
            )
        message = f"HTTP {call.status} but not verified within {step.verify.timeout_s:g} s: " + "; ".join(
            verification.failures
        )
        return self._result(
            plan, outcomes.VERIFY_FAILED, message, captured=captured, verification=verification, **common
        )

    def _poll(
        self, client: TargetClient, step: Step, values: Mapping[str, Any], notify: Callable[[str, str], None]
    ) -> Verification:
        """GET the verification URL every interval until its conditions hold or time runs out."""
        verify = step.verify
        assert verify is not None
        conditions = [c.render(values) for c in verify.expect]
        path = render_text(verify.get, values, url=True)
        deadline = self.clock.monotonic() + verify.timeout_s
        polls = 0
        while True:
            polls += 1
            result = client.call("GET", path)
            observed: dict[str, Any] = {}
            if result.ok:
                passed, failures = all_hold(conditions, result.body)
                observed = {c.path: _jsonable(lookup(result.body, c.path)) for c in conditions}
                if passed:
                    return Verification(True, polls, observed)
            else:
                failures = [self._failure(result, f"verification GET {result.url}")[1]]
            if self.clock.monotonic() + verify.interval_s > deadline:
                return Verification(False, polls, observed, tuple(failures))
            notify("verify", f"poll {polls}: " + "; ".join(failures))
            self.clock.sleep(verify.interval_s)

    def run_step(
        self, plan: Plan, *, confirmation: str | None = None, on_progress: ProgressCallback | None = None
    ) -> StepResult:
        """prepare + execute."""
        return self.execute(
            self.prepare(plan, on_progress), confirmation=confirmation, on_progress=on_progress
        )

    def unknown_outcomes(self) -> list[outcomes.AuditEntry]:
        """Audit entries whose run died between its before and after records."""
        return self.audit.unfinished()

    # -- helpers ---------------------------------------------------------------------------

    def _client(self, target: Target) -> TargetClient:
        if target.name not in self._tls:
            self._tls[target.name] = tls_context(target)  # loading CAs takes ~50 ms: once per target
        return TargetClient(
            target,
            credentials(target, self.env),
            self.redactor,
            verify=self._tls[target.name],
            retry=self.retry,
            clock=self.clock,
            rng=self.rng,
        )

    def _notifier(self, step: Step, callback: ProgressCallback | None) -> Callable[[str, str], None]:
        def notify(kind: str, message: str) -> None:
            if callback is not None:
                callback(ProgressEvent(step.id, kind, self.redactor.text(message)))

        return notify

    @staticmethod
    def _failure(call: CallResult, what: str) -> tuple[str, str]:
        """(outcome, message) of a call that did not succeed."""
        if call.refused:
            return outcomes.REFUSED, f"{what}: {call.error}"
        if call.error is not None:
            tries = f" after {len(call.attempts)} attempt(s)" if len(call.attempts) > 1 else ""
            return outcomes.FAILED, f"{what} failed{tries}: {call.error}"
        assert call.status is not None
        detail = ""
        if isinstance(call.body, dict):
            detail = str(call.body.get("message") or call.body.get("error_code") or "")
        elif isinstance(call.body, str):
            detail = call.body[:200]
        outcome = outcomes.REJECTED if 400 <= call.status < 500 else outcomes.FAILED
        tries = f" after {len(call.attempts)} attempts" if len(call.attempts) > 1 else ""
        return outcome, f"{what} answered HTTP {call.status}{tries}" + (f": {detail}" if detail else "")

    @staticmethod
    def _may_have_applied(result: StepResult, call: CallResult) -> bool:
        if result.outcome in (outcomes.OK, outcomes.VERIFY_FAILED):
            return True
        if call.ambiguous:
            return True
        if result.outcome in (outcomes.CONFLICT, outcomes.REJECTED, outcomes.REFUSED):
            return False
        return call.status is not None and call.status >= 500

    def _result(self, plan: Plan, outcome: str, message: str, **extra: Any) -> StepResult:
        return StepResult(
            runbook=plan.runbook.name,
            step=plan.step.id,
            safety=plan.step.safety,
            outcome=outcome,
            message=self.redactor.text(message),
            **extra,
        )
