"""`python -m tests.bench` (= `make bench`): run the registered benchmarks and write `_results/latest.json`.

    python -m tests.bench                  # the default set: the 1 M drift-grid comparison, ...
    python -m tests.bench --full           # plus the slow ones (the 10 M-row `triage check`)
    python -m tests.bench --only drift-grid --repeats 5
    python -m tests.bench --list

Exit status: 0 when every benchmark ran (a missed target is reported, not an error), 1 when one
failed or a benchmark module could not be imported, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.bench.registry import BENCH_DIR, Benchmark, Context, discover
from tests.bench.report import short

RESULTS = "latest.json"


def _parser(names: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description="triage's benchmarks (DESIGN §8). Results: tests/bench/_results/latest.json.",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=names,
        help=f"run only this benchmark (repeatable): {', '.join(names)}",
    )
    parser.add_argument("--full", action="store_true", help="also run the slow benchmarks (10 M rows)")
    parser.add_argument(
        "--rows", type=int, default=1_000_000, help="predictions and reference rows (default 1000000)"
    )
    parser.add_argument(
        "--full-rows", type=int, default=10_000_000, help="rows of the --full benchmarks (default 10000000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated data (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the fast measurements (best kept)")
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "_data", help=argparse.SUPPRESS)
    parser.add_argument("--venv-dir", type=Path, default=BENCH_DIR / "_venvs", help=argparse.SUPPRESS)
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "_results", help=argparse.SUPPRESS)
    return parser


def _log(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)


def _selected(benchmarks: list[Benchmark], only: list[str] | None, full: bool) -> list[Benchmark]:
    if only:
        return [b for b in benchmarks if b.name in only]
    return [b for b in benchmarks if b.default or full]


def _write_results(path: Path, runs: dict[str, Any], args: argparse.Namespace) -> None:
    """Merge this run's benchmarks into latest.json, so `--only X` keeps the others' last results."""
    previous: dict[str, Any] = {}
    if path.exists():
        try:
            previous = json.loads(path.read_text()).get("benchmarks", {})
        except (json.JSONDecodeError, AttributeError):
            previous = {}
    document = {
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m tests.bench " + " ".join(sys.argv[1:]),
        "rows": args.rows,
        "full_rows": args.full_rows,
        "seed": args.seed,
        "benchmarks": previous | runs,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    found = discover()
    names = [b.name for b in found.benchmarks]
    args = _parser(names).parse_args(argv)
    if args.list:
        for b in found.benchmarks:
            when = "default" if b.default else "--full"
            print(f"{b.name:<20} {when:<8} {b.description}")
        for module, error in found.broken.items():
            print(f"{module:<20} BROKEN   {error}")
        return 0
    if min(args.rows, args.full_rows) < 10_000 or args.repeats < 1:
        print(
            "python -m tests.bench: --rows and --full-rows must be >= 10000, --repeats >= 1", file=sys.stderr
        )
        return 2

    ctx = Context(
        data_dir=args.data_dir,
        venv_dir=args.venv_dir,
        results_dir=args.results_dir,
        rows=args.rows,
        full_rows=args.full_rows,
        seed=args.seed,
        repeats=args.repeats,
        full=args.full,
        log=_log,
    )
    status = 0
    for module, error in found.broken.items():
        print(f"! benchmark module {module} did not import: {error}\n", file=sys.stderr)
        status = 1
    runs: dict[str, Any] = {}
    for bench in _selected(found.benchmarks, args.only, args.full):
        print(f"== {bench.name}: {bench.description}", flush=True)
        started = time.perf_counter()
        measured_at = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            outcome = bench.run(ctx)
        except Exception as exc:  # one failing benchmark must not hide the others
            traceback.print_exc(limit=-8)
            error = short(f"{type(exc).__name__}: {exc}")
            runs[bench.name] = {"measured_at": measured_at, "error": error}
            print(f"!! {bench.name} failed: {error}\n", flush=True)
            status = 1
            continue
        elapsed = time.perf_counter() - started
        print(outcome.report)
        verdict = {True: "all targets met", False: "a target was MISSED", None: "some targets not measured"}
        print(f"({bench.name}: {verdict[outcome.passed]}; ran in {elapsed:.0f} s)\n", flush=True)
        runs[bench.name] = {
            "measured_at": measured_at,
            "elapsed_s": elapsed,
            "passed": outcome.passed,
            **outcome.data,
        }
    if not runs:
        print("no benchmark selected (see --list)", file=sys.stderr)
        return status
    path = args.results_dir / RESULTS
    _write_results(path, runs, args)
    print(f"results: {path}")
    return status


if __name__ == "__main__":
    sys.exit(main())
