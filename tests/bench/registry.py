"""Named benchmarks and what they get and give back: the hook every benchmark module uses.

A benchmark module is any module in `tests/bench/` (not starting with `_`, and not one of the
helpers in `HELPERS`) that registers a function with `@benchmark(...)`:

    @benchmark("alert-quality", "incidents detected and false alerts per 1 000 cells", order=30)
    def run(ctx: Context) -> Outcome:
        ...
        return Outcome(report="a table for people", data={"json": "for latest.json"}, passed=True)

`python -m tests.bench` runs every benchmark with `default=True`; `--full` adds the others (the
slow ones, like the 10 M-row `triage check`); `--only NAME` runs just the named ones.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent.parent

# Modules of this package that hold no benchmark; `peer_runner` runs inside the peers' venvs only.
HELPERS = frozenset({"registry", "synthetic", "peers", "peer_runner", "measure", "report"})


@dataclass(frozen=True)
class Context:
    """What the runner hands every benchmark: where things go and how hard to try."""

    data_dir: Path  # cached generated data (git-ignored)
    venv_dir: Path  # the peers' virtual environments (git-ignored)
    results_dir: Path  # latest.json (git-ignored)
    rows: int  # predictions (and reference rows) of the shared synthetic table
    full_rows: int  # predictions of the slow `--full` benchmarks (10 M)
    seed: int
    repeats: int  # fast measurements are repeated and the best kept
    full: bool  # --full: the slow parts were asked for
    log: Callable[[str], None]


@dataclass(frozen=True)
class Outcome:
    """A finished benchmark: a report for people, JSON for `latest.json`, and the verdict."""

    report: str
    data: dict[str, Any]
    passed: bool | None = None  # None: no target, or the target could not be measured


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    run: Callable[[Context], Outcome]
    default: bool = True  # False: only with --full or --only
    order: int = 50  # run order (lower first)


_REGISTRY: dict[str, Benchmark] = {}


def benchmark(
    name: str, description: str, *, default: bool = True, order: int = 50
) -> Callable[[Callable[[Context], Outcome]], Callable[[Context], Outcome]]:
    """Register `run(ctx) -> Outcome` under `name` (unique; `--only NAME` selects it)."""

    def register(run: Callable[[Context], Outcome]) -> Callable[[Context], Outcome]:
        if name in _REGISTRY and _REGISTRY[name].run is not run:
            raise ValueError(f"benchmark {name!r} is registered twice")
        _REGISTRY[name] = Benchmark(name, description, run, default=default, order=order)
        return run

    return register


@dataclass(frozen=True)
class Discovery:
    """The registered benchmarks, and the modules that failed to import (with the error)."""

    benchmarks: list[Benchmark]
    broken: dict[str, str] = field(default_factory=dict)


def discover() -> Discovery:
    """Import every benchmark module of this package and return what registered, in order."""
    broken: dict[str, str] = {}
    for info in pkgutil.iter_modules([str(BENCH_DIR)]):
        if info.name.startswith("_") or info.name in HELPERS:
            continue
        module = f"{__package__}.{info.name}"
        try:
            importlib.import_module(module)
        except Exception as exc:  # one broken module must not stop the other benchmarks
            broken[module] = f"{type(exc).__name__}: {exc}"
    ordered = sorted(_REGISTRY.values(), key=lambda b: (b.order, b.name))
    return Discovery(benchmarks=ordered, broken=broken)
