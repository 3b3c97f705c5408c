"""The `triage` command: argument parsing, config loading and the error contract.

User mistakes (a bad config, a missing file) print one line and exit with a status code;
they never show a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from triage import __version__
from triage.config import ConfigError

# Each module registers its subcommands; the order is the order of `triage --help`.
COMMAND_MODULES = (
    "triage.commands.config_cmd",
    "triage.commands.generate_cmd",
    "triage.commands.store_cmd",
    "triage.commands.check_cmd",
    "triage.commands.runbook_cmd",
    "triage.commands.alerts_cmd",
    "triage.commands.ui_cmd",
    "triage.commands.replay_cmd",
    "triage.commands.report_cmd",
    "triage.commands.demo_cmd",
)

EXIT_USAGE = 2


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit status `status`."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse with the error contract: a bad argument is one line (not the usage text) and
    exits with the command's status for mistakes — `check`'s is 3, since its 2 means a critical
    alert is firing."""

    def error(self, message: str) -> NoReturn:
        status = self.get_default("config_error_status") or EXIT_USAGE
        self.exit(status, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The root parser and its subcommand parsers by name (theirs are `_Parser`s too)."""
    parser: argparse.ArgumentParser = _Parser(
        prog="triage",
        description="On-call model triage: drift, calibration, delayed-label performance, "
        "operations and executable runbooks. With no command, opens the terminal UI.",
    )
    parser.add_argument("--version", action="version", version=f"triage {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $TRIAGE_CONFIG or ./triage.toml)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    _config_after_commands(parser)
    return parser, subparsers.choices


def _config_after_commands(parser: argparse.ArgumentParser) -> None:
    """`--config PATH` after a command (and its action) too: `triage check --config x.toml`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                command.add_argument(
                    "--config", metavar="PATH", default=argparse.SUPPRESS, help="config file"
                )
                _config_after_commands(command)


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's parser: its status (check's is 3) and help
        commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "handler", None) is None:
        if "ui" not in commands:
            parser.print_help()
            return 0
        args = parser.parse_args([*argv, "ui"])  # no command: open the terminal UI
    handler = args.handler
    try:
        status = handler(args)
    except ConfigError as exc:
        print(f"triage: {exc}", file=sys.stderr)
        return getattr(args, "config_error_status", EXIT_USAGE)
    except UserError as exc:
        print(f"triage: {exc}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `triage check | head`: the reader left; stop quietly, as other Unix tools do.
        sys.stderr.close()
        return 141
    return int(status or 0)


if __name__ == "__main__":
    # `python -m triage.cli` runs this file as `__main__`, a second module whose UserError is not the
    # one the commands raise (theirs is `triage.cli`'s): run the imported module's main instead.
    from triage.cli import main as imported_main

    sys.exit(imported_main())
