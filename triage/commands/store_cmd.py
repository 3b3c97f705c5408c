"""`triage ingest`, `triage info` and `triage quarantine`: the log store from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime

from triage.alerts.rules import validate_rules
from triage.cli import UserError
from triage.commands.argtypes import seconds_arg
from triage.config import Config, ConfigError, load_config
from triage.printable import printable
from triage.store import IngestSummary, Store, StoreError, StoreInfo
from triage.store.db import DEFAULT_WAIT_S
from triage.store.ingest import APPENDED, FAILED, NEW, REPLACED, UNCHANGED, FileIngest, most_first
from triage.store.schema import QUARANTINE_REASONS, REASON_BAD_VALUE

EXIT_FILE_ERRORS = 1
RAW_WIDTH = 200

# Where a user finds the values a pass stored as NULL.
_BAD_VALUES_HINT = f"`triage quarantine --reason '{REASON_BAD_VALUE}'`"


def register(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser(
        "ingest",
        help="load new prediction, label and reference log rows into the store",
        description="Load what is new in every configured log into the store. Re-running adds nothing; "
        "a grown JSON Lines / CSV file adds only its new lines; a changed file replaces its earlier rows. "
        "Bad rows go to quarantine (see `triage quarantine`). Exit 1 when a file could not be read, "
        "2 when a configured log matches no file.",
    )
    ingest.add_argument("--follow", action="store_true", help="keep polling the logs and append what is new")
    ingest.add_argument(
        "--interval",
        type=seconds_arg,
        default=5.0,
        metavar="SECONDS",
        help="poll interval with --follow (default 5)",
    )
    ingest.add_argument(
        "--rebuild",
        action="store_true",
        help="forget what is stored and ingest every log again (after a config change)",
    )
    ingest.add_argument(
        "--no-warm",
        dest="warm",
        action="store_false",
        help="only ingest: do not precompute the reference profile and the statistics of the windows "
        "whose rows or labels changed (then the next `triage check` computes them)",
    )
    ingest.add_argument(
        "--polls", type=int, default=None, help=argparse.SUPPRESS
    )  # tests: stop after N polls
    ingest.set_defaults(handler=run_ingest)

    info = subparsers.add_parser("info", help="show what the store holds per model")
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(handler=run_info)

    quarantine = subparsers.add_parser(
        "quarantine",
        help="list quarantined log rows, and values stored as missing in kept rows, with their reasons",
    )
    quarantine.add_argument("--model", metavar="NAME", help="only this model")
    quarantine.add_argument("--reason", metavar="REASON", help='only this reason, e.g. "duplicate id"')
    quarantine.add_argument(
        "--limit", type=int, default=50, metavar="N", help="show at most N rows (default 50)"
    )
    quarantine.set_defaults(handler=run_quarantine)


def _open(config: Config, read_only: bool = False) -> Store:
    try:
        return Store.open(config.store_path, read_only=read_only, wait_s=DEFAULT_WAIT_S)
    except StoreError as exc:
        raise _user_error(exc) from None


def _user_error(exc: StoreError) -> UserError:
    return UserError(str(exc))


def _shown(path: str) -> str:
    """A log's path, from here when it is below, as text that cannot act on a terminal."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        relative = path
    return printable(relative if not relative.startswith("..") else path, None)


def _ingest_once(
    config: Config, rebuild: bool = False, warm: bool = True, if_changed: bool = False
) -> IngestSummary:
    """One ingest pass; with `warm`, then store the caches a read-only evaluation reuses."""
    store = _open(config)
    try:
        if not warm:
            return store.ingest(config, rebuild=rebuild)
        from triage.engine import Engine  # imports scipy: only when warming

        return Engine(config, store).refresh(rebuild=rebuild, if_changed=if_changed)
    except StoreError as exc:
        raise _user_error(exc) from None
    finally:
        store.close()


def run_ingest(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        validate_rules(config)
    except ConfigError as exc:  # the logs do not wait for a rule's typo: ingest them, and say so
        for problem in exc.problems:
            print(
                f"triage: warning: {problem} (ingesting anyway; check, ui and replay refuse it)",
                file=sys.stderr,
            )
    if args.follow:
        return _follow(config, args.interval, args.polls, args.rebuild, args.warm)
    summary = _ingest_once(config, args.rebuild, args.warm)
    print_summary(summary)
    return _status(config, summary)


def _status(config: Config, summary: IngestSummary) -> int:
    for error in summary.errors:
        print(f"triage: {_shown(error.path)}: {printable(error.message, None)}", file=sys.stderr)
    status = EXIT_FILE_ERRORS if summary.errors else 0
    for key, pattern in summary.unmatched:
        if key.endswith(".labels"):
            continue  # labels may not have arrived yet; `triage info` shows coverage 0
        problem = ConfigError(config.path, key, f"expected log files matching {pattern!r}; none found")
        print(f"triage: {problem}", file=sys.stderr)
        status = 2
    return status


def _follow(config: Config, interval: float, polls: int | None, rebuild: bool, warm: bool = True) -> int:
    """Poll every `interval` seconds; the store is closed between polls so readers can open it."""
    reported: set[str] = set()
    count = 0
    try:
        while True:
            try:
                # After the first pass, warm only when a poll stored something.
                summary = _ingest_once(config, rebuild and count == 0, warm, if_changed=count > 0)
            except UserError as exc:
                if count == 0:
                    raise
                # A later poll that cannot open the store (a long reader) or ingest: say so once, retry.
                if str(exc) not in reported:
                    reported.add(str(exc))
                    print(f"triage: {exc}", file=sys.stderr)
                count += 1
                time.sleep(interval)
                continue
            if count == 0:
                print_summary(summary)
            elif summary.changed:
                stamp = datetime.now(UTC).strftime("%H:%M:%S")
                print(
                    f"{stamp}  +{summary.rows_added} rows, {summary.rows_quarantined} quarantined "
                    f"({_files_phrase(summary)})"
                )
            for error in summary.errors:
                line = f"triage: {_shown(error.path)}: {printable(error.message, None)}"
                if line not in reported:
                    reported.add(line)
                    print(line, file=sys.stderr)
            sys.stdout.flush()
            count += 1
            if polls is not None and count >= polls:
                return 0
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def _files_phrase(summary: IngestSummary) -> str:
    parts = [f"{summary.count(action)} {action}" for action in (NEW, APPENDED, REPLACED, UNCHANGED, FAILED)]
    return ", ".join(part for part in parts if not part.startswith("0 "))


def print_summary(summary: IngestSummary) -> None:
    """Print what an ingest pass did: files, rows added, rows quarantined by reason, per model and kind;
    its warnings on stderr."""
    files = len(summary.files)
    print(
        f"ingested {files} file{'s' if files != 1 else ''} ({_files_phrase(summary) or 'none'}): "
        f"{summary.rows_added} rows added, {summary.rows_quarantined} quarantined "
        f"({summary.duration_s:.1f} s)"
    )
    groups: dict[tuple[str, str], list[FileIngest]] = {}
    for f in summary.files:
        groups.setdefault((f.model, f.kind), []).append(f)
    for (model, kind), found in groups.items():
        plural = "s" if len(found) != 1 else ""
        added, quarantined = sum(f.rows_added for f in found), sum(f.rows_quarantined for f in found)
        line = f"  {model} {kind}: +{added} rows, {quarantined} quarantined ({len(found)} file{plural})"
        unknown = sum(f.unknown_label_ids for f in found)
        if unknown:
            line += f"; {unknown} labels for ids with no prediction (kept)"
        print(line)
        bad_values = most_first(pair for f in found for pair in f.bad_values)
        if bad_values:
            print(f"    bad values stored as NULL, rows kept: {_counts(bad_values)} ({_BAD_VALUES_HINT})")
    if summary.quarantined_by_reason:
        reasons = ", ".join(f"{reason} {count}" for reason, count in summary.quarantined_by_reason)
        print(f"  quarantined by reason: {reasons} (see `triage quarantine`)")
    for warning in summary.warnings:
        print(f"triage: warning: {printable(warning, None)}", file=sys.stderr)


def run_info(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if str(config.store_path) != ":memory:" and not os.path.exists(config.store_path):
        print(f"config: {config.path}")
        print(f"store:  {config.store_path} (not created yet; run `triage ingest`)")
        return 0
    store = _open(config, read_only=True)
    try:
        info = store.info(config)
    finally:
        store.close()
    if args.json:
        print(json.dumps(info_json(info, config), indent=2))
    else:
        print_info(info, config)
    return 0


def info_json(info: StoreInfo, config: Config) -> dict[str, object]:
    """`triage info --json`: the same facts as the text output."""
    models = []
    for m in info.models:
        models.append(
            {
                "name": m.name,
                "task": config.model(m.name).task,
                "rows": m.rows,
                "files": dict(m.files),
                "versions": dict(m.versions),
                "first_ts": m.first_ts.isoformat() if m.first_ts else None,
                "last_ts": m.last_ts.isoformat() if m.last_ts else None,
                "segments": dict(m.segments),
                "features": {f.name: f.kind for f in m.features},
                "label_rows": m.label_rows,
                "labeled_predictions": m.labeled_predictions,
                "label_coverage": m.label_coverage,
                "unknown_label_ids": m.unknown_label_ids,
                "reference": config.model(m.name).reference.describe(),
                "reference_rows": m.reference_rows,
                "quarantined": dict(m.quarantined),
                "bad_values": dict(m.bad_values),
                "failed_files": [
                    {"kind": kind, "path": path, "reason": reason} for kind, path, reason in m.failed_files
                ],
            }
        )
    return {"config": info.config_path, "store": info.store_path, "models": models}


def print_info(info: StoreInfo, config: Config) -> None:
    """Print `triage info` as text."""
    size = ""
    if os.path.exists(info.store_path):
        size = f" ({os.path.getsize(info.store_path) / 1e6:.1f} MB)"
    print(f"config: {info.config_path}")
    print(f"store:  {info.store_path}{size}")
    for m in info.models:
        print()
        print(f"model {m.name}")
        print(f"  task         {config.model(m.name).task}")
        print(f"  predictions  {m.rows} rows from {_files(m.file_count('predictions'))}")
        versions = ", ".join(f"{printable(version)} {count}" for version, count in m.versions) or "-"
        print(f"  versions     {versions}")
        if m.first_ts is not None and m.last_ts is not None:
            print(f"  time range   {m.first_ts.isoformat(sep=' ')} .. {m.last_ts.isoformat(sep=' ')} UTC")
        else:
            print("  time range   -")
        # Column names can come from the logs (inferred features): text as logged, like values.
        segments = ", ".join(f"{printable(name)} ({count} values)" for name, count in m.segments) or "-"
        print(f"  segments     {segments}")
        features = ", ".join(f"{printable(f.name)} ({f.kind})" for f in m.features) or "-"
        print(f"  features     {features}")
        if m.label_coverage is not None:
            coverage = f"{100 * m.label_coverage:.1f} % ({m.labeled_predictions} of {m.rows} predictions)"
        else:
            coverage = "-"
        print(
            f"  labels       {m.label_rows} rows from {_files(m.file_count('labels'))}; coverage {coverage}; "
            f"{m.unknown_label_ids} labelled ids with no prediction"
        )
        reference = config.model(m.name).reference.describe()
        if m.reference_rows is not None:
            reference += f" ({m.reference_rows} rows from {_files(m.file_count('reference'))})"
        print(f"  reference    {reference}")
        reasons = ", ".join(f"{r} {count}" for r, count in m.quarantined if r != REASON_BAD_VALUE)
        print(f"  quarantined  {m.quarantined_rows} rows" + (f": {reasons}" if reasons else ""))
        if m.bad_values:
            print(
                f"  bad values   {_counts(m.bad_values)}: in kept rows, stored as NULL ({_BAD_VALUES_HINT})"
            )
        for kind, path, reason in m.failed_files:
            print(f"  not read     {_shown(path)} ({kind}, last ingest): {printable(reason, None)}")


def _counts(pairs: tuple[tuple[str, int], ...]) -> str:
    """`tenure 11216, latency 6`."""
    return ", ".join(f"{printable(name)} {count}" for name, count in pairs)


def _files(count: int) -> str:
    return f"{count} file{'s' if count != 1 else ''}"


def run_quarantine(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.model is not None:
        config.model(args.model)  # a ConfigError naming the configured models when unknown
    if args.limit < 0:
        raise UserError(f"--limit: expected a number >= 0, got {args.limit}")
    reasons = (*QUARANTINE_REASONS, REASON_BAD_VALUE)
    if args.reason is not None and args.reason not in reasons:
        known = ", ".join(repr(reason) for reason in reasons)
        raise UserError(f"--reason: expected one of {known}; got {args.reason!r}")
    if str(config.store_path) != ":memory:" and not os.path.exists(config.store_path):
        print("no store yet; run `triage ingest` first")
        return 0
    store = _open(config, read_only=True)
    try:
        rows, total = store.quarantined(args.model, args.limit, args.reason)
    finally:
        store.close()
    for row in rows:
        detail = f": {printable(row.detail, width=None)}" if row.detail else ""
        print(f"{_shown(row.file)}:{row.line}  {row.model} {row.kind}  {row.reason}{detail}")
        print(f"    {printable(row.raw or '', RAW_WIDTH)}")
    print(f"{len(rows)} of {total} quarantined rows shown")
    return 0
