"""`triage runbook list|show|run`, `triage audit` and `triage control-plane`.

Exit status of `runbook run`: 0 every step succeeded or had nothing to do, 1 a step failed
(rejected, conflict, failed, not verified, refused), 3 a step was not run (within its cooldown,
not confirmed, precondition not met), 2 a usage mistake.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from triage.cli import UserError
from triage.config import Config, load_config
from triage.printable import printable
from triage.runbooks import audit as outcomes
from triage.runbooks.audit import AuditEntry, AuditLog
from triage.runbooks.executor import (
    DEDUPED,
    PRECONDITION_FAILED,
    UNCONFIRMED,
    AlertContext,
    Executor,
    Plan,
    PlanError,
    ProgressEvent,
    StepResult,
)
from triage.runbooks.format import Runbook, RunbookError, find_runbook, load_runbook, runbook_paths
from triage.runbooks.simulator import ControlPlane, Faults

EXIT_FAILED = 1
EXIT_NOT_RUN = 3
NOT_RUN = (DEDUPED, PRECONDITION_FAILED, UNCONFIRMED)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("runbook", help="list, show and run executable runbooks")
    actions = parser.add_subparsers(dest="runbook_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="the runbooks in the runbooks folder").set_defaults(handler=run_list)
    show = actions.add_parser("show", help="a runbook's steps, requests and checks")
    show.add_argument("name", help="runbook name (file name without .md)")
    show.set_defaults(handler=run_show)
    run = actions.add_parser(
        "run",
        help="run a runbook (all steps in order) or one step",
        description="Dry-run, confirm, call, verify and audit runbook steps. Exit status: 0 done or "
        "nothing to do, 1 failed, 3 not run (cooldown, not confirmed, precondition), 2 usage.",
    )
    run.add_argument(
        "name",
        metavar="NAME[#STEP]",
        help="runbook, optionally one step: kserve-canary-traffic#shift-traffic",
    )
    run.add_argument(
        "--alert",
        metavar="FINGERPRINT",
        help="the alert this is for: its model and scope fill params; dedupe key and audit",
    )
    run.add_argument(
        "--param", action="append", default=[], metavar="K=V", help="a step parameter (repeatable)"
    )
    run.add_argument("--dry-run", action="store_true", help="print what would be sent and stop")
    run.add_argument(
        "--confirm",
        metavar="PHRASE",
        help="the phrase a destructive step asks for (required without a terminal)",
    )
    run.add_argument(
        "--undo", action="store_true", help="run the undo of STEP, using the values its last run recorded"
    )
    run.set_defaults(handler=run_run)

    audit = subparsers.add_parser("audit", help="the audit log of runbook steps, newest last")
    audit.add_argument(
        "--limit", type=int, default=50, metavar="N", help="show the last N entries (default 50)"
    )
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    audit.add_argument(
        "--unknown", action="store_true", help="only entries whose outcome is unknown; exit 1 if any"
    )
    audit.set_defaults(handler=run_audit)

    plane = subparsers.add_parser(
        "control-plane",
        help="serve the local KServe/Argo/MLflow/kill-switch simulator",
        description="A local control plane for the shipped runbooks (see triage/runbooks/simulator.py). "
        "Faults can be changed while it runs with PUT /_admin/faults.",
    )
    plane.add_argument("--port", type=int, default=8787, help="port (0: any free port; default 8787)")
    plane.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)"
    )
    plane.add_argument(
        "--token-env", default="TRIAGE_CP_TOKEN", metavar="NAME", help="env var holding the bearer token"
    )
    plane.add_argument(
        "--settle-s", type=float, default=0.3, help="seconds before a status reflects a change"
    )
    plane.add_argument("--latency", type=float, default=0.0, metavar="S", help="added to every request")
    plane.add_argument("--error-rate", type=float, default=0.0, metavar="R", help="share of requests failing")
    plane.add_argument(
        "--error-status", type=int, default=503, metavar="CODE", help="status of failing requests"
    )
    plane.add_argument("--retry-after", type=int, metavar="S", help="Retry-After on failing requests")
    plane.add_argument(
        "--drop-rate", type=float, default=0.0, metavar="R", help="share of connections dropped"
    )
    plane.add_argument("--redirect-to", metavar="URL", help="307-redirect every request to this base URL")
    plane.add_argument("--seed", type=int, default=0, help="seed of the fault dice")
    plane.add_argument("--tls-cert", type=Path, metavar="PEM", help="serve HTTPS with this certificate")
    plane.add_argument("--tls-key", type=Path, metavar="PEM", help="the certificate's private key")
    plane.set_defaults(handler=run_control_plane)


def _load(config: Config, name: str) -> Runbook:
    try:
        return find_runbook(config.runbooks_dir, name)
    except RunbookError as exc:
        raise UserError(str(exc)) from None


def run_list(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        paths = runbook_paths(config.runbooks_dir)
    except RunbookError as exc:
        raise UserError(str(exc)) from None
    if not paths:
        print(f"no runbooks in {config.runbooks_dir}")
        return 0
    broken = 0
    for path in paths:
        try:
            book = load_runbook(path)
        except RunbookError as exc:
            print(f"{path.stem:28} INVALID: {exc}")
            broken += 1
            continue
        steps = ", ".join(f"{s.id} ({s.safety})" for s in book.steps)
        print(f"{book.name:28} {book.title}")
        print(f"{'':28} steps: {steps}")
        if book.alerts:
            print(f"{'':28} alerts: {', '.join(book.alerts)}")
    return EXIT_FAILED if broken else 0


def run_show(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    book = _load(config, args.name)
    print(f"{book.title}\n{book.path} (sha256 {book.sha256[:12]})")
    if book.summary:
        print(book.summary)
    if book.alerts:
        print(f"alerts: {', '.join(book.alerts)}")
    for step in book.steps:
        print(f"\n#{step.id} — {step.title} [{step.safety}, target {step.target}]")
        for name, param in step.params.items():
            source = f", from alert {param.source}" if param.source else ""
            default = f", default {param.default}" if param.default is not None else ""
            rule = f" matching {param.pattern}" if param.pattern else ""
            print(f"  param {name}: {param.type}{rule}{source}{default}")
        for read in step.preconditions:
            print(f"  before: GET {read.get}")
            for condition in read.expect:
                print(f"    require {condition.describe()}")
            for name, path in read.capture.items():
                print(f"    capture {name} = {path}")
        print(f"  {step.request.method} {step.request.path}")
        if step.request.body is not None:
            print("    " + json.dumps(step.request.body))
        if step.verify is not None:
            checks = "; ".join(c.describe() for c in step.verify.expect)
            print(
                f"  verify: GET {step.verify.get} until {checks} (every {step.verify.interval_s:g} s, "
                f"up to {step.verify.timeout_s:g} s)"
            )
        if step.undo is not None:
            print(f"  undo: {step.undo.request.method} {step.undo.request.path}")
        if step.safety != "read_only":
            print(f"  cooldown: {step.cooldown_s:g} s per alert")
    return 0


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--param expects KEY=VALUE, got {pair!r}")
        params[key.strip()] = value
    return params


def _warn_unknown(log: AuditLog) -> None:
    for entry in log.unfinished():
        alert = f" for alert {entry.alert}" if entry.alert else ""
        print(
            f"triage: warning: outcome unknown — {entry.runbook}#{entry.step}{alert}, started "
            f"{entry.started_at:%Y-%m-%d %H:%M:%S} UTC by {entry.operator}, never finished "
            "(the process died mid-call); check the system's state before acting again",
            file=sys.stderr,
        )


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def _ask(prompt: str) -> str:
    try:
        return input(prompt)
    except EOFError:
        return ""


def _print_progress(event: ProgressEvent) -> None:
    # Messages quote what the serving platform answered: its text, not the terminal's commands.
    if event.kind != "done":
        print(f"  … {printable(event.message, None)}", flush=True)


def _report(result: StepResult) -> None:
    mark = "ok" if result.ok else ("not run" if result.outcome in NOT_RUN else "FAILED")
    message = printable(result.message, None)
    print(f"[{mark}] {result.step}: {result.outcome.replace('_', ' ')} — {message}", flush=True)
    if result.audit_id:
        print(f"  audit {result.audit_id}")


def _confirmation(plan: Plan, given: str | None) -> str | None:
    """The phrase for `execute`: --confirm, else typed at the terminal; None when declined."""
    if given is not None:
        return given
    if plan.confirmation is not None:
        if not _interactive():
            raise UserError(f"step {plan.step.id} is destructive; without a terminal pass --confirm PHRASE")
        return _ask(f"Type {plan.confirmation!r} to run it: ").strip()
    if plan.step.safety == "read_only" or not _interactive():
        return ""
    return "" if _ask("Run this step? [y/N] ").strip().lower() in ("y", "yes") else None


def _alert_context(config: Config, fingerprint: str) -> AlertContext:
    """A stored alert's fingerprint and model/rule/scope values (which fill params), else the key alone."""
    from triage.commands.alerts_cmd import find_alert

    alert = find_alert(config, fingerprint)
    if alert is None:
        print(f"triage: note: no stored alert {fingerprint!r}; it is only the dedupe key", file=sys.stderr)
        return AlertContext(fingerprint)
    return AlertContext(alert.fingerprint, {"model": alert.model, "rule": alert.rule, **dict(alert.scope)})


def run_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    name, _, step_id = args.name.partition("#")
    book = _load(config, name)
    params = _params(args.param)
    if args.undo and not step_id:
        raise UserError("--undo needs one step: NAME#STEP")
    log = AuditLog(config.audit_path)
    executor = Executor(config.targets, log)
    _warn_unknown(log)
    alert = _alert_context(config, args.alert) if args.alert else None
    step_ids = [step_id] if step_id else [step.id for step in book.steps]
    for current in step_ids:
        try:
            plan = executor.plan(book, current, params=params, alert=alert, undo=args.undo)
        except PlanError as exc:
            raise UserError(str(exc)) from None
        print(plan.dry_run(), flush=True)
        if args.dry_run:
            print()
            continue
        prepared = executor.prepare(plan, on_progress=_print_progress)
        if prepared.early is None and prepared.request != plan.request:
            print("Exact request, with the values read just now:")
            print("\n".join("  " + line for line in prepared.request.text().splitlines()), flush=True)
        confirmation = _confirmation(plan, args.confirm) if prepared.early is None else ""
        if confirmation is None:
            print(f"[not run] {plan.step.id}: declined")
            return EXIT_NOT_RUN
        result = executor.execute(prepared, confirmation=confirmation, on_progress=_print_progress)
        _report(result)
        print()
        if not result.ok:
            return EXIT_NOT_RUN if result.outcome in NOT_RUN else EXIT_FAILED
    return 0


def _entry_json(entry: AuditEntry) -> dict[str, Any]:
    data = asdict(entry)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    data["outcome_text"] = entry.outcome_text
    return data


def run_audit(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    read = AuditLog(config.audit_path).read()
    entries = [e for e in read.entries if not args.unknown or e.outcome == outcomes.UNKNOWN]
    shown = entries[-args.limit :] if args.limit > 0 else entries
    if args.json:
        for entry in shown:
            print(json.dumps(_entry_json(entry), sort_keys=True))
    elif not shown:
        print(f"no audit entries in {config.audit_path}" + (" with outcome unknown" if args.unknown else ""))
    for entry in [] if args.json else shown:
        status = f"HTTP {entry.status}" if entry.status is not None else "-"
        step = f"{entry.runbook}#{entry.step}"
        print(
            f"{entry.started_at:%Y-%m-%d %H:%M:%S}Z  {entry.operator:16}  {step:44}  "
            f"alert {entry.alert or '-':12}  {entry.outcome_text:17} {status:8}  "
            + printable(entry.message, 100)
        )
    if read.malformed_lines:
        print(
            f"triage: warning: {read.malformed_lines} unreadable line(s) in {config.audit_path}",
            file=sys.stderr,
        )
    if args.unknown and entries:
        return EXIT_FAILED
    return 0


def run_control_plane(args: argparse.Namespace) -> int:
    token = os.environ.get(args.token_env, "")
    if not token:
        raise UserError(
            f"set the bearer token in ${args.token_env} (or choose the variable with --token-env)"
        )
    if (args.tls_cert is None) != (args.tls_key is None):
        raise UserError("--tls-cert and --tls-key go together")
    faults = Faults(
        latency_s=args.latency,
        error_rate=args.error_rate,
        error_status=args.error_status,
        retry_after_s=args.retry_after,
        drop_rate=args.drop_rate,
        redirect_to=args.redirect_to,
    )
    try:
        plane = ControlPlane(
            host=args.host,
            port=args.port,
            token=token,
            faults=faults,
            settle_s=args.settle_s,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            seed=args.seed,
        )
    except OSError as exc:
        raise UserError(f"cannot serve on {args.host}:{args.port} ({exc.strerror or exc})") from None
    print(f"control plane on {plane.url} (bearer token from ${args.token_env}); Ctrl-C to stop", flush=True)
    plane.serve_forever()
    return 0
