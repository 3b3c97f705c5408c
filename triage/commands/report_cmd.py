"""`triage report`: the incident report of a time range — Markdown (text charts) and/or HTML (SVG charts).

The alerts are replayed headless, as `triage replay --headless` does, so each one appears at the
clock time it would have fired live; runbook actions come from the audit log. See `triage.report`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from triage.cli import UserError
from triage.commands.argtypes import time_arg, up_to_now
from triage.config import load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write an incident report for a time range (Markdown, or HTML with charts)",
        description="Replay the logged traffic and write an incident report for [T0, T1]: what fired, "
        "the first signal, time to detect and to mitigate, the timeline of alerts and runbook actions, "
        "the top drifted features and slices, calibration and performance before / during / after, the "
        "audit records (redacted) and charts. Without --out or --html the Markdown goes to stdout.",
    )
    # Parsed in the handler, so a bad time is one line (argparse would add its usage).
    parser.add_argument(
        "--from",
        dest="start",
        metavar="T0",
        help="start (default: the end of the first window, or of the reference period when later)",
    )
    parser.add_argument("--to", dest="end", metavar="T1", help="end (default: the last prediction)")
    parser.add_argument("--model", metavar="NAME", help="only this model (default: all)")
    parser.add_argument("--out", type=Path, metavar="PATH", help="write the Markdown report here")
    parser.add_argument("--html", type=Path, metavar="PATH", help="write the HTML report (one file) here")
    parser.set_defaults(handler=run_report_command)


def _time(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return time_arg(text)
    except argparse.ArgumentTypeError as exc:
        raise UserError(f"{option}: {exc}") from None


def run_report_command(args: argparse.Namespace) -> int:
    from triage.alerts.rules import validate_rules
    from triage.engine import Engine, EngineError
    from triage.report import build_report
    from triage.store import Store, StoreError

    start, end = _time("--from", args.start), _time("--to", args.end)
    if start and end and end < start:
        raise UserError("--to is before --from")
    end = up_to_now("--to", end)
    for path in (args.out, args.html):
        if path is not None and not path.parent.is_dir():  # before the replay, not after it
            raise UserError(f"{path}: no such folder {path.parent}")
    config = load_config(args.config)
    if args.model:
        config.model(args.model)
    validate_rules(config)
    if str(config.store_path) != ":memory:" and not config.store_path.exists():
        raise UserError(f"{config.store_path}: no store yet; run `triage ingest` first")
    try:
        with Store.open(config.store_path, read_only=True) as store, Engine(config, store) as engine:
            report = build_report(
                config, engine, models=[args.model] if args.model else None, start=start, end=end
            )
    except (StoreError, EngineError) as exc:
        raise UserError(str(exc)) from None
    written = []
    for path, render in ((args.out, report.markdown), (args.html, report.html)):
        if path is None:
            continue
        try:
            path.write_text(render(), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{path}: cannot write the report ({exc.strerror})") from None
        written.append(str(path))
    if written:
        print(f"wrote {', '.join(written)}", file=sys.stderr)
    else:
        sys.stdout.write(report.markdown())
    return 0
