"""`triage config check`: validate the config (and, with the logs present, its columns)."""

from __future__ import annotations

import argparse

from triage.config import load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("config", help="inspect and validate triage.toml")
    actions = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    check = actions.add_parser("check", help="validate the config without ingesting")
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    models = ", ".join(model.name for model in config.models)
    print(f"{config.path}: ok ({len(config.models)} model(s): {models}; {len(config.targets)} target(s))")
    return 0
