"""`triage replay`: move a clock through the logged traffic; alerts fire when they would have.

In a terminal it opens the UI on a replay clock; `--headless` runs the clock at full speed and
prints the alert timeline (`--json`: the document described in the README), which is how a team
back-tests a candidate rule set (`--rules FILE`) against history. Nothing is recorded in the store.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from triage.alerts.rules import value_text
from triage.cli import UserError
from triage.commands.argtypes import duration_arg, speed_arg, time_arg, up_to_now
from triage.config import Config, Mistakes, load_config, load_rules
from triage.printable import columns, pad, printable

if TYPE_CHECKING:
    from triage.replay import RuleSet, Timeline

DEFAULT_SPEED = 3600.0  # one hour of traffic per second


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="replay logged traffic with alerts firing when they would have (TUI or --headless)",
        description="Move a clock through the logged traffic: every panel and alert is computed as of "
        "the clock (predictions up to it, labels that had arrived by it). Opens the terminal UI; "
        "--headless prints the alert timeline instead. Nothing is recorded in the store.",
    )
    parser.add_argument(
        "--from",
        dest="start",
        type=time_arg,
        metavar="T0",
        help="start here (default: the end of the first window, or of the reference period when later)",
    )
    parser.add_argument(
        "--to", dest="end", type=time_arg, metavar="T1", help="stop here (default: the last prediction)"
    )
    parser.add_argument(
        "--speed",
        type=speed_arg,
        default=DEFAULT_SPEED,
        metavar="SPEED",
        help="clock speed in the UI: 60x (a minute per second) or 1h/s (default 1h/s)",
    )
    parser.add_argument(
        "--step",
        type=duration_arg,
        metavar="DURATION",
        help="headless clock step (default: the model's window)",
    )
    parser.add_argument("--model", action="append", metavar="NAME", help="only this model (repeatable)")
    parser.add_argument(
        "--rules",
        metavar="FILE",
        help="a candidate rule set ([[model]] name + [[model.alert]] tables) judged beside the current one",
    )
    parser.add_argument("--headless", action="store_true", help="no UI: print the alert timeline")
    parser.add_argument("--json", action="store_true", help="with --headless: the JSON document")
    parser.set_defaults(handler=run_replay_command)


def run_replay_command(args: argparse.Namespace) -> int:
    from triage.alerts.rules import validate_rule_list, validate_rules

    config = load_config(args.config)
    for name in args.model or ():
        config.model(name)
    validate_rules(config)
    candidate = None
    if args.rules:
        candidate = load_rules(args.rules, config)
        mistakes = Mistakes()
        for index, (name, rules) in enumerate(candidate.items()):
            mistakes.part(
                partial(validate_rule_list, args.rules, f"model[{index}]", rules, config.model(name))
            )
        mistakes.raise_any()
    if args.start and args.end and args.end < args.start:
        raise UserError("--to is before --from")
    args.end = up_to_now("--to", args.end)
    if str(config.store_path) != ":memory:" and not config.store_path.exists():
        raise UserError(f"{config.store_path}: no store yet; run `triage ingest` first")
    if args.json and not args.headless:
        raise UserError("--json needs --headless (the UI cannot print a document)")
    if args.headless:
        timeline = _headless(config, args, candidate)
        print(
            json.dumps(timeline.to_json(), indent=2, allow_nan=False)
            if args.json
            else timeline_text(timeline)
        )
        return 0
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UserError(
            "the replay UI needs a terminal on standard input and standard error (it draws on "
            "standard error); add --headless (and --json) for scripts"
        )
    return _interactive(config, args, candidate)


def _headless(config: Config, args: argparse.Namespace, candidate: RuleSet | None) -> Timeline:
    from triage.engine import Engine, EngineError
    from triage.replay import run_replay
    from triage.store import Store, StoreError

    try:
        with Store.open(config.store_path, read_only=True) as store, Engine(config, store) as engine:
            return run_replay(
                config,
                engine,
                models=args.model,
                start=args.start,
                end=args.end,
                step=args.step,
                candidate=candidate,
            )
    except (StoreError, EngineError) as exc:
        raise UserError(str(exc)) from None


def _interactive(config: Config, args: argparse.Namespace, candidate: RuleSet | None) -> int:
    from functools import partial

    from triage.commands.ui_cmd import open_replay_source
    from triage.replay import step_size
    from triage.tui.app import TriageApp
    from triage.tui.clock import ReplayClock

    start, end, stops = _span(config, args, candidate)
    models = [config.model(name) for name in args.model] if args.model else list(config.models)
    clock = ReplayClock(start=start, end=end, speed=args.speed, step=step_size(models), stops=stops)
    model = args.model[0] if args.model else None
    app = TriageApp(partial(open_replay_source, config, args.model, candidate), clock, 1.0, model)
    try:
        app.run()
    finally:
        app.close_source()
    return app.return_code or 0


def _span(
    config: Config, args: argparse.Namespace, candidate: RuleSet | None
) -> tuple[datetime, datetime, tuple[datetime, ...]]:
    """The interactive replay's start and end, and the times its clock stops at on the way: where a
    model's feed went silent past a threshold or came back (`replay.silence_times`)."""
    from triage.engine import Engine
    from triage.replay import Replayer, default_start, replay_span, silence_times
    from triage.store import Store, StoreError

    models = [config.model(name) for name in args.model] if args.model else list(config.models)
    try:
        with Store.open(config.store_path, read_only=True) as store, Engine(config, store) as engine:
            span = replay_span(engine, models)
            if span is None:
                raise UserError("nothing ingested yet; run `triage ingest` first")
            start, end = args.start or default_start(models, span[0]), args.end or span[1]
            stops = silence_times(Replayer(engine, models, candidate), start, end)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    return start, end, tuple(sorted(stops))


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%MZ")


def _step_text(step: timedelta) -> str:
    seconds = int(step.total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _scope(scope: dict[str, str]) -> str:
    return " ".join(f"{key}={printable(value)}" for key, value in scope.items()) or "all"


def timeline_text(timeline: Timeline) -> str:
    """The headless replay as text: each rule set's state changes, then the comparison."""
    document = timeline.to_json()
    lines = [
        f"replay {', '.join(timeline.models)} from {_when(timeline.start)} to {_when(timeline.end)}, "
        f"{timeline.steps} steps of {_step_text(timeline.step)}"
        + (
            f" ({timeline.silence_steps} where a feed went silent or came back)"
            if timeline.silence_steps
            else ""
        )
    ]
    comparison = document.get("comparison")
    entries = [e for track in document["rule_sets"].values() for e in track["timeline"]] + (comparison or [])
    # The rule and scope columns as wide as their longest entry and a space (at least 22 and 41).
    rule_width = max([22, *(columns(printable(e["rule"])) + 1 for e in entries)])
    scope_width = max([41, *(columns(_scope(e["scope"])) + 1 for e in entries)])

    def rule_and_scope(entry: dict[str, Any]) -> str:
        return pad(printable(entry["rule"]), rule_width) + pad(_scope(entry["scope"]), scope_width)

    for name, track in document["rule_sets"].items():
        lines += [
            "",
            f"{name} rules: {track['firing_alerts']} alert(s) fired, {track['judged_cells']} cells judged",
        ]
        for event in track["timeline"]:
            # The evidence's note: why a cell did not count as crossing (a resolve above the
            # threshold, say), or the band a crossed one lies outside.
            why = event["evidence"].get("note")
            lines.append(
                f"  {event['at'][:16].replace('T', ' ')}Z  {event['event']:<9}{event['severity'] or '':<9}"
                f"{rule_and_scope(event)}{value_text(event['signal'], event['value'])} vs "
                f"{value_text(event['signal'], event['threshold'])}" + (f"  ({why})" if why else "")
            )
    if comparison is not None:
        lines += ["", "candidate vs current (first firing)"]
        if not comparison:
            lines.append("  neither rule set fired")
        for row in comparison:
            lines.append(
                f"  {row['verdict']:<15}{rule_and_scope(row)}"
                f"current {row['current_fired_at'] or '-'}  candidate {row['candidate_fired_at'] or '-'}"
            )
    return "\n".join(lines)
