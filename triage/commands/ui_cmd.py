"""`triage ui` — the terminal UI, and what `triage` runs with no command.

Live by default: each refresh ingests new rows and evaluates as of now. `--at TIME` shows the
world as it looked then (predictions and labels up to TIME) without ingesting or recording.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

from triage.alerts.rules import validate_rules
from triage.cli import UserError
from triage.commands.argtypes import seconds_arg, time_arg
from triage.config import Config, load_config

if TYPE_CHECKING:
    from triage.replay import RuleSet
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
        type=seconds_arg,
        default=5.0,
        metavar="SECONDS",
        help="seconds between live refreshes, counted from the end of the last one (default 5)",
    )
    parser.add_argument("--model", metavar="NAME", help="open the model panels on this model")
    parser.add_argument(
        "--at",
        type=time_arg,
        metavar="TIME",
        help="show the world as of this ISO time (UTC if no zone): no ingest, nothing recorded",
    )
    parser.set_defaults(handler=run_ui)


def run_ui(args: argparse.Namespace) -> int:
    """Open the terminal UI; returns when the user quits or the terminal goes away."""
    config = load_config(args.config)
    if args.model:
        config.model(args.model)
    validate_rules(config)  # a rule that cannot run is the config's mistake, named before the UI opens
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UserError(
            "the terminal UI needs a terminal on standard input and standard error (it draws on "
            "standard error); for scripts use `triage check --json`"
        )
    # Imported here so that `triage --help` and the other commands never load Textual.
    from triage.tui.app import TriageApp
    from triage.tui.cache import cache_path
    from triage.tui.clock import FixedClock, LiveClock

    clock = LiveClock() if args.at is None else FixedClock(args.at)
    live = args.at is None and str(config.store_path) != ":memory:"
    cache = cache_path(config.store_path) if live else None
    app = TriageApp(partial(open_source, config, args.at is None), clock, args.refresh, args.model, cache)
    try:
        app.run()
    finally:
        app.close_source()
    return app.return_code or 0


def open_source(config: Config, record_alerts: bool) -> DataSource:
    """The engine-backed source; called by the app's first refresh worker, after the first paint."""
    from triage.tui.source import EngineSource

    return EngineSource(config, record_alerts=record_alerts)


def open_replay_source(config: Config, models: Sequence[str] | None, rules: RuleSet | None) -> DataSource:
    """The engine-backed source of a replay: alerts follow the clock in memory, nothing is recorded."""
    from triage.tui.source import EngineSource

    chosen = [config.model(name) for name in models] if models else list(config.models)
    return EngineSource(config, replay=chosen, rules=rules)
