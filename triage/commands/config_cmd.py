"""`triage config check`: validate the config (and, with the logs present, its columns)."""

from __future__ import annotations

import argparse
import sys

from triage.alerts.rules import validate_rules
from triage.cli import EXIT_USAGE
from triage.config import ConfigError, load_config
from triage.store.check import check_sources


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="inspect and validate triage.toml")
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate the config without ingesting",
        description="Validate triage.toml, then check it against the logs: every prediction source "
        "(and a file-set reference) matches readable files, every configured column exists in them, and "
        "the class names of [model.positive] are among their values; once ingested, against the store: "
        "what the rules and the reference name exists, and what was quarantined (a log whose every row "
        "was is a mistake). Each mistake is one line naming the file and the key; exit status 2.",
    )
    check.add_argument("--no-logs", action="store_true", help="check the config file only, not the logs")
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    problems: list[ConfigError] = []
    try:
        validate_rules(config)  # the alert rules' mistakes, as `check` and `alerts rules` find them
    except ConfigError as exc:
        problems.extend(exc.problems)
    if not args.no_logs:
        result = check_sources(config)
        problems.extend(result.problems)
        for note in result.notes:
            print(f"note: {note}")
    for problem in problems:
        print(f"triage: {problem}", file=sys.stderr)
    if problems:
        return EXIT_USAGE
    models = ", ".join(model.name for model in config.models)
    print(f"{config.path}: ok ({len(config.models)} model(s): {models}; {len(config.targets)} target(s))")
    return 0
