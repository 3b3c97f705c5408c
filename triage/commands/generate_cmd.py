"""`triage generate`: realistic prediction and label logs with known incidents, a config and a manifest."""

from __future__ import annotations

import argparse
import time

from triage.cli import UserError
from triage.config import parse_time
from triage.generate import DEFAULT_START, FORMATS, GenerateError, generate


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write realistic demo logs with known incidents",
        description="Write a fraud model's prediction logs (one file per day), its late-arriving labels, "
        "a ready triage.toml and manifest.json (the injected incidents: onset, scope and the signal "
        "each should move) into DIR. The same arguments give byte-identical files.",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--rows", type=int, default=100_000, metavar="N", help="predictions (default 100000)")
    parser.add_argument("--days", type=int, default=30, metavar="D", help="days of traffic (default 30)")
    parser.add_argument("--seed", type=int, default=7, metavar="S", help="random seed (default 7)")
    parser.add_argument("--quiet", action="store_true", help="the same world without incidents")
    parser.add_argument(
        "--format", choices=FORMATS, default="parquet", help="prediction log format (default parquet)"
    )
    parser.add_argument(
        "--start",
        default=DEFAULT_START.date().isoformat(),
        metavar="DATE",
        help="first day, UTC (default %(default)s)",
    )
    parser.add_argument("--force", action="store_true", help="replace an earlier generation in DIR")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        start = parse_time(args.start)
    except ValueError:
        raise UserError(f"--start: expected an ISO date like 2026-01-01, got {args.start!r}") from None
    began = time.perf_counter()
    try:
        manifest = generate(
            args.out,
            rows=args.rows,
            days=args.days,
            seed=args.seed,
            quiet=args.quiet,
            fmt=args.format,
            start=start,
            overwrite=args.force,
        )
    except GenerateError as exc:
        raise UserError(str(exc)) from None
    elapsed = time.perf_counter() - began
    print(
        f"{args.out}: {manifest.rows} predictions in {len(manifest.prediction_files)} {manifest.format} "
        f"file(s), {manifest.label_rows} labels ({manifest.label_rows / manifest.rows:.0%} coverage) in "
        f"{len(manifest.label_files)} file(s), {elapsed:.1f} s"
    )
    reference = f"{manifest.reference_start:%Y-%m-%d %H:%M} .. {manifest.reference_end:%Y-%m-%d %H:%M}"
    print(f"  reference {reference} UTC")
    print(
        f"  rollout   {manifest.rollout.canary} at {manifest.rollout.canary_percent_before:g}% until "
        f"{manifest.rollout.switch_at:%Y-%m-%d %H:%M}, then {manifest.rollout.canary_percent_after:g}%"
    )
    if manifest.quiet:
        print("  incidents none (--quiet)")
    for incident in manifest.incidents:
        until = f" .. {incident.end:%Y-%m-%d %H:%M}" if incident.end else ""
        print(
            f"  incident  {incident.onset:%Y-%m-%d %H:%M}{until}  {incident.id}: "
            f"{incident.signal} {incident.direction}"
        )
    print(f"next: triage --config {args.out}/triage.toml ingest")
    return 0
