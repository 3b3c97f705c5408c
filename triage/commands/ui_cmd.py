"""`triage ui` — the terminal UI, and what `triage` runs with no command.

Live by default: each refresh ingests new rows and evaluates as of now. `--at TIME` shows the
world as it looked then (predictions and labels up to TIME) without ingesting or recording.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from triage.cli import UserError
from triage.config import Config, load_config, parse_time

if TYPE_CHECKING:
    from triage.tui.data import DataSource


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ui",
        help="open the terminal UI (the default when no command is given)",
        description="Open the terminal UI on the configured models: health, drift, calibration, "
        "performance, operations, alerts and runbooks. Press ? inside for every key.",
    )
    parser.add_argument(
        "--refresh",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="seconds between live refreshes, counted from the end of the last one (default 5)",
    )
    parser.add_argument("--model", metavar="NAME", help="open the model panels on this model")
    parser.add_argument(
        "--at",
        type=_time,
        metavar="TIME",
        help="show the world as of this ISO time (UTC if no zone): no ingest, nothing recorded",
    )
    parser.set_defaults(handler=run_ui)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _time(text: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO time like 2026-01-31T12:00Z, got {text!r}"
        ) from None


def run_ui(args: argparse.Namespace) -> int:
    """Open the terminal UI; returns when the user quits or the terminal goes away."""
    config = load_config(args.config)
    if args.model:
        config.model(args.model)
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UserError("the terminal UI needs a terminal; for scripts use `triage check --json`")
    # Imported here so that `triage --help` and the other commands never load Textual.
    from triage.tui.app import TriageApp
    from triage.tui.clock import FixedClock, LiveClock

    clock = LiveClock() if args.at is None else FixedClock(args.at)
    app = TriageApp(partial(open_source, config, args.at is None), clock, args.refresh, args.model)
    try:
        app.run()
    finally:
        app.close_source()
    return app.return_code or 0


def open_source(config: Config, record_alerts: bool) -> DataSource:
    """The engine-backed source; called by the app's first refresh worker, after the first paint."""
    from triage.tui.source import EngineSource

    return EngineSource(config, record_alerts=record_alerts)
