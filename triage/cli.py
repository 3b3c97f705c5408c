"""The `triage` command: argument parsing, config loading and the error contract.

User mistakes (a bad config, a missing file) print one line and exit with a status code;
they never show a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, cast

from triage import __version__
from triage.config import ConfigError

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

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


class OutputError(Exception):
    """Standard output could not be written (a full disk, an I/O error); not a closed pipe."""


class _Guarded:
    """A standard stream whose failed writes raise OutputError (stdout), or are dropped (stderr:
    nothing is left to say it on, and the exit status must still say what the command found). A
    closed pipe stays BrokenPipeError: `triage check | head` ends quietly."""

    def __init__(self, stream: TextIO, fail: bool) -> None:
        self._stream = stream
        self._fail = fail

    def write(self, text: str) -> int:
        return self._guard(self._stream.write, text) or 0

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def _guard(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            if self._fail:
                raise OutputError(str(exc)) from None
            return None

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding …: the stream's own
        return getattr(self._stream, name)


class _Parser(argparse.ArgumentParser):
    """argparse with the error contract: a bad argument is one line (not the usage text) and
    exits with the command's status for mistakes — `check`'s is 3, since its 2 means a critical
    alert is firing."""

    def error(self, message: str) -> NoReturn:
        self.exit(self._usage_status(), f"{self.prog}: {message} (see `{self.prog} --help`)\n")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """argparse's exit, after `--help` and `--version` too: what they printed must have been
        written (`triage --help > /dev/full` is an error, not 0)."""
        try:
            if sys.stdout is not None:
                sys.stdout.flush()
        except OutputError as exc:
            self._unwritten(exc)
        super().exit(status, message)

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        try:
            super()._print_message(message, file)
        except OutputError as exc:
            self._unwritten(exc)

    def _unwritten(self, exc: OutputError) -> NoReturn:
        super().exit(self._usage_status(), f"triage: cannot write output: {exc}\n")

    def _usage_status(self) -> int:
        return self.get_default("config_error_status") or EXIT_USAGE


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
    stdout, stderr = sys.stdout, sys.stderr
    if stdout is not None:
        sys.stdout = cast(TextIO, _Guarded(stdout, fail=True))
    if stderr is not None:  # else print(file=None) goes to stdout
        sys.stderr = cast(TextIO, _Guarded(stderr, fail=False))
    try:
        args = _parse(argv)
        # An output that cannot be written is the command's usage or environment error (check's 3).
        error_status = getattr(args, "config_error_status", EXIT_USAGE)
        if stdout is None:  # started with stdout closed (`>&-`)
            print("triage: cannot write output: standard output is closed", file=sys.stderr)
            return error_status
        return _run(args, error_status)
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line's arguments; the root help (and exit 0) when no command is given and
    there is no terminal UI."""
    parser, commands = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's parser: its status (check's is 3) and help
        commands.get(args.command, parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if getattr(args, "handler", None) is None:
        if "ui" not in commands:
            parser.print_help()
            parser.exit()
        args = parser.parse_args([*argv, "ui"])  # no command: open the terminal UI
    return args


def _run(args: argparse.Namespace, error_status: int) -> int:
    """The command's handler under the error contract, its output flushed before it counts as done."""
    try:
        status = args.handler(args)
        sys.stdout.flush()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"triage: {problem}", file=sys.stderr)
        return error_status
    except UserError as exc:
        print(f"triage: {exc}", file=sys.stderr)
        return exc.status
    except OutputError as exc:
        print(f"triage: cannot write output: {exc}", file=sys.stderr)
        return error_status
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
