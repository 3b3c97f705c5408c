"""`triage demo` — a generated world streamed live into the TUI, with the local control plane.

In a terminal: generates DIR if it has no triage.toml, starts the control plane (loopback, a
random bearer token) and a stream that appends traffic as simulated time passes, and opens the
TUI; quitting stops all of it. Without a terminal (a script, CI): generates if absent, ingests,
and prints `triage info` and the `triage check` summary instead.
"""

from __future__ import annotations

import argparse
import sys

from triage import demo
from triage.cli import UserError
from triage.commands.argtypes import positive_float, positive_int
from triage.demo import DEFAULT_SPEED, DEMO_ROWS
from triage.generate import GenerateError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="a live demo: an incident unfolds within a minute; fix it with a runbook",
        description="Generate a demo world in DIR (if it has no triage.toml), start the local "
        "control plane, stream new traffic as simulated time passes, and open the terminal UI in "
        "live mode. An incident on model v2 starts within about a minute; the kserve-canary-traffic "
        "runbook shifts traffic away from v2 and the panels show the recovery. Quitting the UI "
        "stops everything the demo started. When stdin is not a terminal, it instead ingests DIR "
        "and prints `triage info` and the `triage check` summary, and exits 0. Delete DIR to "
        "replay the incident from the start.",
    )
    parser.add_argument("--dir", default="demo", metavar="DIR", help="demo folder (default demo)")
    parser.add_argument(
        "--rows",
        type=positive_int,
        default=DEMO_ROWS,
        metavar="N",
        help=f"predictions over the 7-day world when generating (default {DEMO_ROWS})",
    )
    parser.add_argument(
        "--speed",
        type=positive_float,
        default=DEFAULT_SPEED,
        metavar="X",
        help=f"simulated seconds per real second (default {DEFAULT_SPEED:g}: a 6h window in 18 s)",
    )
    parser.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if args.config:
        raise UserError("`triage demo` uses DIR/triage.toml; pass --dir instead of --config")
    try:
        if sys.stdin.isatty() and sys.stdout.isatty():
            return demo.run_live(args.dir, args.rows, args.speed)
        return demo.run_headless(args.dir, args.rows)
    except GenerateError as exc:
        raise UserError(str(exc)) from None
